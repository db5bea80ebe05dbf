"""scripts/try as the README has a newcomer run it: every example, start to
finish (validate, apply, show, a ping across the lab, destroy), in the script's
own throwaway sandbox; and in a container-like host whose /proc/sys is
read-only. As root; setup-env has nothing left to install by then."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.sandbox import can_sandbox, one_host_examples

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
# one host's labs: examples/cluster needs three (tests/integration/test_cluster.py)
EXAMPLES = one_host_examples()
_WHY_NOT = can_sandbox()


def try_example(example: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    if _WHY_NOT is not None:
        pytest.skip(f"scripts/try makes a sandbox: {_WHY_NOT}")
    # its own mount namespace, so that a prelude's mounts stay in it
    script = f'{prelude}exec "$0" "$1"'
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        str(ROOT / "scripts/try"),
        example,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("example", EXAMPLES)
def test_try_shows_each_example_and_pings_across_it(example: str) -> None:
    result = try_example(example)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " 0% packet loss" in result.stdout
    assert "Removed everything netlab owned." in result.stdout
    assert "this host's network was not touched" in result.stdout


def test_try_works_where_proc_sys_is_read_only() -> None:
    # as in a container that mounts /proc/sys read-only: the sandbox mounts a /proc of its own
    result = try_example("bridge", "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && ")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " 0% packet loss" in result.stdout


def test_try_says_which_capability_a_container_withholds() -> None:
    # systemd-nspawn without --private-network, or Docker without --cap-add NET_ADMIN
    if _WHY_NOT is not None:
        pytest.skip(f"scripts/try makes a sandbox: {_WHY_NOT}")
    argv = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", str(ROOT / "scripts/try")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "lacks CAP_NET_ADMIN" in result.stderr and "--private-network" in result.stderr
