"""Fixtures of the unit tests: a config directory written from a dict of file
texts, loading it into problems printed as `file:line:col: ...`, and a config
and state directory pair."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
from netlab.state.loading import load_generation
from netlab.state.model import DesiredState

HOSTNAME = "node-a"
FIXTURES = Path(__file__).parent / "fixtures"

WriteConfig = Callable[[dict[str, str | bytes]], Path]


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A config directory and a state directory, as the daemon and `netlab try` use them."""
    config, state = tmp_path / "netlab.d", tmp_path / "state"
    config.mkdir(mode=0o755)
    state.mkdir(mode=0o700)
    return config, state


@pytest.fixture
def design_example() -> bytes:
    """The example document of DESIGN.md, which applies to host `node-a`."""
    return (FIXTURES / "design-example.yaml").read_bytes()


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Writes files (text is dedented by the caller) into a fresh directory."""
    counter = iter(range(1000))

    def write(files: dict[str, str | bytes]) -> Path:
        directory = tmp_path / f"netlab.d-{next(counter)}"
        directory.mkdir()
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (directory / name).write_bytes(data)
        return directory

    return write


@pytest.fixture
def load(write_config: WriteConfig) -> Callable[[dict[str, str | bytes]], DesiredState]:
    def load(files: dict[str, str | bytes]) -> DesiredState:
        return load_generation(write_config(files), hostname=HOSTNAME)

    return load


@pytest.fixture
def problems(write_config: WriteConfig) -> Callable[[dict[str, str | bytes]], list[str]]:
    """The problems of a generation as `name:line:col: path: message` strings, with
    the directory left out of file names so tests can compare them exactly."""

    def problems(files: dict[str, str | bytes]) -> list[str]:
        directory = write_config(files)
        try:
            load_generation(directory, hostname=HOSTNAME)
        except ConfigError as error:
            prefix = f"{os.path.realpath(directory)}/"
            return [str(p).removeprefix(prefix) for p in error.problems]
        return []

    return problems
