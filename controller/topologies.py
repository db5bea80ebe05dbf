"""Topologies: what `netlab graph` draws, one neutral model built either from the
files (a DesiredState) or from the live kernel (`netlab show`'s document) with
what differs from the files marked; and the grouping of namespaces of the same
shape that keeps a picture of hundreds readable. Called by the cli; drawn by
`drawing`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from netlab.state.model import DesiredState, NatRule, Route, netns_label

MAIN_TABLE = 254  # the kernel's main routing table (RT_TABLE_MAIN)

# What --live finds against the files: "" as declared (or no files to compare
# with), "missing" declared but not in the kernel, "different" there but not as
# declared, "foreign" in the kernel but in no file.
Mark = Literal["", "missing", "different", "foreign"]
Key = tuple[str | None, str]  # (netns, name): None is the host

T = TypeVar("T", "Translation", "Probe")

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
    """A route: `to` ("default" for a default route) via a gateway or out of a
    link, in a table other than main (`table`, or the VRF the file names) and at
    a metric other than the family's default, when so. `gateway`: the end that
    holds `via`, once `resolved`."""

    netns: str | None
    to: str
    via: str | None = None
    dev: str | None = None
    table: int | None = None
    metric: int | None = None
    vrf: str | None = None
    mark: Mark = ""
    gateway: Key | None = None

    @property
    def key(self) -> tuple[str | None, str, int | None, int | None]:
        return (self.netns, self.to, self.table, self.metric)

    @property
    def text(self) -> str:
        said = self.to + (f" via {self.via}" if self.via else "") + (f" dev {self.dev}" if self.dev else "")
        if self.vrf is not None:
            said += f" vrf {self.vrf}"
        elif self.table is not None:
            said += f" table {self.table}"
        return said + (f" metric {self.metric}" if self.metric is not None else "")


@dataclass(frozen=True)
class Translation:
    """A NAT rule: `inbound` for a port forward (dnat), whose target is
    `to_address` (held by the end `target`, once `resolved`); the others leave
    by `uplink` (out_interface) when one is named."""

    netns: str | None
    text: str
    inbound: bool
    uplink: str | None = None
    to_address: str | None = None
    mark: Mark = ""
    target: Key | None = None


@dataclass(frozen=True)
class Probe:
    """A declared check from a namespace to an address (or the name it resolves,
    when no address is expected), held by the end `held_by` once `resolved`;
    `passed` is the daemon's last result, if any."""

    netns: str | None
    text: str
    target: str
    passed: bool | None = None
    held_by: Key | None = None


@dataclass(frozen=True)
class Box:
    """The host (name None) or a namespace, or a group of namespaces of one shape
    (`members` their names, `name` how the group is called, `spelled` its
    members written out as runs)."""

    name: str | None
    mark: Mark = ""
    members: tuple[str, ...] = ()
    spelled: str = ""


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
    each check as status.json's `check` writes it (its text: a check's line may
    have moved since, another check may stand on that line now)."""
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
    return resolved(
        Topology(
            boxes=(Box(None), *(Box(ns.name) for ns in desired.namespaces)),
            ends=ends,
            ways=tuple(_way(route) for route in desired.routes),
            translations=tuple(_translation(rule) for rule in desired.nat),
            probes=tuple(
                Probe(
                    check.netns,
                    str(check),
                    (check.address or check.target) if check.kind == "resolve" else _host_of(check.target),
                    known.get(str(check)),
                )
                for check in desired.checks
            ),
        )
    )


def _way(route: Route) -> Way:
    table = None if route.table == MAIN_TABLE else route.table
    return Way(
        route.netns, _route_name(route.to), route.via, route.dev, table, _metric(route.to, route.metric), route.vrf
    )


def _metric(to: str, metric: int) -> int | None:
    """None for the kernel's default metric of the route's family."""
    return None if metric == (1024 if ":" in to else 0) else metric


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
    return resolved(
        Topology(
            boxes=tuple(boxes),
            ends=_merged_ends(declared.ends, live),
            ways=_merged_ways(declared.ways, [_live_way(entry) for entry in document.get("routes", [])]),
            translations=_merged_translations(
                declared.translations, [_translation(_live_rule(entry)) for entry in document.get("nat", [])]
            ),
            probes=declared.probes,
        )
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
            ("parent", declared.parent, there.parent),
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
    """A route `show` lists. `show` writes both families' default routes as
    `default`: one out of a link alone has either family's default metric."""
    to, via, metric = entry["to"], entry.get("via"), entry.get("metric", 0)
    family = "::" if ":" in to + (via or "") else "." if to != "default" or via else None
    plain = metric in (0, 1024) if family is None else _metric(family, metric) is None
    return Way(
        entry.get("netns"), _route_name(to), via, entry.get("dev"), entry.get("table"), None if plain else metric
    )


