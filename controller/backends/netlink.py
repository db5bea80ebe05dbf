"""The netlink backend: the only module that talks rtnetlink, through pyroute2.

It keeps one rtnetlink socket per namespace (`rtnl.RtnlSocket`: pyroute2's
messages on a plain socket) for the whole pass, dumps a namespace's links,
addresses and routes once, and turns pyroute2 messages into the plain
`Observed*` records the kinds compare. Called by the kinds.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

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

from netlab.controller.backends import namespaces
from netlab.controller.backends.rtnl import Refused, RtnlSocket, decode_as, narrowed
from netlab.state.errors import KernelRefused
from netlab.state.link_types import OBSERVED_DATA, kernel_module

# Routes netlab installs carry this protocol number (`ip route` shows `proto 213`):
# the kernel keeps it, so netlab recognises its routes even without its ledger.
NETLAB_ROUTE_PROTO = 213
# Links netlab creates carry this ifalias (`ip link` shows `alias netlab`).
NETLAB_LINK_ALIAS = "netlab"

T = TypeVar("T")

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
    },
)
decode_as(LinkMessage, RTM_NEWLINK, RTM_DELLINK)


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
    scope: int
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
    type: int

    @property
    def marked(self) -> bool:
        return self.proto == NETLAB_ROUTE_PROTO


@dataclass(frozen=True, slots=True)
class NetnsDump:
    links: tuple[ObservedLink, ...]
    addresses: tuple[ObservedAddress, ...]
    # unicast and not the kernel's own (proto kernel), in any table (the local
    # table's own routes are of type local or broadcast): the routes anyone
    # installed, which are all netlab ever reads
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
    asking the kernel first, and which namespaces its writes touched, so that
    only those are read again."""

    def __init__(self) -> None:
        self._connections: dict[str | None, RtnlSocket] = {}
        self._indexes: dict[str | None, dict[str, int]] = {}
        # Namespaces written to since `take_touched`; None in the set is the host.
        # A write whose effects reach unknown namespaces (deleting a veth takes
        # its peer along) touches everything.
        self._touched: set[str | None] = set()
        self._touched_everything = False
        # The other namespaces a link's deletion changes (a veth's peer, the
        # links on a parent), or None when that is not known: given by whoever
        # holds what was read (the kernel facade); without one, everything.
        self.reached_by_deleting: Callable[[str | None, str, int], set[str | None] | None] = lambda netns, name, index: None
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

    def take_touched(self) -> set[str | None] | None:
        """The namespaces written to since the last call (None: possibly every
        namespace), and starts afresh."""
        touched = None if self._touched_everything else set(self._touched)
        self._touched.clear()
        self._touched_everything = False
        return touched

    def touch_everything(self) -> None:
        self._touched_everything = True

    # -- observing ----------------------------------------------------------------

    def dump(self, netns: str | None) -> NetnsDump:
        """Links, addresses and routes, each message turned into its record as it
        arrives: the host's dump of a thousand veths held all at once as pyroute2
        messages would cost some 30 MB. Routes netlab never reads (those not
        unicast, and the kernel's own: it keeps several per address) and IPv6 link-local addresses (one per link that is up, made by
        the kernel) are passed over before they are decoded, and of a link only
        the attributes read are decoded (`LinkMessage`)."""
        rtnl = self.connection(netns)
        try:
            # with its master's index: a master's name is known once every link is
            linked, links_consistent = rtnl.dump(
                RTM_GETLINK,
                _message(ifinfmsg, attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]),
                functools.partial(_link, netns),
            )
            names = {link.index: link.name for link, _ in linked}
            addresses, addresses_consistent = rtnl.dump(
                RTM_GETADDR, _message(ifaddrmsg), lambda msg: _address(netns, msg, names), keep=_read_address
            )
            # one dump for both families and every table
            routes, routes_consistent = rtnl.dump(
                RTM_GETROUTE, _message(rtmsg), lambda msg: _route(netns, msg, names), keep=_read_route
            )
        except Refused as error:
            raise KernelRefused(f"read {_where(netns)}", error.code, os.strerror(error.code), error.kernel_message) from error
        self._indexes[netns] = {name: index for index, name in names.items()}  # as `remember` does
        return NetnsDump(
            tuple(replace(link, master=names.get(master)) if master else link for link, master in linked),
            tuple(address for address in addresses if address is not None),
            tuple(route for route in routes if route is not None),
            links_consistent and addresses_consistent and routes_consistent,
        )

    def remember(self, netns: str | None, dump: NetnsDump) -> None:
        """Takes the link indexes of a dump read by another process (`Kernel.read_ahead`)."""
        self._indexes[netns] = {link.name: link.index for link in dump.links}

    # -- links --------------------------------------------------------------------

    def link_add(
        self,
        netns: str | None,
        name: str,
        kind: str,
        *,
        peer: tuple[str | None, str] | None = None,
        parent: tuple[str | None, str] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Creates a link, down, marked as netlab's. A veth is created with its peer
        already in the peer's namespace; vlan/macvlan/ipvlan beside their parent and
        placed into `netns` by the same request. `data`: IFLA_INFO_DATA attributes
        by name (IFLA_VLAN_ID...)."""
        rtnl = self.connection(netns)
        self._touched.add(netns)
        self._indexes.get(netns, {}).pop(name, None)
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)]
        info_data: list[tuple[str, Any]] = list((data or {}).items())
        if peer is not None:
            peer_netns, peer_name = peer
            self._touched.add(peer_netns)
            self._indexes.get(peer_netns, {}).pop(peer_name, None)
            peer_attrs = [("IFLA_IFNAME", peer_name), ("IFLA_NET_NS_FD", self._netns_fd(peer_netns))]
            info_data.append(("VETH_INFO_PEER", {"attrs": peer_attrs}))
        if parent is not None:
            parent_netns, parent_name = parent
            self._touched.add(parent_netns)
            rtnl = self.connection(parent_netns)
            attrs.append(("IFLA_LINK", self._index(parent_netns, parent_name)))
            if netns != parent_netns:
                attrs.append(("IFLA_NET_NS_FD", self._netns_fd(netns)))
        info: list[tuple[str, Any]] = [("IFLA_INFO_KIND", kind)]
        if info_data:
            info.append(("IFLA_INFO_DATA", {"attrs": info_data}))
        attrs.append(("IFLA_LINKINFO", {"attrs": info}))
        what = f"create {kind} link {_where(netns, name)}"
        try:
            _call(what, rtnl.request, RTM_NEWLINK, _message(ifinfmsg, attrs=attrs), NLM_F_CREATE | NLM_F_EXCL)
        except KernelRefused as error:
            if error.code == errno.EOPNOTSUPP:
                raise KernelRefused(
                    what,
                    error.code,
                    f"the running kernel has no `{kind}` driver (the module is not built or "
                    f"not loaded: try `modprobe {kernel_module(kind)}`), or use another type",
                ) from error
            raise
        self.link_set(netns, name, ifalias=NETLAB_LINK_ALIAS)
        if peer is not None:
            self.link_set(peer[0], peer[1], ifalias=NETLAB_LINK_ALIAS)

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
            _call(f"set {', '.join(attrs)} of link {_where(netns, name)}", self.connection(netns).request, RTM_NEWLINK, msg)

        self._touched.add(netns)
        self._with_fresh_indexes(netns, request)

    def link_del(self, netns: str | None, name: str) -> None:
        """Deletes a link; a link already gone (e.g. the other end of a deleted veth)
        counts as deleted."""
        index = self._lookup(netns, name, fresh=True)
        if index is None:
            return
        # a veth's peer goes too, wherever it is, and the links on it; a bridge's
        # ports (beside it) lose their master
        reached = self.reached_by_deleting(netns, name, index)
        if reached is None:
            self.touch_everything()
        else:
            self._touched |= {netns, *reached}
        try:
            _call(f"delete link {_where(netns, name)}", self.connection(netns).request, RTM_DELLINK, _message(ifinfmsg, index=index))
        except KernelRefused as error:
            if error.code != errno.ENODEV:
                raise
        finally:
            self._indexes.get(netns, {}).pop(name, None)

    # -- addresses ----------------------------------------------------------------

    def addr_add(self, netns: str | None, interface: str, address: str) -> None:
        """Adds an address. One that is there already, whoever added it, is
        refused (EEXIST), never replaced: replacing would reset its flags and
        lifetimes."""
        self._touched.add(netns)
        self._with_fresh_indexes(
            netns,
            lambda: _call(
                f"add address {address} to {_where(netns, interface)}",
                self.connection(netns).request,
                RTM_NEWADDR,
                _address_message(self._index(netns, interface), address),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
        )

    def addr_del(self, netns: str | None, interface: str, address: str) -> None:
        index = self._lookup(netns, interface, fresh=True)
        if index is None:
            return
        self._touched.add(netns)
        try:
            _call(
                f"remove address {address} from {_where(netns, interface)}",
                self.connection(netns).request,
                RTM_DELADDR,
                _address_message(index, address),
            )
        except KernelRefused as error:
            if error.code != errno.EADDRNOTAVAIL:
                raise

    # -- routes -------------------------------------------------------------------

    def route_add(
        self,
        netns: str | None,
        *,
        to: str,
        table: int,
        metric: int,
        via: str | None,
        dev: str | None,
        proto: int = NETLAB_ROUTE_PROTO,
    ) -> None:
        """Creates a route, marked as netlab's unless `proto` says otherwise
        (putting back a deleted route as it was). A route with its key that is
        there already, whoever made it, is refused (EEXIST), never replaced: one
        that appeared since the plan was made is not netlab's to overwrite."""
        self._route_request(netns, to, table, metric, via, dev, proto, NLM_F_CREATE | NLM_F_EXCL)

    def route_replace(
        self,
        netns: str | None,
        *,
        to: str,
        table: int,
        metric: int,
        via: str | None,
        dev: str | None,
        proto: int = NETLAB_ROUTE_PROTO,
    ) -> None:
        """Installs or replaces a route, marked as netlab's unless `proto` says
        otherwise. Only for a route netlab owns and has seen: changing its
        gateway or link in place, or changing them back in an undo."""
        self._route_request(netns, to, table, metric, via, dev, proto, NLM_F_CREATE | NLM_F_REPLACE)

    def _route_request(
        self, netns: str | None, to: str, table: int, metric: int, via: str | None, dev: str | None, proto: int, flags: int
    ) -> None:
        def request() -> None:
            msg = _route_message(to, table, metric)
            msg["proto"] = proto
            msg["type"] = RTN_UNICAST
            if via is not None:
                msg["attrs"].append(("RTA_GATEWAY", via))
            if dev is not None:
                msg["attrs"].append(("RTA_OIF", self._index(netns, dev)))
            _call(f"install route {to} in {_where(netns)}", self.connection(netns).request, RTM_NEWROUTE, msg, flags)

        self._touched.add(netns)
        self._with_fresh_indexes(netns, request)

    def route_del(self, netns: str | None, *, to: str, table: int, metric: int) -> None:
        msg = _route_message(to, table, metric)
        msg["scope"] = RT_SCOPE_NOWHERE
        self._touched.add(netns)
        try:
            _call(f"delete route {to} in {_where(netns)}", self.connection(netns).request, RTM_DELROUTE, msg)
        except KernelRefused as error:
            if error.code != errno.ESRCH:
                raise

    # -- helpers ------------------------------------------------------------------

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
            found = _call(f"find link {_where(netns, name)}", self.connection(netns).get, RTM_GETLINK, ask)
        except KernelRefused as error:
            if error.code != errno.ENODEV:
                raise
            known.pop(name, None)
            return None
        known[name] = found["index"]
        return found["index"]

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


def open_socket() -> socket.socket:
    """An rtnetlink socket in the calling thread's namespace, for an `RtnlSocket`."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


def _call(what: str, method: Callable[..., T], *args: Any) -> T:
    try:
        return method(*args)
    except Refused as error:
        raise KernelRefused(what, error.code, os.strerror(error.code), error.kernel_message) from error


M = TypeVar("M", bound=nlmsg)


def _message(message_class: type[M], *, attrs: list[tuple[str, Any]] | None = None, **fields: Any) -> M:
    """A pyroute2 message of the class, its header fields zero unless given."""
    msg = message_class()
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


def _read_address(data: bytes, offset: int) -> bool:
    """Whether an address message is one netlab reads, from its fixed header
    (family, prefixlen, flags, scope, index): not an IPv6 address of link scope
    (fe80::/10, which the kernel gives every link that comes up)."""
    return not (data[offset + 16] == socket.AF_INET6 and data[offset + 19] == RT_SCOPE_LINK)


def _read_route(data: bytes, offset: int) -> bool:
    """Whether a route message is one netlab reads, from its fixed header alone
    (after the 16-byte netlink header: family, dst_len, src_len, tos, table,
    protocol, scope, type): not the kernel's own (the connected route of each
    address, IPv6's fe80::/64 on every link up), and unicast. The local table
    is read like any other (a route declared `table: local` must be seen to be
    verified): what the kernel keeps there is of type local or broadcast."""
    return data[offset + 21] != RTPROT_KERNEL and data[offset + 23] == RTN_UNICAST


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
        link_index=attrs.get("IFLA_LINK"),
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
        scope=msg["scope"],
        secondary=bool(msg["flags"] & IFA_F_SECONDARY),
    )


def _route(netns: str | None, msg: Any, names: dict[int, str]) -> ObservedRoute | None:
    attrs = _Attributes(msg)
    table = attrs.get("RTA_TABLE") or msg["table"]
    if msg["type"] != RTN_UNICAST:
        return None
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
        type=msg["type"],
    )
