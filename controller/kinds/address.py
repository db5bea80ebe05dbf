"""IP addresses on links. Key: (netns, interface, address/prefix). netlab removes
only addresses its ledger says it added; kernel-made ones (IPv6 link-local) and
everyone else's are left alone."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from netlab.controller.backends.netlink import ObservedAddress, ObservedRoute
from netlab.controller.changes import Change, Phase, Step
from netlab.controller.kinds.contract import Decided, LinkKey, PlanContext, Planned, ShowContext, Shown
from netlab.controller.kinds.putting_back import put_back_address, put_back_route
from netlab.state.model import Address, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "address"

AddressKey = tuple[str | None, str, str]


class AddressKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        wanted = {address.key: address for address in ctx.desired.addresses}
        present = self._observe(ctx, wanted)
        removed = {key for key in ctx.owned_keys(KIND) if key not in wanted and key in present and _stays(ctx, key)}
        changes: list[Change] = []
        losing_ipv4: set[LinkKey] = set()
        for key in sorted(removed, key=repr):
            routes: list[ObservedRoute] = []
            if present[key].family == 4:
                losing_ipv4.add(key[:2])
                routes = [r for r in ctx.kernel.dump(key[0]).routes if r.dev == key[1] and r.family == 4]
            changes.append(_remove(present[key], _kept_in_subnet(present[key], present, removed), routes))
        for key, address in wanted.items():
            if key not in present:
                changes.append(_add(address))
        return Planned(tuple(changes), Decided(losing_ipv4=frozenset(losing_ipv4)))

    def show(self, view: ShowContext) -> Shown:
        return Shown()  # the addresses are shown on their interfaces (see `LinkKind.show`)

    def _observe(self, ctx: PlanContext, wanted: dict[AddressKey, Address]) -> dict[AddressKey, ObservedAddress]:
        """Addresses now on the links that matter, leaving out links this pass
        creates anew (whatever is on them now will be gone)."""
        # a namespace this pass removes is not read: its addresses go with it
        namespaces = {key[0] for key in wanted} | {
            key[0] for key in ctx.owned_keys(KIND) if key[0] not in ctx.decided.removed_namespaces
        }
        present = {}
        for netns in namespaces:
            for observed in ctx.kernel.dump(netns).addresses:
                if observed.kernel_made or ctx.decided.link_is_fresh(netns, observed.interface):
                    continue
                present[(netns, observed.interface, observed.address)] = observed
        return present


def _stays(ctx: PlanContext, key: AddressKey) -> bool:
    """Whether the address's link and namespace stay in this pass (an address of
    one that goes is removed with it)."""
    netns, interface, _ = key
    return netns not in ctx.decided.removed_namespaces and (netns, interface) not in ctx.decided.removed_links


def _kept_in_subnet(
    gone: ObservedAddress, present: dict[AddressKey, ObservedAddress], removed: set[AddressKey]
) -> list[ObservedAddress]:
    """Removing a primary IPv4 address makes the kernel remove the secondaries of
    its subnet too (promote_secondaries is off by default): those that should
    stay, netlab's or anyone's, are put back in the same pass."""
    if gone.family != 4 or gone.secondary:
        return []
    subnet = ipaddress.ip_interface(gone.address).network
    return [
        other
        for key, other in present.items()
        if key not in removed
        and other.netns == gone.netns
        and other.interface == gone.interface
        and other.family == 4
        and ipaddress.ip_interface(other.address).network == subnet
        and other.address != gone.address
    ]


def _add(address: Address) -> Change:
    netns, interface, value = address.key

    def add(kernel: Kernel) -> None:
        kernel.netlink.addr_add(netns, interface, value)

    return Change(
        kind=KIND,
        action="+",
        key=address.key,
        netns=netns,
        name=f"{interface} {value}",
        origin=address.origin,
        steps=(
            Step(
                Phase.ADD_ADDRESS,
                f"add {value} to {netns_label(netns)}/{interface}",
                add,
                undo=lambda kernel: kernel.netlink.addr_del(netns, interface, value),
            ),
        ),
        record={},
    )


def _remove(address: ObservedAddress, restore: list[ObservedAddress], routes: list[ObservedRoute]) -> Change:
    """Removes an address. Its undo puts the address back and then the routes
    through its link, which the kernel flushes when a link loses its last IPv4
    address."""
    netns, interface, value = address.netns, address.interface, address.address

    def remove(kernel: Kernel) -> None:
        kernel.netlink.addr_del(netns, interface, value)

    def undo(kernel: Kernel) -> None:
        put_back_address(kernel, netns, interface, value)
        for route in routes:
            put_back_route(kernel, route)

    def put_back(kernel: Kernel) -> None:
        for kept in restore:
            put_back_address(kernel, netns, interface, kept.address)

    steps = [
        Step(
            Phase.DELETE_ADDRESS,
            f"remove {value} from {netns_label(netns)}/{interface}",
            remove,
            undo=undo,
        )
    ]
    if restore:
        steps.append(
            Step(
                Phase.ADD_ADDRESS,
                f"put back {', '.join(kept.address for kept in restore)} on {netns_label(netns)}/{interface}",
                put_back,
            )
        )
    return Change(
        kind=KIND,
        action="-",
        key=(netns, interface, value),
        netns=netns,
        name=f"{interface} {value}",
        steps=tuple(steps),
    )
