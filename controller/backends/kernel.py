"""The kernel as netlab sees it: a facade over the backends that reads each
namespace once and remembers it, and carries the writers. Kinds read through it
while planning; their steps write through it. The resolver files count as kernel
state here: they are what the resolver reads.

Everything read is kept in one cache (`Reads`), by what was read and where.
Every write says what it makes stale (`Touched`) as it goes out, and the cache
forgets that there and then: the netlink backend reports each of its writes
(`Netlink._write`), the other writers are methods of this facade. So what a
pass wrote is read again when the pass is verified, and nothing else is.
What changes without netlab is forgotten by whoever hears of it: a kernel made
with `on_event` (the daemon's) listens for rtnetlink events in every namespace
it reads, from just before its first read, and `forget_heard` forgets the
namespaces that changed since; `forget_reads` forgets everything (a resync);
`drop_namespaces` lets go of namespaces deleted by hand (their sockets too) and
keeps the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from netlab.controller.backends import iptables, namespaces, nat_backends, nftables, resolver_files, sysctls
from netlab.controller.backends.events import NFTABLES, RTNL, EventHub, Heard
from netlab.controller.backends.iptables import NatOp, NatTables
from netlab.controller.backends.nat_backends import Backend, Choice, Requested
from netlab.controller.backends.netlink import Netlink, NetnsDump, ObservedLink, Reached, open_socket
from netlab.controller.backends.nftables import HookedChain
from netlab.controller.backends.resolver_files import FileState

T = TypeVar("T")

EMPTY_DUMP = NetnsDump((), (), ())
LOOPBACK = "lo"

# What a read is of, and where: ("dump", netns), ("sysctls", netns),
# ("legacy-nat", netns), ("nat", netns) (legacy iptables), ("nft-nat", netns)
# (netlab's nftables tables) with netns None for the host; ("file", path);
# ("namespaces", None),
# ("fresh-sysctls", None), ("nat-choice", None), ("nftables-chains", netns)
# (other tools' base chains), ("firewalld", None).
Read = tuple[str, str | None]
OF_A_NAMESPACE = ("dump", "sysctls", "legacy-nat", "nat", "nft-nat", "nftables-chains")
# what each kind of event makes stale in its namespace
HEARD_READS = {RTNL: ("dump",), NFTABLES: ("nft-nat",)}


@dataclass(frozen=True)
class Touched:
    """What a write makes stale: the reads it changes, or everything."""

    reads: frozenset[Read] = frozenset()
    everything: bool = False

    @classmethod
    def by_netlink(cls, reached: Reached, of_links: bool = False) -> Touched:
        """What a netlink write changes: the dumps of the namespaces it reaches
        (None: of any namespace), and, for a write of links, their sysctls too (a
        link made or deleted brings or takes its `conf.LINK.*`; an MTU under
        1280 takes its IPv6 ones)."""
        if reached is None:
            return EVERYTHING
        reads = ("dump", "sysctls") if of_links else ("dump",)
        return cls(frozenset((what, netns) for netns in reached for what in reads))


EVERYTHING = Touched(everything=True)


class Reads:
    """The one cache of what was read: for each read (what, where), its values by
    detail (a sysctl's key; None where a read has one value). What a write
    touches is stale: read again when asked for, and kept meanwhile only as the
    last reading (`last`), which tells who links to whom across namespaces."""

    def __init__(self) -> None:
        # what -> where -> detail -> value
        self._fresh: dict[str, dict[str | None, dict[Hashable, Any]]] = {}
        self._stale: dict[str, dict[str | None, dict[Hashable, Any]]] = {}

    def get(self, what: str, where: str | None, detail: Hashable, load: Callable[..., T], *args: Any) -> T:
        """The value kept, or what `load(*args)` reads now (then kept). Planning
        asks some ten thousand times a pass: no closure or tuple is made for a
        value kept."""
        try:
            value: T = self._fresh[what][where][detail]
        except KeyError:
            value = load(*args)
            self.put(what, where, detail, value)
        return value

    def put(self, what: str, where: str | None, detail: Hashable, value: Any) -> None:
        self._fresh.setdefault(what, {}).setdefault(where, {})[detail] = value
        self._stale.get(what, {}).pop(where, None)

    def peek(self, what: str, where: str | None) -> Any:
        """The value of a read that has one, if it is known and fresh; else None."""
        return self._fresh.get(what, {}).get(where, {}).get(None)

    def last(self, what: str) -> Iterator[tuple[str | None, Any]]:
        """Where, and the last value read (fresh or stale), of every read of
        this kind that has one value."""
        fresh = self._fresh.get(what, {})
        for where, values in fresh.items():
            if None in values:
                yield where, values[None]
        for where, values in self._stale.get(what, {}).items():
            if where not in fresh and None in values:
                yield where, values[None]

    def last_of(self, what: str, where: str | None) -> Any:
        """The last value read (fresh or stale) of a read that has one value, or None."""
        values = self._fresh.get(what, {}).get(where) or self._stale.get(what, {}).get(where) or {}
        return values.get(None)

    def touch(self, touched: Touched) -> None:
        """A write went out: what it touched is stale."""
        reads = (
            [(what, where) for what, wheres in self._fresh.items() for where in wheres]
            if touched.everything
            else touched.reads
        )
        for what, where in reads:
            values = self._fresh.get(what, {}).pop(where, None)
            if values:
                self._stale.setdefault(what, {})[where] = values

    def forget(self, reads: Iterable[Read] = (), what: str | None = None, everything: bool = False) -> None:
        """Forgets these reads, and every read of kind `what`, or everything."""
        if everything:
            self._fresh.clear()
            self._stale.clear()
        for kind, where in reads:
            self._fresh.get(kind, {}).pop(where, None)
            self._stale.get(kind, {}).pop(where, None)
        if what is not None:
            self._fresh.pop(what, None)
            self._stale.pop(what, None)


def fresh_namespace_link(netns: str, name: str) -> ObservedLink | None:
    """A link that a namespace made by `Kernel.create_namespace` holds from its
    first moment: its loopback, set up at once (as the lecture does right after
    `ip netns add`). Planning takes it as present in a namespace it creates, so
    that addresses and routes on lo are planned from an empty kernel."""
    if name != LOOPBACK:
        return None
    return ObservedLink(
        netns=netns,
        name=LOOPBACK,
        index=1,
        kind=None,
        state="up",
        mtu=65536,
        mac="00:00:00:00:00:00",
        master=None,
        alias=None,
        link_index=None,
        link_netnsid=None,
    )


class Kernel:
    def __init__(self, on_event: Callable[[], None] | None = None, nat_backend: Requested = "auto") -> None:
        """`on_event()` is called (from another thread) whenever a namespace read
        before changes, or the kernel dropped its events: `forget_heard` then
        forgets that namespace. `nat_backend` is `--nat-backend`."""
        self.nat_backend_requested: Requested = nat_backend
        self._reads = Reads()
        self.netlink = Netlink(
            wrote=lambda reached, of_links: self._reads.touch(Touched.by_netlink(reached, of_links)),
            reached_by_deleting=self._reached_by_deleting,
        )
        self._on_event = on_event
        self._events = EventHub(self._heard) if on_event is not None else None
        # heard changing since last read: namespace -> what was heard (RTNL, NFTABLES)
        self._changed: dict[str | None, set[str]] = {}
        self._changed_lock = threading.Lock()

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
        return self._reads.get("namespaces", None, None, namespaces.list_namespaces)

    def has_netns(self, netns: str | None) -> bool:
        return netns is None or netns in self.namespaces()

    def dump(self, netns: str | None) -> NetnsDump:
        return self._reads.get("dump", netns, None, self._read_dump, netns)

    def _read_dump(self, netns: str | None) -> NetnsDump:
        if not self.has_netns(netns):
            return EMPTY_DUMP
        self._listen_before_reading(netns)
        dump = self.netlink.dump(netns)
        if not dump.consistent:
            # changing while read, every time: read again on the next pass
            with self._changed_lock:
                self._changed.setdefault(netns, set()).add(RTNL)
        return dump

    def read_ahead(self, wanted: Iterable[str | None]) -> None:
        """Told which namespaces a plan is about to read. The host's NAT tables
        are read by an iptables worker: one is started now when they will be
        read, so that its start-up (~0.2 s) overlaps the reading."""
        if None in set(wanted) and self._reads.peek("nat", None) is None and self.legacy_nat_exists(None):
            iptables.warm_up()

    def sysctl(self, netns: str | None, key: str) -> str | None:
        return self._reads.get(
            "sysctls", netns, key, lambda: sysctls.read(netns, key) if self.has_netns(netns) else None
        )

    def fresh_sysctl(self, key: str) -> str | None:
        """The value a namespace created now has (what netlab gives back when a
        sysctl of a namespace it created leaves the files)."""
        return self._reads.get("fresh-sysctls", None, key, sysctls.read_fresh, key)

    def legacy_nat_exists(self, netns: str | None) -> bool:
        return self._reads.get(
            "legacy-nat", netns, None, lambda: self.has_netns(netns) and iptables.legacy_nat_exists(netns)
        )

    def nat(self, netns: str | None, backend: Backend = "iptables") -> NatTables:
        """netlab's chains and rules in the namespace's nat tables of `backend`.
        Legacy: one worker process, only where a legacy nat table exists (reading
        one would create it). nftables: netlab's own tables, where nftables can
        be used at all."""
        if backend == "nftables":
            return self._reads.get("nft-nat", netns, None, self._read_nft_nat, netns)
        return self._reads.get(
            "nat", netns, None, lambda: iptables.dump(netns) if self.legacy_nat_exists(netns) else NatTables()
        )

    def _read_nft_nat(self, netns: str | None) -> NatTables:
        if not self.has_netns(netns) or self.nftables_unavailable() is not None:
            return NatTables()
        self._listen_before_reading(netns, NFTABLES)
        return nftables.dump(netns)

    def hooked_chains(self, netns: str | None) -> tuple[HookedChain, ...]:
        """Other tools' nftables base chains in the namespace (hooks and
        policies, no rules): what may defeat netlab's NAT there."""
        return self._reads.get(
            "nftables-chains",
            netns,
            None,
            lambda: (
                nftables.hooked_chains_of_others(netns)
                if self.has_netns(netns) and self.nftables_unavailable() is None
                else ()
            ),
        )

    def firewalld_running(self) -> bool:
        return self._reads.get("firewalld", None, None, nat_backends.firewalld_running)

    def nat_choice_made(self) -> Choice | None:
        """The NAT backend chosen, if a plan needed one since the last resync."""
        choice: Choice | None = self._reads.peek("nat-choice", None)
        return choice

    def nftables_unavailable(self) -> str | None:
        """Why the nftables backend cannot work here (None: it can)."""
        return self._reads.get("nat-choice", None, "nftables", nftables.unavailable)

    def nat_choice(self) -> Choice:
        """The NAT backend netlab writes to, and why (`nat_backends.choose`): one
        for the host and its namespaces, decided once by what the host runs."""
        return self._reads.get("nat-choice", None, None, self._choose_nat_backend)

    def _choose_nat_backend(self) -> Choice:
        legacy = nat_backends.legacy_available()
        facts = nat_backends.Facts(
            nftables_unavailable=self.nftables_unavailable(),
            legacy_available=legacy,
            iptables_command=nat_backends.iptables_command(),
            legacy_rules_of_others=lambda: self.nat(None, "iptables").others if self.legacy_nat_exists(None) else 0,
            nftables_in_use=lambda: self.nftables_in_use(None),
        )
        return nat_backends.choose(self.nat_backend_requested, facts)

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]:
        """The nftables tables of other tools with base chains in the namespace,
        like `ip nat (2 base chains)`: where there are any, its firewall lives
        in nftables (iptables-nft's among them). Read from their chains alone:
        no other tool's rule is read."""
        counts: dict[str, int] = {}
        for chain in self.hooked_chains(netns):
            where = f"{chain.family} {chain.table}"
            counts[where] = counts.get(where, 0) + 1
        return tuple(f"{where} ({n} base chain{'s' if n != 1 else ''})" for where, n in sorted(counts.items()))

    def file(self, path: str) -> FileState:
        """Read again whenever lstat shows it changed (no events come for files):
        (device, inode, mode, size, mtime, ctime) when it was read."""
        signature = resolver_files.signature(path)
        known: tuple[tuple[int, ...] | None, FileState] | None = self._reads.peek("file", path)
        if known is None or known[0] != signature:
            # the signature taken before the read: a write in between makes the
            # next look read it again
            known = (signature, resolver_files.read(path))
            self._reads.put("file", path, None, known)
        return known[1]

    # -- events (a kernel made with on_event) --------------------------------------

    def _listen_before_reading(self, netns: str | None, heard: Heard = RTNL) -> None:
        """From here on, changes in the namespace are heard; what was heard of it
        before is shown by the read that follows."""
        if self._events is None:
            return
        try:
            self._events.listen(netns)
        except OSError:
            return  # gone meanwhile: the read says so
        self._events.discard_pending(netns, heard)
        with self._changed_lock:
            kinds = self._changed.get(netns)
            if kinds is not None:
                kinds.discard(heard)
                if not kinds:
                    del self._changed[netns]

    def _heard(self, netns: str | None, heard: Heard) -> None:
        with self._changed_lock:
            self._changed.setdefault(netns, set()).add(heard)
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
        gone: set[str | None] = set(names)
        peers = self._peers_in(gone)
        for netns in gone:
            self.netlink.forget(netns)
            if self._events is not None:
                self._events.forget(netns)
        with self._changed_lock:
            for netns in gone:  # listened to again by the read that follows
                self._changed.pop(netns, None)
        namespaces.forget_listing()
        self._reads.forget([(what, netns) for what in OF_A_NAMESPACE for netns in gone] + [("namespaces", None)])
        return frozenset(peers)

    def _peers_in(self, gone: set[str | None]) -> set[str | None]:
        """The namespaces read that hold a link whose other end is in one of
        `gone`: a link in another namespace (IFLA_LINK_NETNSID) pointing at a
        link of a gone one that points back. An index names a link in its own
        namespace only, so a pair can match by chance: such a namespace is read
        again for nothing, never missed. A gone namespace not read (or forgotten
        since) tells nothing: then every namespace with a link into another is
        taken."""
        dumps: dict[str | None, NetnsDump] = dict(self._reads.last("dump"))
        ends: set[tuple[int, int | None]] = set()
        unknown = False
        for netns in gone:
            dump = dumps.get(netns)
            if dump is None:
                unknown = True
                continue
            ends |= {
                (link.index, link.link_index)
                for link in dump.links
                if link.link_netnsid is not None and link.link_index
            }
        peers: set[str | None] = set()
        for netns, dump in dumps.items():
            if netns in gone:
                continue
            for link in dump.links:
                if link.link_netnsid is None or not link.link_index:
                    continue
                if unknown or (link.link_index, link.index) in ends:
                    peers.add(netns)
                    break
        return peers

    def _reached_by_deleting(self, netns: str | None, links: Collection[tuple[str, int]]) -> set[str | None] | None:
        """The other namespaces read that deleting these links (name, index) of
        one namespace changes: those with a link in another namespace
        (IFLA_LINK_NETNSID) whose IFLA_LINK is one of their indexes (a veth's
        peer; a vlan, macvlan or ipvlan on it, which go with their parent). An
        index names a link in its own namespace only, so one can match by
        chance: read again for nothing, never missed. None (everything) when a
        link read is not the one there now (`index`, just asked), or its
        namespace was not read: who points at it is not known. Namespaces not
        read hold nothing to forget. What was read last serves, stale or not: a
        write does not change who points at whom."""
        dump: NetnsDump | None = self._reads.last_of("dump", netns)
        if dump is None:
            return None
        indexes = set()
        for name, index in links:
            link = dump.link(name)
            if link is None or link.index != index:
                return None
            indexes.add(index)
        return {
            other
            for other, found in self._reads.last("dump")
            if other != netns
            and any(each.link_netnsid is not None and each.link_index in indexes for each in found.links)
        }

    # -- forgetting what changed without netlab -----------------------------------

    def forget_reads(self) -> None:
        """Everything: the next read of anything asks the kernel again."""
        with self._changed_lock:
            self._changed.clear()
        namespaces.forget_listing()
        self._reads.forget(everything=True)  # fresh sysctls too: some follow the host's (devconf_inherit_init_net)

    def forget_heard(self) -> None:
        """Between the daemon's passes: forgets the namespaces heard changing since
        they were read (their dumps and sysctls, and which namespaces exist: a
        namespace's creation or removal in between makes its reads stale too),
        and every sysctl (they make no events). netlink's nftables events
        (NFNLGRP_NFTABLES) forget the namespace's nftables reads; the legacy
        NAT tables are kept: nothing announces their changes (their own writes
        update them; a resync reads them again). Files are checked for changes
        on every read anyway."""
        with self._changed_lock:
            changed, self._changed = self._changed, {}
        stale = [(what, netns) for netns, kinds in changed.items() for kind in kinds for what in HEARD_READS[kind]]
        self._reads.forget([*stale, ("namespaces", None)], what="sysctls")

    # -- writes -------------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        self._reads.touch(Touched(frozenset({("namespaces", None), *((what, name) for what in OF_A_NAMESPACE)})))
        self.netlink.adopt(name, namespaces.create_namespace(name, then=open_socket))
        # A namespace without a working loopback surprises every program run in it
        # (planning counts on it: `fresh_namespace_link`).
        self.netlink.link_set(name, LOOPBACK, state="up")

    def remove_namespace(self, name: str) -> None:
        # its veths' peers in other namespaces go with it
        self._reads.touch(EVERYTHING)
        self.netlink.forget(name)
        if self._events is not None:
            self._events.forget(name)
        namespaces.remove_namespace(name)

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        # One write can move other keys (`ip_forward` is `conf.all.forwarding`,
        # and `conf.all` sets every link's): all of the namespace's are read again.
        self._reads.touch(Touched(frozenset({("sysctls", netns)})))
        sysctls.write(netns, key, value)

    def prepare_nat_changes(self) -> None:
        """A pass that will change NAT says so before its first write: an
        iptables worker then starts while the other steps run, where legacy
        iptables is written."""
        if self.nat_choice().backend == "iptables" or self.legacy_nat_exists(None):
            iptables.warm_up()

    def change_nat(self, netns: str | None, ops: list[NatOp], backend: Backend = "iptables") -> None:
        if backend == "nftables":
            self._reads.touch(Touched(frozenset({("nft-nat", netns)})))
            # read again when asked (`_read_nft_nat`, which first lets go of the
            # events heard so far; the daemon still hears this write's own
            # events if they come after its next read: one pass that finds
            # nothing to do)
            nftables.change(netns, ops)
            return
        self._reads.touch(Touched(frozenset({("legacy-nat", netns), ("nat", netns)})))
        after = iptables.change(netns, ops)
        if after is not None:
            self._reads.put("nat", netns, None, after)  # read by the worker that wrote them

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        self._touch_file(path)
        resolver_files.write(path, data, mode)

    def remove_file(self, path: str) -> None:
        self._touch_file(path)
        resolver_files.remove(path)

    def make_directory(self, path: str, mode: int = 0o755) -> None:
        self._touch_file(path)
        resolver_files.make_directory(path, mode)

    def remove_directory_if_empty(self, path: str) -> None:
        self._touch_file(path)
        resolver_files.remove_directory_if_empty(path)

    def _touch_file(self, path: str) -> None:
        self._reads.touch(Touched(frozenset({("file", path)})))
