"""The desired-state model: frozen dataclasses built by `state.loading` from the
files of one generation. Everything downstream (kinds, planning, applying) reads
these; nothing here knows about the kernel.

A namespace of `None` everywhere means the host's own network namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is not imported on the way to `netlab validate`
if TYPE_CHECKING:
    from typing import Any, Literal, TypeAlias, TypeVar

    LinkState: TypeAlias = Literal["up", "down"]
    CheckKind: TypeAlias = Literal["ping", "tcp", "resolve"]
    T = TypeVar("T")

MAIN_TABLE = 254


@dataclass(frozen=True, order=True)
class Origin:
    """Where a desired object was declared: file path, 1-based line and column."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def netns_label(netns: str | None) -> str:
    """How a namespace is written in messages and ledger keys: its name, or `host`."""
    return "host" if netns is None else netns


@dataclass(frozen=True)
class Namespace:
    name: str
    origin: Origin = field(compare=False)

    @property
    def key(self) -> tuple[str]:
        return (self.name,)


@dataclass(frozen=True)
class Link:
    """One end of a link. A veth declares two: the `veth` end and its `veth-peer`.

    Attributes left as None were not declared and are not managed, except that a
    link netlab creates is brought `up` unless told otherwise (`state` is filled in
    by the loader for every type but `device`) and has no master unless declared.
    """

    netns: str | None
    name: str
    type: str  # a name of `link_types.LINK_TYPES`
    origin: Origin = field(compare=False)
    state: LinkState | None = None
    mtu: int | None = None
    mac: str | None = None
    master: str | None = None
    # veth and veth-peer: where the other end lives, (netns, name)
    peer_netns: str | None = None
    peer_name: str | None = None
    # vlan, macvlan, ipvlan, vxlan...: the link it sits on, in the host namespace
    parent: str | None = None
    # the attributes of its type (`link_types`) that the file declares, by file
    # key, normalised: (("id", 10), ("protocol", "802.1ad"))
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.netns, self.name)

    def option(self, key: str) -> Any:
        return next((value for name, value in self.options if name == key), None)

    @property
    def created_by_netlab(self) -> bool:
        return self.type != "device"


@dataclass(frozen=True)
class Address:
    """An address with its prefix length on one link, normalised (`10.0.0.2/24`,
    `2001:db8::1/64`: what `ipaddress.ip_interface` prints)."""

    netns: str | None
    interface: str
    address: str
    origin: Origin = field(compare=False)

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.netns, self.interface, self.address)

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4


@dataclass(frozen=True)
class Route:
    """A route. `to` is a normalised network (`0.0.0.0/0` for an IPv4 `default`,
    `::/0` for IPv6); `metric` is filled in with the kernel's default when not
    declared (0 for IPv4, 1024 for IPv6) so that the key matches what the kernel
    reports."""

    netns: str | None
    to: str
    table: int
    metric: int
    origin: Origin = field(compare=False)
    via: str | None = None
    dev: str | None = None
    # the VRF the file named instead of a table: `table` is that VRF's, once the
    # files are merged (cross_checking.in_vrf_tables), and 0 until then
    vrf: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str | None, int, str, int]:
        return (self.netns, self.table, self.to, self.metric)

    @property
    def family(self) -> int:
        return 6 if ":" in self.to else 4


@dataclass(frozen=True)
class Sysctl:
    """A `net.*` sysctl, key in dotted form, value as the kernel prints it."""

    netns: str | None
    key: str
    value: str
    origin: Origin = field(compare=False)

    @property
    def ident(self) -> tuple[str | None, str]:
        return (self.netns, self.key)


@dataclass(frozen=True)
class NatRule:
    """One NAT rule. Its identity is the whole rule within its namespace."""

    netns: str | None
    type: Literal["masquerade", "snat", "dnat"]
    origin: Origin = field(compare=False)
    source: str | None = None
    destination: str | None = None
    out_interface: str | None = None
    in_interface: str | None = None
    to_source: str | None = None
    protocol: str | None = None
    port: str | None = None  # "80" or "8000-8080"
    to: str | None = None  # dnat: "addr" or "addr:port"

    @property
    def key(self) -> tuple[object, ...]:
        return (
            self.netns,
            self.type,
            self.source,
            self.destination,
            self.out_interface,
            self.in_interface,
            self.to_source,
            self.protocol,
            self.port,
            self.to,
        )


@dataclass(frozen=True)
class Dns:
    """resolv.conf content for one namespace (host: /etc/resolv.conf)."""

    netns: str | None
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]
    origin: Origin = field(compare=False)

    @property
    def key(self) -> tuple[str | None]:
        return (self.netns,)


@dataclass(frozen=True)
class HostsEntry:
    netns: str | None
    address: str
    names: tuple[str, ...]
    origin: Origin = field(compare=False)

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.netns, self.address)


@dataclass(frozen=True)
class Check:
    """A connectivity check: from a namespace (None: the host), a ping of an
    address, a TCP connect to `addr:port`, or a name resolved as `ip netns
    exec` resolves it (and, given `address`, to that address). `expect`
    "unreachable" passes when nothing answers (the name does not resolve)."""

    netns: str | None
    kind: CheckKind
    target: str
    origin: Origin = field(compare=False)
    expect: Literal["reachable", "unreachable"] = "reachable"
    address: str | None = None
    timeout: float = 1.0

    @property
    def key(self) -> tuple[object, ...]:
        return (self.netns, self.kind, self.target, self.address, self.expect)

    def __str__(self) -> str:
        what = f"{netns_label(self.netns)} {self.kind} {self.target}"
        if self.address is not None:
            what += f" = {self.address}"
        return what + (" unreachable" if self.expect == "unreachable" else "")


@dataclass(frozen=True)
class DesiredState:
    """All objects of one generation, merged from every file that matched this host."""

    namespaces: tuple[Namespace, ...] = ()
    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    nat: tuple[NatRule, ...] = ()
    dns: tuple[Dns, ...] = ()
    hosts: tuple[HostsEntry, ...] = ()
    checks: tuple[Check, ...] = ()
    files: tuple[str, ...] = ()

    @property
    def namespace_names(self) -> frozenset[str]:
        return frozenset(ns.name for ns in self.namespaces)

    def within(self, scope: frozenset[str | None]) -> DesiredState:
        """Only the objects that live in these namespaces (None: the host)."""

        def kept(objects: tuple[T, ...]) -> tuple[T, ...]:
            return tuple(obj for obj in objects if obj.netns in scope)  # type: ignore[attr-defined]

        return DesiredState(
            namespaces=tuple(ns for ns in self.namespaces if ns.name in scope),
            links=kept(self.links),
            addresses=kept(self.addresses),
            routes=kept(self.routes),
            sysctls=kept(self.sysctls),
            nat=kept(self.nat),
            dns=kept(self.dns),
            hosts=kept(self.hosts),
            checks=self.checks,
            files=self.files,
        )
