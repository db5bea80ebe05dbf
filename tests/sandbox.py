"""A throwaway kernel: a private network + mount namespace held open by a
sleeping process, with tmpfs over the paths netlab writes and temporary files
bound over /etc/resolv.conf and /etc/hosts. Commands run inside it with nsenter;
netlab runs there with its real default paths. Nothing reaches the host's
network: the namespaces die with the holder process.

One class for the tests and the benchmark, in two layouts (`Layout`):

- `TESTS`, every kernel test's (the `sandbox` fixture of tests/conftest.py):
  tmpfs over /run/netns, /etc/netns, /etc/netlab.d, /var/lib/netlab and
  /run/netlab; the caller's environment, with iptables' lock inside.
- `BENCHMARK`, each run of `benchmarks/run` (benchmarks/sandbox.py): a PID
  namespace of its own too, whose PID 1 holds it (ifstate refuses to run unless
  PID 1 shares its network namespace, and takes PID 1's namespace for the root
  one), with /proc mounted afresh; tmpfs over the whole of /run (so
  /run/libifstate and the xtables lock are its own), /etc/netns, /etc/netlab.d
  and /var/lib/netlab; /sys mounted again for its network namespace; an
  environment of its own that points nothing back at the host.

A sandbox may also have a UTS namespace and a host name of its own
(`Sandbox(hostname=...)`), and sandboxes can be joined by veth pairs
(`Sandbox.cable`), so that a few of them are hosts on one network.

`can_sandbox(layout)` says why a layout cannot be made here; `host_footprint()`
is what a leaking sandbox would change on the machine. Stdlib only: the
benchmark imports this module with whatever interpreter runs it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NETLAB = str(Path(sys.executable).with_name("netlab"))
RESOLV_CONF = "# resolver of the sandbox host\nnameserver 192.0.2.53\n"
HOSTS = (
    "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n192.0.2.10 foreign-host # a line netlab must keep\n"
)


@dataclass(frozen=True, eq=False)
class Layout:
    """What a sandbox makes its own besides its network namespace, and how
    commands run in it."""

    name: str  # in the names of its temporary files
    tmpfs: tuple[str, ...]  # mounted over, in this order (the host gets empty mount points)
    resolv_conf: str  # bound over /etc/resolv.conf
    hosts: str  # bound over /etc/hosts
    env: Mapping[str, str]  # what commands inside see
    timeout: float  # seconds a command may take, unless told
    made: tuple[str, ...] = ()  # directories made inside, after the tmpfs mounts
    pid: bool = False  # a PID namespace of its own, PID 1 its holder, /proc mounted afresh
    sysfs: bool = False  # /sys mounted again, for its own network namespace
    tools: tuple[str, ...] = ("unshare", "nsenter", "ip")  # what must be installed

    def unshare(self, uts: bool = False) -> list[str]:
        """`uts`: a UTS namespace of its own too (a host name of its own)."""
        pid = ["--pid", "--fork", "--mount-proc"] if self.pid else []
        return ["unshare", "--net", "--mount", *(["--uts"] if uts else []), *pid, "--propagation", "private"]

    def setup(self, hostname: str | None = None) -> str:
        """The holder's script: the mounts (and the host name, in a UTS namespace
        of its own), then `ready`, then sleep until killed."""
        lines = ["set -e", *(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(path)}" for path in self.tmpfs)]
        if hostname is not None:
            lines.append(f"hostname {shlex.quote(hostname)}")
        if self.made:
            lines.append("mkdir -p " + " ".join(map(shlex.quote, self.made)))
        if self.sysfs:
            lines.append("mount -t sysfs sysfs /sys")
        lines += ['mount --bind "$1" /etc/resolv.conf', 'mount --bind "$2" /etc/hosts', "ip link set lo up"]
        return "\n".join([*lines, "echo ready", "exec sleep infinity", ""])


TESTS = Layout(
    name="sandbox",
    tmpfs=("/run/netns", "/etc/netns", "/etc/netlab.d", "/var/lib/netlab", "/run/netlab"),
    resolv_conf=RESOLV_CONF,
    hosts=HOSTS,
    # iptables (and netlab's iptables worker) lock /run/xtables.lock, which is not on
    # one of the sandbox's own tmpfs mounts: point them at one that is.
    env={**os.environ, "XTABLES_LOCKFILE": "/run/netlab/xtables.lock"},
    timeout=60,
)
BENCHMARK = Layout(
    name="bench",
    tmpfs=("/run", "/etc/netns", "/etc/netlab.d", "/var/lib/netlab"),
    made=("/run/netns", "/run/netlab", "/run/libifstate"),
    pid=True,
    sysfs=True,
    resolv_conf="# resolver of the benchmark sandbox\nnameserver 192.0.2.53\n",
    hosts="127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    # the caller's PATH and nothing that would point a tool back at the host
    # (XTABLES_LOCKFILE is under the private /run)
    env={
        "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "XTABLES_LOCKFILE": "/run/xtables.lock",
        "PYTHONDONTWRITEBYTECODE": "1",
        # netlab chooses its NAT backend as on an operator's host (auto: nftables
        # on Debian 12), and the baselines' scripts use the host's `iptables`
        # (iptables-nft there); benchmarks/nat_rules.py measures both backends
        "NETLAB_NAT_BACKEND": "auto",
    },
    timeout=3600,
    tools=("unshare", "nsenter", "ip", "ping"),
)
PRIVATE_DIRS = TESTS.tmpfs  # what host_footprint() watches


class CommandFailed(RuntimeError):
    """A command run with check=True exited non-zero inside a sandbox."""


class Background(subprocess.Popen[str]):
    """A process started inside a sandbox by `Sandbox.spawn`. Signals (`send_signal`,
    `terminate`, `kill`) reach the program itself: in a PID namespace nsenter forks
    it and passes no signal on, so they go to nsenter's child through a pidfd (which
    no other process can take over when that one has ended)."""

    program: int | None = None  # the pidfd, in a PID namespace

    def send_signal(self, sig: int) -> None:
        if self.program is None:
            super().send_signal(sig)
        elif self.poll() is None:
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.program, sig)

    def stop(self, timeout: float = 10) -> str:
        """Ends it with SIGTERM; returns what it wrote on stdout (when that is piped)."""
        self.terminate()
        out, _ = self.communicate(timeout=timeout)
        return out or ""

    def release(self) -> None:
        if self.program is not None:
            os.close(self.program)
            self.program = None


def _only_child(process: subprocess.Popen[str], wait: float = 1.0) -> int | None:
    """The one child of a process that forks one (unshare and nsenter do), as the
    host numbers it; None when none came (the process ended first)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with suppress(FileNotFoundError):
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            if children:
                return int(children[0])
        if process.poll() is not None:
            return None
        time.sleep(0.01)
    return None


