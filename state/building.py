"""Building the model objects of one schema-checked document (a `Contribution` of
`Declared` objects that remember their place): defaults filled in, values normalised,
checks that need only the object itself. Used by `state.loading`.
"""

from __future__ import annotations

import bisect
import fnmatch
import ipaddress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from netlab.state.documents import DocPath, Document, Edit
from netlab.state.errors import Problem
from netlab.state.formats import parse_interface, parse_ip, parse_network, split_dnat_target
from netlab.state.link_types import LINK_TYPES, master_types
from netlab.state.model import (
    MAIN_TABLE,
    Address,
    Check,
    Dns,
    HostsEntry,
    Link,
    Namespace,
    NatRule,
    Origin,
    Route,
    Sysctl,
    netns_label,
)

if TYPE_CHECKING:
    from netlab.state.model import CheckKind
from netlab.state.validating import SchemaCheck

T = TypeVar("T")

NAMED_TABLES = {"main": MAIN_TABLE, "local": 255, "default": 253}
DEFAULT_METRIC = {4: 0, 6: 1024}  # what the kernel fills in, so keys match
LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")
# the sections that are lists of objects, in the order they are built; then the
# sections of the host itself
LIST_SECTIONS = ("namespaces", "interfaces", "routes", "nat", "checks")
HOST_SECTIONS = ("sysctls", "dns", "hosts")
CHECK_KINDS: tuple[CheckKind, ...] = ("ping", "tcp", "resolve")


@dataclass(frozen=True)
class Declared(Generic[T]):
    """A model object with the document and path it was declared at."""

    obj: T
    doc: Document
    path: DocPath
    at_key: bool = False  # placed at its key (a sysctl), not at its value

    def problem(self, message: str, key: str | None = None) -> Problem:
        """A problem about this object, placed on one of its keys when given."""
        if key is not None and self.doc.get(self.path + (key,)) is not None:
            return self.doc.problem(self.path + (key,), message)
        return self.doc.problem(self.path, message, self.at_key)

    @property
    def place(self) -> str:
        """`file:line`, for messages that point at this declaration."""
        line, _ = self.doc.position(self.path, self.at_key)
        return f"{self.doc.file}:{line}"


