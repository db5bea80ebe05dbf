"""Fixtures shared by the whole suite: `sandbox`, a private kernel for one test,
checked after the test to have left nothing behind on the machine itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox import Sandbox, can_sandbox, host_footprint

_WHY_NOT = can_sandbox()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if _WHY_NOT is not None:
        pytest.skip(f"sandboxed kernel tests: {_WHY_NOT}")
    before = host_footprint()
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()
    after = host_footprint()
    assert after == before, f"the sandbox leaked onto the host: before {before}, after {after}"
