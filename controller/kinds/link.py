"""Links: veth pairs, bridges, dummy, vlan, macvlan, ipvlan, and existing `device`s.
Key: (netns, name). netlab creates, changes and deletes only links it made
(marked with the ifalias `netlab`, and in the ledger); of a `device` it changes
only the attributes the file declares and never deletes it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from netlab.controller.backends.netlink import NETLAB_LINK_ALIAS, ObservedLink
from netlab.controller.changes import Action, AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import (
    Decided,
    KernelReader,
    LinkKey,
    PlanContext,
    Planned,
    ShowContext,
    Shown,
)
from netlab.state.ledger import Entry
from netlab.state.link_types import LINK_TYPES, TYPE_OF_KIND
from netlab.state.model import Link, Origin, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "link"
# A `device` netlab changed: the ledger keeps the value of each attribute it
# changed as it was before, given back when the device leaves the files.
DEVICE_KIND = "device"

# What the kernel reports as IFLA_INFO_KIND for each type of the file format.
KERNEL_KIND = {name: link_type.kind for name, link_type in LINK_TYPES.items() if link_type.kind}


@dataclass
class _Made:
    """The links this plan has decided so far to create and to delete: what the
    links planned after them look at (a peer whose veth is created, a port whose
    master is made anew). Handed on, frozen, as the kind's `Decided`."""

    created: set[LinkKey] = field(default_factory=set)
    removed: set[LinkKey] = field(default_factory=set)


class LinkKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        wanted = {link.key: link for link in ctx.desired.links}
        changes: list[Change] = []
        made = _Made()
        ordered = sorted(wanted.values(), key=lambda link: (LINK_TYPES[link.type].order, _depth(link, wanted)))
        # veth ends first, so that a peer knows whether its pair is being created
        for link in ordered:
            if link.type != "veth-peer":
                changes.extend(self._plan_link(ctx, made, link, wanted))
        for link in ordered:
            if link.type == "veth-peer":
                changes.extend(self._plan_peer(ctx, made, link))
        changes.extend(self._plan_removals(ctx, made, wanted))
        changes.extend(self._plan_give_backs(ctx, made, wanted))
        decided = Decided(created_links=frozenset(made.created), removed_links=frozenset(made.removed))
        return Planned(tuple(changes), decided)

    def show(self, view: ShowContext) -> Shown:
        """The interfaces, with their addresses: netlab's, the declared ones, on
        the host the links that are ports of those or sit on them (someone's
        link on a managed bridge), and in a namespace shown every link but lo. A
        veth's peer is shown under its `peer`, as the files declare it."""
        declared = {link.key: link for link in view.desired.links}
        interfaces: list[dict[str, Any]] = []
        peer_ends: dict[LinkKey, dict[str, Any]] = {}
        for netns in view.netns_shown:
            dump = view.kernel.dump(netns)
            addresses: dict[str, list[str]] = {}
            for address in dump.addresses:
                if not address.kernel_made and address.interface != "lo":
                    addresses.setdefault(address.interface, []).append(address.address)
            managed = {
                observed.name
                for observed in dump.links
                if observed.marked
                or view.ledger.owns(KIND, (netns, observed.name))
                or (netns, observed.name) in declared
            }
            for observed in dump.links:
                key = (netns, observed.name)
                owned = observed.marked or view.ledger.owns(KIND, key)
                parent = _parent_name(view.kernel, observed)
                on_managed = observed.master in managed or parent in managed
                if observed.name == "lo" or (netns is None and observed.name not in managed and not on_managed):
                    continue
                entry = _shown_link(observed, declared.get(key), addresses.get(observed.name), owned, parent)
                if entry["type"] == "veth-peer":
                    peer_ends[key] = entry  # shown under its veth's `peer`, as it is declared
                else:
                    interfaces.append(entry)
        for entry in interfaces:
            peer = entry.get("peer")
            found = peer_ends.pop((peer.get("netns"), peer["name"]), None) if peer else None
            if peer is not None and found is not None:
                peer.update((name, value) for name, value in found.items() if name not in _NOT_OF_A_PEER)
        for found in peer_ends.values():  # its veth end is not where the files put it
            found.pop("peer", None)
            interfaces.append({**found, "type": "device"})
        return Shown({"interfaces": interfaces})

    # -- declared links -------------------------------------------------------------

    def _owned(self, ctx: PlanContext, observed: ObservedLink) -> bool:
        return observed.marked or ctx.ledger.owns(KIND, (observed.netns, observed.name))

    def _plan_link(self, ctx: PlanContext, made: _Made, link: Link, wanted: dict[LinkKey, Link]) -> list[Change]:
        observed = ctx.observed_link(link.netns, link.name)
        where = f"{netns_label(link.netns)}/{link.name}"
        if link.type == "device":
            if observed is None:
                ctx.refuse(
                    link.origin,
                    f"interfaces.{link.name}",
                    f"device {where} does not exist: `type: device` manages a link that is "
                    "already there; create it first, fix the name or netns, or choose the type "
                    "netlab should create",
                )
                return []
            return _modify_device(ctx, made, link, observed)
        if not self._parent_is_there(ctx, link, wanted):
            return []
        if observed is None:
            changes = [_create(link, made)]
            if link.type == "veth":
                changes.extend(self._clear_stale_peer(ctx, made, link))
            return changes
        if not self._owned(ctx, observed):
            ctx.refuse(
                link.origin,
                f"interfaces.{link.name}",
                f"a link named {where} exists already and was not created by netlab; "
                "netlab will not take it over: remove it, choose another name, or declare it "
                "`type: device` to manage its attributes",
            )
            return []
        reason = self._replace_reason(ctx, made, link, observed)
        if reason:
            return [_create(link, made, replacing=observed, reason=reason)]
        return _modify(made, link, observed)

    def _parent_is_there(self, ctx: PlanContext, link: Link, wanted: dict[LinkKey, Link]) -> bool:
        """A link that sits on a parent needs the parent in the host: declared, or
        present and not netlab's own undeclared link (which this pass removes).
        Refused here, with the file and line, rather than by the kernel mid-pass."""
        key = LINK_TYPES[link.type].parent
        if key is None or link.parent is None or (None, link.parent) in wanted:
            return True
        found = ctx.kernel.dump(None).link(link.parent)
        if found is not None and not (ctx.in_scope(None) and self._owned(ctx, found)):
            return True
        why = "does not exist" if found is None else "is netlab's and no longer declared, so this pass removes it"
        ctx.refuse(
            link.origin,
            f"interfaces.{link.name}.{key}",
            f"{key} host/{link.parent} of {netns_label(link.netns)}/{link.name} {why}: "
            f"declare it, create it first, or fix `{key}`",
        )
        return False

    def _replace_reason(self, ctx: PlanContext, made: _Made, link: Link, observed: ObservedLink) -> str:
        """Why an owned link must be deleted and created again: attributes that the
        kernel cannot change on a live link (its type, a veth's peer, a parent, the
        creation attributes of its type), or a parent made anew (the kernel
        deletes a link with its parent)."""
        if observed.kind != KERNEL_KIND[link.type]:
            return f"replace: type {observed.kind} -> {KERNEL_KIND[link.type]}"
        if link.type == "veth":
            assert link.peer_name is not None
            peer = ctx.observed_link(link.peer_netns, link.peer_name)
            if peer is None or peer.kind != "veth":
                return f"replace: its peer is not {netns_label(link.peer_netns)}/{link.peer_name}"
        link_type = LINK_TYPES[link.type]
        if link_type.parent is not None:
            if (None, link.parent) in made.created:
                return f"replace: its {link_type.parent} host/{link.parent} is created anew"
            parent = _parent_name(ctx.kernel, observed)
            if parent != link.parent:
                return f"replace: {link_type.parent} {parent or '(none)'} -> {link.parent}"
        for attribute in link_type.attributes:
            current, desired = attribute.from_kernel(observed.datum(attribute.kernel)), attribute.declared(link)
            if attribute.differs(link, current) and attribute.needs_replace(current, desired):
                return f"replace: {attribute.key} {current} -> {desired}"
        return ""

    def _clear_stale_peer(self, ctx: PlanContext, made: _Made, link: Link) -> list[Change]:
        """A veth about to be created whose peer name is still taken by a link
        netlab made earlier: remove that one first, or the creation fails."""
        assert link.peer_name is not None
        stale = ctx.observed_link(link.peer_netns, link.peer_name)
        if stale is None:
            return []
        if not self._owned(ctx, stale):
            ctx.refuse(
                link.origin,
                f"interfaces.{link.name}.peer",
                f"the peer name {netns_label(link.peer_netns)}/{link.peer_name} is taken by a "
                "link netlab did not create: choose another peer name or remove that link",
            )
            return []
        made.removed.add((stale.netns, stale.name))
        return [_remove(stale, note="its name is needed for a new veth peer")]

    def _plan_peer(self, ctx: PlanContext, made: _Made, peer: Link) -> list[Change]:
        if (peer.peer_netns, peer.peer_name) in made.created:
            made.created.add(peer.key)
            return [_created_with_pair(peer)]
        observed = ctx.observed_link(peer.netns, peer.name)
        if observed is None:
            # its veth exists but this end does not: the veth is being replaced
            # (planned above), or the veth was refused, which is reported already
            return []
        return _modify(made, peer, observed)

    # -- links no longer declared ---------------------------------------------------

    def _plan_removals(self, ctx: PlanContext, made: _Made, wanted: dict[LinkKey, Link]) -> list[Change]:
        """The links of each namespace that leave the files go in one write
        (`Netlink.links_del`): a thousand veths on a bridge in about a second,
        not 25 (benchmarks/RESULTS.md, removal)."""
        changes = []
        for netns in ctx.managed_netns():
            if netns in ctx.decided.removed_namespaces:
                continue
            leaving = []
            for observed in ctx.kernel.dump(netns).links:
                key = (netns, observed.name)
                if key in wanted or key in made.removed or not self._owned(ctx, observed):
                    continue
                made.removed.add(key)
                leaving.append(observed)
            if leaving:
                step = _delete_all_step(netns, [observed.name for observed in leaving])
                changes += [_remove(observed, step=step) for observed in leaving]
        return changes

    def _plan_give_backs(self, ctx: PlanContext, made: _Made, wanted: dict[LinkKey, Link]) -> list[Change]:
        """Devices netlab changed that left the files get back the values they had
        before (the device itself stays); in a namespace this pass removes,
        nothing is given back."""
        changes = []
        for key in ctx.owned_keys(DEVICE_KIND):
            netns, name = key
            if key in wanted or netns in ctx.decided.removed_namespaces:
                continue
            observed = ctx.kernel.dump(netns).link(name) if ctx.kernel.has_netns(netns) else None
            changes.append(_give_back(ctx, made, key, observed, ctx.ledger.get(DEVICE_KIND, key) or {}))
        return changes


