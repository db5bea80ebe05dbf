"""StrictModes for the config directory: another user's or a world-writable
directory or file is refused, with the fix in the message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
from netlab.state.loading import load_generation

DOC = "version: 1\nnamespaces:\n  - name: red\n"


def config(tmp_path: Path) -> Path:
    directory = tmp_path / "netlab.d"
    directory.mkdir(mode=0o755)
    (directory / "lab.yaml").write_text(DOC)
    (directory / "lab.yaml").chmod(0o644)
    return directory


def test_a_private_directory_is_trusted(tmp_path: Path) -> None:
    assert [ns.name for ns in load_generation(config(tmp_path)).namespaces] == ["red"]


def test_a_world_writable_file_is_refused_and_named(tmp_path: Path) -> None:
    directory = config(tmp_path)
    (directory / "lab.yaml").chmod(0o666)
    with pytest.raises(ConfigError) as refused:
        load_generation(directory)
    (problem,) = refused.value.problems
    assert problem.file.endswith("lab.yaml")
    assert "chmod o-w" in problem.message
    assert load_generation(directory, strict_modes=False).namespaces


def test_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    directory = config(tmp_path)
    directory.chmod(0o777)
    with pytest.raises(ConfigError, match="any user can write it"):
        load_generation(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    directory = config(tmp_path)
    os.chown(directory / "lab.yaml", 65534, 65534)
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        load_generation(directory)


def test_a_symlink_to_a_writable_file_outside_is_judged_by_its_target(tmp_path: Path) -> None:
    directory = config(tmp_path)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(DOC.replace("red", "blue"))
    outside.chmod(0o666)
    (directory / "more.yaml").symlink_to(outside)
    with pytest.raises(ConfigError, match="any user can write it"):
        load_generation(directory)
