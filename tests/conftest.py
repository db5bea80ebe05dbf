"""Fixtures shared by the whole suite: `sandbox`, a private kernel for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox import Sandbox, can_sandbox

_WHY_NOT = can_sandbox()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if _WHY_NOT is not None:
        pytest.skip(f"sandboxed kernel tests: {_WHY_NOT}")
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()
