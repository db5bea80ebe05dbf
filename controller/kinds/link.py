"""Links: veth pairs, bridges, dummy, vlan, macvlan, ipvlan, and existing `device`s.
Key: (netns, name). netlab creates, changes and deletes only links it made
(marked with the ifalias `netlab`, and in the ledger); of a `device` it changes
only the attributes the file declares and never deletes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netlab.controller.backends.netlink import ObservedLink
from netlab.controller.changes import AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext
from netlab.state.model import Link, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "link"

# What the kernel reports as IFLA_INFO_KIND for each type of the file format.
KERNEL_KIND = {
    "veth": "veth",
    "veth-peer": "veth",
    "bridge": "bridge",
    "dummy": "dummy",
    "vlan": "vlan",
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
}

# Creation order inside the CREATE_LINK phase: a parent before its children.
_CREATION_ORDER = {"bridge": 0, "dummy": 0, "veth": 1, "veth-peer": 1, "vlan": 2, "macvlan": 2, "ipvlan": 2}

LinkKey = tuple[str | None, str]


class LinkKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> list[Change]:
        wanted = {link.key: link for link in ctx.desired.links}
        changes: list[Change] = []
        ordered = sorted(wanted.values(), key=lambda link: _CREATION_ORDER.get(link.type, 0))
        # veth ends first, so that a peer knows whether its pair is being created
        for link in ordered:
            if link.type != "veth-peer":
                changes.extend(self._plan_link(ctx, link))
        for link in ordered:
            if link.type == "veth-peer":
                changes.extend(self._plan_peer(ctx, link))
        changes.extend(self._plan_removals(ctx, wanted))
        return changes

    # -- declared links -------------------------------------------------------------

    def _observed(self, ctx: PlanContext, netns: str | None, name: str) -> ObservedLink | None:
        if netns is not None and netns in ctx.created_namespaces:
            return None
        return ctx.kernel.dump(netns).link(name)

    def _owned(self, ctx: PlanContext, observed: ObservedLink) -> bool:
        return observed.marked or ctx.ledger.owns(KIND, (observed.netns, observed.name))

    def _plan_link(self, ctx: PlanContext, link: Link) -> list[Change]:
        observed = self._observed(ctx, link.netns, link.name)
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
            return _modify(link, observed)
        if observed is None:
            changes = [_create(link, ctx)]
            if link.type == "veth":
                changes.extend(self._clear_stale_peer(ctx, link))
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
        reason = self._replace_reason(ctx, link, observed)
        if reason:
            return [_create(link, ctx, replacing=observed, reason=reason)]
        return _modify(link, observed)

    def _replace_reason(self, ctx: PlanContext, link: Link, observed: ObservedLink) -> str:
        """Why an owned link must be deleted and created again: attributes that the
        kernel cannot change on a live link."""
        if observed.kind != KERNEL_KIND[link.type]:
            return f"replace: type {observed.kind} -> {KERNEL_KIND[link.type]}"
        if link.type == "veth":
            assert link.peer_name is not None
            peer = self._observed(ctx, link.peer_netns, link.peer_name)
            if peer is None or peer.kind != "veth":
                return f"replace: its peer is not {netns_label(link.peer_netns)}/{link.peer_name}"
        return ""

    def _clear_stale_peer(self, ctx: PlanContext, link: Link) -> list[Change]:
        """A veth about to be created whose peer name is still taken by a link
        netlab made earlier: remove that one first, or the creation fails."""
        assert link.peer_name is not None
        stale = self._observed(ctx, link.peer_netns, link.peer_name)
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
        ctx.removed_links.add((stale.netns, stale.name))
        return [_remove(stale, note="its name is needed for a new veth peer")]

    def _plan_peer(self, ctx: PlanContext, peer: Link) -> list[Change]:
        if (peer.peer_netns, peer.peer_name) in ctx.created_links:
            ctx.created_links.add(peer.key)
            return [_created_with_pair(peer)]
        observed = self._observed(ctx, peer.netns, peer.name)
        if observed is None:
            # its veth exists but this end does not: the veth is being replaced
            # (planned above), or the veth was refused, which is reported already
            return []
        return _modify(peer, observed)

    # -- links no longer declared ---------------------------------------------------

    def _plan_removals(self, ctx: PlanContext, wanted: dict[LinkKey, Link]) -> list[Change]:
        changes = []
        for netns in ctx.managed_netns():
            if netns in ctx.removed_namespaces:
                continue
            for observed in ctx.kernel.dump(netns).links:
                key = (netns, observed.name)
                if key in wanted or key in ctx.removed_links or not self._owned(ctx, observed):
                    continue
                ctx.removed_links.add(key)
                changes.append(_remove(observed))
        return changes


def _attribute_changes(link: Link, observed: ObservedLink) -> list[AttributeChange]:
    found = []
    if link.mtu is not None and link.mtu != observed.mtu:
        found.append(AttributeChange("mtu", observed.mtu, link.mtu))
    if link.mac is not None and link.mac != (observed.mac or "").lower():
        found.append(AttributeChange("mac", observed.mac, link.mac))
    # A link netlab made has no master unless one is declared; a device's master
    # is managed only when declared.
    if (link.master is not None or link.created_by_netlab) and link.master != observed.master:
        found.append(AttributeChange("master", observed.master, link.master))
    if link.state is not None and link.state != observed.state:
        found.append(AttributeChange("state", observed.state, link.state))
    return found


_NETLINK_ATTRIBUTE = {"mtu": "mtu", "mac": "address", "master": "master", "state": "state"}


def _set_steps(link: Link, attributes: list[AttributeChange], fresh: bool = False) -> list[Step]:
    """SET_LINK for mtu, mac, master and going down; LINK_UP (after addresses) for
    going up, so routes that need the link find it ready. The undo of each puts
    the values seen before back, except on a `fresh` link, whose creation is
    undone as a whole."""
    netns, name = link.key
    settings: dict[str, Any] = {}
    previous: dict[str, Any] = {}
    up = False
    for attribute in attributes:
        if attribute.name == "state" and attribute.desired == "up":
            up = True
            continue
        settings[_NETLINK_ATTRIBUTE[attribute.name]] = attribute.desired
        previous[_NETLINK_ATTRIBUTE[attribute.name]] = attribute.current
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


def _modify(link: Link, observed: ObservedLink) -> list[Change]:
    attributes = _attribute_changes(link, observed)
    if not attributes:
        return []
    return [
        Change(
            kind=KIND,
            action="~",
            key=link.key,
            netns=link.netns,
            name=link.name,
            attributes=tuple(attributes),
            origin=link.origin,
            steps=tuple(_set_steps(link, attributes)),
        )
    ]


def _create(link: Link, ctx: PlanContext, replacing: ObservedLink | None = None, reason: str = "") -> Change:
    netns, name = link.key
    ctx.created_links.add(link.key)
    if link.type == "veth":
        ctx.created_links.add((link.peer_netns, link.peer_name or ""))

    def create(kernel: Kernel) -> None:
        kernel.netlink.link_add(
            netns,
            name,
            KERNEL_KIND[link.type],
            peer=(link.peer_netns, link.peer_name) if link.type == "veth" and link.peer_name else None,
            parent=(None, link.parent) if link.parent else None,
            vlan_id=link.vlan_id,
            mode=link.mode,
        )

    def delete(kernel: Kernel) -> None:
        kernel.netlink.link_del(netns, name)

    where = f"{netns_label(netns)}/{name}"
    steps = [Step(Phase.CREATE_LINK, f"create {link.type} {where}", create, undo=delete)]
    if replacing is not None:
        steps.insert(
            0,
            Step(
                Phase.DELETE_LINK,
                f"delete {where} to create it anew",
                delete,
                irreversible="a deleted link cannot be brought back with its state",
            ),
        )
    steps.extend(_set_steps(link, _desired_attributes(link), fresh=True))
    detail = link.type
    if link.type == "veth":
        detail += f", peer {netns_label(link.peer_netns)}/{link.peer_name}"
    return Change(
        kind=KIND,
        action="~" if replacing is not None else "+",
        key=link.key,
        netns=netns,
        name=name,
        note=reason or detail,
        origin=link.origin,
        steps=tuple(steps),
        record={"type": link.type},
    )


def _created_with_pair(peer: Link) -> Change:
    return Change(
        kind=KIND,
        action="+",
        key=peer.key,
        netns=peer.netns,
        name=peer.name,
        note=f"veth peer of {netns_label(peer.peer_netns)}/{peer.peer_name}",
        origin=peer.origin,
        steps=tuple(_set_steps(peer, _desired_attributes(peer), fresh=True)),
        record={"type": peer.type},
    )


def _remove(observed: ObservedLink, note: str = "") -> Change:
    netns, name = observed.netns, observed.name

    def delete(kernel: Kernel) -> None:
        kernel.netlink.link_del(netns, name)

    return Change(
        kind=KIND,
        action="-",
        key=(netns, name),
        netns=netns,
        name=name,
        note=note or (observed.kind or "link"),
        steps=(
            Step(
                Phase.DELETE_LINK,
                f"delete link {netns_label(netns)}/{name}",
                delete,
                irreversible="a deleted link cannot be brought back with its state",
            ),
        ),
    )
