"""Fixtures shared by the whole suite: `sandbox`, a private kernel for one test,
checked after the test to have left nothing behind on the machine itself
(`any_sandbox`: the same in each layout of tests/sandbox.py, for the harness's
own tests); and the split scripts/test makes (NETLAB_TEST_PHASE): the tests that
may run side by side, and the end-to-end ones, which run alone."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.sandbox import BENCHMARK, TESTS, Layout, Sandbox, can_sandbox, host_footprint

_WHY_NOT: dict[Layout, str | None] = {}  # by layout, found out once
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


def _checked(layout: Layout) -> Iterator[Sandbox]:
    """A sandbox of this layout for one test, then the check that it left nothing
    behind on the machine itself; skips where none can be made."""
    if layout not in _WHY_NOT:
        _WHY_NOT[layout] = can_sandbox(layout)
    if _WHY_NOT[layout] is not None:
        pytest.skip(f"sandboxed kernel tests: {_WHY_NOT[layout]}")
    before = host_footprint()
    box = Sandbox(layout)
    try:
        yield box
    finally:
        box.close()
    after = host_footprint()
    assert after == before, f"the sandbox leaked onto the host: before {before}, after {after}"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The tests' sandbox (`TESTS` layout)."""
    yield from _checked(TESTS)


@pytest.fixture(params=[TESTS, BENCHMARK], ids=["tests-layout", "benchmark-layout"])
def any_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox of each layout in turn: the tests' and the benchmark's (with its PID namespace)."""
    yield from _checked(request.param)
