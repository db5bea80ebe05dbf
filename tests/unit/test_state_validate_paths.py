"""`netlab validate PATH…`: files and directories together form one generation,
named as given on the command line; a path that does not exist is a problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.state.loading import validate_paths

V1 = "version: 1\n"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs the test inside tmp_path, so paths can be given relative like on a command line."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_valid_files_and_directory(here: Path) -> None:
    (here / "conf").mkdir()
    (here / "conf" / "a.yaml").write_text(V1 + "namespaces: [{name: red}]\n")
    (here / "extra.yml").write_text(V1 + "interfaces: [{name: b0, type: bridge, netns: red}]\n")
    assert validate_paths([Path("conf"), Path("extra.yml")], hostname="h") == []


def test_conflicts_across_paths_count(here: Path) -> None:
    (here / "conf").mkdir()
    (here / "conf" / "a.yaml").write_text(V1 + "interfaces: [{name: b0, type: bridge}]\n")
    (here / "b.yaml").write_text(V1 + "interfaces: [{name: b0, type: bridge}]\n")
    (problem,) = validate_paths([Path("conf"), Path("b.yaml")], hostname="h")
    assert str(problem).startswith("b.yaml:2:14: interfaces[0]: interface 'b0' in namespace host is already "
                                   "declared at conf/a.yaml:2")  # fmt: skip


def test_missing_path(here: Path) -> None:
    (problem,) = validate_paths([Path("nope.yaml")], hostname="h")
    assert str(problem) == "nope.yaml:0:0: no such file or directory: name an existing file or directory"


def test_file_named_twice_is_read_once(here: Path) -> None:
    (here / "conf").mkdir()
    (here / "conf" / "a.yaml").write_text(V1 + "interfaces: [{name: b0, type: bridge}]\n")
    assert validate_paths([Path("conf"), Path("conf/a.yaml"), Path("conf")], hostname="h") == []


def test_file_named_directly_is_read_whatever_its_name(here: Path) -> None:
    (here / "draft.yaml.tmp").write_text("version: 3\n")
    (problem,) = validate_paths([Path("draft.yaml.tmp")], hostname="h")
    assert problem.file == "draft.yaml.tmp" and problem.line == 1


def test_empty_directory_is_valid(here: Path) -> None:
    (here / "conf").mkdir()
    assert validate_paths([Path("conf")], hostname="h") == []
