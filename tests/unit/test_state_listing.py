"""Which files of the config directory form a generation, and how a missing or
unreadable directory is refused rather than read as "no configuration"."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
from netlab.state.loading import list_config_files, load_generation, validate_paths

MINIMAL = "version: 1\n"


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.yaml",
        ".#emacs-lock.yaml",
        "#autosave.yaml#",
        "backup.yaml~",
        "swap.yaml.swp",
        "temp.yaml.tmp",
        "pkg.yaml.dpkg-old",
        "pkg.yaml.dpkg-new",
        "pkg.dpkg-dist.yaml",
        "pkg.yaml.rpmnew",
        "pkg.yaml.rpmsave",
        "notes.txt",
        "README",
        "config.yaml.bak",
    ],
)
def test_ignored_names(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(MINIMAL)
    assert list_config_files(tmp_path) == []


def test_config_files_sorted_by_name(tmp_path: Path) -> None:
    for name in ("b.yml", "a.yaml", "c.json", "0-first.yaml"):
        (tmp_path / name).write_text(MINIMAL)
    assert [p.name for p in list_config_files(tmp_path)] == ["0-first.yaml", "a.yaml", "b.yml", "c.json"]


def test_subdirectories_and_fifos_are_not_files(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it would block the daemon
    (tmp_path / "real.yaml").write_text(MINIMAL)
    assert [p.name for p in list_config_files(tmp_path)] == ["real.yaml"]


@contextlib.contextmanager
def _never_hanging(fifo: Path) -> Iterator[None]:
    """Should the code under test open the FIFO, a writer comes after a while and
    closes it at once: the test then fails on what was read instead of hanging."""
    done = threading.Event()

    def unblock() -> None:
        if not done.wait(10):
            os.close(os.open(fifo, os.O_WRONLY))

    threading.Thread(target=unblock, daemon=True).start()
    try:
        yield
    finally:
        done.set()


def test_a_fifo_in_the_directory_is_refused_by_type_unopened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "real.yaml").write_text(MINIMAL)
    with _never_hanging(tmp_path / "pipe.yaml"), pytest.raises(ConfigError) as caught:
        load_generation(tmp_path, hostname="h")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(tmp_path / "pipe.yaml"), 1, 1)
    assert problem.message.startswith("this is a FIFO (named pipe), not a regular file")


def test_special_files_named_directly_are_refused_by_type(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "null.yaml").symlink_to("/dev/null")  # a character device, through a link
    with _never_hanging(tmp_path / "pipe.yaml"):
        problems = validate_paths([tmp_path / "pipe.yaml", tmp_path / "null.yaml", tmp_path])
    assert [(Path(p.file).name, p.message.split(",")[0]) for p in problems] == [
        ("null.yaml", "this is a character device"),
        ("pipe.yaml", "this is a FIFO (named pipe)"),
    ]


def test_dangling_symlink_is_listed_and_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    assert [p.name for p in list_config_files(tmp_path)] == ["gone.yaml"]
    with pytest.raises(ConfigError) as caught:
        load_generation(tmp_path, hostname="h")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (1, 1)
    assert "cannot read the file: No such file or directory" in problem.message


def test_symlinked_directory_is_resolved(tmp_path: Path) -> None:
    # git-sync: the config dir is a symlink swapped to a new checkout
    revision = tmp_path / "rev-1"
    revision.mkdir()
    (revision / "a.yaml").write_text(MINIMAL)
    link = tmp_path / "netlab.d"
    link.symlink_to(revision)
    assert list_config_files(link) == [Path(os.path.realpath(revision)) / "a.yaml"]
    state = load_generation(link, hostname="h")
    assert state.files == (os.path.join(os.path.realpath(revision), "a.yaml"),)


def test_empty_directory_is_an_empty_state(tmp_path: Path) -> None:
    state = load_generation(tmp_path, hostname="h")
    assert state.links == () and state.namespaces == () and state.files == ()


def _refusal(config_dir: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        list_config_files(config_dir)
    (problem,) = caught.value.problems
    assert problem.file == str(config_dir)
    assert (problem.line, problem.column) == (0, 0)
    assert "refused" in problem.message and "remove everything" in problem.message
    return problem.message


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    assert "does not exist" in _refusal(tmp_path / "missing")


def test_dangling_directory_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "netlab.d"
    link.symlink_to(tmp_path / "swapped-away")
    message = _refusal(link)
    assert "does not exist" in message and "swapped-away" in message


def test_file_instead_of_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert "is not a directory" in _refusal(tmp_path / "file")


def test_unreadable_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root reads any directory, so the refusal of the kernel is simulated
    def refuse(path: object) -> list[str]:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "listdir", refuse)
    assert "cannot be read (Permission denied)" in _refusal(tmp_path)


def test_load_generation_refuses_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_generation(tmp_path / "missing", hostname="h")


def test_unreadable_file_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    real_open = os.open

    def refuse(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith("a.yaml"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("os.open", refuse)  # as root, no mode bit refuses
    with pytest.raises(ConfigError) as caught:
        load_generation(tmp_path, hostname="h")
    (problem,) = caught.value.problems
    assert problem.message == "cannot read the file: Permission denied"