def _merged_ways(declared: Iterable[Way], live: Iterable[Way]) -> tuple[Way, ...]:
    found = {way.key: way for way in live}
    merged = []
    for way in declared:
        there = found.pop(way.key, None)
        if there is None:
            merged.append(replace(way, mark="missing"))
        elif (way.via, way.dev if way.dev else there.dev) != (there.via, there.dev):
            merged.append(replace(there, mark="different", vrf=way.vrf))
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


# -- what holds an address ----------------------------------------------------------


def resolved(topology: Topology) -> Topology:
    """Each gateway, port forward target and check target tied to the end that
    holds the address (as declared, or there: not a missing one), before any
    folding: among several, the one in the namespace itself, then the other
    end of one of its veths, then the first."""
    held: dict[str, list[End]] = {}
    for end in topology.ends:
        for address in end.addresses:
            if address.mark != "missing":
                held.setdefault(address.text.split("/")[0], []).append(end)
    peers = {end.key: end.peer for end in topology.ends if end.peer is not None}

    def holder(netns: str | None, address: str | None) -> Key | None:
        ends = held.get(address or "", [])
        near = [end for end in ends if end.netns == netns]
        near += [
            end for end in ends if end.peer is not None and peers.get(end.peer) == end.key and end.peer[0] == netns
        ]
        found = near or ends
        return found[0].key if found else None

    return replace(
        topology,
        ways=tuple(replace(way, gateway=holder(way.netns, way.via)) for way in topology.ways),
        translations=tuple(replace(t, target=holder(t.netns, t.to_address)) for t in topology.translations),
        probes=tuple(replace(probe, held_by=holder(probe.netns, probe.target)) for probe in topology.probes),
    )


# -- at scale ------------------------------------------------------------------------


def grouped(topology: Topology) -> Topology:
    """Namespaces of one shape drawn as one box, once there are more than
    GROUP_ABOVE namespaces: `ns1..ns300` with its `eth0` instead of 300 boxes
    and 600 cables. A shape is structure, not names: the namespace's links
    (each name with the namespace's own name written `*`), their types, masters,
    parents and number of addresses; for each veth, where its other end is and
    what that end is (its type, master, number of addresses, not its name); the
    routes (destination, table, metric, and whose link holds the gateway: the
    namespace's own, its veth's other end, or which other end); the NAT rules;
    the checks (whose link holds the target); and under --live the marks. The
    members' ends, routes, rules and checks then fold into one each, labelled
    with the first member's value … the last's where they differ (the other
    ends of 300 veths `veth1 … veth300`, their addresses `10.0.0.2/16 …
    10.0.1.51/16`)."""
    names = _natural(box.name for box in topology.boxes if box.name is not None)
    if len(names) <= GROUP_ABOVE:
        return topology
    seen = _Parts.of(topology)
    shapes: dict[tuple[object, ...], list[str]] = {}
    for name in names:
        shapes.setdefault(seen[name].shape, []).append(name)
    groups = [members for members in shapes.values() if len(members) >= GROUP_AT]
    if not groups:
        return topology
    return _Folding(topology, seen, groups, names).folded()