@dataclass
class Contribution:
    """What one file declares. Objects of items that failed the schema are left
    out; their names are kept as `guessed_*` so that references to them are not
    reported as dangling on top of the schema error."""

    doc: Document
    applies: bool = True
    namespaces: list[Declared[Namespace]] = field(default_factory=list)
    links: list[Declared[Link]] = field(default_factory=list)
    addresses: list[Declared[Address]] = field(default_factory=list)
    routes: list[Declared[Route]] = field(default_factory=list)
    sysctls: list[Declared[Sysctl]] = field(default_factory=list)
    nat: list[Declared[NatRule]] = field(default_factory=list)
    dns: list[Declared[Dns]] = field(default_factory=list)
    hosts: list[Declared[HostsEntry]] = field(default_factory=list)
    checks: list[Declared[Check]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    guessed_namespaces: set[str] = field(default_factory=set)
    guessed_links: set[tuple[str | None, str]] = field(default_factory=set)
    # namespaces whose interfaces are not fully known (an invalid interface may
    # live there); "*" when even the namespace of one is unknown
    uncertain_netns: set[str | None] = field(default_factory=set)
    # False when a whole section is unreadable (`interfaces:` not a list): what
    # the file declares is then unknown
    complete: bool = True


def host_matches(patterns: str | list[str], hostname: str) -> bool:
    """Globs against the host's name, case-insensitively (host names are); a
    pattern also matches the short name of a fully qualified host name."""
    names = {hostname.lower(), hostname.split(".")[0].lower()}
    globs = [patterns] if isinstance(patterns, str) else patterns
    return any(fnmatch.fnmatchcase(name, glob.lower()) for glob in globs for name in names)


def build(doc: Document, schema: SchemaCheck, hostname: str) -> Contribution:
    contribution = Contribution(doc)
    match = doc.data.get("match")
    if isinstance(match, dict) and not schema.is_broken(("match",)) and "hostname" in match:
        contribution.applies = host_matches(match["hostname"], hostname)
    builder = _Builder(doc, schema, contribution)
    builder.build_all()
    return contribution


def build_items(doc: Document, section: str, first: int, last: int) -> Contribution:
    """The objects of the items `first`..`last` of a list section alone, all of
    them valid against the schema (`state.loading` splices them into the
    contribution of the rest of the document)."""
    contribution = Contribution(doc)
    builder = _Builder(doc, SchemaCheck((), frozenset()), contribution)
    for index in range(first, last + 1):
        builder.build_item(section, index, doc.data[section][index])
    return contribution


_BUCKETS = ("namespaces", "links", "addresses", "routes", "sysctls", "nat", "dns", "hosts", "checks")
_BUILT_ORDER = {section: order for order, section in enumerate(LIST_SECTIONS + HOST_SECTIONS)}


def _built_place(item: Declared[Any]) -> tuple[int, int]:
    """Where `build` appends an object in its bucket: by section, then by item."""
    path = item.path
    return (_BUILT_ORDER[str(path[0])], path[1] if len(path) > 1 and isinstance(path[1], int) else 0)


def splice(before: Contribution, fresh: Contribution, edit: Edit) -> Contribution:
    """`before` with the objects of the edited items replaced by `fresh` ones, in
    the order `build` gives. Both were built without a problem, so nothing but the
    objects differs (no guesses, the same `match`)."""
    order = _BUILT_ORDER[edit.section]
    spliced: dict[str, Any] = {}
    for bucket in _BUCKETS:
        items: list[Declared[Any]] = getattr(before, bucket)
        start = bisect.bisect_left(items, (order, edit.first), key=_built_place)
        stop = bisect.bisect_right(items, (order, edit.last), key=_built_place)
        spliced[bucket] = [*items[:start], *getattr(fresh, bucket), *items[stop:]]
    return replace(before, doc=fresh.doc, **spliced)


@dataclass
class _Builder:
    doc: Document
    schema: SchemaCheck
    out: Contribution

    def build_all(self) -> None:
        for section in LIST_SECTIONS:
            for index, item in self._items(section):
                self.build_item(section, index, item)
        self._sysctls(("sysctls",), None)
        self._dns(("dns",), None)
        self._hosts(("hosts",), None)

    def build_item(self, section: str, index: int, item: dict[str, Any]) -> None:
        """The objects of one schema-valid item of a list section."""
        if section == "namespaces":
            self._namespace(index, item)
        elif section == "interfaces":
            self._interface((section, index), item)
        elif section == "routes":
            self._route((section, index), item)
        elif section == "checks":
            self._check((section, index), item)
        else:
            self._nat((section, index), item)

    def _items(self, section: str) -> list[tuple[int, dict[str, Any]]]:
        """The valid items of a list section; the names of invalid ones are guessed."""
        items = self.doc.data.get(section)
        if not isinstance(items, list):
            if items is not None:
                self.out.complete = False
            return []
        valid = []
        for index, item in enumerate(items):
            if not self.schema.is_broken((section, index)):
                valid.append((index, item))
            elif isinstance(item, dict):
                self._guess(section, item)
            else:
                self.out.complete = False
        return valid

    def _guess(self, section: str, item: dict[str, Any]) -> None:
        name = item.get("name")
        if section == "namespaces" and isinstance(name, str):
            self.out.guessed_namespaces.add(name)
        if section != "interfaces":
            return
        netns = item.get("netns")
        netns = netns if isinstance(netns, str) else None
        if isinstance(name, str):
            self.out.guessed_links.add((netns, name))
        self.out.uncertain_netns.add(netns if "netns" not in item or isinstance(item["netns"], str) else "*")
        peer = item.get("peer")
        if isinstance(peer, dict):
            peer_netns = peer.get("netns") if isinstance(peer.get("netns"), str) else None
            if isinstance(peer.get("name"), str):
                self.out.guessed_links.add((peer_netns, peer["name"]))
            self.out.uncertain_netns.add(peer_netns)

    def _origin(self, path: DocPath, at_key: bool = False) -> Origin:
        return self.doc.origin(path, at_key)

    def _declare(self, bucket: list[Declared[Any]], obj: Any, path: DocPath) -> None:
        bucket.append(Declared(obj, self.doc, path))

    def _problem(self, path: DocPath, message: str) -> None:
        self.out.problems.append(self.doc.problem(path, message))

    # -- namespaces --------------------------------------------------------------

    def _namespace(self, index: int, item: dict[str, Any]) -> None:
        path: DocPath = ("namespaces", index)
        name = item["name"]
        if name == netns_label(None):
            self._problem(
                path + ("name",),
                f"a namespace cannot be named `{name}`: the files say `{name}` for the host's own namespace "
                "(a check's `from`), and so do plans and pictures; choose another name",
            )
        self._declare(self.out.namespaces, Namespace(name, self._origin(path)), path)
        self._sysctls(path + ("sysctls",), name)
        self._dns(path + ("dns",), name)
        self._hosts(path + ("hosts",), name)

    # -- interfaces --------------------------------------------------------------

    def _interface(self, path: DocPath, item: dict[str, Any]) -> None:
        kind = item["type"]
        netns = item.get("netns")
        name = item["name"]
        peer = item.get("peer")
        link = Link(
            netns=netns,
            name=name,
            type=kind,
            origin=self._origin(path),
            state=item.get("state", None if kind == "device" else "up"),
            mtu=_int(item.get("mtu")),
            mac=_lower(item.get("mac")),
            master=item.get("master"),
            peer_netns=peer.get("netns") if peer else None,
            peer_name=peer["name"] if peer else None,
            parent=item.get("parent"),
            options=tuple(
                (attribute.key, _option(item[attribute.key]))
                for attribute in LINK_TYPES[kind].attributes
                if attribute.key in item
            ),
        )
        self._check_link(path, link)
        self._declare(self.out.links, link, path)
        self._addresses(path, netns, name, item.get("addresses", []))
        if peer:
            self._peer(path + ("peer",), link, peer)

    def _peer(self, path: DocPath, veth: Link, peer: dict[str, Any]) -> None:
        link = Link(
            netns=peer.get("netns"),
            name=peer["name"],
            type="veth-peer",
            origin=self._origin(path),
            state=peer.get("state", "up"),
            mtu=_int(peer.get("mtu")),
            mac=_lower(peer.get("mac")),
            master=peer.get("master"),
            peer_netns=veth.netns,
            peer_name=veth.name,
        )
        self._check_link(path, link)
        self._declare(self.out.links, link, path)
        self._addresses(path, link.netns, link.name, peer.get("addresses", []))

    def _check_link(self, path: DocPath, link: Link) -> None:
        if link.master is not None and link.master == link.name:
            self._problem(
                path + ("master",), f"{link.name!r} cannot be its own master: name a {' or '.join(master_types())}"
            )
        for attribute in LINK_TYPES[link.type].attributes:
            value = link.option(attribute.key)
            wrong = attribute.refuses(value) if attribute.refuses is not None and value is not None else None
            if wrong:
                self._problem(path + (attribute.key,), f"{value!r}: {wrong}")
        if link.parent is not None and link.parent == link.name and link.netns is None:
            self._problem(path + ("parent",), f"{link.name!r} cannot be its own parent: name the link it sits on")

    def _addresses(self, path: DocPath, netns: str | None, interface: str, addresses: list[str]) -> None:
        for index, text in enumerate(addresses):
            address_path = path + ("addresses", index)
            parsed = parse_interface(text)
            normal = str(parsed if parsed is not None else ipaddress.ip_interface(text))
            self._declare(
                self.out.addresses,
                Address(netns, interface, normal, self._origin(address_path)),
                address_path,
            )

    # -- routes ------------------------------------------------------------------

    def _route(self, path: DocPath, item: dict[str, Any]) -> None:
        via_text = item.get("via")
        via = parse_ip(via_text) if via_text is not None else None
        to = _route_destination(item["to"], via)
        if to is None:
            return
        if "/" in item["to"] and to.network_address != ipaddress.ip_interface(item["to"]).ip:
            self._problem(
                path + ("to",),
                f"{item['to']!r} has host bits set, so it is not a network: write {to}",
            )
            return
        if via is not None and via.version != to.version:
            self._problem(
                path + ("via",),
                f"gateway {via} is IPv{via.version} but the destination {to} is IPv{to.version}: "
                "use a gateway of the same family",
            )
            return
        if via is not None and via.version == 6 and via in LINK_LOCAL_V6 and "dev" not in item:
            self._problem(
                path + ("via",),
                f"gateway {via} is link-local, which only means something on one link: "
                "add `dev:` with the interface it is reached through",
            )
            return
        table = item.get("table", MAIN_TABLE)
        route = Route(
            netns=item.get("netns"),
            to=str(to),
            table=0 if "vrf" in item else NAMED_TABLES[table] if isinstance(table, str) else int(table),
            metric=_kernel_metric(to.version, int(item.get("metric", DEFAULT_METRIC[to.version]))),
            origin=self._origin(path),
            via=str(via) if via is not None else None,
            dev=item.get("dev"),
            vrf=item.get("vrf"),
        )
        self._declare(self.out.routes, route, path)

    # -- nat ---------------------------------------------------------------------

    def _nat(self, path: DocPath, item: dict[str, Any]) -> None:
        networks: dict[str, str] = {}
        for key in ("source", "destination"):
            if key in item:
                normal = self._nat_network(path + (key,), item[key])
                if normal is None:
                    return
                networks[key] = normal
        families = _nat_families(item)
        if len(set(families.values())) > 1:
            listed = ", ".join(f"{key} is IPv{family}" for key, family in families.items())
            self._problem(path, f"the rule mixes IPv4 and IPv6 ({listed}): a NAT rule is for one family")
            return
        port = item.get("port")
        rule = NatRule(
            netns=item.get("netns"),
            type=item["type"],
            origin=self._origin(path),
            source=networks.get("source"),
            destination=networks.get("destination"),
            out_interface=item.get("out_interface"),
            in_interface=item.get("in_interface"),
            to_source=str(ipaddress.ip_address(item["to_source"])) if "to_source" in item else None,
            protocol=item.get("protocol"),
            port=_port_text(port) if port is not None else None,
            to=_dnat_target_text(item["to"]) if "to" in item else None,
        )
        self._declare(self.out.nat, rule, path)

    # -- checks ------------------------------------------------------------------

    def _check(self, path: DocPath, item: dict[str, Any]) -> None:
        kind: CheckKind = next(key for key in CHECK_KINDS if key in item)
        target = str(item[kind])
        if kind == "ping":
            target = str(ipaddress.ip_address(target))
        elif kind == "tcp":
            split = split_dnat_target(target)
            if split is None or split[1] is None:
                self._problem(
                    path + ("tcp",), f"{target!r} has no port: write the address and the port, like 192.168.15.5:80"
                )
                return
            host = str(ipaddress.ip_address(split[0]))
            target = f"[{host}]:{split[1]}" if ":" in host else f"{host}:{split[1]}"
        address = item.get("address")
        netns = item["from"]
        check = Check(
            netns=None if netns == "host" else netns,
            kind=kind,
            target=target,
            origin=self._origin(path),
            expect=item.get("expect", "reachable"),
            address=str(ipaddress.ip_address(address)) if address is not None else None,
            timeout=float(item.get("timeout", 1)),
        )
        self._declare(self.out.checks, check, path)

    def _nat_network(self, path: DocPath, text: str) -> str | None:
        network = parse_network(text)
        if network is None:
            return None
        if "/" in text and network.network_address != ipaddress.ip_interface(text).ip:
            self._problem(path, f"{text!r} has host bits set, so it is not a network: write {network}")
            return None
        return str(network)

    # -- sysctls, dns, hosts -----------------------------------------------------

    def _sysctls(self, path: DocPath, netns: str | None) -> None:
        values = self.doc.get(path)
        if not isinstance(values, dict) or self.schema.is_broken(path):
            return
        for key, value in values.items():
            sysctl = Sysctl(netns, key, _sysctl_value(value), self._origin(path + (key,), at_key=True))
            self.out.sysctls.append(Declared(sysctl, self.doc, path + (key,), at_key=True))

    def _dns(self, path: DocPath, netns: str | None) -> None:
        dns = self.doc.get(path)
        if not isinstance(dns, dict) or self.schema.is_broken(path):
            return
        record = Dns(
            netns=netns,
            nameservers=tuple(str(ipaddress.ip_address(a)) for a in dns.get("nameservers", [])),
            search=tuple(dns.get("search", [])),
            options=tuple(dns.get("options", [])),
            origin=self._origin(path),
        )
        self._declare(self.out.dns, record, path)

    def _hosts(self, path: DocPath, netns: str | None) -> None:
        entries = self.doc.get(path)
        if not isinstance(entries, list):
            return
        for index, entry in enumerate(entries):
            entry_path = path + (index,)
            if self.schema.is_broken(entry_path):
                continue
            record = HostsEntry(
                netns=netns,
                address=str(ipaddress.ip_address(entry["address"])),
                names=tuple(entry["names"]),
                origin=self._origin(entry_path),
            )
            self._declare(self.out.hosts, record, entry_path)


def _lower(text: str | None) -> str | None:
    return text.lower() if text is not None else None


def _option(value: Any) -> Any:
    """A type's attribute as the model holds it (`link_types` says what each means)."""
    return _int(value) if isinstance(value, float) and value.is_integer() else value


def _int(value: int | float | None) -> int | None:
    # JSON Schema counts 1500.0 as an integer; the model holds ints
    return int(value) if value is not None else None


def _route_destination(
    text: str, via: ipaddress.IPv4Address | ipaddress.IPv6Address | None
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if text == "default":
        # the family of a default route follows its gateway; without one, IPv4
        default: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.ip_network(
            "::/0" if via is not None and via.version == 6 else "0.0.0.0/0"
        )
        return default
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = parse_network(text)
    return network


def _nat_families(item: dict[str, Any]) -> dict[str, int]:
    families: dict[str, int] = {}
    for key in ("source", "destination"):
        if key in item:
            network = parse_network(item[key])
            if network is not None:
                families[key] = network.version
    if "to_source" in item:
        address = parse_ip(item["to_source"])
        if address is not None:
            families["to_source"] = address.version
    if "to" in item:
        target = split_dnat_target(item["to"])
        address = parse_ip(target[0]) if target else None
        if address is not None:
            families["to"] = address.version
    return families


def _port_text(port: int | float | str) -> str:
    """`80`, `"080"` → `"80"`; `"8000-8080"` stays; `"80-80"` → `"80"`."""
    first, _, last = str(port).partition("-") if isinstance(port, str) else (str(int(port)), "", "")
    if not last or int(last) == int(first):
        return str(int(first))
    return f"{int(first)}-{int(last)}"


def _dnat_target_text(text: str) -> str:
    """The DNAT target with its address normalised (`[2001:db8::2]:80`)."""
    target = split_dnat_target(text)
    if target is None:
        return text
    address, port = ipaddress.ip_address(target[0]), target[1]
    if port is None:
        return str(address)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _kernel_metric(version: int, metric: int) -> int:
    """The metric as the kernel keeps it: IPv6 takes metric 0 to mean its default,
    1024, so a route declared with metric 0 is the kernel's route of metric 1024
    (and the same object as one declared so)."""
    return DEFAULT_METRIC[6] if version == 6 and metric == 0 else metric


def _sysctl_value(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(int(value)) if isinstance(value, (int, float)) else value
