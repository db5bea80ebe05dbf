"""Routes, in any table of any namespace. Key: (netns, table, to, metric).
Routes netlab installs carry protocol 213 (`proto 213` in `ip route`); only
those are changed or removed, and a declared route whose key is taken by a route
of someone else is refused rather than overwritten."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from netlab.controller.backends.netlink import NETLAB_ROUTE_PROTO, RT_TABLE_MAIN, ObservedRoute
from netlab.controller.changes import Action, AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext, Planned, ShowContext, Shown
from netlab.controller.kinds.putting_back import put_back_route, write_as_seen
from netlab.state.model import Route, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "route"

RouteKey = tuple[str | None, int, str, int]


def route_name(to: str, table: int, metric: int) -> str:
    name = "default" if to in ("0.0.0.0/0", "::/0") else to
    if ":" in to and name == "default":
        name = "default6"
    if table != RT_TABLE_MAIN:
        name += f" table {table}"
    if metric:
        name += f" metric {metric}"
    return name


class RouteKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        wanted = {route.key: route for route in ctx.desired.routes}
        present = self._observe(ctx, wanted)
        changes: list[Change] = []
        for key, observed in present.items():
            if not (observed.marked or ctx.ledger.owns(KIND, key)):
                continue
            if observed.netns in ctx.decided.removed_namespaces:
                continue
            if key in wanted:
                continue  # kept, changed, or (on a link that goes) installed anew below
            changes.append(_remove(observed))
        for key, route in wanted.items():
            change = self._plan_route(ctx, route, present.get(key))
            if change is not None:
                changes.append(change)
        return Planned(tuple(changes))

    def _plan_route(self, ctx: PlanContext, route: Route, observed: ObservedRoute | None) -> Change | None:
        if observed is not None and _goes_with_its_link(ctx, observed):
            # its link is removed or created anew in this pass (a veth whose
            # peer is renamed): whatever the route is now, it will be gone
            observed = None
        if observed is None:
            self._check_gateway(ctx, route)
            self._check_dev(ctx, route)
            return _install(route, "+", ())
        if not (observed.marked or ctx.ledger.owns(KIND, route.key)):
            ctx.refuse(
                route.origin,
                f"routes.{route_name(route.to, route.table, route.metric)}",
                f"{netns_label(route.netns)} already has a route to {route.to} in table "
                f"{route.table} with metric {route.metric} that netlab did not install "
                f"(proto {observed.proto}); give yours another metric, or remove that route",
            )
            return None
        attributes = []
        if route.via is not None and route.via != observed.via:
            attributes.append(AttributeChange("via", observed.via, route.via))
        if route.dev is not None and route.dev != observed.dev:
            attributes.append(AttributeChange("dev", observed.dev, route.dev))
        if attributes:
            return _install(route, "~", tuple(attributes), before=observed)
        if route.family == 4 and (route.netns, observed.dev) in ctx.decided.losing_ipv4:
            # Removing a link's last IPv4 address (for a moment, in an edit)
            # makes the kernel flush the routes through it: install it again.
            return _install(route, "~", (), note=f"re-install: {observed.dev} loses an address", before=observed)
        return None

    def show(self, view: ShowContext) -> Shown:
        """netlab's routes on the host; in a namespace shown, every route."""
        routes = []
        for netns in view.netns_shown:
            for route in view.kernel.dump(netns).routes:
                if netns is None and route.proto != NETLAB_ROUTE_PROTO:
                    continue
                entry: dict[str, Any] = {"to": route_name(route.to, RT_TABLE_MAIN, 0).replace("default6", "default")}
                if netns is not None:
                    entry["netns"] = netns
                if route.via:
                    entry["via"] = route.via
                if route.dev:
                    entry["dev"] = route.dev
                if route.metric:
                    entry["metric"] = route.metric
                if route.table != RT_TABLE_MAIN:
                    entry["table"] = route.table
                entry["owned"] = route.proto == NETLAB_ROUTE_PROTO
                routes.append(entry)
        return Shown({"routes": routes})

    def _observe(self, ctx: PlanContext, wanted: dict[RouteKey, Route]) -> dict[RouteKey, ObservedRoute]:
        namespaces = set(ctx.managed_netns()) | {key[0] for key in wanted}
        present = {}
        for netns in namespaces:
            for observed in ctx.kernel.dump(netns).routes:
                present[(netns, observed.table, observed.to, observed.metric)] = observed
        return present

    def _check_dev(self, ctx: PlanContext, route: Route) -> None:
        if route.dev is None or any(link.key == (route.netns, route.dev) for link in ctx.desired.links):
            return
        if ctx.observed_link(route.netns, route.dev) is None:
            ctx.refuse(
                route.origin,
                f"routes.{route_name(route.to, route.table, route.metric)}",
                f"dev {route.dev} is neither declared nor present in {netns_label(route.netns)}: "
                "declare the interface or fix `dev`",
            )

    def _check_gateway(self, ctx: PlanContext, route: Route) -> None:
        """The kernel refuses a gateway outside every connected subnet ("Nexthop has
        invalid gateway"). The loader checks namespaces netlab builds; the host's
        subnets are known only here, from the files and the kernel together."""
        if route.via is None or route.netns is not None:
            return
        gateway = ipaddress.ip_address(route.via)
        if gateway.is_link_local:
            return
        prefixes = [address.address for address in ctx.desired.addresses if address.netns is None]
        prefixes += [address.address for address in ctx.kernel.dump(None).addresses]
        for prefix in prefixes:
            network = ipaddress.ip_interface(prefix).network
            if network.version == gateway.version and gateway in network:
                return
        ctx.refuse(
            route.origin,
            f"routes.{route_name(route.to, route.table, route.metric)}",
            f"gateway {route.via} is not inside any subnet of the host's addresses, so the "
            "kernel would refuse the route: add an address in its subnet, or fix `via`",
        )