@dataclass(frozen=True)
class _Parts:
    """What one namespace is made of, each part in the order of its shape, so
    that the n-th part of one member is the n-th of another of its shape."""

    netns: str
    ends: tuple[End, ...]  # its own
    peers: tuple[End, ...]  # the other end (in another box) of each of its veths
    ways: tuple[Way, ...]
    translations: tuple[Translation, ...]
    probes: tuple[Probe, ...]
    shape: tuple[object, ...]

    @classmethod
    def of(cls, topology: Topology) -> dict[str, _Parts]:
        ends = {end.key: end for end in topology.ends}
        return {box.name: cls._of(topology, ends, box.name) for box in topology.boxes if box.name is not None}

    @classmethod
    def _of(cls, topology: Topology, ends: Mapping[Key, End], netns: str) -> _Parts:
        def star(text: str | None) -> str:
            return _pattern(text or "", netns)

        own = sorted((end for end in topology.ends if end.netns == netns), key=lambda end: star(end.name))

        def role(key: Key | None, address: str | None) -> tuple[object, ...]:
            """Whose link holds an address: the namespace's own or its veth's
            other end (named by the namespace's end: each member has its
            own address there), or which other link holds which address."""
            if key is None:
                return ("nobody", address or "")
            if key[0] == netns:
                return ("own", star(key[1]))
            mine = next((end for end in own if end.peer == key), None)
            if mine is not None:
                return ("peer", star(mine.name))
            return ("at", netns_label(key[0]), key[1], address or "")

        with_peers = [end for end in own if end.peer is not None and end.peer in ends and end.peer[0] != netns]
        peers = [ends[end.peer] for end in with_peers if end.peer is not None]
        keyed_ways = sorted(
            [
                (
                    (
                        way.to,
                        role(way.gateway, way.via),
                        star(way.dev),
                        way.table or 0,
                        way.metric or 0,
                        way.vrf or "",
                        way.mark,
                    ),
                    way,
                )
                for way in topology.ways
                if way.netns == netns
            ],
            key=_first,
        )
        keyed_rules = sorted(
            [
                ((star(rule.text), rule.uplink or "", role(rule.target, rule.to_address), rule.mark), rule)
                for rule in topology.translations
                if rule.netns == netns
            ],
            key=_first,
        )
        keyed_probes = sorted(
            [
                (
                    (role(probe.held_by, probe.target), star(probe.text if probe.held_by is None else _without(probe))),
                    probe,
                )
                for probe in topology.probes
                if probe.netns == netns
            ],
            key=_first,
        )
        shape = (
            tuple((star(e.name), e.type, star(e.master), e.parent or "", e.mark, len(e.addresses)) for e in own),
            tuple(
                (star(mine.name), peer.netns or "", peer.type, peer.master or "", peer.mark, len(peer.addresses))
                for mine, peer in zip(with_peers, peers, strict=True)
            ),
            tuple(key for key, _ in keyed_ways),
            tuple(key for key, _ in keyed_rules),
            tuple(key for key, _ in keyed_probes),
        )
        return cls(
            netns,
            tuple(own),
            tuple(peers),
            tuple(way for _, way in keyed_ways),
            tuple(rule for _, rule in keyed_rules),
            tuple(probe for _, probe in keyed_probes),
            shape,
        )


def _first(pair: tuple[tuple[object, ...], object]) -> Any:
    return pair[0]


def _without(probe: Probe) -> str:
    """A check's text with its target left out (the target's holder says it)."""
    return " ".join("@" if word == probe.target else word for word in probe.text.split(" "))


