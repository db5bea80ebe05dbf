"""Topologies: what `netlab graph` draws, one neutral model built either from the
files (a DesiredState) or from the live kernel (`netlab show`'s document) with
what differs from the files marked; and the grouping of namespaces of the same
shape that keeps a picture of hundreds readable. Called by the cli; drawn by
`drawing`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from netlab.state.model import DesiredState, NatRule, Route, netns_label

# What --live finds against the files: "" as declared (or no files to compare
# with), "missing" declared but not in the kernel, "different" there but not as
# declared, "foreign" in the kernel but in no file.
Mark = Literal["", "missing", "different", "foreign"]
Key = tuple[str | None, str]  # (netns, name): None is the host

# Namespaces of one shape are drawn as one box once there are more than this many
# namespaces in all, and a shape has at least GROUP_AT of them.
GROUP_ABOVE = 12
GROUP_AT = 3


@dataclass(frozen=True)
class Marked:
    """An address (or any line of a label) and what --live found of it."""

    text: str
    mark: Mark = ""


@dataclass(frozen=True)
class End:
    """One end of a link in its namespace. `peer` is a veth's other end."""

    netns: str | None
    name: str
    type: str
    addresses: tuple[Marked, ...] = ()
    master: str | None = None
    parent: str | None = None
    peer: Key | None = None
    mark: Mark = ""
    detail: str = ""  # what is different, for the label

    @property
    def key(self) -> Key:
        return (self.netns, self.name)


@dataclass(frozen=True)
class Way:
    """A route: `to` ("default" for a default route) via a gateway or out of a link."""

    netns: str | None
    to: str
    via: str | None = None
    dev: str | None = None
    mark: Mark = ""

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.netns, self.to)


@dataclass(frozen=True)
class Translation:
    """A NAT rule: `inbound` for a port forward (dnat), whose target is `to_address`;
    the others leave by `uplink` (out_interface) when one is named."""

    netns: str | None
    text: str
    inbound: bool
    uplink: str | None = None
    to_address: str | None = None
    mark: Mark = ""


@dataclass(frozen=True)
class Probe:
    """A declared check from a namespace to an address (or the name it resolves,
    when no address is expected); `passed` is the daemon's last result, if any."""

    netns: str | None
    text: str
    target: str
    passed: bool | None = None


@dataclass(frozen=True)
class Box:
    """The host (name None) or a namespace, or a group of namespaces of one shape
    (`members` their names, `name` how the group is called)."""

    name: str | None
    mark: Mark = ""
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topology:
    boxes: tuple[Box, ...]
    ends: tuple[End, ...] = ()
    ways: tuple[Way, ...] = ()
    translations: tuple[Translation, ...] = ()
    probes: tuple[Probe, ...] = ()


# -- from the files ------------------------------------------------------------------


def from_files(desired: DesiredState, results: Mapping[str, bool] | None = None) -> Topology:
    """What the files declare; `results`: the daemon's last check results, by
    where each check is declared (status.json's `declared`)."""
    known = results or {}
    addresses: dict[Key, list[Marked]] = {}
    for address in desired.addresses:
        addresses.setdefault((address.netns, address.interface), []).append(Marked(address.address))
    ends = tuple(
        End(
            link.netns,
            link.name,
            link.type,
            tuple(addresses.get(link.key, ())),
            link.master,
            link.parent,
            (link.peer_netns, link.peer_name) if link.peer_name is not None else None,
        )
        for link in desired.links
    )
    return Topology(
        boxes=(Box(None), *(Box(ns.name) for ns in desired.namespaces)),
        ends=ends,
        ways=tuple(_way(route) for route in desired.routes),
        translations=tuple(_translation(rule) for rule in desired.nat),
        probes=tuple(
            Probe(
                check.netns,
                str(check),
                (check.address or check.target) if check.kind == "resolve" else _host_of(check.target),
                known.get(str(check.origin)),
            )
            for check in desired.checks
        ),
    )


