"""The kernel as netlab sees it: a facade over the backends that reads each
namespace once and remembers it, and carries the writers. Kinds read through it
while planning; their steps write through it. The resolver files count as kernel
state here: they are what the resolver reads.

What is remembered is forgotten by whoever knows it went stale: `forget_written`
after a pass forgets what its writes touched (so verifying re-reads only that);
a kernel made with `on_event` (the daemon's) listens for rtnetlink events in
every namespace it reads, from just before its first read, and `forget_heard`
forgets the namespaces that changed since; `forget_reads` forgets everything
(a resync); `drop_namespaces` lets go of namespaces deleted by hand (their
sockets too) and keeps the rest. Many namespaces about to be read are read by two processes
(`read_ahead`).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable

from netlab.controller.backends import iptables, namespaces, resolver_files, rtnl, sysctls
from netlab.controller.backends.events import EventHub
from netlab.controller.backends.iptables import NatOp, NatTables
from netlab.controller.backends.netlink import Netlink, NetnsDump, ObservedLink, open_socket
from netlab.controller.backends.resolver_files import FileState

EMPTY_DUMP = NetnsDump((), (), ())
LOOPBACK = "lo"
# Reading this many namespaces or more at once is shared with a forked child
# (`read_ahead`): decoding is pure Python, so a second process is what puts a
# second core to work. Below it the fork costs more than it saves.
READ_AHEAD_MIN = 64
READ_AHEAD_TIMEOUT = 30.0  # seconds; a thousand namespaces take well under one
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}  # by the daemon and the cli


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything until the writer closes the pipe, or None at the deadline.
    Closes `fd`."""
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def fresh_namespace_link(netns: str, name: str) -> ObservedLink | None:
    """A link that a namespace made by `Kernel.create_namespace` holds from its
    first moment: its loopback, set up at once (as the lecture does right after
    `ip netns add`). Planning takes it as present in a namespace it creates, so
    that addresses and routes on lo are planned from an empty kernel."""
    if name != LOOPBACK:
        return None
    return ObservedLink(
        netns=netns, name=LOOPBACK, index=1, kind=None, state="up", mtu=65536, mac="00:00:00:00:00:00",
        master=None, alias=None, link_index=None, link_netnsid=None,
    )