def _goes_with_its_link(ctx: PlanContext, observed: ObservedRoute) -> bool:
    """Whether the pass deletes the route's link (to remove it, or to create it
    anew): the kernel then deletes the route with it."""
    if observed.dev is None:
        return False
    key = (observed.netns, observed.dev)
    return ctx.decided.link_is_fresh(*key) or key in ctx.decided.removed_links


def _install(
    route: Route,
    action: Action,
    attributes: tuple[AttributeChange, ...],
    note: str = "",
    before: ObservedRoute | None = None,
) -> Change:
    netns = route.netns
    name = route_name(route.to, route.table, route.metric)
    detail = " ".join(
        part for part in (f"via {route.via}" if route.via else "", f"dev {route.dev}" if route.dev else "") if part
    )

    def install(kernel: Kernel) -> None:
        # a new route is added: one with its key that appeared since the plan is
        # someone else's, and is refused, never taken over
        write = kernel.netlink.route_add if before is None else kernel.netlink.route_replace
        write(netns, to=route.to, table=route.table, metric=route.metric, via=route.via, dev=route.dev)

    return Change(
        kind=KIND,
        action=action,
        key=route.key,
        netns=netns,
        name=name,
        attributes=attributes,
        note=note or ("" if attributes else detail),
        origin=route.origin,
        steps=(
            Step(
                Phase.ADD_ROUTE,
                f"install route {name} in {netns_label(netns)}",
                install,
                # a route changed in place gets its gateway and link back
                undo=(lambda kernel: write_as_seen(kernel.netlink.route_replace, before))
                if before is not None
                else (
                    lambda kernel: kernel.netlink.route_del(netns, to=route.to, table=route.table, metric=route.metric)
                ),
            ),
        ),
        record={},
    )


def _remove(observed: ObservedRoute) -> Change:
    netns = observed.netns
    name = route_name(observed.to, observed.table, observed.metric)

    def remove(kernel: Kernel) -> None:
        kernel.netlink.route_del(netns, to=observed.to, table=observed.table, metric=observed.metric)

    return Change(
        kind=KIND,
        action="-",
        key=(netns, observed.table, observed.to, observed.metric),
        netns=netns,
        name=name,
        steps=(
            Step(
                Phase.DELETE_ROUTE,
                f"delete route {name} in {netns_label(netns)}",
                remove,
                undo=lambda kernel: put_back_route(kernel, observed),
            ),
        ),
    )