def _way(route: Route) -> Way:
    return Way(route.netns, _route_name(route.to), route.via, route.dev)


def _route_name(to: str) -> str:
    return "default" if to in ("0.0.0.0/0", "::/0", "default") else to


def _translation(rule: NatRule) -> Translation:
    fields = {"source": rule.source, "to": rule.destination, "to_source": rule.to_source}
    if rule.type == "dnat":
        port = f"{rule.protocol or 'tcp'}/{rule.port}" if rule.port else ""
        return Translation(
            rule.netns, f"dnat {port} → {rule.to}".replace("  ", " "), True, rule.in_interface, _host_of(rule.to or "")
        )
    said = " ".join(f"{value}" if name == "source" else f"{name} {value}" for name, value in fields.items() if value)
    return Translation(rule.netns, f"{rule.type} {said}".strip(), False, rule.out_interface)


def _host_of(target: str) -> str:
    """The address of `addr`, `addr:port` or `[v6addr]:port`."""
    if target.startswith("["):
        return target[1:].split("]", 1)[0]
    return target.rsplit(":", 1)[0] if target.count(":") == 1 else target


# -- from the kernel -----------------------------------------------------------------


def from_live(
    desired: DesiredState, document: Mapping[str, Any], results: Mapping[str, bool] | None = None
) -> Topology:
    """The kernel as `netlab show` reads it, merged with the files: what both have
    as the kernel has it, what only the files have marked missing, what only the
    kernel has marked foreign, and a link or route unlike its declaration
    marked different (saying how)."""
    declared = from_files(desired, results)
    live = _live_ends(document)
    shown = {entry["name"] for entry in document.get("namespaces", [])}
    boxes = [Box(None)] + [
        Box(box.name, "" if box.name in shown else "missing") for box in declared.boxes if box.name is not None
    ]
    boxes += [Box(name, "foreign") for name in sorted(shown - {box.name for box in boxes})]
    return Topology(
        boxes=tuple(boxes),
        ends=_merged_ends(declared.ends, live),
        ways=_merged_ways(declared.ways, [_live_way(entry) for entry in document.get("routes", [])]),
        translations=_merged_translations(
            declared.translations, [_translation(_live_rule(entry)) for entry in document.get("nat", [])]
        ),
        probes=declared.probes,
    )


def _live_ends(document: Mapping[str, Any]) -> list[End]:
    """The link ends `show` lists: each interface, and a veth's peer as one of its own."""
    ends = []
    for entry in document.get("interfaces", []):
        netns = entry.get("netns")
        peer = entry.get("peer")
        peer_key = (peer.get("netns"), peer["name"]) if peer else None
        ends.append(_live_end(entry, netns, peer_key))
        if peer:
            ends.append(_live_end({**peer, "type": "veth-peer"}, peer.get("netns"), (netns, entry["name"])))
    return ends


def _live_end(entry: Mapping[str, Any], netns: str | None, peer: Key | None) -> End:
    return End(
        netns,
        entry["name"],
        entry.get("type", "device"),
        tuple(Marked(address) for address in entry.get("addresses", [])),
        entry.get("master"),
        entry.get("parent"),
        peer,
    )


def _merged_ends(declared: Iterable[End], live: Iterable[End]) -> tuple[End, ...]:
    found = {end.key: end for end in live}
    merged = []
    for end in declared:
        there = found.pop(end.key, None)
        if there is None:
            merged.append(
                replace(end, mark="missing", addresses=tuple(replace(a, mark="missing") for a in end.addresses))
            )
            continue
        merged.append(_compared(end, there))
    merged += [_foreign(end) for end in found.values()]
    return tuple(merged)


