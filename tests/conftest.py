"""Fixtures shared by the whole suite: `sandbox`, a private kernel for one test,
checked after the test to have left nothing behind on the machine itself
(`any_sandbox`: the same in each layout of tests/sandbox.py, for the harness's
own tests); and the split scripts/test makes (NETLAB_TEST_PHASE): the tests that
may run side by side, the end-to-end ones, which run alone, and the ones that
need a distribution kernel, which run in a qemu guest (tools/qemu-kernel.sh)."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.sandbox import BENCHMARK, TESTS, Layout, Sandbox, can_sandbox, host_footprint

_WHY_NOT: dict[Layout, str | None] = {}  # by layout, found out once
# "parallel": all but the e2e and distro-kernel tests (each kernel test has
# namespaces of its own, so they can run side by side); "e2e": only those (they
# boot a container each and time systemd: run alone); "distro-kernel": only the
# tests that need Debian's kernel, inside the guest. Unset: everything. (Markers
# are not chosen with -m: that would override pyproject's -m 'not stress'.)
PHASE = os.environ.get("NETLAB_TEST_PHASE", "")
PHASES = {"parallel": None, "e2e": "e2e", "distro-kernel": "distro_kernel"}  # the marker each phase takes
IN_GUEST = os.environ.get("QEMU_KERNEL_GUEST") == "1"  # set by tools/qemu-kernel.sh inside its guest
NOT_IN_GUEST = (
    "needs Debian's distribution kernel (this kernel lacks the drivers): "
    "scripts/test runs it in a qemu guest (tools/qemu-kernel.sh)"
)


DISTRO_KERNEL_TESTS = Path(__file__).parent / "distro_kernel"  # where every distro_kernel test lives


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the guest, only tests/distro_kernel is read: importing the rest costs
    a minute under qemu's emulated CPU."""
    if PHASE != "distro-kernel":
        return None
    wanted = collection_path == DISTRO_KERNEL_TESTS or DISTRO_KERNEL_TESTS in collection_path.parents
    return None if wanted or collection_path in DISTRO_KERNEL_TESTS.parents else True


def _phase_of(item: pytest.Item) -> str:
    taken = [phase for phase, marker in PHASES.items() if marker and item.get_closest_marker(marker) is not None]
    return taken[0] if taken else "parallel"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    astray = [
        item.nodeid
        for item in items
        if _phase_of(item) == "distro-kernel" and DISTRO_KERNEL_TESTS not in item.path.parents
    ]
    if astray:
        raise pytest.UsageError(f"distro_kernel tests outside tests/distro_kernel never run in the guest: {astray}")
    if PHASE in PHASES:
        kept = [item for item in items if _phase_of(item) == PHASE]
        if len(kept) != len(items):
            keep = set(kept)
            config.hook.pytest_deselected(items=[item for item in items if item not in keep])
            items[:] = kept
    if not IN_GUEST:
        for item in items:
            if item.get_closest_marker("distro_kernel") is not None:
                item.add_marker(pytest.mark.skip(reason=NOT_IN_GUEST))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Inside the guest a distro-kernel test that skips fails: the tier exists
    to run them (a sandbox that cannot be made there is a broken guest)."""
    report: pytest.TestReport = yield
    if IN_GUEST and report.skipped and item.get_closest_marker("distro_kernel") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped inside the distro-kernel guest, where every test must run: {reason}"
    return report


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