class Kernel:
    def __init__(self, on_event: Callable[[], None] | None = None) -> None:
        """`on_event()` is called (from another thread) whenever a namespace read
        before changes, or the kernel dropped its events: `forget_heard` then
        forgets that namespace."""
        self.netlink = Netlink()
        self._on_event = on_event
        self._events = EventHub(self._heard) if on_event is not None else None
        self._changed: set[str | None] = set()  # heard changing since last read
        self._changed_lock = threading.Lock()
        self._namespaces: frozenset[str] | None = None
        self._dumps: dict[str | None, NetnsDump] = {}
        self._sysctls: dict[tuple[str | None, str], str | None] = {}
        self._fresh_sysctls: dict[str, str | None] = {}  # what a new namespace has, by key
        self._legacy_nat: dict[str | None, bool] = {}
        self._nat: dict[str | None, NatTables] = {}
        self._nftables: dict[str | None, tuple[str, ...]] = {}
        # A file is read again only when lstat shows it changed (no events come
        # for files): (device, inode, mode, size, mtime, ctime) when it was read.
        self._files: dict[str, tuple[tuple[int, ...] | None, FileState]] = {}
        self.netlink.reached_by_deleting = self._reached_by_deleting

    def close(self) -> None:
        if self._events is not None:
            self._events.stop()
        self.netlink.close()
        iptables.discard_spare()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads, once per pass -------------------------------------------------------

    def namespaces(self) -> frozenset[str]:
        if self._namespaces is None:
            self._namespaces = namespaces.list_namespaces()
        return self._namespaces

    def has_netns(self, netns: str | None) -> bool:
        return netns is None or netns in self.namespaces()

    def dump(self, netns: str | None) -> NetnsDump:
        if netns not in self._dumps:
            if self.has_netns(netns):
                self._listen_before_reading(netns)
                self._remember(netns, self.netlink.dump(netns))
            else:
                self._dumps[netns] = EMPTY_DUMP
        return self._dumps[netns]

    def read_ahead(self, wanted: Iterable[str | None]) -> None:
        """Reads the namespaces not read yet, half of them in a forked child that
        hands its dumps back through a pipe, when there are enough of them and
        more than one CPU. An optimisation only: whatever the child did not read
        (it failed, or died) is read here when it is asked for, as it would be
        without it.
        The child uses the sockets opened here before the fork, and no thread or
        log of the process's; it is born with the signals the process handles
        blocked, reads, writes its answer and leaves with `os._exit`. It holds
        copies of the process's descriptors (the lock on the state directory's
        among them) only until the parent reaps it, which the parent does
        before going on, killing it first if it has not answered within
        `READ_AHEAD_TIMEOUT`.
        The host's NAT tables are read by an iptables worker: one is
        started now when they will be read, so that its start-up (~0.2 s)
        overlaps the reading."""
        wanted = list(dict.fromkeys(wanted))
        if None in wanted and None not in self._nat and self.legacy_nat_exists(None):
            iptables.warm_up()
        todo = [netns for netns in wanted if netns not in self._dumps and self.has_netns(netns)]
        if len(todo) < READ_AHEAD_MIN or len(os.sched_getaffinity(0)) < 2:
            return
        for netns in todo:
            self._listen_before_reading(netns)
            self.netlink.connection(netns)
        theirs, ours = todo[::2], todo[1::2]
        reader, writer = os.pipe()
        # blocked across the fork, so that the child never runs the process's
        # handlers; the parent's are delivered when it unblocks them
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            with warnings.catch_warnings():
                # Python 3.12 warns of fork() beside threads: this child uses none
                warnings.simplefilter("ignore", DeprecationWarning)
                child = os.fork()
        except OSError:  # no memory or process left for it: read them here, when asked
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(reader)
            os.close(writer)
            return
        if child == 0:  # pragma: no cover (the child; its work is checked by the parent's test)
            try:
                rtnl.sequences_for_a_child()
                os.close(reader)
                dumps = {}
                for netns in theirs:
                    try:
                        dumps[netns] = self.netlink.dump(netns)
                    except Exception:  # noqa: BLE001 (left for the parent to read, and to report)
                        break
                with os.fdopen(writer, "wb") as out:
                    out.write(pickle.dumps(dumps, protocol=pickle.HIGHEST_PROTOCOL))
            finally:
                os._exit(0)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(writer)
        try:
            for netns in ours:
                self.dump(netns)
        finally:
            data = _read_all(reader, deadline=time.monotonic() + READ_AHEAD_TIMEOUT)
            if data is None:
                os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        try:
            dumps = pickle.loads(data) if data else {}
        except (pickle.UnpicklingError, EOFError):
            return
        for netns, dump in dumps.items():
            if netns not in self._dumps:
                self._remember(netns, dump)

    def _remember(self, netns: str | None, dump: NetnsDump) -> None:
        self._dumps[netns] = dump
        self.netlink.remember(netns, dump)
        if not dump.consistent:
            # changing while read, every time: read again on the next pass
            with self._changed_lock:
                self._changed.add(netns)

    # -- events (a kernel made with on_event) --------------------------------------

    def _listen_before_reading(self, netns: str | None) -> None:
        """From here on, changes in the namespace are heard; what was heard of it
        before is shown by the read that follows."""
        if self._events is None:
            return
        try:
            self._events.listen(netns)
        except OSError:
            return  # gone meanwhile: the read says so
        self._events.discard_pending(netns)
        with self._changed_lock:
            self._changed.discard(netns)

    def _heard(self, netns: str | None) -> None:
        with self._changed_lock:
            self._changed.add(netns)
        if self._on_event is not None:
            self._on_event()

    def replaced_namespaces(self) -> list[str]:
        """Namespaces listened to whose name now leads elsewhere or nowhere (`ip
        netns del`, and maybe add again): the sockets held in them keep the old
        one alive, and must be dropped (`drop_namespaces`)."""
        if self._events is None:
            return []
        return sorted(str(ns) for ns in self._events.listening() if not self._events.is_current(ns))

    def heard_changing(self) -> frozenset[str | None]:
        """The namespaces heard changing since they were read."""
        with self._changed_lock:
            return frozenset(self._changed)

    def drop_namespaces(self, names: Iterable[str]) -> frozenset[str | None]:
        """Lets go of namespaces deleted or replaced behind netlab's back: their
        connection and listener (which keep the old namespace alive: writes
        through them would go where nobody can see), their remembered link
        indexes, and everything read of them; the next read opens the new one.
        Returns the other namespaces read whose links have their other end in
        one of them: a veth goes with either end's namespace, so a pass must
        plan those too. What was read of them stays true for now: the old
        namespace lives until its last socket closes (these were among them),
        and the kernel destroys it later, on its own; its links go then, which
        the listeners in those namespaces hear. A plan made meanwhile replaces
        such a link by name (its removal counts a link already gone as
        removed), so it holds whichever comes first. The rest of what this
        kernel knows stays."""
        gone = set(names)
        peers = self._peers_in(gone)
        for netns in gone:
            self.netlink.forget(netns)
            if self._events is not None:
                self._events.forget(netns)
            self._legacy_nat.pop(netns, None)
            self._nat.pop(netns, None)
            self._nftables.pop(netns, None)
        with self._changed_lock:
            self._changed -= gone  # listened to again by the read that follows
        namespaces.forget_listing()
        self.forget_namespaces(gone)
        return frozenset(peers)

    def _peers_in(self, gone: set[str]) -> set[str | None]:
        """The namespaces read that hold a link whose other end is in one of
        `gone`: a link in another namespace (IFLA_LINK_NETNSID) pointing at a
        link of a gone one that points back. An index names a link in its own
        namespace only, so a pair can match by chance: such a namespace is read
        again for nothing, never missed. A gone namespace not read (or forgotten
        since) tells nothing: then every namespace with a link into another is
        taken."""
        ends: set[tuple[int, int]] = set()
        unknown = False
        for netns in gone:
            dump = self._dumps.get(netns)
            if dump is None:
                unknown = True
                continue
            ends |= {(link.index, link.link_index) for link in dump.links if link.link_netnsid is not None and link.link_index}
        peers: set[str | None] = set()
        for netns, dump in self._dumps.items():
            if netns in gone:
                continue
            for link in dump.links:
                if link.link_netnsid is None or not link.link_index:
                    continue
                if unknown or (link.link_index, link.index) in ends:
                    peers.add(netns)
                    break
        return peers

    def _reached_by_deleting(self, netns: str | None, name: str, index: int) -> set[str | None] | None:
        """The other namespaces read that a link's deletion changes: those with a
        link in another namespace (IFLA_LINK_NETNSID) whose IFLA_LINK is the
        link's index (a veth's peer; a vlan, macvlan or ipvlan on it, which go
        with their parent). An index names a link in its own namespace only,
        so one can match by chance: read again for nothing, never missed. None
        (everything) when the link read is not the one there now (`index`, just
        asked), or its namespace was not read: who points at it is not known.
        Namespaces not read hold nothing to forget."""
        dump = self._dumps.get(netns)
        link = dump.link(name) if dump is not None else None
        if link is None or link.index != index:
            return None
        return {
            other
            for other, found in self._dumps.items()
            if other != netns and any(each.link_netnsid is not None and each.link_index == link.index for each in found.links)
        }

    def sysctl(self, netns: str | None, key: str) -> str | None:
        if (netns, key) not in self._sysctls:
            self._sysctls[(netns, key)] = sysctls.read(netns, key) if self.has_netns(netns) else None
        return self._sysctls[(netns, key)]

    def fresh_sysctl(self, key: str) -> str | None:
        """The value a namespace created now has (what netlab gives back when a
        sysctl of a namespace it created leaves the files)."""
        if key not in self._fresh_sysctls:
            self._fresh_sysctls[key] = sysctls.read_fresh(key)
        return self._fresh_sysctls[key]

    def legacy_nat_exists(self, netns: str | None) -> bool:
        if netns not in self._legacy_nat:
            self._legacy_nat[netns] = self.has_netns(netns) and iptables.legacy_nat_exists(netns)
        return self._legacy_nat[netns]

    def nat(self, netns: str | None) -> NatTables:
        """netlab's chains and rules in the namespace's legacy nat tables: one
        worker process, only where a legacy nat table exists (reading one would
        create it)."""
        if netns not in self._nat:
            self._nat[netns] = iptables.dump(netns) if self.legacy_nat_exists(netns) else NatTables()
        return self._nat[netns]

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]:
        if netns not in self._nftables:
            self._nftables[netns] = iptables.nftables_in_use(netns) if self.has_netns(netns) else ()
        return self._nftables[netns]

    def file(self, path: str) -> FileState:
        signature = resolver_files.signature(path)
        known = self._files.get(path)
        if known is None or known[0] != signature:
            # the signature taken before the read: a write in between makes the
            # next look read it again
            known = self._files[path] = (signature, resolver_files.read(path))
        return known[1]

    def forget_reads(self) -> None:
        """Everything: the next read of anything asks the kernel again."""
        self.netlink.take_touched()
        with self._changed_lock:
            self._changed.clear()
        self._namespaces = None
        namespaces.forget_listing()
        self._dumps.clear()
        self._sysctls.clear()
        self._fresh_sysctls.clear()  # some follow the host's (devconf_inherit_init_net)
        self._legacy_nat.clear()
        self._nat.clear()
        self._nftables.clear()
        self._files.clear()

    def forget_namespaces(self, names: set[str | None]) -> None:
        """What was read of these namespaces (None: the host), and which
        namespaces exist (a namespace's creation or removal in between makes its
        reads stale too)."""
        self._namespaces = None
        for netns in names:
            self._dumps.pop(netns, None)
            for key in [key for key in self._sysctls if key[0] == netns]:
                del self._sysctls[key]
            # NAT tables are kept: netlink writes and events say nothing of them
            # (their own writes update them; a resync reads them again)

    def forget_heard(self) -> None:
        """Between the daemon's passes: forgets the namespaces heard changing since
        they were read, and the sysctls (which make no events). Files are
        checked for changes on every read anyway."""
        with self._changed_lock:
            changed, self._changed = self._changed, set()
        self.forget_namespaces(changed)
        self._sysctls.clear()

    def forget_written(self) -> None:
        """After a pass's writes: forgets the namespaces they touched (the files
        they wrote are forgotten as they are written)."""
        touched = self.netlink.take_touched()
        if touched is None:
            self.forget_reads()
        else:
            self.forget_namespaces(touched)

    # -- writes -------------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        self.netlink.adopt(name, namespaces.create_namespace(name, then=open_socket))
        # A namespace without a working loopback surprises every program run in it
        # (planning counts on it: `fresh_namespace_link`).
        self.netlink.link_set(name, LOOPBACK, state="up")

    def remove_namespace(self, name: str) -> None:
        self.netlink.forget(name)
        if self._events is not None:
            self._events.forget(name)
        # its veths' peers in other namespaces go with it
        self.netlink.touch_everything()
        namespaces.remove_namespace(name)

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        sysctls.write(netns, key, value)
        # One write can move other keys (`ip_forward` is `conf.all.forwarding`,
        # and `conf.all` sets every link's): all of the namespace's are read again.
        for known in [known for known in self._sysctls if known[0] == netns]:
            del self._sysctls[known]

    def prepare_nat_changes(self) -> None:
        """A pass that will change NAT says so before its first write: the
        iptables worker then starts while the other steps run."""
        iptables.warm_up()

    def change_nat(self, netns: str | None, ops: list[NatOp]) -> None:
        after = iptables.change(netns, ops)
        self._legacy_nat.pop(netns, None)
        if after is None:
            self._nat.pop(netns, None)
        else:
            self._nat[netns] = after  # read by the worker that wrote them

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        resolver_files.write(path, data, mode)
        self._files.pop(path, None)

    def remove_file(self, path: str) -> None:
        resolver_files.remove(path)
        self._files.pop(path, None)

    def make_directory(self, path: str, mode: int = 0o755) -> None:
        resolver_files.make_directory(path, mode)
        self._files.pop(path, None)

    def remove_directory_if_empty(self, path: str) -> None:
        resolver_files.remove_directory_if_empty(path)
        self._files.pop(path, None)
