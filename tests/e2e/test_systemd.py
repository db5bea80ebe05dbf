"""netlab as an operator runs it: installed into a Debian 12 tree by the project's
own scripts/install, booted under the real systemd in systemd-nspawn with a
private network, and driven with systemctl and journalctl from the container's
own shell. Each test is one promise of the unit; they share one boot and run in
file order. The tree (mmdebstrap, systemd only: scripts/install brings the rest)
is cached under /var/cache/netlab-e2e (NETLAB_E2E_CACHE), as are apt's downloads;
each run installs into a fresh copy of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.prerequisites import why_not
from tests.sandbox import wait

pytestmark = [pytest.mark.e2e, pytest.mark.kernel]

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("NETLAB_E2E_CACHE", "/var/cache/netlab-e2e"))
# Only what boots, and ping for the tests: scripts/install must bring iproute2,
# iptables, python3 and the rest itself, or this test would not notice when it
# stops doing so.
TREE_PACKAGES = "systemd,systemd-sysv,dbus,iputils-ping"
TREE = CACHE / f"bookworm-{hashlib.sha256(TREE_PACKAGES.encode()).hexdigest()[:8]}"
# What `systemd-analyze security` may rate the unit at most (lower is better; 4.0
# when this was written): the mount-namespace family is left out on purpose (see
# the unit's header), so are User=, PrivateUsers= and PrivateNetwork=.
EXPOSURE_CEILING = 4.0

# for commands in the container: not the test's own environment
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

LAB = """version: 1
namespaces:
  - name: red
    sysctls: {net.ipv4.ip_forward: 1}
    dns: {nameservers: [192.168.15.5], search: [lab.internal]}
    hosts: [{address: 192.168.15.2, names: [blue]}]
