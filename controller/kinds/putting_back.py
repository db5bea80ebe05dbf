"""Putting back, as they were observed, kernel objects a step took away: the
undo of removing an address or a route, and of the routes the kernel flushed
with a link's last IPv4 address. Shared by the address and route kinds (not a
kind itself: the kinds stay independent of each other)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from netlab.controller.backends.netlink import ObservedRoute
from netlab.state.errors import KernelRefused

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel


def put_back_address(kernel: Kernel, netns: str | None, interface: str, address: str) -> None:
    """Adds an address that was there before, unless it is there again (the
    kernel kept it, or someone added it since): that one is left as it is."""
    _unless_there(lambda: kernel.netlink.addr_add(netns, interface, address))


def put_back_route(kernel: Kernel, route: ObservedRoute) -> None:
    """A route that was deleted (by netlab, or by the kernel with the address it
    needed) created again as it was observed, with its own protocol: an undo
    must not make someone else's route look like netlab's. A route with its key
    that is there (the kernel kept it, or someone made one since) is left alone."""
    _unless_there(lambda: write_as_seen(kernel.netlink.route_add, route))


def write_as_seen(write: Callable[..., object], route: ObservedRoute) -> None:
    """Writes the route with everything it was observed with (its protocol too),
    through `route_add` or `route_replace`."""
    write(
        route.netns,
        to=route.to,
        table=route.table,
        metric=route.metric,
        via=route.via,
        dev=route.dev,
        proto=route.proto,
    )


def _unless_there(add: Callable[[], object]) -> None:
    try:
        add()
    except KernelRefused as error:
        if error.code != errno.EEXIST:
            raise
