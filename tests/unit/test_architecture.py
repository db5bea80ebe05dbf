"""The architecture rules of STYLE.md, checked: layers import one way, the kinds
are independent, only the backends import pyroute2 and iptc (contracts in
pyproject.toml), the code passes the linter and the formatter unchanged, and
mypy --strict finds nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_import_contracts_are_kept() -> None:
    result = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_everything_as_it_is() -> None:
    result = subprocess.run([tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    """pyproject.toml's [tool.mypy]: strict, over the packages under their
    installed names (.mypy-src/netlab links to controller/, state/, schemas/)."""
    result = subprocess.run([tool("mypy"), "--no-incremental"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = re.search(r"no issues found in (\d+) source files", result.stdout)
    assert checked is not None, result.stdout
    # every module of the three packages (and the namespace package netlab
    # itself), not a subset that happens to be clean
    modules = [p for d in ("controller", "state", "schemas") for p in (ROOT / d).rglob("*.py")]
    assert int(checked.group(1)) == len(modules) + 1, result.stdout
