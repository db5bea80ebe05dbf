"""A throwaway machine for one benchmark run: a private network + mount + PID
namespace held open by a sleeping PID 1, with tmpfs over /run (so /run/netns,
/run/netlab, /run/libifstate and the xtables lock are its own), /etc/netns,
/etc/netlab.d and /var/lib/netlab, /sys remounted for its network namespace, and
temporary files bound over /etc/resolv.conf and /etc/hosts. Commands run inside
with nsenter. Nothing reaches the host's network: it all dies with PID 1.

ifstate needs the PID namespace: it refuses to run unless PID 1 shares its network
namespace, and takes PID 1's namespace for the root one.

Used by `benchmarks/run`; `python3 benchmarks/sandbox.py CMD...` runs one command
in a fresh sandbox, for trying things by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRIVATE_DIRS = ("/etc/netns", "/etc/netlab.d", "/var/lib/netlab")
RESOLV_CONF = "# resolver of the benchmark sandbox\nnameserver 192.0.2.53\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"

SETUP = """
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/netns /run/netlab /run/libifstate
for dir in {dirs}; do mount -t tmpfs -o mode=755 tmpfs "$dir"; done
mount -t sysfs sysfs /sys
mount --bind "$1" /etc/resolv.conf
mount --bind "$2" /etc/hosts
ip link set lo up
echo ready
exec sleep infinity
"""

# What runs inside sees only the sandbox; keep the caller's PATH and nothing that
# would point a tool back at the host (XTABLES_LOCKFILE is under the private /run).
ENV = {
    "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "XTABLES_LOCKFILE": "/run/xtables.lock",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class Background:
    """A process running inside a sandbox, known by its PID there (nsenter, which
    started it, does not pass signals on)."""

    def __init__(self, box: Sandbox, process: subprocess.Popen[str], inner_pid: int) -> None:
        self.box = box
        self.process = process
        self.inner_pid = inner_pid

    def stop(self, timeout: float = 10) -> str:
        """Ends it with SIGTERM; returns what it wrote on stdout."""
        self.box.run("kill", "-TERM", str(self.inner_pid), check=False)
        out, _ = self.process.communicate(timeout=timeout)
        return out


def why_not() -> str | None:
    """Why a sandbox cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (private network, mount and PID namespaces, tmpfs mounts)"
    for tool in ("unshare", "nsenter", "ip", "ping"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make private namespaces: {probe.stderr.strip()}"
    return None


class Sandbox:
    def __init__(self) -> None:
        self._files = Path(tempfile.mkdtemp(prefix="netlab-bench-"))
        resolv, hosts = self._files / "resolv.conf", self._files / "hosts"
        resolv.write_text(RESOLV_CONF)
        hosts.write_text(HOSTS)
        for path in PRIVATE_DIRS:
            os.makedirs(path, exist_ok=True)  # mount points; an empty directory changes nothing
        script = SETUP.format(dirs=" ".join(PRIVATE_DIRS))
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
             "--", "sh", "-c", script, "sh", str(resolv), str(hosts)],
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
        self.pid = self._init_pid()
        self._background: list[subprocess.Popen[str]] = []

    def _init_pid(self) -> int:
        """The sandbox's PID 1 as the host numbers it: unshare's only child."""
        for _ in range(100):
            children = Path(f"/proc/{self._holder.pid}/task/{self._holder.pid}/children").read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.01)
        raise RuntimeError("sandbox: no PID 1 found")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running things inside ---------------------------------------------------------

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", "--pid", "--", *argv]

    def run(
        self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 3600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(*argv), input=input, capture_output=True, text=True, timeout=timeout, env=ENV)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"in the sandbox, {' '.join(argv)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def timed(self, *argv: str, check: bool = True, timeout: float = 3600) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Runs a command and returns its wall time in seconds (nsenter's own ~2 ms included)."""
        began = time.perf_counter()
        result = self.run(*argv, check=check, timeout=timeout)
        return time.perf_counter() - began, result

    def spawn(self, *argv: str) -> Background:
        """A background process inside, ended by `stop` or at close."""
        process = subprocess.Popen(
            self.argv("sh", "-c", 'echo $$; exec "$@"', "sh", *argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert process.stdout is not None
        inner = int(process.stdout.readline())
        self._background.append(process)
        return Background(self, process, inner)

    # -- files inside --------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The sandbox's file system seen from outside (through PID 1's mount namespace)."""
        return Path(f"/proc/{self.pid}/root")

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def close(self) -> None:
        # PID 1 dying takes every process of the namespace with it; the network
        # namespaces go when their last reference (a /run/netns mount) goes
        os.kill(self.pid, signal.SIGKILL)
        self._holder.wait(timeout=30)
        for process in self._background:
            process.communicate(timeout=30)
        if self._holder.stdout:
            self._holder.stdout.close()
        if self._holder.stderr:
            self._holder.stderr.close()
        shutil.rmtree(self._files, ignore_errors=True)


def wait_until_quiet(busy_below: float = 0.2, quiet_for: float = 0.5, cap: float = 30.0) -> float:
    """Waits until the machine's CPUs have been mostly idle for `quiet_for` seconds
    (the kernel tears down a closed sandbox's namespaces in the background, which
    would slow the next run), at most `cap` seconds; returns the time waited."""
    began = time.monotonic()
    quiet_since = None

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    idle0, total0 = sample()
    while time.monotonic() - began < cap:
        time.sleep(0.1)
        idle1, total1 = sample()
        busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
        idle0, total0 = idle1, total1
        if busy < busy_below:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_for:
                break
        else:
            quiet_since = None
    return time.monotonic() - began


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: sandbox.py CMD [ARG...]   (runs CMD in a fresh sandbox)")
    reason = why_not()
    if reason:
        sys.exit(f"sandbox: {reason}")
    with Sandbox() as box:
        completed = subprocess.run(box.argv(*sys.argv[1:]), env=ENV)
    sys.exit(completed.returncode)
