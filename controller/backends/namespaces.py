"""Entering network namespaces: the one place that calls setns(2).

Work that must happen inside a namespace (opening a netlink socket, a sysctl file)
runs in one long-lived thread that enters the namespace for it and comes back
afterwards, so the process's other threads never leave the namespace they
started in. Starting a thread per call cost ~0.4 ms, more than the work.
Used by the other backends only.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

# pyroute2.netns (with multiprocessing, subprocess and ctypes.util: ~25 ms) and
# concurrent.futures (~8 ms) are imported when a namespace is made, removed or
# entered, not by every command that imports the kernel facade (`netlab plan`).

NETNS_RUN_DIR = "/run/netns"
RACY_NS = 100_000_000  # 0.1 s
CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


# The last listing: the directory as it was then (device, inode, mtime), and the
# namespaces found in it, when every entry was one.
_listing: tuple[tuple[int, int, int], frozenset[str]] | None = None


def list_namespaces() -> frozenset[str]:
    """Names under /run/netns that are namespaces. A process killed while creating
    one can leave the mount point without the namespace bound on it (an empty
    file on the directory's own file system): that is no namespace.

    Telling them apart takes a stat per name (~6 ms for a thousand), so a
    listing is kept while the directory is unchanged (an entry added or
    removed changes its mtime) and every entry in it was bound: a namespace
    stays bound until `ip netns del` unmounts it and removes its name. Nor is
    it kept when the directory changed within the last `RACY_NS` (mtimes come
    from a coarse clock: a second change in the same tick would not show)."""
    global _listing
    try:
        stat = os.stat(NETNS_RUN_DIR)
        directory = (stat.st_dev, stat.st_ino, stat.st_mtime_ns)
        if _listing is not None and _listing[0] == directory:
            return _listing[1]
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return frozenset()
    found = set()
    for name in names:
        try:
            if os.stat(netns_path(name)).st_dev != stat.st_dev:
                found.add(name)
        except FileNotFoundError:
            continue
    settled = time.time_ns() - stat.st_mtime_ns > RACY_NS
    _listing = (directory, frozenset(found)) if settled and len(found) == len(names) else None
    return frozenset(found)


def forget_listing() -> None:
    """The next listing looks at every entry again."""
    global _listing
    _listing = None


def create_namespace(name: str, then: Callable[[], T]) -> T:
    """Creates the namespace and runs `then()` inside it (opening a socket there
    saves entering it again). Done as `ip netns add` does it, in the namespace
    thread rather than a forked child (pyroute2's `netns.create`, ~8 ms each):
    the thread unshares its network namespace and pyroute2 binds it on
    /run/netns/NAME (making /run/netns a shared mount first, as iproute2 does)."""
    path = netns_path(name)
    if os.path.lexists(path) and name not in list_namespaces():
        os.unlink(path)  # the mount point of a creation that was cut short

    def unshare_bind_and_work() -> T:
        if _libc.unshare(CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot create network namespace {name}: {os.strerror(code)}")
        from pyroute2 import netns as pyroute2_netns

        pyroute2_netns.attach(name, "thread-self")
        return then()

    return _in_namespace_thread(unshare_bind_and_work)


def run_in_fresh(work: Callable[[], T]) -> T:
    """Runs `work()` in a new, empty network namespace of its own, which is gone
    again once the thread goes back (nothing holds it): to read what a namespace
    has before anyone changes it."""

    def unshare_and_work() -> T:
        if _libc.unshare(CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot create a network namespace: {os.strerror(code)}")
        return work()

    return _in_namespace_thread(unshare_and_work)


def remove_namespace(name: str) -> None:
    """Unmounts and unlinks /run/netns/NAME; the namespace dies with its last user."""
    from pyroute2 import netns as pyroute2_netns

    pyroute2_netns.remove(name)


def run_in(netns: str | None, work: Callable[[], T]) -> T:
    """Runs `work()` with the calling thread's network namespace set to `netns`
    (None: the process's own namespace, run directly)."""
    if netns is None:
        return work()
    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)

    def enter_and_work() -> T:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot enter network namespace {netns}: {os.strerror(code)}")
        return work()

    try:
        return _in_namespace_thread(enter_and_work)
    finally:
        os.close(fd)


_thread: ThreadPoolExecutor | None = None
_thread_lock = threading.Lock()
# The process's own namespace, where the namespace thread returns after each
# work: a thread left inside a namespace would keep it alive after its removal.
_home_fd = -1


def _in_namespace_thread(work: Callable[[], T]) -> T:
    """Runs `work()` in the namespace thread, which then goes back to the
    process's own namespace, and hands back its result or its exception."""
    global _thread, _home_fd
    with _thread_lock:
        if _thread is None:
            from concurrent.futures import ThreadPoolExecutor

            _home_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            _thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns")

    def work_and_return() -> T:
        try:
            return work()
        finally:
            if _libc.setns(_home_fd, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                _retire_thread()  # a thread that cannot come back must not serve again
                raise OSError(code, f"cannot return to the process's network namespace: {os.strerror(code)}")

    return _thread.submit(work_and_return).result()


def _retire_thread() -> None:
    """Lets the namespace thread end after its current work; the next call
    starts another."""
    global _thread
    with _thread_lock:
        if _thread is not None:
            _thread.shutdown(wait=False)
            _thread = None
