"""The sysctl backend: reads and writes `/proc/sys/net/...` in a namespace.

/proc/sys/net shows the namespace of the thread that opens the file, so the
file is opened by a thread that entered the namespace. Called by the sysctl kind.
"""

from __future__ import annotations

import os

from netlab.controller.backends import namespaces

PROC_SYS = "/proc/sys"


def sysctl_path(key: str) -> str:
    return os.path.join(PROC_SYS, *key.split("."))


def normalise(value: str) -> str:
    """The kernel separates multi-value sysctls with tabs; compare them by words."""
    return " ".join(value.split())


def read(netns: str | None, key: str) -> str | None:
    """The current value, or None where the key does not exist (yet): a per-link
    key before its link is created."""
    return namespaces.run_in(netns, lambda: _read_here(key))


def read_fresh(key: str) -> str | None:
    """The value a namespace has when it is created (read in a throwaway one)."""
    return namespaces.run_in_fresh(lambda: _read_here(key))


def _read_here(key: str) -> str | None:
    try:
        with open(sysctl_path(key), encoding="ascii") as handle:
            return normalise(handle.read())
    except FileNotFoundError:
        return None


def write(netns: str | None, key: str, value: str) -> None:
    def work() -> None:
        with open(sysctl_path(key), "w", encoding="ascii") as handle:
            handle.write(value)

    namespaces.run_in(netns, work)