class _Folding:
    """The topology with each group's members folded into their first member's
    place: one box, one end per part, one route, rule and check per part."""

    def __init__(self, topology: Topology, seen: Mapping[str, _Parts], groups: list[list[str]], order: list[str]):
        self.topology = topology
        self.seen = seen
        self.groups = groups
        self.group_of = {member: members for members in groups for member in members}
        self.name_of = {member: _group_name(members, order)[0] for members in groups for member in members}
        self.spelled = {members[0]: _group_name(members, order)[1] for members in groups}
        # every end of a member, and the other end of each of its veths, to the
        # key of the end that stands for it, and that end
        self.renamed: dict[Key, Key] = {}
        self.standing: dict[Key, End] = {}
        for members in groups:
            self._fold_ends(members)

    def _fold_ends(self, members: list[str]) -> None:
        box = self.name_of[members[0]]
        first, last = self.seen[members[0]], self.seen[members[-1]]
        for index, end in enumerate(first.ends):
            key: Key = (box, _pattern(end.name, first.netns))
            for member in members:
                self.renamed[self.seen[member].ends[index].key] = key
            master = _pattern(end.master, first.netns) if end.master else None
            self.standing[key] = replace(
                end, netns=box, name=key[1], master=master, addresses=_spans(end.addresses, last.ends[index].addresses)
            )
        for index, peer in enumerate(first.peers):
            names = [self.seen[member].peers[index].name for member in members]
            patterns = {_pattern(name, member) for name, member in zip(names, members, strict=True)}
            name = patterns.pop() if len(patterns) == 1 else _spanned(names[0], names[-1])
            peer_key: Key = (peer.netns, name)
            for member in members:
                self.renamed[self.seen[member].peers[index].key] = peer_key
            self.standing[peer_key] = replace(
                peer, name=name, addresses=_spans(peer.addresses, last.peers[index].addresses)
            )

    def _key(self, key: Key | None) -> Key | None:
        return None if key is None else self.renamed.get(key, key)

    def _where(self, netns: str | None) -> str | None:
        return None if netns is None else self.name_of.get(netns, netns)

    def folded(self) -> Topology:
        ends: dict[Key, End] = {}
        for end in self.topology.ends:
            key = self.renamed.get(end.key, end.key)
            if key not in ends:
                stand = self.standing.get(key, end)
                ends[key] = replace(stand, peer=self._key(stand.peer))
        boxes, ways, rules, probes = [], [], [], []
        for box in self.topology.boxes:
            members = self.group_of.get(box.name or "")
            if members is None:
                boxes.append(box)
                ways += [replace(w, gateway=self._key(w.gateway)) for w in self.topology.ways if w.netns == box.name]
                rules += _gathered(
                    [replace(r, target=self._key(r.target)) for r in self.topology.translations if r.netns == box.name],
                    lambda r: (
                        (r.target, _numberless(r.text), r.inbound, r.uplink, r.mark)
                        if r.target in self.standing
                        else None
                    ),
                )
                probes += _gathered(
                    [replace(p, held_by=self._key(p.held_by)) for p in self.topology.probes if p.netns == box.name],
                    lambda p: (p.held_by, _numberless(p.text)) if p.held_by in self.standing else None,
                )
            elif box.name == members[0]:
                boxes.append(Box(self.name_of[box.name], box.mark, tuple(members), self.spelled[box.name]))
                ways += self._ways(members)
                rules += self._rules(members)
                probes += self._probes(members)
        return Topology(tuple(boxes), tuple(ends.values()), tuple(ways), tuple(rules), tuple(probes))

    def _ways(self, members: list[str]) -> list[Way]:
        first, last, box = self.seen[members[0]], self.seen[members[-1]], self.name_of[members[0]]
        return [
            replace(
                way,
                netns=box,
                via=way.via and _spanned(way.via, other.via or ""),
                dev=way.dev and _pattern(way.dev, first.netns),
                gateway=self._key(way.gateway),
            )
            for way, other in zip(first.ways, last.ways, strict=True)
        ]

    def _rules(self, members: list[str]) -> list[Translation]:
        first, last, box = self.seen[members[0]], self.seen[members[-1]], self.name_of[members[0]]
        return [
            replace(
                rule,
                netns=box,
                text=_spanned(_pattern(rule.text, first.netns), _pattern(other.text, last.netns)),
                target=self._key(rule.target),
            )
            for rule, other in zip(first.translations, last.translations, strict=True)
        ]

    def _probes(self, members: list[str]) -> list[Probe]:
        """One check per part, passed only when every member's passed."""
        first, last, box = self.seen[members[0]], self.seen[members[-1]], self.name_of[members[0]]
        folded = []
        for index, (probe, other) in enumerate(zip(first.probes, last.probes, strict=True)):
            passed: bool | None = probe.passed
            for member in members[1:]:
                passed = _both(passed, self.seen[member].probes[index].passed)
            folded.append(
                replace(
                    probe,
                    netns=box,
                    text=_spanned(_pattern(probe.text, first.netns), _pattern(other.text, last.netns)),
                    target=_spanned(probe.target, other.target),
                    passed=passed,
                    held_by=self._key(probe.held_by),
                )
            )
        return folded