# what of a veth peer's own entry is not shown under its veth's `peer`
_NOT_OF_A_PEER = ("name", "netns", "type", "peer", "owned")


def _shown_link(
    observed: ObservedLink, declared: Link | None, addresses: list[str] | None, owned: bool, parent: str | None
) -> dict[str, Any]:
    """A link as `netlab show` gives it: in the file format, as the kernel reports
    it (its type from the kernel's kind, its parent and the attributes of its
    type), a link netlab neither made nor was told of being a device that exists."""
    entry: dict[str, Any] = {"name": observed.name}
    if observed.netns is not None:
        entry["netns"] = observed.netns
    entry["type"] = _shown_type(observed, declared, owned)
    link_type = LINK_TYPES.get(entry["type"])
    if link_type is not None and link_type.parent is not None and parent is not None:
        entry[link_type.parent] = parent
    if link_type is not None:
        entry.update(link_type.observed_options(observed.datum))
    entry.update(state=observed.state, mtu=observed.mtu, mac=observed.mac)
    if observed.master:
        entry["master"] = observed.master
    if addresses:
        entry["addresses"] = addresses
    if declared is not None and declared.peer_name:
        entry["peer"] = {"name": declared.peer_name}
        if declared.peer_netns is not None:
            entry["peer"]["netns"] = declared.peer_netns
    entry["owned"] = owned
    return entry


def _shown_type(observed: ObservedLink, declared: Link | None, owned: bool) -> str:
    if declared is not None and (declared.type == "device" or observed.kind == KERNEL_KIND.get(declared.type)):
        return declared.type  # a veth's end keeps its side, a device stays one
    if not owned or observed.kind not in TYPE_OF_KIND:
        return "device"
    return TYPE_OF_KIND[observed.kind]


def _parent_name(kernel: KernelReader, observed: ObservedLink) -> str | None:
    """The name of the link an observed one sits on (IFLA_LINK, or its kind's
    own attribute). A parent in another namespace is looked for in the host's,
    where netlab makes parents; a host link's parent elsewhere is none netlab
    would name."""
    if observed.link_index is None or observed.kind not in _HAS_PARENT:
        return None
    if observed.link_netnsid is None:
        parent = kernel.dump(observed.netns).link_at(observed.link_index)
    elif observed.netns is None:
        return None
    else:
        parent = kernel.dump(None).link_at(observed.link_index)
    return parent.name if parent is not None else None


