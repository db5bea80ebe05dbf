"""Which files of the config directory form a generation, and how a missing or
unreadable directory is refused rather than read as "no configuration"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
from netlab.state.loading import list_config_files, load_generation

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
    real_open = open

    def refuse(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith("a.yaml"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(ConfigError) as caught:
        load_generation(tmp_path, hostname="h")
    (problem,) = caught.value.problems
    assert problem.message == "cannot read the file: Permission denied"