interfaces:
  - {name: v-net-0, type: bridge, addresses: [192.168.15.5/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [192.168.15.1/24], peer: {name: veth-red-br, master: v-net-0}}
routes:
  - {netns: red, to: default, via: 192.168.15.5}
sysctls: {net.ipv4.ip_forward: 1}
nat:
  - {type: masquerade, source: 192.168.15.0/24}
hosts: [{address: 192.168.15.1, names: [red]}]
"""

BLUE = """version: 1
namespaces: [{name: blue}]
interfaces:
  - {name: veth-blue, type: veth, netns: blue, addresses: [192.168.15.2/24], peer: {name: veth-blue-br, master: v-net-0}}
routes:
  - {netns: blue, to: default, via: 192.168.15.5}
"""


def _host_tools() -> None:
    if shutil.which("systemd-nspawn") and shutil.which("mmdebstrap"):
        return
    # no Recommends: systemd-container's would add mymachines to the host's nsswitch.conf
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "systemd-container", "mmdebstrap"],
        check=True,
        env=env,
        capture_output=True,
    )


def _mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


@contextlib.contextmanager
def _cache_locked() -> Iterator[None]:
    """Runs may overlap (a developer's and CI's): one at a time builds the tree or
    uses apt's cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _tree() -> Path:
    """The cached Debian 12 tree, built once."""
    with _cache_locked():
        if not (TREE / "lib/systemd/systemd").exists():
            partial = TREE.with_name(TREE.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(
                [
                    "mmdebstrap",
                    "--quiet",
                    "--variant=minbase",
                    f"--include={TREE_PACKAGES}",
                    "bookworm",
                    str(partial),
                    _mirror(),
                ],
                check=True,
                capture_output=True,
                timeout=900,
            )
            partial.rename(TREE)
    return TREE


def _install(root: Path) -> None:
    """scripts/install inside the tree, the repository bind-mounted read-only; the
    tree still shares the host's network (apt's mirror, PyPI) at this point."""
    (CACHE / "apt-archives/partial").mkdir(parents=True, exist_ok=True)
    argv = [
        "systemd-nspawn", "-q", "-D", str(root), "-M", f"netlab-install-{os.getpid()}",
        "--register=no", "--keep-unit",
        f"--bind-ro={REPO}:/src/netlab",
        f"--bind={CACHE / 'apt-archives'}:/var/cache/apt/archives",
    ]  # fmt: skip
    cert = os.environ.get("PIP_CERT")
    if cert and os.path.isfile(cert):
        # a machine whose traffic to PyPI passes a proxy with its own CA
        argv += [
            f"--bind-ro={cert}:/etc/ssl/certs/netlab-e2e-pip-ca.crt",
            "--setenv=PIP_CERT=/etc/ssl/certs/netlab-e2e-pip-ca.crt",
        ]
    with _cache_locked():
        result = subprocess.run([*argv, "/src/netlab/scripts/install"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"scripts/install failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


class Machine:
    """The booted tree. `run` executes in the container's own namespaces (the
    shell an operator would have there), never in the service's."""

    def __init__(self, root: Path, console: Path) -> None:
        self.root = root
        self.console = console
        self.name = f"netlab-e2e-{os.getpid()}"
        with open(console, "w") as out:
            self._nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", str(root), "-M", self.name, "--boot", "--register=no", "--keep-unit",
                 "--private-network", "--console=passive"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.leader = ""
        deadline = time.monotonic() + 30
        while not self.leader and time.monotonic() < deadline:
            found = subprocess.run(
                ["pgrep", "-P", str(self._nspawn.pid), "-x", "systemd"], capture_output=True, text=True
            )
            self.leader = found.stdout.strip()
            time.sleep(0.1)
        assert self.leader, f"the container did not boot:\n{console.read_text()[-3000:]}"
        # asked until a deadline, as service.sh does: right after boot the bus may
        # not answer yet (under load, for seconds), and `--wait` gives up at once then
        state, deadline = "", time.monotonic() + 180
        while state not in ("running", "degraded") and time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False, timeout=30).stdout.strip()
            time.sleep(0.2)
        assert state in ("running", "degraded"), f"system state {state!r}\n{console.read_text()[-3000:]}"

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["nsenter", "-t", self.leader, "-a", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=CLEAN_ENV,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def write(self, inside: str, text: str) -> None:
        """A file written as an editor saves it (temporary file, rename)."""
        target = self.root / inside.lstrip("/")
        temp = target.with_name(f".{target.name}.tmp")
        temp.write_text(text)
        temp.rename(target)

    def status(self) -> dict[str, object]:
        # printed in every state; the exit code is the state's (0 healthy only)
        return json.loads(self.run("netlab", "status", "--json", check=False).stdout)

    def netlab_journal(self) -> list[dict[str, object]]:
        """netlab's own lines in the journal, each parsed as JSON (a line that is
        not JSON fails the test that reads it)."""
        lines = self.run("journalctl", "-u", "netlab", "-o", "json", "--no-pager").stdout.splitlines()
        entries = [json.loads(line) for line in lines]
        return [json.loads(str(entry["MESSAGE"])) for entry in entries if entry.get("SYSLOG_IDENTIFIER") == "netlab"]

    def close(self) -> None:
        if self._nspawn.poll() is None:
            self._nspawn.send_signal(signal.SIGTERM)  # the container powers off
            try:
                self._nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._nspawn.pid, signal.SIGKILL)
                self._nspawn.wait(timeout=10)


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    why = why_not()
    if why:
        pytest.skip(why)
    _host_tools()
    tree = _tree()
    run = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
    root = run / "root"
    try:
        subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(root)], check=True)
        _install(root)
        box = Machine(root, run / "console.log")
        try:
            yield box
        finally:
            box.close()
    finally:
        shutil.rmtree(run, ignore_errors=True)


def journal_tail(machine: Machine) -> str:
    """For failure messages: what netlab said last, and what the kernel holds."""
    return "\n".join(
        machine.run(*argv, check=False).stdout
        for argv in (
            ("journalctl", "-u", "netlab", "--no-pager", "-n", "60", "-o", "cat"),
            ("netlab", "status"),
            ("ip", "-br", "link"),
            ("ip", "-br", "addr"),
        )
    )


# -- the tests, in the order an operator meets them --------------------------------------------


def test_the_unit_verifies_without_a_word(machine: Machine) -> None:
    result = machine.run("systemd-analyze", "verify", "/etc/systemd/system/netlab.service", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_installed_enabled_and_running_after_boot(machine: Machine) -> None:
    assert machine.run("systemctl", "is-enabled", "netlab").stdout.strip() == "enabled"
    assert machine.run("systemctl", "is-active", "netlab", check=False).stdout.strip() == "active", journal_tail(
        machine
    )
    assert (machine.root / "etc/netlab.d/example.yaml.sample").exists()
    assert machine.status()["state"] == "healthy"
    assert machine.run("netlab", "status", check=False).returncode == 0  # what a monitoring check reads


def netlab_nat(machine: Machine) -> str:
    """netlab's NAT rules in the machine, in whichever backend `auto` chose
    there (nftables, where iptables is iptables-nft), lower-cased."""
    commands = (["iptables-legacy-save", "-t", "nat"], ["nft", "list", "table", "ip", "netlab"])
    text = "".join(machine.run(*argv, check=False).stdout for argv in commands)
    return "\n".join(line for line in text.lower().splitlines() if "netlab:" in line)


def test_start_returns_only_after_the_first_reconcile(machine: Machine) -> None:
    machine.run("systemctl", "stop", "netlab")
    machine.write("/etc/netlab.d/lab.yaml", LAB)
    machine.run("systemctl", "start", "netlab", timeout=120)
    # no waiting: Type=notify returns from start at READY=1, after the first pass
    assert "red" in machine.run("ip", "netns", "list").stdout.split()
    assert "192.168.15.1/24" in machine.run("ip", "netns", "exec", "red", "ip", "-br", "addr").stdout
    assert "masquerade" in netlab_nat(machine)
    assert "nameserver 192.168.15.5" in machine.run("ip", "netns", "exec", "red", "cat", "/etc/resolv.conf").stdout
    assert "192.168.15.1\tred" in (machine.root / "etc/hosts").read_text()
    assert machine.run("ip", "netns", "exec", "red", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert machine.run("ip", "netns", "exec", "red", "ping", "-c1", "-W2", "192.168.15.5", check=False).returncode == 0
    assert machine.status()["state"] == "healthy"


def test_status_shows_the_status_line(machine: Machine) -> None:
    shown = machine.run("systemctl", "status", "netlab", "--no-pager", check=False).stdout
    assert re.search(r'Status: "healthy; generation \d+ \(\w+\); \d+ objects owned"', shown), shown
    assert machine.run("systemctl", "show", "-p", "Type", "--value", "netlab").stdout.strip() == "notify"


def test_a_dropped_file_reaches_the_kernel_and_ip_netns_sees_it(machine: Machine) -> None:
    machine.write("/etc/netlab.d/blue.yaml", BLUE)

    def blue_is_there() -> bool:
        return "192.168.15.2/24" in machine.run("ip", "netns", "exec", "blue", "ip", "-br", "addr", check=False).stdout

    assert wait(blue_is_there, 5), journal_tail(machine)
    # from the container's shell, not from the service's mount namespace
    assert {"red", "blue"} <= set(machine.run("ip", "netns", "list").stdout.split())
    assert machine.run("ip", "netns", "exec", "blue", "ping", "-c1", "-W2", "192.168.15.1", check=False).returncode == 0


def test_drift_is_repaired_under_the_hardening(machine: Machine) -> None:
    machine.run("ip", "link", "del", "veth-blue-br")
    machine.run("ip", "-n", "red", "addr", "flush", "dev", "veth-red")
    assert wait(
        lambda: (
            "master v-net-0" in machine.run("ip", "link", "show", "veth-blue-br", check=False).stdout
            and "192.168.15.2/24" in machine.run("ip", "-n", "blue", "-br", "addr").stdout
            and "192.168.15.1/24" in machine.run("ip", "-n", "red", "-br", "addr").stdout
        ),
        5,
    ), journal_tail(machine)
    # (no ping here: the kernel may keep the old veth's MAC in a neighbour entry a while)
    assert wait(lambda: machine.run("netlab", "plan", "--detailed-exitcode", check=False).returncode == 0, 5)
    assert int(machine.status()["drift_repairs"]) >= 1, journal_tail(machine)  # type: ignore[call-overload]


def test_reload_returns_when_the_files_are_in_the_kernel(machine: Machine) -> None:
    before = machine.run("systemctl", "show", "-p", "MainPID", "--value", "netlab").stdout.strip()
    machine.write("/etc/netlab.d/green.yaml", "version: 1\nnamespaces: [{name: green}]\n")
    # ExecReload is `netlab reload`: it signals the daemon and waits for its pass
    machine.run("systemctl", "reload", "netlab", timeout=120)
    assert "green" in machine.run("ip", "netns", "list").stdout.split()  # at once, no waiting
    assert machine.run("systemctl", "is-active", "netlab", check=False).stdout.strip() == "active"
    assert machine.run("systemctl", "show", "-p", "MainPID", "--value", "netlab").stdout.strip() == before
    journal = machine.netlab_journal()  # every line JSON, the reload's own too
    assert any(event.get("event") == "reload requested (SIGHUP)" for event in journal)
    assert any(event.get("event") == "reload pass done" and event.get("state") == "healthy" for event in journal)
    machine.run("rm", "/etc/netlab.d/green.yaml")
    machine.run("systemctl", "reload", "netlab", timeout=120)
    assert "green" not in machine.run("ip", "netns", "list").stdout.split()


def test_a_reload_of_broken_files_fails_and_the_service_runs_on(machine: Machine) -> None:
    before = machine.run("systemctl", "show", "-p", "MainPID", "--value", "netlab").stdout.strip()
    machine.write("/etc/netlab.d/broken.yaml", "version: 1\nnamespaces: [{name: 'no/slash'}]\n")
    try:
        result = machine.run("systemctl", "reload", "netlab", check=False, timeout=120)
        assert result.returncode != 0, journal_tail(machine)
        assert machine.run("systemctl", "is-active", "netlab", check=False).stdout.strip() == "active"
        assert machine.run("systemctl", "show", "-p", "MainPID", "--value", "netlab").stdout.strip() == before
        assert machine.status()["state"] == "degraded"
        assert "red" in machine.run("ip", "netns", "list").stdout.split()  # the last good generation stays
    finally:
        machine.run("rm", "-f", "/etc/netlab.d/broken.yaml")
    machine.run("systemctl", "reload", "netlab", timeout=120)
    assert machine.status()["state"] == "healthy"


def test_the_journal_holds_the_change_events_as_json(machine: Machine) -> None:
    events = machine.netlab_journal()  # every line of netlab's parsed as JSON
    changes = [event for event in events if event.get("event") == "change applied"]
    assert changes
    for event in changes:
        assert {"generation", "netns", "kind", "name", "action", "duration_ms"} <= set(event), event
    assert {"namespace", "link", "address", "route", "nat"} <= {event["kind"] for event in changes}
    assert any(event.get("event") == "generation accepted" for event in events)
    assert any(event.get("event") == "drift repaired" for event in events)


def test_the_watchdog_is_fed(machine: Machine) -> None:
    dropin = machine.root / "etc/systemd/system/netlab.service.d/watchdog.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nWatchdogSec=2s\n")
    try:
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", "netlab", timeout=120)
        time.sleep(5)  # two and a half watchdog periods
        shown = machine.run("systemctl", "show", "-p", "NRestarts,ActiveState,WatchdogUSec", "netlab").stdout
        assert "NRestarts=0" in shown and "ActiveState=active" in shown and "WatchdogUSec=2s" in shown, shown
    finally:
        dropin.unlink()
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", "netlab", timeout=120)


def test_a_killed_daemon_is_restarted_and_the_network_stays(machine: Machine) -> None:
    pid = machine.run("systemctl", "show", "-p", "MainPID", "--value", "netlab").stdout.strip()
    machine.run("systemctl", "kill", "-s", "KILL", "netlab")
    assert wait(
        lambda: (
            machine.run("systemctl", "show", "-p", "MainPID", "--value", "netlab").stdout.strip() not in ("0", pid)
            and machine.run("systemctl", "is-active", "netlab", check=False).stdout.strip() == "active"
        ),
        15,
    ), journal_tail(machine)
    assert machine.run("ip", "netns", "exec", "red", "ping", "-c1", "-W2", "192.168.15.5", check=False).returncode == 0
    assert machine.status()["state"] == "healthy"


def test_stop_leaves_the_network_up(machine: Machine) -> None:
    machine.run("systemctl", "stop", "netlab")
    assert machine.run("systemctl", "is-active", "netlab", check=False).stdout.strip() == "inactive"
    assert {"red", "blue"} <= set(machine.run("ip", "netns", "list").stdout.split())
    assert machine.run("ip", "netns", "exec", "red", "ping", "-c1", "-W2", "192.168.15.2", check=False).returncode == 0
    assert "masquerade" in netlab_nat(machine)
    assert machine.status()["daemon"] == "stopped"
    assert machine.run("netlab", "status", check=False).returncode == 5  # not running


def test_the_exposure_score(machine: Machine, record_property: Callable[[str, object], None]) -> None:
    shown = machine.run("systemd-analyze", "security", "netlab.service", "--no-pager", check=False).stdout
    found = re.search(r"Overall exposure level for netlab.service: (\d+\.\d+) (\w+)", shown)
    assert found, shown
    score = float(found.group(1))
    record_property("exposure", f"{score} {found.group(2)}")
    print(f"systemd-analyze security netlab.service: {score} {found.group(2)}")
    assert score <= EXPOSURE_CEILING, shown