# the kernel kinds whose IFLA_LINK (or own attribute) names a parent, not a veth's peer
_HAS_PARENT = frozenset(t.kind for t in LINK_TYPES.values() if t.parent is not None)


def _depth(link: Link, wanted: dict[LinkKey, Link]) -> int:
    """How many declared links `link` sits on, one on another: a parent is
    created before the links on it."""
    depth, seen = 0, {link.key}
    while link.parent is not None and (None, link.parent) in wanted:
        link = wanted[(None, link.parent)]
        if link.key in seen:
            break
        seen.add(link.key)
        depth += 1
    return depth


def _attribute_changes(link: Link, observed: ObservedLink, master_is_new: bool = False) -> list[AttributeChange]:
    """The declared attributes that differ. A master this pass creates anew (a
    bridge replaced) lost its ports with the old one: they join it again."""
    found = []
    if link.mtu is not None and link.mtu != observed.mtu:
        found.append(AttributeChange("mtu", observed.mtu, link.mtu))
    if link.mac is not None and link.mac != (observed.mac or "").lower():
        found.append(AttributeChange("mac", observed.mac, link.mac))
    # A link netlab made has no master unless one is declared; a device's master
    # is managed only when declared.
    if link.master is not None and master_is_new:
        found.append(AttributeChange("master", None, link.master))
    elif (link.master is not None or link.created_by_netlab) and link.master != observed.master:
        found.append(AttributeChange("master", observed.master, link.master))
    if link.state is not None and link.state != observed.state:
        found.append(AttributeChange("state", observed.state, link.state))
    return found


def _attribute_changes_in(made: _Made, link: Link, observed: ObservedLink) -> list[AttributeChange]:
    master_is_new = link.master is not None and (link.netns, link.master) in made.created
    return _attribute_changes(link, observed, master_is_new)


_NETLINK_ATTRIBUTE = {"mtu": "mtu", "mac": "address", "master": "master", "state": "state", "alias": "ifalias"}


def _set_steps(key: LinkKey, attributes: list[AttributeChange], fresh: bool = False) -> list[Step]:
    """SET_LINK for mtu, mac, master, alias and going down; LINK_UP (after
    addresses) for going up, so routes that need the link find it ready. The
    undo of each puts the values seen before back, except on a `fresh` link,
    whose creation is undone as a whole."""
    netns, name = key
    settings: dict[str, Any] = {}
    previous: dict[str, Any] = {}
    up = False
    for attribute in attributes:
        if attribute.name == "state" and attribute.desired == "up":
            up = True
            continue
        settings[_NETLINK_ATTRIBUTE[attribute.name]] = attribute.desired
        # an alias is taken away by setting it empty
        no_alias = attribute.name == "alias" and attribute.current is None
        previous[_NETLINK_ATTRIBUTE[attribute.name]] = "" if no_alias else attribute.current
    steps = []
    where = f"{netns_label(netns)}/{name}"

    def setter(values: dict[str, Any]) -> Callable[[Kernel], None] | None:
        if fresh or not values:
            return None
        return lambda kernel: kernel.netlink.link_set(netns, name, **values)

    if settings:
        steps.append(
            Step(
                Phase.SET_LINK,
                f"set {', '.join(settings)} of {where}",
                lambda kernel: kernel.netlink.link_set(netns, name, **settings),
                undo=setter({k: v for k, v in previous.items() if v is not None or k == "master"}),
            )
        )
    if up:
        steps.append(
            Step(
                Phase.LINK_UP,
                f"set {where} up",
                lambda kernel: kernel.netlink.link_set(netns, name, state="up"),
                undo=setter({"state": "down"}),
            )
        )
    return steps


def _desired_attributes(link: Link) -> list[AttributeChange]:
    """The attributes a freshly created link must be given (it starts down, no master)."""
    return _attribute_changes(
        link,
        ObservedLink(link.netns, link.name, 0, None, "down", 0, None, None, None, None, None),
    )


