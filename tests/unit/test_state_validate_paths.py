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
    assert validate_paths([Path("conf"), Path("extra.yml")], hostnames=["h"]) == []


def test_conflicts_across_paths_count(here: Path) -> None:
    (here / "conf").mkdir()
    (here / "conf" / "a.yaml").write_text(V1 + "interfaces: [{name: b0, type: bridge}]\n")
    (here / "b.yaml").write_text(V1 + "interfaces: [{name: b0, type: bridge}]\n")
    (problem,) = validate_paths([Path("conf"), Path("b.yaml")], hostnames=["h"])
    assert str(problem).startswith("b.yaml:2:14: interfaces[0]: interface 'b0' in namespace host is already "
                                   "declared at conf/a.yaml:2")  # fmt: skip


def test_missing_path(here: Path) -> None:
    (problem,) = validate_paths([Path("nope.yaml")], hostnames=["h"])
    assert str(problem) == "nope.yaml:0:0: no such file or directory: name an existing file or directory"


def test_file_named_twice_is_read_once(here: Path) -> None:
    (here / "conf").mkdir()
    (here / "conf" / "a.yaml").write_text(V1 + "interfaces: [{name: b0, type: bridge}]\n")
    assert validate_paths([Path("conf"), Path("conf/a.yaml"), Path("conf")], hostnames=["h"]) == []


def test_file_named_directly_is_read_whatever_its_name(here: Path) -> None:
    (here / "draft.yaml.tmp").write_text("version: 3\n")
    (problem,) = validate_paths([Path("draft.yaml.tmp")], hostnames=["h"])
    assert problem.file == "draft.yaml.tmp" and problem.line == 1


def test_empty_directory_is_valid(here: Path) -> None:
    (here / "conf").mkdir()
    assert validate_paths([Path("conf")], hostnames=["h"]) == []


def test_each_named_host_sees_the_files_that_match_it(here: Path) -> None:
    # fleet CI: a conflict that exists only on node-a, a problem every host has,
    # and one that two of the three hosts have
    (here / "conf").mkdir()
    (here / "conf" / "all.yaml").write_text(V1 + "interfaces: [{name: br0, type: bridge}]\nroutes: [{to: default}]\n")
    (here / "conf" / "node-a.yaml").write_text(
        V1 + "match: {hostname: node-a}\ninterfaces: [{name: br0, type: bridge}]\n"
    )
    (here / "conf" / "edges.yaml").write_text(
        V1 + "match: {hostname: 'edge-*'}\ninterfaces: [{name: br0, type: bridge}]\n"
    )
    hosts = ["node-a", "edge-1", "edge-2", "node-b"]
    assert [str(problem) for problem in validate_paths([Path("conf")], hostnames=hosts)] == [
        "conf/all.yaml:3:10: routes[0]: a route needs `via` (a gateway), `dev` (an interface) or both",
        "conf/edges.yaml:3:14: interfaces[0]: on hosts edge-1, edge-2: interface 'br0' in namespace host is "
        "already declared at conf/all.yaml:2 (as a bridge): declare it once (all files of the directory are "
        "merged into one state)",
        "conf/node-a.yaml:3:14: interfaces[0]: on host node-a: interface 'br0' in namespace host is already "
        "declared at conf/all.yaml:2 (as a bridge): declare it once (all files of the directory are merged "
        "into one state)",
    ]
    assert [str(problem) for problem in validate_paths([Path("conf")], hostnames=["node-b"])] == [
        "conf/all.yaml:3:10: routes[0]: a route needs `via` (a gateway), `dev` (an interface) or both"
    ]


def test_netlab_validate_takes_hostname_once_per_host(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netlab.controller.cli import main

    (here / "conf").mkdir()
    (here / "conf" / "all.yaml").write_text(V1 + "interfaces: [{name: br0, type: bridge}]\n")
    (here / "conf" / "node-a.yaml").write_text(
        V1 + "match: {hostname: node-a}\ninterfaces: [{name: br0, type: bridge}]\n"
    )
    assert main(["validate", "--hostname", "node-b", "--hostname", "node-c", "conf"]) == 0
    assert capsys.readouterr().out == "valid: conf (for hosts node-b, node-c)\n"
    assert main(["validate", "--hostname", "node-b", "--hostname", "node-a", "conf"]) == 1
    assert "conf/node-a.yaml:3:14: interfaces[0]: on host node-a: interface 'br0'" in capsys.readouterr().err


def test_the_pre_commit_hook_runs_netlab_validate_over_the_directory() -> None:
    import tomllib

    from ruamel.yaml import YAML

    root = Path(__file__).resolve().parents[2]
    (hook,) = YAML(typ="safe").load((root / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "netlab-validate" and hook["language"] == "python"
    command, subcommand = hook["entry"].split()
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert command in scripts and subcommand == "validate"
    # the directory comes from `args`: a commit's changed files alone would miss conflicts
    assert hook["pass_filenames"] is False and hook["require_serial"] is True
