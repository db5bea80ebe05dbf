"""The daemon's pass after an edit plans only the namespaces where the files changed
(`scope_of_edit`): from a kernel that matches the generation before, that plan
must be exactly the full plan, whatever the edit reaches into."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netlab.controller.backends.netlink import NETLAB_ROUTE_PROTO, ObservedAddress, ObservedRoute
from netlab.controller.kinds.link import KERNEL_KIND
from netlab.controller.planning import make_plan, scope_of_edit
from netlab.state.ledger import Ledger
from netlab.state.model import Address, DesiredState, Link, Namespace, Origin, Route, Sysctl
from tests.unit.test_planning import FakeKernel, veth_pair

HERE = Origin("/etc/netlab.d/lab.yaml", 3, 5)
MOVED = Origin("/etc/netlab.d/lab.yaml", 30, 5)


def namespace_parts(name: str, subnet: int) -> DesiredState:
    veth, peer = veth_pair(name, "eth0", f"vh-{name}", master="br0")
    return DesiredState(
        namespaces=(Namespace(name, HERE),),
        links=(veth, peer),
        addresses=(Address(name, "eth0", f"10.{subnet}.0.2/24", HERE),),
        routes=(Route(name, "0.0.0.0/0", 254, 0, HERE, via=f"10.{subnet}.0.1"),),
    )


def lab(*parts: DesiredState, forwarding: str = "1") -> DesiredState:
    host = DesiredState(
        links=(Link(None, "br0", "bridge", HERE, state="up"),),
        addresses=(Address(None, "br0", "10.1.0.1/24", HERE), Address(None, "br0", "10.2.0.1/24", HERE)),
        sysctls=(Sysctl(None, "net.ipv4.ip_forward", forwarding, HERE),),
    )
    merged = {
        bucket: tuple(obj for part in (host, *parts) for obj in getattr(part, bucket))
        for bucket in ("namespaces", "links", "addresses", "routes", "sysctls")
    }
    return DesiredState(**merged, files=("lab.yaml",))


def matching(desired: DesiredState, tmp_path: Path) -> tuple[FakeKernel, Ledger]:
    """A kernel that shows everything of `desired` as netlab made it, and its ledger."""
    kernel = FakeKernel(names={ns.name for ns in desired.namespaces})
    ledger = Ledger(tmp_path / "ledger.json")
    for ns in desired.namespaces:
        ledger.record("namespace", ns.key)
    for link in desired.links:
        kernel.add_link(link.netns, link.name, KERNEL_KIND[link.type], owned=True, master=link.master)
    for address in desired.addresses:
        kernel.addresses.setdefault(address.netns, []).append(
            ObservedAddress(address.netns, address.interface, address.address, 4, False)
        )
        ledger.record("address", address.key)
    for route in desired.routes:
        kernel.routes.setdefault(route.netns, []).append(
            ObservedRoute(route.netns, 254, route.to, 0, route.via, "eth0", NETLAB_ROUTE_PROTO, 4)
        )
    for sysctl in desired.sysctls:
        kernel.sysctls[(sysctl.netns, sysctl.key)] = sysctl.value
        ledger.record("sysctl", sysctl.ident, {"original": "0"})
    return kernel, ledger


RED, BLUE = namespace_parts("red", 1), namespace_parts("blue", 2)
BEFORE = lab(RED, BLUE)


def edited_address() -> DesiredState:
    moved = replace(BLUE.addresses[0], address="10.2.0.3/24")
    return lab(RED, replace(BLUE, addresses=(moved,)))


def edited_peer_master() -> DesiredState:
    veth, peer = BLUE.links
    return lab(RED, replace(BLUE, links=(veth, replace(peer, master=None))))


EDITS = {
    "an address in one namespace": (edited_address, {"blue"}),
    "a veth peer in the host": (edited_peer_master, {"blue", None}),
    "a namespace removed": (lambda: lab(RED), {"blue", None}),
    "a namespace added": (lambda: lab(RED, BLUE, namespace_parts("green", 3)), {"green", None}),
    "a host sysctl": (lambda: lab(RED, BLUE, forwarding="0"), {None}),
    "nothing but lines moved": (
        lambda: replace(BEFORE, namespaces=(Namespace("red", MOVED), Namespace("blue", MOVED))),
        set(),
    ),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_the_scoped_plan_of_an_edit_is_the_full_plan(edit: str, tmp_path: Path) -> None:
    make_after, expected_scope = EDITS[edit]
    after = make_after()
    kernel, ledger = matching(BEFORE, tmp_path)
    assert not make_plan(BEFORE, kernel, ledger), "the fake kernel must match the generation before"
    scope = scope_of_edit(BEFORE, after)
    assert scope == expected_scope
    full = [str(change) for change in make_plan(after, kernel, ledger).changes]
    kernel.dumps.clear()
    scoped = [str(change) for change in make_plan(after, kernel, ledger, scope).changes]
    assert scoped == full
    # the host is read for the veth peers there (the daemon keeps its dump)
    assert set(kernel.dumps) <= scope | {None}


def test_an_edit_in_one_namespace_reads_no_other(tmp_path: Path) -> None:
    kernel, ledger = matching(BEFORE, tmp_path)
    plan = make_plan(edited_address(), kernel, ledger, frozenset({"blue"}))
    assert [str(change) for change in plan.changes] == [
        "- address blue/eth0 10.2.0.2/24",
        "+ address blue/eth0 10.2.0.3/24",
        "~ route blue/default: re-install: eth0 loses an address",
    ]
    assert set(kernel.dumps) == {"blue", None}  # the host: where blue's veth peer is


def test_an_empty_scope_plans_nothing_even_where_the_kernel_differs(tmp_path: Path) -> None:
    kernel, ledger = matching(BEFORE, tmp_path)
    kernel.links.clear()  # drift: that is for the drift pass and the resync
    assert not make_plan(BEFORE, kernel, ledger, frozenset())
    assert make_plan(BEFORE, kernel, ledger)
