"""The benchmark's sandbox: the one class of tests/sandbox.py in its BENCHMARK
layout (a private network + mount + PID namespace held open by a sleeping PID 1,
tmpfs over /run, /etc/netns, /etc/netlab.d and /var/lib/netlab, /sys mounted
again, temporary files over /etc/resolv.conf and /etc/hosts; see that module),
and waiting for a quiet machine between runs. Nothing reaches the host's
network: it all dies with PID 1.

Used by `benchmarks/run`; `python3 benchmarks/sandbox.py CMD...` runs one command
in a fresh sandbox, for trying things by hand.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# the repository, for tests/sandbox.py (the benchmark runs from a clone)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sandbox import BENCHMARK, Background, CommandFailed, Sandbox, can_sandbox  # noqa: E402

__all__ = ["Background", "CommandFailed", "Sandbox", "sandbox", "wait_until_quiet", "why_not"]


def sandbox() -> Sandbox:
    """A fresh sandbox for one run (a context manager: closed at its end)."""
    return Sandbox(BENCHMARK)


def why_not() -> str | None:
    """Why a benchmark sandbox cannot be made here, or None."""
    return can_sandbox(BENCHMARK)


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
    with sandbox() as box:
        completed = subprocess.run(box.argv(*sys.argv[1:]), env=box.layout.env)
    sys.exit(completed.returncode)
