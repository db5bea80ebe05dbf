"""The daemon against a real kernel in a sandbox: files become generations after a
quiet interval, broken files leave the last good generation in force, drift is
repaired from netlink events, SIGHUP re-reads and SIGTERM leaves the network up."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_daemon import BLUE, LAB
from tests.sandbox import NETLAB, Sandbox

pytestmark = pytest.mark.kernel


@pytest.fixture
def daemon(sandbox: Sandbox) -> Iterator[subprocess.Popen[str]]:
    sandbox.write_config("lab.yaml", LAB)
    process = sandbox.spawn(NETLAB, "daemon", "--debounce", "0.25", "--resync-interval", "3")
    assert sandbox.wait_for(lambda: status(sandbox).get("state") == "healthy", timeout=15), status(sandbox)
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def status(sandbox: Sandbox) -> dict[str, object]:
    # printed whatever the state; the exit code says the state (0 healthy only)
    result = sandbox.netlab("status", "--json", check=False)
    return json.loads(result.stdout) if result.stdout.strip() else {}


def addresses(sandbox: Sandbox, netns: str, link: str) -> str:
    return sandbox.run("ip", "-n", netns, "-br", "addr", "show", link, check=False).stdout


def test_an_edit_is_applied_within_a_second(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    assert "10.5.0.2/24" in addresses(sandbox, "red", "veth-red")
    began = time.monotonic()
    sandbox.write_config("lab.yaml", LAB.replace("10.5.0.2/24", "10.5.0.22/24"))  # temp file + rename
    assert sandbox.wait_for(lambda: "10.5.0.22/24" in addresses(sandbox, "red", "veth-red"), timeout=3)
    assert time.monotonic() - began < 1.5
    assert "10.5.0.2/24" not in addresses(sandbox, "red", "veth-red")


def test_edits_across_namespaces_and_files_converge_as_a_full_plan_sees_it(
    sandbox: Sandbox, daemon: subprocess.Popen[str]
) -> None:
    """Each edit's pass plans only the namespaces it changed; after every one,
    a full plan must find nothing left to do."""

    def converged() -> bool:
        return sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0

    def bridge_ports() -> str:
        return sandbox.run("ip", "-br", "link", "show", "master", "br0").stdout

    sandbox.write_config("blue.yaml", BLUE)  # a new file: a namespace, its veth and a port of the host's bridge
    assert sandbox.wait_for(lambda: "veth-blue-br" in bridge_ports(), timeout=5)
    assert sandbox.wait_for(converged, timeout=5)
    # the host end of blue's veth leaves the bridge: declared in blue's entry
    sandbox.write_config("blue.yaml", BLUE.replace(", master: br0", ""))
    assert sandbox.wait_for(lambda: "veth-blue-br" not in bridge_ports(), timeout=5)
    assert sandbox.wait_for(converged, timeout=5)
    # the bridge that red's route and peer depend on changes its address: both namespaces
    sandbox.write_config("lab.yaml", LAB.replace("10.5.0.", "10.6.0."))
    assert sandbox.wait_for(lambda: "10.6.0.2/24" in addresses(sandbox, "red", "veth-red"), timeout=5)
    assert sandbox.wait_for(converged, timeout=5)
    assert "10.6.0.1" in sandbox.run("ip", "-n", "red", "route", "show", "default").stdout
    sandbox.remove_config("blue.yaml")  # a file deleted: its namespace and the host end go
    assert sandbox.wait_for(lambda: "blue" not in sandbox.namespaces(), timeout=5)
    assert sandbox.wait_for(converged, timeout=5)
    assert "veth-blue-br" not in sandbox.run("ip", "-br", "link").stdout
    assert status(sandbox).get("state") == "healthy"


def test_a_file_written_in_two_parts_is_never_applied_half(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    extra = "version: 1\nnamespaces: [{name: blue}]\ninterfaces:\n  - {name: veth-blue, type: veth, netns: blue, peer: {name: veth-blue-br, master: br0}}\n"
    target = sandbox.path("/etc/netlab.d/extra.yaml")
    with open(target, "w") as handle:
        handle.write(extra[:40])  # cut inside a flow sequence: not valid YAML
        handle.flush()
        time.sleep(0.8)  # longer than the debounce
        handle.write(extra[40:])
    assert sandbox.wait_for(lambda: "blue" in sandbox.namespaces(), timeout=5)
    assert sandbox.wait_for(lambda: status(sandbox).get("state") == "healthy", timeout=5)
    assert "veth-blue-br" in sandbox.run("ip", "-br", "link", "show", "master", "br0").stdout


def test_broken_files_keep_the_last_good_generation_enforced_and_healed(
    sandbox: Sandbox, daemon: subprocess.Popen[str]
) -> None:
    sandbox.write_config("broken.yaml", "version: 1\ninterfaces:\n  - {name: x0, type: bridge, mtu: lots}\n")
    assert sandbox.wait_for(lambda: status(sandbox).get("state") == "degraded", timeout=5)
    report = status(sandbox)
    problems = report["last_error"]["problems"]  # type: ignore[index]
    assert problems[0]["file"].endswith("broken.yaml") and problems[0]["line"] == 3
    human = sandbox.netlab("status", check=False)
    assert human.returncode == 2 and "degraded" in human.stdout and "broken.yaml:3:" in human.stdout
    sandbox.run("ip", "link", "del", "veth-red-br")  # drift while degraded
    assert sandbox.wait_for(lambda: "veth-red-br" in sandbox.run("ip", "-br", "link").stdout, timeout=3)
    sandbox.ping("red", "10.5.0.1", check=True)


def test_drift_is_repaired_from_kernel_events(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    sandbox.run("ip", "-n", "red", "addr", "del", "10.5.0.2/24", "dev", "veth-red")
    assert sandbox.wait_for(lambda: "10.5.0.2/24" in addresses(sandbox, "red", "veth-red"), timeout=2)
    sandbox.run("ip", "-n", "red", "route", "del", "default")
    assert sandbox.wait_for(lambda: "default via 10.5.0.1" in sandbox.run("ip", "-n", "red", "route").stdout, timeout=2)
    assert sandbox.wait_for(lambda: int(status(sandbox).get("drift_repairs", 0)) >= 2, timeout=3)  # type: ignore[arg-type]


def test_sighup_rereads_and_sigterm_leaves_the_network(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    daemon.send_signal(signal.SIGHUP)
    assert sandbox.wait_for(lambda: (status(sandbox).get("last_apply") or {}).get("reason") == "reload", timeout=5)  # type: ignore[union-attr]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    assert "red" in sandbox.namespaces()
    sandbox.ping("red", "10.5.0.1", check=True)
    stopped = sandbox.netlab("status", check=False)
    assert (
        stopped.returncode == 5 and "daemon: stopped" in stopped.stdout and "nothing is reconciling" in stopped.stdout
    )


def test_a_restart_with_broken_files_enforces_the_last_good_generation(
    sandbox: Sandbox, daemon: subprocess.Popen[str]
) -> None:
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=10)
    dead = sandbox.netlab("status", check=False)  # its status.json still says "running"
    assert dead.returncode == 6 and "daemon: dead" in dead.stdout and "state: healthy" not in dead.stdout, dead.stdout
    sandbox.write_config("lab.yaml", "version: 1\nnamespaces: [\n")
    sandbox.run("ip", "link", "del", "veth-red-br")
    again = sandbox.spawn(NETLAB, "daemon", "--debounce", "0.25")
    try:
        assert sandbox.wait_for(lambda: "veth-red-br" in sandbox.run("ip", "-br", "link").stdout, timeout=10)
        assert sandbox.wait_for(lambda: status(sandbox).get("state") == "degraded", timeout=5)
        generation = status(sandbox)["generation"]
        assert generation["source"] == "last-good"  # type: ignore[index]
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=10)


def test_change_events_are_json_lines_on_stdout(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    sandbox.write_config("lab.yaml", LAB.replace("10.5.0.2/24", "10.5.0.3/24"))
    assert sandbox.wait_for(lambda: "10.5.0.3/24" in addresses(sandbox, "red", "veth-red"), timeout=3)
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    changes = [e for e in events if e["event"] == "change applied"]
    assert changes, out
    for event in changes:
        assert {"generation", "netns", "kind", "name", "action", "duration_ms"} <= set(event)
    assert any(e["event"] == "generation accepted" for e in events)


def test_a_git_sync_symlink_swap_is_one_new_generation(sandbox: Sandbox) -> None:
    sandbox.sh(
        "mkdir -p /var/lib/netlab/repo/rev1 /var/lib/netlab/repo/rev2 && ln -s rev1 /var/lib/netlab/repo/current"
    )
    sandbox.path("/var/lib/netlab/repo/rev1/lab.yaml").write_text(LAB)
    sandbox.path("/var/lib/netlab/repo/rev2/lab.yaml").write_text(LAB.replace("10.5.0.2/24", "10.5.0.9/24"))
    process = sandbox.spawn(NETLAB, "daemon", "--config-dir", "/var/lib/netlab/repo/current", "--debounce", "0.25")
    try:
        assert sandbox.wait_for(lambda: "10.5.0.2/24" in addresses(sandbox, "red", "veth-red"), timeout=10)
        sandbox.sh("cd /var/lib/netlab/repo && ln -s rev2 next && mv -T next current")
        assert sandbox.wait_for(lambda: "10.5.0.9/24" in addresses(sandbox, "red", "veth-red"), timeout=3)
        assert status(sandbox)["generation"]["number"] == 2  # type: ignore[index]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_a_managed_resolv_conf_edited_by_hand_is_put_back(sandbox: Sandbox) -> None:
    sandbox.write_config(
        "lab.yaml",
        LAB.replace("namespaces: [{name: red}]", "namespaces: [{name: red, dns: {nameservers: [10.5.0.1]}}]"),
    )
    # the resync (an hour away) is not what repairs it: the file is watched
    process = sandbox.spawn(NETLAB, "daemon", "--debounce", "0.25", "--resync-interval", "3600")
    try:
        path = sandbox.path("/etc/netns/red/resolv.conf")
        assert sandbox.wait_for(lambda: path.exists() and "nameserver 10.5.0.1" in path.read_text(), timeout=10)
        path.write_text("nameserver 203.0.113.1\n")
        assert sandbox.wait_for(lambda: "nameserver 10.5.0.1" in path.read_text(), timeout=4)
        seen = sandbox.run("ip", "netns", "exec", "red", "cat", "/etc/resolv.conf").stdout
        assert "nameserver 10.5.0.1" in seen
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_apply_waits_for_the_daemon_and_both_converge(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    # the lock in the state directory: a concurrent CLI apply is serialised, never interleaved
    results = [sandbox.netlab("apply") for _ in range(3)]
    assert all("No changes" in r.stdout or "Applied" in r.stdout for r in results)
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def test_fighting_another_manager_backs_off(sandbox: Sandbox, daemon: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        sandbox.run("ip", "-n", "red", "addr", "del", "10.5.0.2/24", "dev", "veth-red", check=False)
        time.sleep(0.1)
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=10)
    assert "fighting another manager" in out
    repairs = sum(1 for line in out.splitlines() if '"drift repaired"' in line)
    assert repairs < 40, f"{repairs} repairs in 6 s: the daemon did not back off"


def test_after_an_edit_status_names_the_edit_and_the_times_are_clear(
    sandbox: Sandbox, daemon: subprocess.Popen[str]
) -> None:
    sandbox.write_config("lab.yaml", LAB.replace("10.5.0.2/24", "10.5.0.23/24"))
    assert sandbox.wait_for(lambda: "10.5.0.23/24" in addresses(sandbox, "red", "veth-red"), timeout=5)
    # the edit's own writes make netlink events, and those a drift pass that
    # finds nothing to do: that pass is no apply, and must not hide the edit's
    time.sleep(1.0)
    report = status(sandbox)
    last = report["last_apply"]
    assert last["reason"] == "config" and last["changes"] >= 1, report  # type: ignore[index]
    assert report["format_version"] == 1
    daemon.send_signal(signal.SIGHUP)
    assert sandbox.wait_for(lambda: (status(sandbox).get("last_reload") or {}).get("state") == "healthy", timeout=5)
    reload = status(sandbox)["last_reload"]
    # a wall-clock time for people, a monotonic one for `netlab reload` to compare with
    assert isinstance(reload["began"], str) and reload["began"].endswith("Z"), reload  # type: ignore[index]
    assert time.strptime(reload["began"], "%Y-%m-%dT%H:%M:%SZ")  # type: ignore[index]
    assert isinstance(reload["began_monotonic"], float)  # type: ignore[index]