def _child_pidfd(process: subprocess.Popen[str]) -> int | None:
    """A pidfd of the one child of a process (nsenter's, the program it runs in a
    PID namespace); None when it has none (any more)."""
    child = _only_child(process)
    if child is None:
        return None
    try:
        pidfd = os.pidfd_open(child)
    except ProcessLookupError:
        return None
    try:
        # still that process's child once the pidfd holds it: not another of that number
        parent = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except FileNotFoundError:
        parent = None
    if parent == str(process.pid):
        return pidfd
    os.close(pidfd)
    return None


class Sandbox:
    """`hostname`: a UTS namespace of its own too, with this host name (what
    netlab matches `match.hostname` against); without it, the machine's."""

    def __init__(self, layout: Layout = TESTS, hostname: str | None = None) -> None:
        self.layout = layout
        self.hostname = hostname
        self._files = Path(tempfile.mkdtemp(prefix=f"netlab-{layout.name}-"))
        resolv, hosts = self._files / "resolv.conf", self._files / "hosts"
        resolv.write_text(layout.resolv_conf)
        hosts.write_text(layout.hosts)
        for path in layout.tmpfs:
            # mount points must exist; empty directories on the host change nothing
            os.makedirs(path, exist_ok=True)
        self._holder = subprocess.Popen(
            [
                *layout.unshare(uts=hostname is not None),
                "--",
                "sh",
                "-c",
                layout.setup(hostname),
                "sh",
                str(resolv),
                str(hosts),
            ],
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
        pid = _only_child(self._holder) if layout.pid else self._holder.pid
        if pid is None:
            self._holder.kill()
            raise RuntimeError("sandbox: no PID 1 found")
        self.pid = pid  # the holder (in a PID namespace, its PID 1), as the host numbers it
        self._background: list[Background] = []

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The sandbox's view of the file system, from outside (its mount namespace)."""
        return Path(f"/proc/{self.pid}/root")

    # -- running things inside ---------------------------------------------------------

    def argv(self, *argv: str) -> list[str]:
        pid = ["--pid"] if self.layout.pid else []
        uts = ["--uts"] if self.hostname is not None else []
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", *uts, *pid, "--", *argv]

    def run(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Runs a command inside; `env` replaces the layout's environment."""
        result = subprocess.run(
            self.argv(*argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=self.layout.timeout if timeout is None else timeout,
            env=env or self.layout.env,
        )
        if check and result.returncode != 0:
            raise CommandFailed(
                f"in the sandbox, {' '.join(argv)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def timed(
        self, *argv: str, check: bool = True, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Runs a command and returns its wall time in seconds (nsenter's own ~2 ms
        included); `env` replaces the layout's environment, as in `run`."""
        began = time.perf_counter()
        result = self.run(*argv, check=check, timeout=timeout, env=env)
        return time.perf_counter() - began, result

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def netlab(
        self, *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs netlab inside with its real default paths; `env` adds variables."""
        return self.run(NETLAB, *args, check=check, timeout=timeout, env={**self.layout.env, **env} if env else None)

    def refused_apply(self, name: str, text: str) -> str:
        """Writes a config file and runs `netlab apply`, which must refuse it as it
        refuses what a user must fix or the kernel will not do: exit 1 and no
        traceback. Returns what it said on stderr."""
        self.write_config(name, text)
        result = self.netlab("apply", check=False)
        assert result.returncode == 1, f"apply exited {result.returncode}, not 1\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result.stderr

    def spawn(self, *argv: str, stdout: object = subprocess.PIPE) -> Background:
        """A background process inside the sandbox, killed at close."""
        process = Background(  # type: ignore[call-overload]
            self.argv(*argv),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=self.layout.env,
            # without a PID namespace, a group of its own: what it forks (a shell's
            # `sleep`, holding the pipes) is killed with it at close
            start_new_session=not self.layout.pid,
        )
        self._background.append(process)
        if self.layout.pid:
            process.program = _child_pidfd(process)
        return process

    def cable(self, other: Sandbox, name: str, peer: str) -> None:
        """Joins another sandbox to this one by a veth pair, both ends down: `name`
        here, `peer` there. It is made from inside this sandbox, its peer created
        straight into the other's network namespace (named by its holder's PID),
        so that no link ever exists on the host. Neither may have a PID namespace
        of its own: the PID is the host's."""
        assert not self.layout.pid and not other.layout.pid, "cable: the PID would name another process"
        self.run("ip", "link", "add", name, "type", "veth", "peer", "name", peer, "netns", str(other.pid))

    # -- files inside -----------------------------------------------------------------

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def write(self, inside: str, text: str) -> None:
        """Writes a file inside the way an editor saves: a temp file beside it, then rename."""
        target = self.path(inside)
        temp = target.with_name(f".{target.name}.tmp")
        temp.write_text(text)
        temp.rename(target)

    def write_config(self, name: str, text: str) -> None:
        self.write(f"/etc/netlab.d/{name}", text)

    def remove_config(self, name: str) -> None:
        self.path(f"/etc/netlab.d/{name}").unlink()

    def copy_example(self, example: str) -> None:
        """The config files of examples/EXAMPLE into the sandbox's /etc/netlab.d."""
        for source in config_files(EXAMPLES / example):
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
            parts += sorted(
                line
                for line in routes
                if line.strip() and "fe80::" not in line and not line.startswith(("local", "multicast"))
            )
        return "\n".join(parts)

    def nat_text(self, netns: str | None = None) -> str:
        """What both NAT backends hold in the namespace, as their own tools print
        it: the legacy nat tables (iptables-legacy-save, ip6tables-legacy-save)
        and netlab's nftables tables (nft list table ip/ip6 netlab; nothing where
        there are none)."""
        prefix = [] if netns is None else ["ip", "netns", "exec", netns]
        commands = [
            ["iptables-legacy-save", "-t", "nat"],
            ["ip6tables-legacy-save", "-t", "nat"],
            ["nft", "list", "table", "ip", "netlab"],
            ["nft", "list", "table", "ip6", "netlab"],
        ]
        return "".join(self.run(*prefix, *argv, check=False).stdout for argv in commands)

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
        """Kills the holder and every background process with what it forked: the
        namespaces go with their last process. In a PID namespace, killing its
        PID 1 kills everything inside (unshare, its parent, reaps it and ends);
        without one, each background process has a process group of its own."""
        if self.layout.pid:
            os.kill(self.pid, signal.SIGKILL)
        else:
            os.killpg(self.pid, signal.SIGKILL)
        for process in self._background:
            if not self.layout.pid:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            elif process.poll() is None:
                process.kill()
            process.communicate(timeout=30)
            process.release()
        self._holder.wait(timeout=30)
        for pipe in (self._holder.stdout, self._holder.stderr):
            if pipe is not None:
                pipe.close()
        shutil.rmtree(self._files, ignore_errors=True)


_LINK_MESSAGE = re.compile(r"^(Deleted )?\d+: \S+: <")


def is_background(line: str) -> bool:
    """Events that are nobody's write: the witness's own probes (by name or address), IPv6 link-local
    addresses and their routes (DAD), the multicast route of a link that came up,
    and the bridge's port notices (link messages of the bridge family, printed
    without a qdisc; one comes about 15 s after a port comes up). A real write to
    a port also sends an ordinary link message, with its qdisc, which is kept."""
    return (
        "witness-" in line
        # the probe's address and local route: printed with `dev if4` when the
        # probe link is gone by the time `ip monitor` names it
        or _Monitor.PROBE_ADDRESS.split("/")[0] + " " in line
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
                raise AssertionError(
                    f"the witness in {self.label} died: {self.process.stderr.read() if self.process.stderr else ''}"
                )
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


def config_files(directory: Path) -> list[Path]:
    """The config files directly in a directory (as netlab reads it), sorted."""
    return sorted(path for path in directory.iterdir() if path.suffix in (".yaml", ".yml", ".json"))


def one_host_examples() -> list[str]:
    """The examples that are one host's lab: their files directly in examples/NAME
    (examples/cluster holds three hosts' files, a directory per variant)."""
    return sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir() and config_files(path))


def can_sandbox(layout: Layout = TESTS) -> str | None:
    """Why a sandbox of this layout cannot be made here, or None. It tries what
    the sandbox does: its private namespaces, with a tmpfs mounted and lo up."""
    namespaces = "network, mount and PID namespaces" if layout.pid else "network and mount namespaces"
    if os.geteuid() != 0:
        return f"needs root (private {namespaces}, tmpfs mounts)"
    for tool in layout.tools:
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: util-linux, iproute2, iputils-ping)"
    with tempfile.TemporaryDirectory(prefix="netlab-probe-") as mountpoint:
        probe = subprocess.run(
            [
                *layout.unshare(),
                "--",
                "sh",
                "-c",
                'mount -t tmpfs -o mode=755 tmpfs "$1" && ip link set lo up',
                "sh",
                mountpoint,
            ],
            capture_output=True,
            text=True,
        )
    if probe.returncode != 0:
        return f"cannot make private {namespaces} here: {probe.stderr.strip()}"
    return None


def host_footprint() -> dict[str, list[str]]:
    """What a leaking sandbox would change on the machine itself: its named
    network namespaces, its links, and the paths the tests' sandbox covers with
    tmpfs, which are netlab's paths in both layouts (a missing directory counts as
    empty: the sandbox creates mount points)."""
    footprint = {
        "ip netns list": sorted(
            subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split("\n")
        ),
        "links": sorted(
            link["ifname"]
            for link in json.loads(
                subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
            )
        ),
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
