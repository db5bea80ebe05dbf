"""A throwaway kernel for one test: a private network + mount namespace held open
by a sleeping process, with tmpfs over the paths netlab writes and temporary
files bound over /etc/resolv.conf and /etc/hosts. Commands run inside it with
nsenter; netlab runs there with its real default paths. Nothing reaches the
host's network: the namespaces die with the holder process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NETLAB = str(Path(sys.executable).with_name("netlab"))
PRIVATE_DIRS = ("/run/netns", "/etc/netns", "/etc/netlab.d", "/var/lib/netlab", "/run/netlab")
RESOLV_CONF = "# resolver of the sandbox host\nnameserver 192.0.2.53\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n192.0.2.10 foreign-host # a line netlab must keep\n"

# iptables (and netlab's iptables worker) lock /run/xtables.lock, which is not on
# one of the sandbox's own tmpfs mounts: point them at one that is.
SANDBOX_ENV = {**os.environ, "XTABLES_LOCKFILE": "/run/netlab/xtables.lock"}

SETUP = """
set -e
for dir in {dirs}; do mount -t tmpfs -o mode=755 tmpfs "$dir"; done
mount --bind "$1" /etc/resolv.conf
mount --bind "$2" /etc/hosts
ip link set lo up
echo ready
exec sleep infinity
"""


class Sandbox:
    def __init__(self) -> None:
        self._files = Path(tempfile.mkdtemp(prefix="netlab-sandbox-"))
        resolv, hosts = self._files / "resolv.conf", self._files / "hosts"
        resolv.write_text(RESOLV_CONF)
        hosts.write_text(HOSTS)
        for path in PRIVATE_DIRS:
            # mount points must exist; empty directories on the host change nothing
            os.makedirs(path, exist_ok=True)
        script = SETUP.format(dirs=" ".join(PRIVATE_DIRS))
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", str(resolv), str(hosts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line.strip() != "ready":
            self._holder.kill()
            raise RuntimeError(f"sandbox did not start: {self._holder.stderr.read() if self._holder.stderr else ''}")
        self.pid = self._holder.pid
        self._background: list[subprocess.Popen[str]] = []

    @property
    def root(self) -> Path:
        """The sandbox's view of the file system, from outside (its mount namespace)."""
        return Path(f"/proc/{self.pid}/root")

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", "--", *argv]

    def run(
        self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*argv), input=input, capture_output=True, text=True, timeout=timeout, env=env or SANDBOX_ENV
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def netlab(
        self, *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs netlab inside with its real default paths; `env` adds variables."""
        return self.run(NETLAB, *args, check=check, timeout=timeout, env={**SANDBOX_ENV, **env} if env else None)

    def spawn(self, *argv: str, stdout: object = subprocess.PIPE) -> subprocess.Popen[str]:
        """A background process inside the sandbox, killed at teardown."""
        process = subprocess.Popen(  # type: ignore[call-overload]
            self.argv(*argv), stdout=stdout, stderr=subprocess.PIPE, text=True, env=SANDBOX_ENV
        )
        self._background.append(process)
        return process

    # -- files inside -----------------------------------------------------------------

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def write_config(self, name: str, text: str) -> None:
        target = self.path(f"/etc/netlab.d/{name}")
        temp = target.with_name(f".{name}.tmp")
        temp.write_text(text)
        temp.rename(target)

    def remove_config(self, name: str) -> None:
        self.path(f"/etc/netlab.d/{name}").unlink()

    def copy_example(self, example: str) -> None:
        for source in sorted((EXAMPLES / example).iterdir()):
            if source.suffix in (".yaml", ".yml", ".json"):
                self.write_config(source.name, source.read_text())

    def read(self, inside: str) -> str:
        return self.path(inside).read_text()

    # -- kernel state, as `ip` sees it ----------------------------------------------

    def namespaces(self) -> list[str]:
        return sorted(line.split()[0] for line in self.run("ip", "netns", "list").stdout.splitlines() if line.strip())

    def dump(self) -> str:
        """Links, addresses, routes and forwarding of the host and every namespace,
        as `ip` shows them, without what changes by itself (link-local addresses)."""
        parts = []
        for netns in [None, *self.namespaces()]:
            ns = [] if netns is None else ["-n", netns]
            links = [
                f"{link['ifname']} {'UP' if 'UP' in link['flags'] else 'DOWN'} mtu {link['mtu']} master {link.get('master')}"
                for link in json.loads(self.run("ip", *ns, "-j", "link").stdout)
            ]
            addresses = self.run("ip", *ns, "-br", "addr").stdout.split("\n")
            routes = self.run("ip", *ns, "route", "show", "table", "all").stdout.split("\n")
            prefix = [] if netns is None else ["ip", "netns", "exec", netns]
            forwarding = self.run(*prefix, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
            parts.append(f"== {netns or 'host'} forwarding={forwarding}")
            parts += sorted(links)
            # `ip -br addr` shows the operational state second: it follows carrier, not anyone's write
            parts += sorted(
                " ".join(
                    w.split("@")[0] if i == 0 else w
                    for i, w in enumerate(line.split())
                    if i != 1 and not w.startswith("fe80:")
                )
                for line in addresses
                if line.strip()
            )
            parts += sorted(line for line in routes if line.strip() and "fe80::" not in line and not line.startswith(("local", "multicast")))
        return "\n".join(parts)

    def ping(self, netns: str | None, address: str, check: bool = False) -> bool:
        argv = ["ping", "-c", "1", "-W", "2", address]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        ok = self.run(*argv, check=False).returncode == 0
        if check:
            assert ok, f"ping {address} from {netns or 'host'} failed"
        return ok

    def wait_for(self, predicate: object, timeout: float = 5.0, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return True
            time.sleep(interval)
        return bool(predicate())  # type: ignore[operator]

    @contextmanager
    def witness(self, *namespaces: str, objects: tuple[str, ...] = ("link", "address", "route")) -> Iterator[list[str]]:
        """Records every netlink change (`ip -o monitor OBJECTS`) in the sandbox's
        host namespace and the given ones while the block runs, as `netns: line`;
        what the kernel does by itself is left out (`is_background`).

        It proves itself: before the block, a probe write in each namespace must
        be seen (the monitor listens); after it, a second probe must be seen
        (the monitor still listened, and every event of the block came before
        it). A monitor that died or missed its probe fails the test."""
        monitors = [_Monitor(self, netns, objects) for netns in (None, *namespaces)]
        seen: list[str] = []
        try:
            for monitor in monitors:
                monitor.wait_for_probe("witness-start")
            yield seen
            for monitor in monitors:
                lines = monitor.wait_for_probe("witness-end")
                seen.extend(f"{monitor.label}: {line}" for line in lines if not is_background(line))
        finally:
            for monitor in monitors:
                monitor.stop()

    def close(self) -> None:
        for process in self._background:
            if process.poll() is None:
                process.kill()
                process.communicate()
        os.killpg(self.pid, signal.SIGKILL)
        self._holder.wait(timeout=10)
        shutil.rmtree(self._files, ignore_errors=True)


_LINK_MESSAGE = re.compile(r"^(Deleted )?\d+: \S+: <")


def is_background(line: str) -> bool:
    """Events that are nobody's write: the witness's own probes, IPv6 link-local
    addresses and their routes (DAD), the multicast route of a link that came up,
    and the bridge's port notices (link messages of the bridge family, printed
    without a qdisc; one comes about 15 s after a port comes up). A real write to
    a port also sends an ordinary link message, with its qdisc, which is kept."""
    return (
        "witness-" in line
        or "fe80:" in line
        or "ff00::/8" in line
        or (_LINK_MESSAGE.match(line) is not None and " qdisc " not in line)
    )


class _Monitor:
    """One `ip -o monitor` in one namespace of a sandbox, read by a thread."""

    PROBE_ADDRESS = "192.0.2.254/32"

    def __init__(self, box: Sandbox, netns: str | None, objects: tuple[str, ...]) -> None:
        self.box, self.netns, self.label = box, netns, netns or "host"
        self._ns = [] if netns is None else ["-n", netns]
        self.lines: list[str] = []
        self._mark = 0  # index of the last probe's first line
        self.process = box.spawn("ip", *self._ns, "-o", "monitor", *objects)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _probe(self, name: str) -> None:
        """A write every kind of monitor reports: a link (link), an address on it
        (address) and the local route the kernel adds for it (route)."""
        self.box.run("ip", *self._ns, "link", "add", name, "type", "bridge")
        self.box.run("ip", *self._ns, "addr", "add", self.PROBE_ADDRESS, "dev", name)
        self.box.run("ip", *self._ns, "link", "del", name)

    def wait_for_probe(self, name: str, timeout: float = 10.0) -> list[str]:
        """Writes probes named `name` until the monitor reports one; returns the
        lines seen before the first report of it (since the previous probe)."""
        start = self._mark
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the witness in {self.label} died: {self.process.stderr.read() if self.process.stderr else ''}")
            self._probe(name)
            settle = time.monotonic() + 1.0
            while time.monotonic() < settle:
                for index in range(start, len(self.lines)):
                    if name in self.lines[index]:
                        self._mark = index
                        return self.lines[start:index]
                time.sleep(0.02)
        raise AssertionError(f"the witness in {self.label} did not see its probe {name} within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=5)
        self._reader.join(timeout=5)


def can_sandbox() -> str | None:
    """Why sandboxed kernel tests cannot run here, or None. It tries what a
    sandbox does: a private network + mount namespace with a tmpfs mounted."""
    if os.geteuid() != 0:
        return "needs root (a private network namespace and tmpfs mounts)"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: util-linux, iproute2)"
    with tempfile.TemporaryDirectory(prefix="netlab-probe-") as mountpoint:
        probe = subprocess.run(
            ["unshare", "--net", "--mount", "--propagation", "private", "--",
             "sh", "-c", 'mount -t tmpfs -o mode=755 tmpfs "$1" && ip link set lo up', "sh", mountpoint],
            capture_output=True,
            text=True,
        )
    if probe.returncode != 0:
        return f"cannot make a private network + mount namespace here: {probe.stderr.strip()}"
    return None


def host_footprint() -> dict[str, list[str]]:
    """What a leaking sandbox would change on the machine itself: its named
    network namespaces, its links, and the paths the sandbox covers with tmpfs
    (a missing directory counts as empty: the sandbox creates mount points)."""
    footprint = {
        "ip netns list": sorted(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split("\n")),
        "links": sorted(link["ifname"] for link in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)),
    }
    for path in PRIVATE_DIRS:
        footprint[path] = sorted(os.listdir(path)) if os.path.isdir(path) else []
    return footprint


def wait(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Polls until the predicate holds or the timeout passes; then its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