def _modify(made: _Made, link: Link, observed: ObservedLink) -> list[Change]:
    attributes = _attribute_changes_in(made, link, observed)
    if link.created_by_netlab and not observed.marked:
        # netlab's own link (the ledger says so) that lost its mark, or never got
        # it (a pass killed between the creation and the alias): without the mark
        # a lost ledger would leave it orphaned
        attributes.append(AttributeChange("alias", observed.alias, NETLAB_LINK_ALIAS))
    in_place = _creation_attributes_in_place(link, observed)
    if not attributes and not in_place:
        return []
    steps = _set_steps(link.key, attributes)
    if in_place:
        steps.insert(0, _set_data_step(link, observed, in_place))
    return [_change(KIND, "~", link.key, in_place + attributes, origin=link.origin, steps=steps)]


def _creation_attributes_in_place(link: Link, observed: ObservedLink) -> list[AttributeChange]:
    """Creation attributes that differ and that the kernel changes on the live
    link (those it cannot are a replace, decided before)."""
    found = []
    for attribute in LINK_TYPES[link.type].attributes:
        current, desired = attribute.from_kernel(observed.datum(attribute.kernel)), attribute.declared(link)
        if attribute.differs(link, current):
            found.append(AttributeChange(attribute.key, current, desired))
    return found


def _set_data_step(link: Link, observed: ObservedLink, changes: list[AttributeChange]) -> Step:
    """One request that changes creation attributes in place (IFLA_INFO_DATA),
    undone by one that puts the values seen back."""
    netns, name = link.key
    link_type = LINK_TYPES[link.type]
    by_key = {attribute.key: attribute for attribute in link_type.attributes}
    wanted = {by_key[c.name].kernel: by_key[c.name].to_kernel(c.desired) for c in changes}
    seen = {by_key[c.name].kernel: by_key[c.name].to_kernel(c.current) for c in changes}
    return Step(
        Phase.SET_LINK,
        f"set {', '.join(c.name for c in changes)} of {netns_label(netns)}/{name}",
        lambda kernel: kernel.netlink.link_set(netns, name, info_data=(link_type.kind, wanted)),
        undo=lambda kernel: kernel.netlink.link_set(netns, name, info_data=(link_type.kind, seen)),
    )


# what a device's attributes were, as the ledger keeps them, and whether the
# file still declares each
_ORIGINAL = {
    "mtu": lambda observed: observed.mtu,
    "mac": lambda observed: observed.mac,
    "master": lambda observed: observed.master,
    "state": lambda observed: observed.state,
}
_DECLARED = {
    "mtu": lambda link: link.mtu is not None,
    "mac": lambda link: link.mac is not None,
    "master": lambda link: link.master is not None,
    "state": lambda link: link.state is not None,
}


def _modify_device(ctx: PlanContext, made: _Made, link: Link, observed: ObservedLink) -> list[Change]:
    """A `device`'s declared attributes that differ. The value each had before
    netlab first changed it goes into the ledger ahead of the write (as a
    sysctl's does); an attribute the file no longer declares gets it back."""
    attributes = _attribute_changes_in(made, link, observed)
    recorded = ctx.ledger.get(DEVICE_KIND, link.key) or {}
    undeclared = {name: value for name, value in recorded.items() if name in _DECLARED and not _DECLARED[name](link)}
    if not attributes and not undeclared:
        return []
    given_back, notes = _given_back(ctx, made, link.netns, observed, undeclared)
    if undeclared:
        notes.append(
            f"no longer managed: {', '.join(undeclared)}" + (" (given back as before netlab)" if given_back else "")
        )
    originals = {a.name: _ORIGINAL[a.name](observed) for a in attributes if a.name not in recorded}
    kept = {name: value for name, value in recorded.items() if name not in undeclared}
    changed = attributes + given_back
    return [
        _change(
            DEVICE_KIND,
            "~",
            link.key,
            changed,
            ", ".join(notes),
            link.origin,
            _set_steps(link.key, changed),
            record=cast(Entry, {**kept, **originals}),
            drops=tuple(undeclared),
        )
    ]


def _given_back(
    ctx: PlanContext, made: _Made, netns: str | None, observed: ObservedLink, originals: Mapping[str, Any]
) -> tuple[list[AttributeChange], list[str]]:
    """The changes that put back a device's original values, where they differ
    from now; and what cannot be (a master that is gone, or goes in this pass)."""
    attributes, notes = [], []
    for attribute, original in originals.items():
        if attribute not in _ORIGINAL or _ORIGINAL[attribute](observed) == original:
            continue
        if attribute == "master" and original is not None:
            if ctx.kernel.dump(netns).link(original) is None or (netns, original) in made.removed:
                notes.append(f"its master {original} is gone")
                continue
        if attribute == "mac" and original is None:
            continue
        attributes.append(AttributeChange(attribute, _ORIGINAL[attribute](observed), original))
    return attributes, notes