def _compared(declared: End, there: End) -> End:
    """The live end, marked different where it is not as declared, its addresses
    each marked: declared and there, missing, or foreign."""
    differs = [
        f"{what} {have or 'none'}, not {want}"
        for what, want, have in (
            ("master", declared.master, there.master),
            (
                "peer",
                declared.peer and "/".join(map(netns_label, declared.peer)),
                there.peer and "/".join(map(netns_label, there.peer)),
            ),
        )
        if want is not None and want != have
    ]
    have = {address.text for address in there.addresses}
    want = {address.text for address in declared.addresses}
    addresses = [Marked(a.text, "" if a.text in have else "missing") for a in declared.addresses]
    addresses += [Marked(a.text, "foreign") for a in there.addresses if a.text not in want]
    return replace(declared, addresses=tuple(addresses), mark="different" if differs else "", detail="; ".join(differs))


def _foreign(end: End) -> End:
    return replace(end, mark="foreign", addresses=tuple(replace(a, mark="foreign") for a in end.addresses))


def _live_way(entry: Mapping[str, Any]) -> Way:
    return Way(entry.get("netns"), _route_name(entry["to"]), entry.get("via"), entry.get("dev"))


def _merged_ways(declared: Iterable[Way], live: Iterable[Way]) -> tuple[Way, ...]:
    found = {way.key: way for way in live}
    merged = []
    for way in declared:
        there = found.pop(way.key, None)
        if there is None:
            merged.append(replace(way, mark="missing"))
        elif (way.via, way.dev if way.dev else there.dev) != (there.via, there.dev):
            merged.append(replace(there, mark="different"))
        else:
            merged.append(way)
    return tuple(merged + [replace(way, mark="foreign") for way in found.values()])


def _live_rule(entry: Mapping[str, Any]) -> NatRule:
    fields = ("destination", "out_interface", "in_interface", "to_source", "protocol", "port", "to", "source")
    return NatRule(entry.get("netns"), entry["type"], None, **{name: entry.get(name) for name in fields})  # type: ignore[arg-type]


def _merged_translations(declared: Iterable[Translation], live: Iterable[Translation]) -> tuple[Translation, ...]:
    found = {(rule.netns, rule.text): rule for rule in live}
    merged = [rule if found.pop((rule.netns, rule.text), None) else replace(rule, mark="missing") for rule in declared]
    return tuple(merged + [replace(rule, mark="foreign") for rule in found.values()])


# -- at scale ------------------------------------------------------------------------


def grouped(topology: Topology) -> Topology:
    """Namespaces of one shape (the same links, masters, routes and peers, each
    name written with the namespace's own name as `*`, addresses aside) drawn as
    one box, once there are more than GROUP_ABOVE namespaces: `ns1..ns300: eth0
    → br0` instead of 300 boxes and 600 cables. The ends their veths have in
    other boxes fold the same way, into one end named by its pattern; a group's
    addresses, routes, NAT rules and checks are its first member's and its last,
    with the count."""
    members = [box.name for box in topology.boxes if box.name is not None]
    if len(members) <= GROUP_ABOVE:
        return topology
    shapes: dict[tuple[object, ...], list[str]] = {}
    for name in members:
        shapes.setdefault(_shape(topology, name), []).append(name)
    groups = {name: names for names in shapes.values() if len(names) >= GROUP_AT for name in names}
    if not groups:
        return topology
    return _folded(topology, groups)


def _pattern(text: str, netns: str) -> str:
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(netns)}(?![A-Za-z0-9])", "*", text) if text else text


def _shape(topology: Topology, netns: str) -> tuple[object, ...]:
    """What a namespace looks like without its name and addresses: its ends
    (and their peers' ends, wherever they are) and its routes' destinations."""
    ends = {end.key: end for end in topology.ends}
    mine = [end for end in topology.ends if end.netns == netns]
    peers = [ends[end.peer] for end in mine if end.peer in ends and end.peer[0] != netns]
    return (
        tuple(
            sorted(
                (end.netns == netns, _pattern(end.name, netns), end.type, end.master or "", end.mark)
                for end in mine + peers
            )
        ),
        tuple(sorted((way.to, way.mark) for way in topology.ways if way.netns == netns)),
        tuple(sorted(_pattern(rule.text, netns) for rule in topology.translations if rule.netns == netns)),
    )


