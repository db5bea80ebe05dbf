"""What one kind tells the next is a value: `Decided`, handed on by planning in
registry order. A kind planned alone with a hand-made value plans what it plans
after the real earlier kinds. No root: a fake kernel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netlab.controller.backends.netlink import NETLAB_ROUTE_PROTO, ObservedAddress, ObservedRoute
from netlab.controller.kinds import REGISTRY
from netlab.controller.kinds.contract import Decided, PlanContext
from netlab.controller.planning import make_plan
from netlab.state.ledger import Ledger
from netlab.state.model import Address, DesiredState, Link, Namespace, NatRule, Origin, Route, Sysctl
from tests.unit.test_planning import FakeKernel

HERE = Origin("/etc/netlab.d/lab.yaml", 3, 5)

# what namespace, link and address decide for `lab()` on `kernel()`
DECIDED = Decided(
    created_namespaces=frozenset({"red"}),
    created_links=frozenset({(None, "d0")}),  # a bridge of netlab's that becomes a dummy
    removed_links=frozenset({(None, "old-br")}),
    losing_ipv4=frozenset({(None, "v0")}),
)


def lab() -> DesiredState:
    return DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=(Link(None, "v0", "dummy", HERE), Link(None, "d0", "dummy", HERE)),
        addresses=(Address(None, "v0", "10.0.0.2/24", HERE),),
        routes=(
            Route(None, "10.1.0.0/16", 254, 0, HERE, via="10.0.0.254", dev="v0"),
            Route(None, "10.3.0.0/16", 254, 0, HERE, dev="d0"),
        ),
        sysctls=(
            Sysctl("red", "net.ipv4.ip_forward", "1", HERE),
            Sysctl(None, "net.ipv4.conf.d0.forwarding", "1", HERE),
        ),
        nat=(NatRule("red", "masquerade", HERE, source="10.9.0.0/16"),),
        files=("lab.yaml",),
    )


def kernel() -> FakeKernel:
    found = FakeKernel(sysctls={(None, "net.ipv4.conf.d0.forwarding"): "0"})
    found.add_link(None, "v0", "dummy", owned=True)
    found.add_link(None, "d0", "bridge", owned=True)
    found.add_link(None, "old-br", "bridge", owned=True)
    found.addresses = {
        None: [
            ObservedAddress(None, "v0", "10.0.0.1/24", 4, False),
            ObservedAddress(None, "v0", "10.0.0.2/24", 4, True),
            ObservedAddress(None, "old-br", "10.5.0.1/24", 4, False),
        ]
    }
    found.routes = {
        None: [
            ObservedRoute(None, 254, "10.1.0.0/16", 0, "10.0.0.254", "v0", NETLAB_ROUTE_PROTO, 4),
            ObservedRoute(None, 254, "10.3.0.0/16", 0, None, "d0", NETLAB_ROUTE_PROTO, 4),
        ]
    }
    return found


def owning(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.json")
    ledger.record("address", (None, "v0", "10.0.0.1/24"), {})
    ledger.record("address", (None, "old-br", "10.5.0.1/24"), {})
    return ledger


def test_the_earlier_kinds_decide_what_they_hand_on(tmp_path: Path) -> None:
    ctx = PlanContext(lab(), kernel(), owning(tmp_path))
    decided = Decided()
    for kind in REGISTRY:
        decided |= kind.plan(replace(ctx, decided=decided)).decided
    assert decided == DECIDED


def test_a_kind_given_hand_made_decisions_plans_as_after_the_real_earlier_kinds(tmp_path: Path) -> None:
    whole = make_plan(lab(), kernel(), owning(tmp_path))
    later = [kind for kind in REGISTRY if kind.name in ("route", "sysctl", "nat")]
    for kind in later:
        alone = kind.plan(PlanContext(lab(), kernel(), owning(tmp_path), decided=DECIDED)).changes
        assert [str(c) for c in alone] == [str(c) for c in whole.changes if c.kind == kind.name]
    assert [str(c) for c in whole.changes if c.kind in ("route", "sysctl", "nat")] == [
        "~ route host/10.1.0.0/16: re-install: v0 loses an address",
        "+ route host/10.3.0.0/16: dev d0",
        "~ sysctl red/net.ipv4.ip_forward: value (none) -> 1",
        "~ sysctl host/net.ipv4.conf.d0.forwarding: value (none) -> 1",
        "+ nat red/masquerade 10.9.0.0/16",
        "+ nat red/chain NETLAB-POSTROUTING: jumped to from POSTROUTING",
    ]


def test_without_those_decisions_the_later_kinds_plan_otherwise(tmp_path: Path) -> None:
    for kind in REGISTRY:
        if kind.name in ("route", "sysctl", "nat"):
            alone = kind.plan(PlanContext(lab(), kernel(), owning(tmp_path))).changes
            assert [str(c) for c in alone] == {
                "route": [],
                "sysctl": [
                    "~ sysctl red/net.ipv4.ip_forward: value (none) -> 1",
                    "~ sysctl host/net.ipv4.conf.d0.forwarding: value 0 -> 1",
                ],
                "nat": [],  # red is not there, and nothing in the ledger says it was
            }[kind.name]


def test_decisions_join_field_by_field() -> None:
    first = Decided(created_namespaces=frozenset({"red"}), removed_links=frozenset({(None, "a")}))
    second = Decided(created_namespaces=frozenset({"blue"}), losing_ipv4=frozenset({("red", "b")}))
    assert first | second == Decided(
        created_namespaces=frozenset({"red", "blue"}),
        removed_links=frozenset({(None, "a")}),
        losing_ipv4=frozenset({("red", "b")}),
    )
    assert first.link_is_fresh("red", "anything") and not first.link_is_fresh(None, "a")
