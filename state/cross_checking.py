"""Checks across all objects of one generation: conflicts (a key declared twice, in
one file or two), addresses assigned twice, references (namespaces, masters, route
devices) and gateways a namespace cannot reach. Used by `state.loading`.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from netlab.state.building import LINK_LOCAL_V6, Contribution, Declared
from netlab.state.errors import Problem
from netlab.state.link_types import LINK_TYPES, master_types
from netlab.state.model import Address, Link, Route, netns_label

T = TypeVar("T")


def cross_check(contributions: list[Contribution], complete: bool) -> list[Problem]:
    """All problems between the objects of the contributions (the files that apply
    to this host). `complete` is False when some file could not be read at all:
    then what it declared is unknown, and reference checks would only add noise."""
    index = _Index.of(contributions)
    problems = _conflicts(contributions)
    problems += _duplicate_addresses(index.addresses)
    problems += _one_value_per_parent(index)
    if complete:
        problems += _references(contributions, index)
        problems += _gateways(index)
    return problems


def in_vrf_tables(contributions: list[Contribution], complete: bool) -> tuple[list[Contribution], list[Problem]]:
    """The contributions with each route that names a `vrf` put in that VRF's
    table (a file may name a VRF another file declares), and the problems of
    those whose VRF is not declared in their namespace. Runs before `cross_check`,
    which then sees every route at its real identity; a route whose VRF is not
    found is left out (its problem, or its VRF's, is reported already). The
    contributions given are not changed (they are cached per file)."""
    if not any(item.obj.vrf for c in contributions for item in c.routes):
        return contributions, []
    index = _Index.of(contributions)
    problems: list[Problem] = []
    resolved = []
    for c in contributions:
        if not any(item.obj.vrf for item in c.routes):
            resolved.append(c)
            continue
        routes = []
        for item in c.routes:
            if item.obj.vrf is None:
                routes.append(item)
                continue
            table, problem = _vrf_table(item, index, complete)
            problems += [problem] if problem is not None else []
            if table is not None:
                routes.append(replace(item, obj=replace(item.obj, table=table)))
        resolved.append(replace(c, routes=routes))
    return resolved, problems


def _vrf_table(item: Declared[Route], index: _Index, complete: bool) -> tuple[int | None, Problem | None]:
    """The table of the VRF a route names, or why there is none (None when that
    is said elsewhere: a VRF or namespace that failed the schema or is not declared,
    or a file that could not be read, which may declare it)."""
    route = item.obj
    assert route.vrf is not None
    declared = index.links.get((route.netns, route.vrf))
    link = declared.obj if declared is not None else None
    if link is not None and link.type == "vrf":
        return int(link.option("table")), None
    where = _label(route.netns)
    if link is not None:
        said = f"{route.vrf!r} is {_a_type(link.type)} link, not a vrf: name a vrf of {where}, or write `table: N`"
        return None, item.problem(said, "vrf")
    unknown_netns = route.netns is not None and route.netns not in index.namespaces
    if not complete or unknown_netns or (route.netns, route.vrf) in index.guessed_links:
        return None, None
    elsewhere = [ns for (ns, name), other in index.links.items() if name == route.vrf and other.obj.type == "vrf"]
    if elsewhere:
        fix = "leave the route's `netns` out" if elsewhere[0] is None else f"give the route `netns: {elsewhere[0]}`"
        hint = f": a vrf {route.vrf!r} is declared in {_label(elsewhere[0])}: {fix}"
    else:
        vrfs = [name for (ns, name), other in index.links.items() if ns == route.netns and other.obj.type == "vrf"]
        hint = (
            f"{_did_you_mean(route.vrf, vrfs)}: declare {{name: {route.vrf}, type: vrf, table: N}} there, "
            "or write `table: N`"
        )
    return None, item.problem(f"vrf {route.vrf!r} is not declared in {where}{hint}", "vrf")


@dataclass
class _Index:
    links: dict[tuple[str | None, str], Declared[Link]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    guessed_links: set[tuple[str | None, str]] = field(default_factory=set)
    uncertain_netns: set[str | None] = field(default_factory=set)
    addresses: list[Declared[Address]] = field(default_factory=list)
    routes: list[Declared[Route]] = field(default_factory=list)
    # by namespace, so that checking one route does not scan every namespace's
    addresses_in: dict[str | None, list[Declared[Address]]] = field(default_factory=dict)
    # routes without gateway (`dev` only), which make their network reachable
    link_routes_in: dict[str | None, list[Declared[Route]]] = field(default_factory=dict)

    @classmethod
    def of(cls, contributions: list[Contribution]) -> _Index:
        index = cls()
        for c in contributions:
            for link in c.links:
                index.links.setdefault(link.obj.key, link)
            index.namespaces |= {ns.obj.name for ns in c.namespaces} | c.guessed_namespaces
            index.guessed_links |= c.guessed_links
            index.uncertain_netns |= c.uncertain_netns
            index.addresses += c.addresses
            index.routes += c.routes
        for address in index.addresses:
            index.addresses_in.setdefault(address.obj.netns, []).append(address)
        for route in index.routes:
            if route.obj.via is None and route.obj.dev is not None:
                index.link_routes_in.setdefault(route.obj.netns, []).append(route)
        return index

    def link_names(self, netns: str | None) -> list[str]:
        return sorted(name for (ns, name) in self.links if ns == netns)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- conflicts ---------------------------------------------------------------------


def _first_wins(
    items: Iterable[Declared[T]],
    key: Callable[[T], Hashable],
    describe: Callable[[T], str],
    as_what: Callable[[T], str],
) -> list[Problem]:
    """A problem at every declaration whose key was declared before, naming the
    first place (and, through `as_what`, what was declared there)."""
    seen: dict[Hashable, Declared[T]] = {}
    problems = []
    for item in items:
        first = seen.setdefault(key(item.obj), item)
        if first is not item:
            message = (
                f"{describe(item.obj)} is already declared at {first.place}{as_what(first.obj)}: "
                "declare it once (all files of the directory are merged into one state)"
            )
            problems.append(item.problem(message))
    return problems


def _describe_link(link: Link) -> str:
    where = netns_label(link.netns)
    if link.type == "veth-peer":
        return f"interface {link.name!r} in namespace {where}, the peer of veth {link.peer_name!r},"
    return f"interface {link.name!r} in namespace {where}"


def _link_as_what(link: Link) -> str:
    if link.type == "veth-peer":
        return f" (as the peer of veth {link.peer_name!r})"
    return f" (as a {link.type})"


def _label(netns: str | None) -> str:
    return f"namespace {netns_label(netns)}"


def _nothing_more(_: object) -> str:
    return ""


# How an object declared twice is named, by bucket of a contribution: its key, its
# words, and what is said of the first declaration (a link's type).
_NAMED_ONCE: tuple[tuple[str, Callable[[Any], Hashable], Callable[[Any], str], Callable[[Any], str]], ...] = (
    ("namespaces", lambda ns: ns.key, lambda ns: f"namespace {ns.name!r}", _nothing_more),
    ("links", lambda link: link.key, _describe_link, _link_as_what),
    ("routes", lambda r: r.key, lambda r: f"the route to {r.to} (table {r.table}, metric {r.metric}) in {_label(r.netns)}", _nothing_more),
    ("sysctls", lambda s: s.ident, lambda s: f"sysctl {s.key} in {_label(s.netns)}", _nothing_more),
    ("nat", lambda rule: rule.key, lambda rule: f"this {rule.type} rule in {_label(rule.netns)}", _nothing_more),
    ("hosts", lambda e: e.key, lambda e: f"the hosts entry for {e.address} in {_label(e.netns)}", _nothing_more),
    ("checks", lambda check: check.key, lambda check: f"the check {check}", _nothing_more),
    ("dns", lambda record: record.key, lambda record: f"dns for {_label(record.netns)}", _nothing_more),
)  # fmt: skip


def _conflicts(contributions: list[Contribution]) -> list[Problem]:
    """A problem at each object declared a second time, bucket by bucket."""
    problems: list[Problem] = []
    for bucket, key, words, as_what in _NAMED_ONCE:
        problems += _first_wins((item for c in contributions for item in getattr(c, bucket)), key, words, as_what)
    return problems


def _duplicate_addresses(addresses: list[Declared[Address]]) -> list[Problem]:
    seen: dict[tuple[str | None, Any], Declared[Address]] = {}
    problems = []
    for item in addresses:
        ip = _interface(item.obj.address).ip
        first = seen.setdefault((item.obj.netns, ip), item)
        if first is item:
            continue
        problems.append(
            item.doc.problem(
                item.path,
                f"address {ip} is already assigned in namespace {netns_label(item.obj.netns)} at "
                f"{first.place} ({first.obj.address} on {first.obj.interface}): "
                "an address can be assigned only once per namespace",
            )
        )
    return problems


def _one_value_per_parent(index: _Index) -> list[Problem]:
    """Links on one parent that declare different values of an attribute the
    kernel keeps per parent (an ipvlan's mode): the last one set would win."""
    first: dict[tuple[str, str | None], tuple[Declared[Link], Any]] = {}
    problems = []
    for item in index.links.values():
        link = item.obj
        for attribute in LINK_TYPES[link.type].attributes if link.parent is not None else ():
            if not attribute.per_parent:
                continue
            value = attribute.declared(link)
            other, its = first.setdefault((attribute.kernel, link.parent), (item, value))
            if its != value:
                problems.append(
                    item.problem(
                        f"{link.type} {link.name!r} has {attribute.key} {value}, but {other.obj.type} "
                        f"{other.obj.name!r} on the same parent {link.parent} has "
                        f"{its}{'' if attribute.is_declared(other.obj) else ' (the default)'} ({other.place}): "
                        f"the kernel keeps one {attribute.key} for all of them: give them the same {attribute.key}",
                        attribute.key,
                    )
                )
    return problems


# -- references --------------------------------------------------------------------


def _references(contributions: list[Contribution], index: _Index) -> list[Problem]:
    problems: list[Problem] = []
    for c in contributions:
        for link in c.links:
            problems += _netns_declared(link, link.obj.netns, index)
            problems += _master_holds_ports(link, index)
        for route in c.routes:
            problems += _netns_declared(route, route.obj.netns, index)
            problems += _route_dev_declared(route, index)
        for rule in c.nat:
            problems += _netns_declared(rule, rule.obj.netns, index)
        for check in c.checks:
            problems += _netns_declared(check, check.obj.netns, index, "from")
    return problems


def _netns_declared(item: Declared[Any], netns: str | None, index: _Index, key: str = "netns") -> list[Problem]:
    if netns is None or netns in index.namespaces:
        return []
    hint = _did_you_mean(netns, index.namespaces)
    message = (
        f"namespace {netns!r} is not declared{hint}: add `- name: {netns}` under `namespaces:` "
        "(in any file), or fix the name"
    )
    return [item.problem(message, key)]


def _master_holds_ports(item: Declared[Link], index: _Index) -> list[Problem]:
    """A master is declared beside the link, and is of a type that takes ports
    (`link_types`: bridge, bond, vrf, or a device)."""
    link = item.obj
    if link.master is None or link.master == link.name:
        return []
    master = index.links.get((link.netns, link.master))
    where = netns_label(link.netns)
    kinds = ", ".join(master_types())
    if master is None:
        if (link.netns, link.master) in index.guessed_links:
            return []
        hint = _did_you_mean(link.master, index.link_names(link.netns))
        return [
            item.problem(
                f"master {link.master!r} is not declared in namespace {where}{hint}: declare it there "
                f"({kinds}), or `type: device` for one that exists already",
                "master",
            )
        ]
    if link.type == "bridge" and master.obj.type == "bridge":
        return [
            item.problem(
                "a bridge cannot be a port of another bridge (the kernel refuses it): "
                "remove `master`, or connect the bridges with a veth pair",
                "master",
            )
        ]
    if LINK_TYPES[master.obj.type].holds_ports:
        return []
    return [
        item.problem(
            f"master {link.master!r} is {_a_type(master.obj.type)} (declared at {master.place}), which takes "
            f"no ports: a link's master is one of {kinds}",
            "master",
        )
    ]


def _a_type(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _route_dev_declared(item: Declared[Route], index: _Index) -> list[Problem]:
    route = item.obj
    # In the host, an undeclared dev may be a device that exists already (eth0):
    # planning checks it against the kernel.
    if route.dev is None or route.netns is None or route.dev == "lo":
        return []
    if (route.netns, route.dev) in index.links or (route.netns, route.dev) in index.guessed_links:
        return []
    if route.netns not in index.namespaces:
        return []  # reported as an undeclared namespace already
    hint = _did_you_mean(route.dev, index.link_names(route.netns))
    return [
        item.problem(
            f"dev {route.dev!r} is not an interface declared in namespace {route.netns}{hint}: "
            "declare it there, or fix the name",
            "dev",
        )
    ]


# -- gateways ----------------------------------------------------------------------


def _gateways(index: _Index) -> list[Problem]:
    problems = []
    for item in index.routes:
        route = item.obj
        # the host's own addresses include ones netlab does not declare: planning
        # checks host gateways against the kernel
        if route.netns is None or route.via is None:
            continue
        if "*" in index.uncertain_netns or route.netns in index.uncertain_netns:
            continue
        problem = _gateway_problem(item, index)
        if problem is not None:
            problems.append(problem)
    return problems


def _gateway_problem(item: Declared[Route], index: _Index) -> Problem | None:
    route = item.obj
    gateway = _address(route.via or "")
    if gateway.version == 6 and gateway in LINK_LOCAL_V6 and route.dev is not None:
        return None
    in_netns = index.addresses_in.get(route.netns, [])
    on_link = [
        address
        for address in in_netns
        if (route.dev is None or address.obj.interface == route.dev)
        and _is_up(index, route.netns, address.obj.interface)
    ]
    for address in on_link:
        if _interface(address.obj.address).ip == gateway:
            return item.problem(
                f"gateway {gateway} is an address of namespace {route.netns} itself "
                f"({address.obj.address} on {address.obj.interface}): the kernel would refuse the "
                'route ("Nexthop has invalid gateway"); name the neighbour\'s address in `via`',
                "via",
            )
    if any(gateway in _interface(a.obj.address).network for a in on_link):
        return None
    if any(_link_route_covers(other.obj, route, gateway) for other in index.link_routes_in.get(route.netns, [])):
        return None
    down = [
        a
        for a in in_netns
        if (route.dev is None or a.obj.interface == route.dev)
        and not _is_up(index, route.netns, a.obj.interface)
        and gateway in _interface(a.obj.address).network
    ]
    if down:
        return item.problem(
            f"gateway {gateway} is reached only through {down[0].obj.interface} "
            f"({down[0].obj.address}), which is declared `state: down`: the kernel would refuse the "
            'route ("Nexthop has invalid gateway"); bring the link up, or route through another',
            "via",
        )
    through = f" on {route.dev}" if route.dev else ""
    present = ", ".join(f"{a.obj.address} on {a.obj.interface}" for a in on_link) or "none"
    return item.problem(
        f"gateway {gateway} is not inside the prefix of any address on an up interface{through} in "
        f"namespace {route.netns} (addresses there: {present}): the kernel would refuse the route "
        '("Nexthop has invalid gateway"); add an address in the gateway\'s subnet to that '
        "namespace's interface, or fix `via`",
        "via",
    )


@functools.lru_cache(maxsize=65_536)
def _interface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An address as written in the model (valid by then); the same few thousand
    are parsed on every load, and the objects are immutable."""
    return ipaddress.ip_interface(text)


_address = functools.lru_cache(maxsize=65_536)(ipaddress.ip_address)
_network = functools.lru_cache(maxsize=65_536)(ipaddress.ip_network)


def _is_up(index: _Index, netns: str | None, interface: str) -> bool:
    link = index.links.get((netns, interface))
    return link is None or link.obj.state != "down"


def _link_route_covers(other: Route, route: Route, gateway: Any) -> bool:
    """A route without gateway (`dev` only) makes its network directly reachable."""
    if other.netns != route.netns or other.via is not None or other.dev is None:
        return False
    if route.dev is not None and other.dev != route.dev:
        return False
    return gateway in _network(other.to)