def _group_name(names: list[str]) -> str:
    """The first name and the last: `ns1..ns300` (the box's label adds the count)."""
    return f"{names[0]}..{names[-1]}"


def _folded(topology: Topology, groups: Mapping[str, list[str]]) -> Topology:
    name_of = {member: _group_name(_natural(names)) for member, names in groups.items()}
    first = {names[0] for names in (_natural(names) for names in groups.values())}
    peer_owner = {end.peer: end.netns for end in topology.ends if end.peer and end.netns in groups}

    def owner(netns: str | None, key: Key | None = None) -> str | None:
        """The grouped namespace an object belongs to: its own, or its veth peer's."""
        if netns is not None and netns in groups:
            return netns
        return peer_owner.get(key) if key is not None else None

    def where(netns: str | None) -> str | None:
        return name_of.get(netns, netns) if netns is not None else None

    def kept(netns: str | None, key: Key | None = None) -> bool:
        member = owner(netns, key)
        return member is None or member in first

    def folded(key: Key) -> Key:
        member = owner(key[0], key)
        return (where(key[0]), _pattern(key[1], member) if member else key[1])

    ends = []
    for end in topology.ends:
        if not kept(end.netns, end.key):
            continue
        member = owner(end.netns, end.key)
        addresses = _spans(topology, folded(end.key), groups[member], folded) if member else end.addresses
        netns, name = folded(end.key)
        ends.append(replace(end, netns=netns, name=name, addresses=addresses, peer=end.peer and folded(end.peer)))
    boxes = [
        Box(name_of[member], box.mark, tuple(_natural(groups[member]))) if (member := owner(box.name)) else box
        for box in topology.boxes
        if kept(box.name)
    ]
    return Topology(
        boxes=tuple(boxes),
        ends=tuple(ends),
        ways=tuple(replace(w, netns=where(w.netns)) for w in topology.ways if kept(w.netns)),
        translations=tuple(replace(t, netns=where(t.netns)) for t in topology.translations if kept(t.netns)),
        probes=_folded_probes(topology.probes, groups, name_of),
    )


def _spans(topology: Topology, key: Key, members: list[str], folded: Callable[[Key], Key]) -> tuple[Marked, ...]:
    """A folded end's addresses: the first member's … the last member's."""
    names = _natural(members)
    alike = {
        other.netns if other.netns in members else other.peer and other.peer[0]: other.addresses
        for other in topology.ends
        if folded(other.key) == key
    }
    low, high = alike.get(names[0], ()), alike.get(names[-1], ())
    if len(low) != len(high):
        return low
    return tuple(
        Marked(a.text if a.text == b.text else f"{a.text} … {b.text}", a.mark or b.mark)
        for a, b in zip(low, high, strict=True)
    )


def _folded_probes(
    probes: Iterable[Probe], groups: Mapping[str, list[str]], name_of: Mapping[str, str]
) -> tuple[Probe, ...]:
    """A group's checks: one per pattern, passed only when every member's passed."""
    folded: dict[tuple[str | None, str], Probe] = {}
    for probe in probes:
        if probe.netns is None or probe.netns not in groups:
            folded[(probe.netns, probe.text)] = probe
            continue
        netns = probe.netns
        text = _pattern(probe.text, netns)
        key = (name_of[netns], text)
        seen = folded.get(key)
        passed = probe.passed if seen is None else _both(seen.passed, probe.passed)
        folded[key] = Probe(name_of[netns], text, probe.target, passed)
    return tuple(folded.values())


def _both(one: bool | None, other: bool | None) -> bool | None:
    if one is None or other is None:
        return None
    return one and other


def _natural(names: Iterable[str]) -> list[str]:
    """ns2 before ns10."""
    return sorted(names, key=lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)])
