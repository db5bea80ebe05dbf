"""Fixtures shared by the whole suite: `sandbox`, a private kernel for one test,
checked after the test to have left nothing behind on the machine itself; and
the split scripts/test makes (NETLAB_TEST_PHASE): the tests that may run side
by side, and the end-to-end ones, which run alone."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.sandbox import Sandbox, can_sandbox, host_footprint

_WHY_NOT = can_sandbox()
# "parallel": all but the e2e tests (each kernel test has namespaces of its own,
# so they can run side by side); "e2e": only those (they boot a container each
# and time systemd: run alone). Unset: everything.
PHASE = os.environ.get("NETLAB_TEST_PHASE", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PHASE not in ("parallel", "e2e"):
        return
    wanted = PHASE == "e2e"
    kept = [item for item in items if (item.get_closest_marker("e2e") is not None) == wanted]
    if len(kept) != len(items):
        keep = set(kept)
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = kept


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