def _give_back(ctx: PlanContext, made: _Made, key: LinkKey, observed: ObservedLink | None, originals: Entry) -> Change:
    """Puts back what a device that left the files had before netlab changed it,
    and strikes it from the ledger. Shown as `-` (netlab no longer manages it),
    as a sysctl's is; the device itself is never deleted."""
    attributes: list[AttributeChange] = []
    notes = ["gone already"]
    if observed is not None:
        attributes, notes = _given_back(ctx, made, key[0], observed, originals)
    notes.append("given back as before netlab (the device stays)" if attributes else "no longer managed")
    return _change(DEVICE_KIND, "-", key, attributes, ", ".join(notes), steps=_set_steps(key, attributes))


def _create(link: Link, made: _Made, replacing: ObservedLink | None = None, reason: str = "") -> Change:
    netns, name = link.key
    made.created.add(link.key)
    if link.type == "veth":
        made.created.add((link.peer_netns, link.peer_name or ""))

    def create(kernel: Kernel) -> None:
        kernel.netlink.link_add(
            netns,
            name,
            KERNEL_KIND[link.type],
            peer=(link.peer_netns, link.peer_name) if link.type == "veth" and link.peer_name else None,
            parent=(None, link.parent) if link.parent else None,
            parent_in=LINK_TYPES[link.type].parent_in,
            data=LINK_TYPES[link.type].kernel_data(link),
        )

    where = f"{netns_label(netns)}/{name}"
    steps = [Step(Phase.CREATE_LINK, f"create {link.type} {where}", create, undo=_deleter(netns, name))]
    if replacing is not None:
        steps.insert(0, _delete_step(netns, name, f"delete {where} to create it anew"))
    steps.extend(_set_steps(link.key, _desired_attributes(link), fresh=True))
    detail: str = link.type
    if link.type == "veth":
        detail += f", peer {netns_label(link.peer_netns)}/{link.peer_name}"
    action: Action = "~" if replacing is not None else "+"
    return _change(
        KIND, action, link.key, note=reason or detail, origin=link.origin, steps=steps, record={"type": link.type}
    )


def _created_with_pair(peer: Link) -> Change:
    return _change(
        KIND,
        "+",
        peer.key,
        note=f"veth peer of {netns_label(peer.peer_netns)}/{peer.peer_name}",
        origin=peer.origin,
        steps=_set_steps(peer.key, _desired_attributes(peer), fresh=True),
        record={"type": peer.type},
    )


def _remove(observed: ObservedLink, note: str = "", step: Step | None = None) -> Change:
    netns, name = observed.netns, observed.name
    step = step or _delete_step(netns, name, f"delete link {netns_label(netns)}/{name}")
    return _change(KIND, "-", (netns, name), note=note or (observed.kind or "link"), steps=[step])


def _delete_all_step(netns: str | None, names: list[str]) -> Step:
    """One write deleting these links of a namespace, for each of their changes."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    describe = (
        f"delete link {netns_label(netns)}/{names[0]}"
        if len(names) == 1
        else (f"delete {len(names)} links of {netns_label(netns)} ({shown})")
    )

    def delete(kernel: Kernel) -> None:
        kernel.netlink.links_del(netns, names)

    return Step(Phase.DELETE_LINK, describe, delete, irreversible=_IRREVERSIBLE)


def _deleter(netns: str | None, name: str) -> Callable[[Kernel], None]:
    def delete(kernel: Kernel) -> None:
        kernel.netlink.link_del(netns, name)

    return delete


_IRREVERSIBLE = "a deleted link cannot be brought back with its state"


def _delete_step(netns: str | None, name: str, describe: str) -> Step:
    return Step(Phase.DELETE_LINK, describe, _deleter(netns, name), irreversible=_IRREVERSIBLE)


def _change(
    kind: str,
    action: Action,
    key: LinkKey,
    attributes: list[AttributeChange] | None = None,
    note: str = "",
    origin: Origin | None = None,
    steps: list[Step] | None = None,
    record: Entry | None = None,
    drops: tuple[str, ...] = (),
) -> Change:
    """A change of the link (or device) at `key`, as `netlab plan` shows it."""
    netns, name = key
    return Change(
        kind, action, key, netns, name, tuple(attributes or ()), note, origin, tuple(steps or ()), record, drops
    )