def _gathered(items: list[T], alike: Callable[[T], object]) -> list[T]:
    """Rules (or checks) of a box that is not grouped, aimed at ends that fold
    into one (a port forward to each of 300 pods): one for all of those aimed at
    the same folded end whose texts differ only in their numbers, spanning the first one's text … the last one's,
    passed only when each passed. `alike` gives None for one that stays itself."""
    gathered: dict[object, list[T]] = {}
    kept: list[T] = []
    for item in items:
        key = alike(item)
        if key is None:
            kept.append(item)
        elif key not in gathered:
            gathered[key] = [item]
            kept.append(item)
        else:
            gathered[key].append(item)
    return [_gather(gathered[key]) if (key := alike(item)) is not None else item for item in kept]


def _gather(items: list[T]) -> T:
    first, last = items[0], items[-1]
    spanned = replace(first, text=_spanned(first.text, last.text))
    if isinstance(first, Probe) and isinstance(last, Probe):
        passed = first.passed
        for item in items[1:]:
            passed = _both(passed, item.passed if isinstance(item, Probe) else None)
        spanned = replace(spanned, target=_spanned(first.target, last.target), passed=passed)
    return spanned


def _numberless(text: str) -> str:
    """A text alike another but for its numbers (ports, addresses)."""
    return re.sub(r"[0-9a-f]*[0-9][0-9a-f]*", "0", text)


def _pattern(text: str, netns: str) -> str:
    """`text` with the namespace's own name, where it stands as a word of its own, written `*`."""
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(netns)}(?![A-Za-z0-9])", "*", text) if text else text


def _spanned(low: str, high: str) -> str:
    """The first member's value … the last member's, word by word: `default via
    10.0.0.1 … 10.0.1.1`; one value where they agree."""
    if low == high:
        return low
    lows, highs = low.split(" "), high.split(" ")
    if len(lows) != len(highs):
        return f"{low} … {high}"
    return " ".join(a if a == b else f"{a} … {b}" for a, b in zip(lows, highs, strict=True))


def _spans(low: tuple[Marked, ...], high: tuple[Marked, ...]) -> tuple[Marked, ...]:
    """A folded end's addresses: the first member's … the last member's (a shape
    has as many addresses in each member)."""
    return tuple(Marked(_spanned(a.text, b.text), a.mark or b.mark) for a, b in zip(low, high, strict=True))


def _group_name(members: list[str], order: list[str]) -> tuple[str, str]:
    """How a group is called, and its members written out as runs of the
    namespaces in their natural order: `ns1..ns300` when it holds every
    namespace from its first to its last; otherwise its runs, up to three
    (`ns1..ns9, ns11..ns19`), or else `ns1, ns2, …, ns299`, which does not look
    like a range."""
    at = {name: number for number, name in enumerate(order)}
    runs: list[list[str]] = []
    for name in members:
        if runs and at[name] == at[runs[-1][-1]] + 1:
            runs[-1].append(name)
        else:
            runs.append([name])
    said = [run[0] if len(run) == 1 else ", ".join(run) if len(run) == 2 else f"{run[0]}..{run[-1]}" for run in runs]
    spelled = ", ".join(said)
    if len(runs) <= 3:
        return spelled, spelled
    return f"{members[0]}, {members[1]}, …, {members[-1]}", spelled


def _both(one: bool | None, other: bool | None) -> bool | None:
    if one is None or other is None:
        return None
    return one and other


def _natural(names: Iterable[str]) -> list[str]:
    """ns2 before ns10."""
    return sorted(names, key=lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)])
