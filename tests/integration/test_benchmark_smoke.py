"""The benchmark suite still works: `benchmarks/run` at N = 10, one run of every
tool (netlab, `ip -batch`, the shell script, ifstate, netlab's daemon, and the NAT
benchmark: netlab with each backend and `nft -f`), each in
its own sandbox. Checks that it produced sane output and left nothing on the
machine, never how fast anything is. The first run makes benchmarks/.venv from
benchmarks/requirements.txt (from the package index, as scripts/setup-env does).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox import can_sandbox, host_footprint

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
NETLAB = str(Path(sys.executable).with_name("netlab"))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_the_benchmark_runs_at_n_10_and_every_tool_builds_the_topology(tmp_path: Path) -> None:
    reason = can_sandbox()
    if reason is not None:
        pytest.skip(f"the benchmark needs sandboxes: {reason}")
    argv = [
        sys.executable,
        str(ROOT / "benchmarks" / "run"),
        "--sizes",
        "10",
        "--repeat",
        "1",
        "--profile-size",
        "10",
        "--startup-repeat",
        "2",
        "--settle",
        "2",
        "--nat-rules",
        "20",
        "--nat-namespaces",
        "2",
        "--netlab",
        NETLAB,
        "--out",
        str(tmp_path),
    ]
    before = host_footprint()
    finished = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert host_footprint() == before, "the benchmark's sandboxes leaked onto the host"
    results = json.loads((tmp_path / "results.json").read_text())

    for tool in ("netlab", "batch", "shell", "ifstate"):
        runs = [run for run in results["runs"] if run["tool"] == tool]
        assert len(runs) == 1, f"{tool}: {len(runs)} runs"
        run = runs[0]
        assert "error" not in run, f"{tool}: {run['error']}"
        assert run["verify"]["ok"], f"{tool}: {run['verify']['problems']}"
        assert run["verify"]["counts"]["namespaces_right"] == 10
        assert _number(run["cold_s"])

    for tool in ("nftables", "iptables", "nft-f"):
        (run,) = [run for run in results["nat"] if run["tool"] == tool]
        assert "error" not in run, f"NAT {tool}: {run['error']}"
        assert run["verify"]["ok"] and run["verify"]["namespaces_right"] == 2, f"NAT {tool}: {run['verify']}"
        assert _number(run["cold_s"])
        if tool != "nft-f":
            assert run["noop_plan_exit"] == 0 and _number(run["noop_apply_s"])
    assert "## NAT: 20 port forwards across 2 namespaces" in (tmp_path / "RESULTS.md").read_text()

    netlab = next(run for run in results["runs"] if run["tool"] == "netlab")
    assert netlab["noop_apply"]["writes"] == 0, netlab["noop_apply"]
    assert netlab["noop_plan_exit"] == 0
    assert all(_number(netlab[key]) for key in ("noop_apply_s", "noop_plan_s", "edit_s"))
    assert _number(netlab["phases"]["observe_plan_ms"])
    assert netlab["edit"]["netlink_events"], "the edit changed nothing the witness saw"
    ifstate = next(run for run in results["runs"] if run["tool"] == "ifstate")
    assert _number(ifstate["noop_apply_s"]) and _number(ifstate["edit_s"])

    [daemon] = results["daemon"]
    assert "error" not in daemon, daemon["error"]
    assert daemon["verify"]["ok"], daemon["verify"]["problems"]
    assert _number(daemon["ready_s"]) and daemon["memory_kb"]["VmHWM"] > 0
    kinds = [sample["kind"] for sample in daemon["samples"]]
    assert kinds == ["drift-addr", "drift-addr", "drift-link", "drift-netns", "rename", "rename"]
    assert all(_number(sample["address_s"]) for sample in daemon["samples"]), daemon["samples"]

    startup = results["startup"]
    assert all(_number(value) for key in ("python_s", "help_s", "plan_empty_s") for value in startup[key])
    assert set(results["profiles"]) == {"cold", "noop"}
    assert all(profile["wall_s"] > 0 and profile["phases"] for profile in results["profiles"].values())

    report = (tmp_path / "RESULTS.md").read_text()
    for heading in (
        "## Targets",
        "## Cold apply",
        "## No-op reconcile",
        "## One change among N",
        "## The daemon",
        "## Where netlab's time goes",
    ):
        assert heading in report
    assert (tmp_path / "cold-apply.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
