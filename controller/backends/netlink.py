"""The netlink backend: the only module that talks rtnetlink, through pyroute2.

It keeps one rtnetlink socket per namespace (`rtnl.RtnlSocket`: pyroute2's
messages on a plain socket) for the whole pass, dumps a namespace's links,
addresses and routes once, and turns pyroute2 messages into the plain
`Observed*` records the kinds compare. What netlab reads of the kernel's
messages is decided in one place, `reads`, for the dumps here and for the
event listeners (`events`) alike. Called by the kinds, through the Kernel.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NotRequired, TypedDict, TypeVar, Unpack

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, nlmsg
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netlab.controller.backends import descriptors, namespaces
from netlab.controller.backends.rtnl import RtnlSocket, decode_as, narrowed
from netlab.state.errors import KernelRefused
from netlab.state.link_types import LINK_TYPES, OBSERVED_DATA, PARENT_DATA, kernel_module

# Routes netlab installs carry this protocol number (`ip route` shows `proto 213`):
# the kernel keeps it, so netlab recognises its routes even without its ledger.
NETLAB_ROUTE_PROTO = 213
# Links netlab creates carry this ifalias (`ip link` shows `alias netlab`).
NETLAB_LINK_ALIAS = "netlab"

IFF_UP = 0x1
LINK_ATTRIBUTES = {"mtu": "IFLA_MTU", "address": "IFLA_ADDRESS", "ifalias": "IFLA_IFALIAS"}
RTEXT_FILTER_SKIP_STATS = 1 << 3  # link dumps without counters: netlab reads none
IFA_F_SECONDARY = 0x01
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RTN_UNICAST = 1
RTPROT_KERNEL = 2
RT_SCOPE_LINK = 253
RT_SCOPE_NOWHERE = 255  # in a delete request: whatever the route's scope
AF_BRIDGE = 7

# The namespaces a write changes (None in it: the host); None: possibly any.
Reached = Collection[str | None] | None

# A link as netlab receives it: the attributes `_link` reads, of the some fifty
# the kernel sends (lookups and events read only the fixed header). Every socket
# decodes links this way: an attribute read anywhere must be named here, or it
# reads as None (test_rtnl_kernel compares the records with pyroute2's full decode).
LinkMessage = narrowed(
    ifinfmsg,
    {
        "IFLA_IFNAME": None,
        # IFLA_INFO_DATA: of the kinds in `OBSERVED_DATA`, the attributes named there
        "IFLA_LINKINFO": ("IFLA_INFO_KIND", "IFLA_INFO_DATA"),
        "IFLA_MTU": None,
        "IFLA_ADDRESS": None,
        "IFLA_IFALIAS": None,
        "IFLA_LINK": None,
        "IFLA_LINK_NETNSID": None,
        "IFLA_MASTER": None,
        "IFLA_GROUP": None,  # read by `links_del` alone
    },
)
decode_as(LinkMessage, RTM_NEWLINK, RTM_DELLINK)


def _lend_data_classes() -> None:
    """pyroute2 encodes and decodes IFLA_INFO_DATA by kind, and knows no class for
    some kinds of the table (ipvtap): each such kind gets the class of the kinds
    whose attributes include all of its own, with the same encodings (ipvlan's
    IFLA_IPVLAN_MODE); none, or kinds that disagree, is a bug of the table."""
    known = ifinfmsg.ifinfo.data_map
    for link_type in LINK_TYPES.values():
        wanted = {attribute.kernel for attribute in link_type.attributes}
        if not link_type.kind or link_type.kind in known or not wanted:
            continue
        encodings: dict[tuple[tuple[str, Any], ...], type] = {}
        for cls in known.values():
            names = {entry[0]: entry[1:] for entry in cls.nla_map}
            if wanted <= names.keys():
                encodings.setdefault(tuple(sorted((name, names[name]) for name in wanted)), cls)
        if len(encodings) != 1:
            raise RuntimeError(
                f"pyroute2 has no IFLA_INFO_DATA class for {link_type.kind} and "
                f"{'none' if not encodings else 'several disagreeing'} with all of {sorted(wanted)}"
            )
        (known[link_type.kind],) = encodings.values()


_lend_data_classes()


@dataclass(frozen=True, slots=True)
class ObservedLink:
    netns: str | None
    name: str
    index: int
    kind: str | None  # IFLA_INFO_KIND: veth, bridge, macvlan...; None for hardware
    state: str  # "up" or "down": the administrative state (IFF_UP)
    mtu: int
    mac: str | None
    master: str | None
    alias: str | None
    # veth: the peer's index; vlan, macvlan, ipvlan: the parent's; in the
    # namespace of link_netnsid when there is one, else in the link's own
    link_index: int | None
    link_netnsid: int | None
    # IFLA_INFO_DATA attributes by name, those of `OBSERVED_DATA` for its kind,
    # as pyroute2 decodes them (a mode by its name)
    data: tuple[tuple[str, Any], ...] = ()

    @property
    def marked(self) -> bool:
        return self.alias == NETLAB_LINK_ALIAS

    def datum(self, name: str) -> Any:
        return next((value for key, value in self.data if key == name), None)


@dataclass(frozen=True, slots=True)
class ObservedAddress:
    netns: str | None
    interface: str
    address: str  # "10.0.0.2/24"
    family: int  # 4 or 6
    secondary: bool  # IPv4: removing the primary of a subnet removes these too

    @property
    def kernel_made(self) -> bool:
        """IPv6 link-local addresses appear by themselves when a link comes up."""
        return self.family == 6 and self.address.startswith("fe80:")


@dataclass(frozen=True, slots=True)
class ObservedRoute:
    netns: str | None
    table: int
    to: str  # "0.0.0.0/0", "10.0.0.0/24"
    metric: int
    via: str | None
    dev: str | None
    proto: int
    family: int

    @property
    def marked(self) -> bool:
        return self.proto == NETLAB_ROUTE_PROTO


class Route(TypedDict):
    """A route as a write names it (`Netlink.route_add`, `route_replace`)."""

    to: str  # "0.0.0.0/0", "10.0.0.0/24"
    table: int
    metric: int
    via: str | None
    dev: str | None
    proto: NotRequired[int]  # netlab's own unless given


@dataclass(frozen=True, slots=True)
class NetnsDump:
    links: tuple[ObservedLink, ...]
    addresses: tuple[ObservedAddress, ...]
    # the routes netlab reads (`reads`): unicast and not the kernel's own, in
    # any table
    routes: tuple[ObservedRoute, ...]
    # False when the kernel said a list changed while it was read, every time
    # it was read: it may lack or repeat what changed meanwhile
    consistent: bool = True
    # by name: the host holds a link per namespace, and planning looks each up
    _by_name: dict[str, ObservedLink] = field(init=False, repr=False, compare=False)
    _by_index: dict[int, ObservedLink] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {link.name: link for link in self.links})
        object.__setattr__(self, "_by_index", None)

    def link(self, name: str) -> ObservedLink | None:
        return self._by_name.get(name)

    def link_at(self, index: int) -> ObservedLink | None:
        """By index (a parent, named by IFLA_LINK); indexed at the first call."""
        if self._by_index is None:
            object.__setattr__(self, "_by_index", {link.index: link for link in self.links})
        assert self._by_index is not None
        return self._by_index.get(index)


class Netlink:
    """Connections to rtnetlink, one per namespace, opened lazily and kept (the
    daemon keeps them from pass to pass). It remembers each namespace's link
    indexes (from dumps and lookups), so that a write names its link without
    asking the kernel first. Every write goes out through `_write`, which first
    tells `wrote` (the kernel facade) which namespaces it makes stale."""

    def __init__(
        self,
        wrote: Callable[[Reached, bool], None] = lambda namespaces, of_links: None,
        reached_by_deleting: Callable[[str | None, Collection[tuple[str, int]]], Reached] = lambda netns, links: None,
    ) -> None:
        """`wrote(namespaces, of_links)`: called before each write with the
        namespaces it changes (None: possibly any), and whether it makes or
        changes links (which brings or takes their sysctls). `reached_by_deleting(netns, links)`:
        the other namespaces deleting links (name, index) of a namespace changes (a veth's peer, the links
        on a parent), or None when that is not known; given by whoever holds
        what was read."""
        descriptors.raise_file_limit()  # a socket per namespace: thousands of them
        self._connections: dict[str | None, RtnlSocket] = {}
        self._indexes: dict[str | None, dict[str, int]] = {}
        self._wrote = wrote
        self._reached_by_deleting = reached_by_deleting
        # The process's own namespace as an fd, so a veth peer can be placed in
        # it from inside another namespace. /proc/1 would be the machine's, not ours.
        self._own_netns_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        self._indexes.clear()
        if self._own_netns_fd >= 0:
            os.close(self._own_netns_fd)
            self._own_netns_fd = -1

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections --------------------------------------------------------------

    def connection(self, netns: str | None) -> RtnlSocket:
        connection = self._connections.get(netns)
        if connection is not None:
            return connection
        if netns is None:
            connection = self._connections[None] = RtnlSocket()
            return connection
        # Open the socket inside the namespace from a thread that entered it (well
        # under 1 ms) rather than letting pyroute2 fork a child (~19 ms).
        return self.adopt(netns, namespaces.run_in(netns, open_socket))

    def adopt(self, netns: str, sock: socket.socket) -> RtnlSocket:
        """Takes a socket opened inside `netns` (by whoever just created it) as the
        namespace's connection."""
        self.forget(netns)
        connection = self._connections[netns] = RtnlSocket(sock)
        self._indexes[netns] = {}
        return connection

    def forget(self, netns: str | None) -> None:
        """Drops the connection to a namespace that was removed (or is about to be
        made anew), and what was known of it."""
        connection = self._connections.pop(netns, None)
        if connection is not None:
            connection.close()
        self._indexes.pop(netns, None)

    # -- observing ----------------------------------------------------------------

    def dump(self, netns: str | None) -> NetnsDump:
        """Links, addresses and routes, each message turned into its record as it
        arrives: the host's dump of a thousand veths held all at once as pyroute2
        messages would cost some 30 MB. What netlab does not read (`reads`) is
        passed over before it is decoded, and of a link only the attributes read
        are decoded (`LinkMessage`)."""
        rtnl = self.connection(netns)
        what = f"read {_where(netns)}"
        # with its master's index: a master's name is known once every link is
        linked, links_consistent = rtnl.dump(
            what,
            RTM_GETLINK,
            _message(ifinfmsg, attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]),
            functools.partial(_link, netns),
            keep=reads,
        )
        names = {link.index: link.name for link, _ in linked}
        addresses, addresses_consistent = rtnl.dump(
            what, RTM_GETADDR, _message(ifaddrmsg), lambda msg: _address(netns, msg, names), keep=reads
        )
        # one dump for both families and every table
        routes, routes_consistent = rtnl.dump(
            what, RTM_GETROUTE, _message(rtmsg), lambda msg: _route(netns, msg, names), keep=reads
        )
        self._indexes[netns] = {name: index for index, name in names.items()}
        return NetnsDump(
            tuple(replace(link, master=names.get(master)) if master else link for link, master in linked),
            tuple(address for address in addresses if address is not None),
            tuple(routes),
            links_consistent and addresses_consistent and routes_consistent,
        )

    # -- links --------------------------------------------------------------------

    def link_add(
        self,
        netns: str | None,
        name: str,
        kind: str,
        *,
        peer: tuple[str | None, str] | None = None,
        parent: tuple[str | None, str] | None = None,
        parent_in: str = "IFLA_LINK",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Creates a link, down, marked as netlab's. A veth is created with its peer
        already in the peer's namespace; vlan/macvlan/ipvlan beside their parent and
        placed into `netns` by the same request; the parent's index goes in
        `parent_in` (IFLA_LINK, or an IFLA_INFO_DATA attribute: IFLA_VXLAN_LINK).
        `data`: IFLA_INFO_DATA attributes by name (IFLA_VLAN_ID...)."""
        ends = [(netns, name)] + ([peer] if peer is not None else [])
        for end_netns, end_name in ends:
            self._indexes.get(end_netns, {}).pop(end_name, None)
        info_data: list[tuple[str, Any]] = list((data or {}).items())
        if parent is not None and parent_in != "IFLA_LINK":
            info_data.append((parent_in, self._index(*parent)))
        if peer is not None:
            peer_attrs = [("IFLA_IFNAME", peer[1]), ("IFLA_NET_NS_FD", self._netns_fd(peer[0]))]
            info_data.append(("VETH_INFO_PEER", {"attrs": peer_attrs}))
        info: list[tuple[str, Any]] = [("IFLA_INFO_KIND", kind)]
        if info_data:
            info.append(("IFLA_INFO_DATA", {"attrs": info_data}))
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name), ("IFLA_LINKINFO", {"attrs": info})]
        sender = netns
        if parent is not None:
            sender = parent[0]
            if parent_in == "IFLA_LINK":
                attrs.append(("IFLA_LINK", self._index(*parent)))
            if netns != sender:
                attrs.append(("IFLA_NET_NS_FD", self._netns_fd(netns)))
        what = f"create {kind} link {_where(netns, name)}"
        msg = _message(ifinfmsg, attrs=attrs)
        try:
            self._write(what, sender, RTM_NEWLINK, msg, NLM_F_CREATE | NLM_F_EXCL, reaches=[end for end, _ in ends])
        except KernelRefused as error:
            if error.code == errno.EOPNOTSUPP:
                raise KernelRefused(
                    what,
                    error.code,
                    f"the running kernel has no `{kind}` driver (the module is not built or "
                    f"not loaded: try `modprobe {kernel_module(kind)}`), or its driver lacks an option "
                    f"given ({', '.join(sorted(data or {})) or 'none'}): use another type, or leave the option out",
                ) from error
            raise
        for end_netns, end_name in ends:
            self.link_set(end_netns, end_name, ifalias=NETLAB_LINK_ALIAS)

    def link_set(self, netns: str | None, name: str, **attrs: Any) -> None:
        """Sets attributes: mtu, address (MAC), master (a name, or None for no
        master), state ("up"/"down"), ifalias, info_data ((kind, IFLA_INFO_DATA
        attributes by name): those the kind's driver changes in place)."""

        def request() -> None:
            # by index when it is known; else by name, which the kernel resolves
            # itself (no lookup first)
            index = self._indexes.get(netns, {}).get(name)
            msg = _message(ifinfmsg, index=index or 0)
            nlas: list[tuple[str, Any]] = [] if index is not None else [("IFLA_IFNAME", name)]
            for attr, value in attrs.items():
                if attr == "state":
                    msg["flags"] = IFF_UP if value == "up" else 0
                    msg["change"] = IFF_UP
                elif attr == "master":
                    nlas.append(("IFLA_MASTER", 0 if value is None else self._index(netns, value)))
                elif attr == "info_data":
                    kind, data = value
                    info = [("IFLA_INFO_KIND", kind), ("IFLA_INFO_DATA", {"attrs": list(data.items())})]
                    nlas.append(("IFLA_LINKINFO", {"attrs": info}))
                else:
                    nlas.append((LINK_ATTRIBUTES[attr], value))
            msg["attrs"] = nlas
            self._write(f"set {', '.join(attrs)} of link {_where(netns, name)}", netns, RTM_NEWLINK, msg)

        self._with_fresh_indexes(netns, request)

    def link_del(self, netns: str | None, name: str) -> None:
        """Deletes a link; a link already gone (e.g. the other end of a deleted veth)
        counts as deleted."""
        index = self._lookup(netns, name, fresh=True)
        if index is None:
            return
        # a veth's peer goes too, wherever it is, and the links on it; a bridge's
        # ports (beside it) lose their master
        reached = self._reached_by_deleting(netns, [(name, index)])
        try:
            self._write(
                f"delete link {_where(netns, name)}",
                netns,
                RTM_DELLINK,
                _message(ifinfmsg, index=index),
                reaches=reached,
            )
        except KernelRefused as error:
            if error.code != errno.ENODEV:
                raise
        finally:
            self._indexes.get(netns, {}).pop(name, None)

    def links_del(self, netns: str | None, names: Collection[str]) -> None:
        """Deletes links of one namespace, those already gone counting as
        deleted. Two or more go in one request: each is put in an interface
        group no link of the namespace is in, and the group is deleted
        (`ip link del group`). The kernel deletes a link in some 20 ms, most of
        it waiting for readers of the device list to finish (synchronize_net);
        a group's links share one wait: 1000 veths, each a bridge port, went in
        about 1 s, not 25 s (a bridge port's removal still waits once of its own)."""
        if len(names) < 2:
            for name in names:
                self.link_del(netns, name)
            return
        what = f"delete {len(names)} links {_where(netns)}"
        present, _ = self.connection(netns).dump(
            what,
            RTM_GETLINK,
            _message(ifinfmsg, attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]),
            lambda msg: (msg.get_attr("IFLA_IFNAME"), msg["index"], msg.get_attr("IFLA_GROUP") or 0),
        )
        by_name = {name: (index, group) for name, index, group in present}
        targets = [(name, by_name[name][0]) for name in names if name in by_name]
        # a group of no link here now: a link made meanwhile in the very same
        # group of the 2**31 would go too, and nothing else can
        group = _free_group({group for _, _, group in present})
        # what the writes make stale, told once for all of them (as `_write` does)
        reached = self._reached_by_deleting(netns, targets)
        self._wrote(None if reached is None else frozenset({netns, *reached}), True)
        rtnl = self.connection(netns)
        moved: list[tuple[str, int, int]] = []
        try:
            for name, index in targets:
                try:
                    rtnl.request(
                        f"put link {_where(netns, name)} in group {group} to delete it",
                        RTM_NEWLINK,
                        _message(ifinfmsg, index=index, attrs=[("IFLA_GROUP", group)]),
                    )
                except KernelRefused as error:
                    if error.code != errno.ENODEV:  # gone meanwhile: deleted already
                        raise
                    continue
                moved.append((name, index, by_name[name][1]))
            if moved:
                rtnl.request(what, RTM_DELLINK, _message(ifinfmsg, attrs=[("IFLA_GROUP", group)]))
        except BaseException:
            # nothing was deleted (a refusal, or an interrupt between the
            # writes): each link goes back to its group before the error goes on
            for name, index, original in moved:
                with contextlib.suppress(KernelRefused):
                    rtnl.request(
                        f"put link {_where(netns, name)} back in group {original}",
                        RTM_NEWLINK,
                        _message(ifinfmsg, index=index, attrs=[("IFLA_GROUP", original)]),
                    )
            raise
        finally:
            for name in names:
                self._indexes.get(netns, {}).pop(name, None)

    # -- addresses ----------------------------------------------------------------

    def addr_add(self, netns: str | None, interface: str, address: str) -> None:
        """Adds an address. One that is there already, whoever added it, is
        refused (EEXIST), never replaced: replacing would reset its flags and
        lifetimes."""
        self._with_fresh_indexes(
            netns,
            lambda: self._write(
                f"add address {address} to {_where(netns, interface)}",
                netns,
                RTM_NEWADDR,
                _address_message(self._index(netns, interface), address),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
        )

    def addr_del(self, netns: str | None, interface: str, address: str) -> None:
        index = self._lookup(netns, interface, fresh=True)
        if index is None:
            return
        try:
            self._write(
                f"remove address {address} from {_where(netns, interface)}",
                netns,
                RTM_DELADDR,
                _address_message(index, address),
            )
        except KernelRefused as error:
            if error.code != errno.EADDRNOTAVAIL:
                raise

    # -- routes -------------------------------------------------------------------

    def route_add(self, netns: str | None, **route: Unpack[Route]) -> None:
        """Creates a route, marked as netlab's unless `proto` says otherwise
        (putting back a deleted route as it was). A route with its key that is
        there already, whoever made it, is refused (EEXIST), never replaced: one
        that appeared since the plan was made is not netlab's to overwrite."""
        self._route_request(netns, route, NLM_F_CREATE | NLM_F_EXCL)

    def route_replace(self, netns: str | None, **route: Unpack[Route]) -> None:
        """Installs or replaces a route, marked as netlab's unless `proto` says
        otherwise. Only for a route netlab owns and has seen: changing its
        gateway or link in place, or changing them back in an undo."""
        self._route_request(netns, route, NLM_F_CREATE | NLM_F_REPLACE)

    def _route_request(self, netns: str | None, route: Route, flags: int) -> None:
        def request() -> None:
            msg = _route_message(route["to"], route["table"], route["metric"])
            msg["proto"] = route.get("proto", NETLAB_ROUTE_PROTO)
            msg["type"] = RTN_UNICAST
            if route["via"] is not None:
                msg["attrs"].append(("RTA_GATEWAY", route["via"]))
            if route["dev"] is not None:
                msg["attrs"].append(("RTA_OIF", self._index(netns, route["dev"])))
            self._write(f"install route {route['to']} in {_where(netns)}", netns, RTM_NEWROUTE, msg, flags)

        self._with_fresh_indexes(netns, request)

    def route_del(self, netns: str | None, *, to: str, table: int, metric: int) -> None:
        msg = _route_message(to, table, metric)
        msg["scope"] = RT_SCOPE_NOWHERE
        try:
            self._write(f"delete route {to} in {_where(netns)}", netns, RTM_DELROUTE, msg)
        except KernelRefused as error:
            if error.code != errno.ESRCH:
                raise

    # -- helpers ------------------------------------------------------------------

    def _write(
        self, what: str, netns: str | None, msg_type: int, msg: nlmsg, flags: int = 0, reaches: Reached = frozenset()
    ) -> None:
        """Sends a write through the namespace's connection, first telling
        `wrote` that it makes the namespace stale, and those it `reaches` (None:
        unknown, any namespace), whether the kernel then does it or not."""
        self._wrote(None if reaches is None else frozenset({netns, *reaches}), msg_type in (RTM_NEWLINK, RTM_DELLINK))
        self.connection(netns).request(what, msg_type, msg, flags)

    def _netns_fd(self, netns: str | None) -> int | str:
        return self._own_netns_fd if netns is None else namespaces.netns_path(netns)

    def _lookup(self, netns: str | None, name: str, fresh: bool = False) -> int | None:
        """The link's index: remembered, or asked of the kernel (always when
        `fresh`: before a delete, whose target must be the link there now)."""
        known = self._indexes.setdefault(netns, {})
        if not fresh and name in known:
            return known[name]
        ask = _message(ifinfmsg, attrs=[("IFLA_IFNAME", name)])
        try:
            found = self.connection(netns).get(f"find link {_where(netns, name)}", RTM_GETLINK, ask)
        except KernelRefused as error:
            if error.code != errno.ENODEV:
                raise
            known.pop(name, None)
            return None
        index: int = found["index"]
        known[name] = index
        return index

    def _with_fresh_indexes(self, netns: str | None, request: Callable[[], None]) -> None:
        """Sends a request that names links by remembered indexes; if the kernel
        knows no such link (replaced behind netlab's back since it was
        remembered), asks again for the indexes and sends it once more."""
        try:
            request()
        except KernelRefused as error:
            if error.code != errno.ENODEV or not self._indexes.get(netns):
                raise
            self._indexes[netns] = {}
            request()

    def _index(self, netns: str | None, name: str) -> int:
        index = self._lookup(netns, name)
        if index is None:
            raise KernelRefused(f"find link {_where(netns, name)}", errno.ENODEV, "no such link")
        return index


def _free_group(taken: Collection[int]) -> int:
    """An interface group none of `taken`, at random (group 0 is every link's own)."""
    while True:
        group = int.from_bytes(os.urandom(4), "little") % (1 << 31) + 1
        if group not in taken:
            return group


def open_socket() -> socket.socket:
    """An rtnetlink socket in the calling thread's namespace, for an `RtnlSocket`."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


M = TypeVar("M", bound=nlmsg)


def _message(message_class: type[M], *, attrs: list[tuple[str, Any]] | None = None, **fields: Any) -> M:
    """A pyroute2 message of the class, its header fields zero unless given."""
    msg: M = message_class()
    for name, *_ in message_class.fields:
        if not name.startswith("_"):
            msg[name] = fields.pop(name, 0)
    if fields:
        raise TypeError(f"no fields {sorted(fields)} in {message_class.__name__}")
    msg["attrs"] = list(attrs or ())
    return msg


def _address_message(index: int, address: str) -> ifaddrmsg:
    iface = ipaddress.ip_interface(address)
    ip = str(iface.ip)
    # IPv4 names the address twice, as `ip address add` does (the local address,
    # and the peer's, the same when there is none)
    attrs = [("IFA_ADDRESS", ip)] + ([("IFA_LOCAL", ip)] if iface.version == 4 else [])
    family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
    return _message(ifaddrmsg, family=family, prefixlen=iface.network.prefixlen, index=index, attrs=attrs)


def _route_message(to: str, table: int, metric: int) -> rtmsg:
    """A route named as the kernel keys it: destination, table, metric."""
    network = ipaddress.ip_network(to)
    attrs: list[tuple[str, Any]] = [("RTA_TABLE", table), ("RTA_PRIORITY", metric)]
    if network.prefixlen:
        attrs.insert(0, ("RTA_DST", str(network.network_address)))
    return _message(
        rtmsg,
        family=socket.AF_INET6 if network.version == 6 else socket.AF_INET,
        dst_len=network.prefixlen,
        table=table if table < 256 else 0,  # RT_TABLE_UNSPEC: RTA_TABLE says which
        attrs=attrs,
    )


def reads(msg_type: int, data: bytes, offset: int) -> bool:
    """Whether netlab reads a message, from its type and fixed header (after
    the 16-byte netlink header): the one rule of what netlab reads, by which
    the dumps pass over the rest before decoding it and the event listeners
    tell drift from background (a change to nothing read is no drift).
    - links: the link messages themselves, not the per-protocol notices that
      come beside them (AF_INET6 address-configuration state, AF_BRIDGE port
      state: family, then ifindex and flags);
    - addresses: not IPv6 ones of link scope (fe80::/10, which the kernel
      gives every link that comes up: family, prefixlen, flags, scope);
    - routes: unicast, and not the kernel's own (the connected route of each
      address, IPv6's fe80::/64 on every link up: family, dst_len, src_len,
      tos, table, protocol, scope, type). The local table is read like any
      other (a route declared `table: local` must be seen to be verified):
      what the kernel keeps there is of type local or broadcast.
    Any other message is read."""
    family = data[offset + 16]
    if msg_type in (RTM_NEWLINK, RTM_DELLINK):
        return family not in (socket.AF_INET6, AF_BRIDGE)
    if msg_type in (RTM_NEWADDR, RTM_DELADDR):
        return not (family == socket.AF_INET6 and data[offset + 19] == RT_SCOPE_LINK)
    if msg_type in (RTM_NEWROUTE, RTM_DELROUTE):
        return data[offset + 21] != RTPROT_KERNEL and data[offset + 23] == RTN_UNICAST
    return True


def _where(netns: str | None, name: str | None = None) -> str:
    ns = "host" if netns is None else netns
    return ns if name is None else f"{ns}/{name}"


class _Attributes:
    """A decoded message's attributes by name, each value decoded only when asked
    for. pyroute2's `get_attr` scans every attribute at each call (a link has
    some fifty): reading a link's seven that way was most of a dump's cost."""

    __slots__ = ("_slots",)

    def __init__(self, msg: Any) -> None:
        # pyroute2 keeps them as nla_slot(name, lazily decoded value); the first
        # of a name wins, as with get_attr
        self._slots = {slot.cell[0]: slot for slot in reversed(msg["attrs"])}

    def get(self, name: str) -> Any:
        slot = self._slots.get(name)
        return None if slot is None else slot.get_value()


def _link(netns: str | None, msg: Any) -> tuple[ObservedLink, int | None]:
    """The link as the message shows it, and its master's index (the master's
    name is filled in by `dump`)."""
    attrs = _Attributes(msg)
    info = attrs.get("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    data: tuple[tuple[str, Any], ...] = ()
    if kind in OBSERVED_DATA:
        info_data = info.get_attr("IFLA_INFO_DATA")
        if info_data is not None:
            data = tuple((name, info_data.get_attr(name)) for name in OBSERVED_DATA[kind])
    link = ObservedLink(
        netns=netns,
        name=attrs.get("IFLA_IFNAME"),
        index=msg["index"],
        kind=kind,
        state="up" if msg["flags"] & IFF_UP else "down",
        mtu=attrs.get("IFLA_MTU"),
        mac=attrs.get("IFLA_ADDRESS"),
        master=None,
        alias=attrs.get("IFLA_IFALIAS"),
        link_index=dict(data).get(PARENT_DATA[kind]) if kind in PARENT_DATA else attrs.get("IFLA_LINK"),
        link_netnsid=attrs.get("IFLA_LINK_NETNSID"),
        data=data,
    )
    return link, attrs.get("IFLA_MASTER")


def _address(netns: str | None, msg: Any, names: dict[int, str]) -> ObservedAddress | None:
    """None for an address on a link that came after the links were read."""
    if msg["index"] not in names:
        return None
    attrs = _Attributes(msg)
    ip = attrs.get("IFA_LOCAL") or attrs.get("IFA_ADDRESS")
    return ObservedAddress(
        netns=netns,
        interface=names[msg["index"]],
        address=str(ipaddress.ip_interface(f"{ip}/{msg['prefixlen']}")),
        family=6 if msg["family"] == socket.AF_INET6 else 4,
        secondary=bool(msg["flags"] & IFA_F_SECONDARY),
    )


def _route(netns: str | None, msg: Any, names: dict[int, str]) -> ObservedRoute:
    attrs = _Attributes(msg)
    table = attrs.get("RTA_TABLE") or msg["table"]
    family = 6 if msg["family"] == socket.AF_INET6 else 4
    dst = attrs.get("RTA_DST") or ("::" if family == 6 else "0.0.0.0")
    oif = attrs.get("RTA_OIF")
    return ObservedRoute(
        netns=netns,
        table=table,
        to=str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)),
        metric=attrs.get("RTA_PRIORITY") or 0,
        via=attrs.get("RTA_GATEWAY"),
        dev=names.get(oif) if oif else None,
        proto=msg["proto"],
        family=family,
    )
