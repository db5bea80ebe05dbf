"""Planning links against a fake kernel: a new namespace's loopback, marks put
back, creation attributes compared (vlan, macvlan, ipvlan: replaced when they
differ, a missing parent refused), and a `device`'s attributes given back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netlab.controller.applying import apply_plan
from netlab.controller.backends.netlink import NETLAB_LINK_ALIAS, ObservedAddress
from netlab.controller.changes import Phase
from netlab.controller.planning import make_plan
from netlab.state.errors import ConfigError
from netlab.state.ledger import Ledger
from netlab.state.model import Address, DesiredState, Link, Namespace, Origin, Route, Sysctl
from tests.unit.test_planning import FakeKernel

HERE = Origin("/etc/netlab.d/lab.yaml", 7, 5)


def book(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.json")


def described(plan: Any) -> list[str]:
    return [str(change) for change in plan.changes]


# -- a namespace's loopback --------------------------------------------------------


def test_lo_of_a_namespace_being_created_is_a_device_that_exists(tmp_path: Path) -> None:
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=(Link("red", "lo", "device", HERE),),
        addresses=(Address("red", "lo", "10.255.0.1/32", HERE),),
        routes=(Route("red", "10.255.9.0/24", 254, 0, HERE, dev="lo"),),
    )
    plan = make_plan(desired, FakeKernel(), book(tmp_path))
    assert described(plan) == [
        "+ namespace red",
        "+ address red/lo 10.255.0.1/32",
        "+ route red/10.255.9.0/24: dev lo",
    ]


def test_lo_in_a_new_namespace_takes_declared_attributes_after_the_namespace_exists(tmp_path: Path) -> None:
    desired = DesiredState(namespaces=(Namespace("red", HERE),), links=(Link("red", "lo", "device", HERE, mtu=16384),))
    plan = make_plan(desired, FakeKernel(), book(tmp_path))
    assert described(plan) == ["+ namespace red", "~ device red/lo: mtu 65536 -> 16384"]
    assert [step.phase for _, step in plan.steps()] == [Phase.CREATE_NAMESPACE, Phase.SET_LINK]


def test_another_name_in_a_new_namespace_is_still_a_missing_device(tmp_path: Path) -> None:
    desired = DesiredState(namespaces=(Namespace("red", HERE),), links=(Link("red", "eth0", "device", HERE),))
    with pytest.raises(ConfigError, match="device red/eth0 does not exist"):
        make_plan(desired, FakeKernel(), book(tmp_path))


def test_a_bridge_named_lo_in_a_new_namespace_is_refused_as_a_taken_name(tmp_path: Path) -> None:
    desired = DesiredState(namespaces=(Namespace("red", HERE),), links=(Link("red", "lo", "bridge", HERE, state="up"),))
    with pytest.raises(ConfigError, match="red/lo exists already"):
        make_plan(desired, FakeKernel(), book(tmp_path))


# -- marks -------------------------------------------------------------------------


def test_an_owned_link_without_its_mark_gets_it_back(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("link", (None, "br0"), {"type": "bridge"})
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "bridge", owned=False)  # no alias: the pass that made it was killed
    plan = make_plan(DesiredState(links=(Link(None, "br0", "bridge", HERE, state="up"),)), kernel, ledger)
    assert described(plan) == ["~ link host/br0: alias (none) -> netlab"]
    assert [step.describe for _, step in plan.steps()] == ["set ifalias of host/br0"]


def test_a_veth_peer_without_its_mark_gets_it_back(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("link", (None, "vb"), {"type": "veth-peer"})
    kernel = FakeKernel(names={"red"})
    kernel.add_link("red", "va", "veth", owned=True)
    kernel.add_link(None, "vb", "veth", owned=False)
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=(
            Link("red", "va", "veth", HERE, state="up", peer_netns=None, peer_name="vb"),
            Link(None, "vb", "veth-peer", HERE, state="up", peer_netns="red", peer_name="va"),
        ),
    )
    assert described(make_plan(desired, kernel, ledger)) == ["~ link host/vb: alias (none) -> netlab"]


@dataclass
class Recorder:
    """The write side of the kernel, for `apply_plan`: records link writes."""

    writes: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def netlink(self) -> Recorder:
        return self

    def link_set(self, netns: str | None, name: str, **attrs: Any) -> None:
        self.writes.append((netns, name, attrs))


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    warning = error = info


def test_the_mark_is_written_as_the_alias(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("link", (None, "br0"), {"type": "bridge"})
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "bridge", owned=False, alias="someone's")
    plan = make_plan(DesiredState(links=(Link(None, "br0", "bridge", HERE, state="up"),)), kernel, ledger)
    recorder = Recorder()
    apply_plan(plan, recorder, ledger, Log())  # type: ignore[arg-type]
    assert recorder.writes == [(None, "br0", {"ifalias": NETLAB_LINK_ALIAS})]


# -- creation attributes -----------------------------------------------------------


def _lab_with(child: Link) -> DesiredState:
    return DesiredState(
        links=(Link(None, "br0", "bridge", HERE, state="up"), Link(None, "br1", "bridge", HERE, state="up"), child)
    )


def _kernel_with(kind: str, **attrs: Any) -> FakeKernel:
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "bridge", owned=True)  # index 2
    kernel.add_link(None, "br1", "bridge", owned=True)  # index 3
    kernel.add_link(None, "c0", kind, owned=True, **attrs)
    return kernel


@pytest.mark.parametrize(
    ("child", "kind", "data", "expected"),
    [
        (
            Link(None, "c0", "vlan", HERE, state="up", parent="br0", options=(("id", 20),)),
            "vlan",
            (("IFLA_VLAN_ID", 10), ("IFLA_VLAN_PROTOCOL", 0x8100)),
            "replace: id 10 -> 20",
        ),
        # the kernel takes no macvlan into or out of passthru in place
        (
            Link(None, "c0", "macvlan", HERE, state="up", parent="br0", options=(("mode", "passthru"),)),
            "macvlan",
            (("IFLA_MACVLAN_MODE", "bridge"),),
            "replace: mode bridge -> passthru",
        ),
        (
            Link(None, "c0", "macvlan", HERE, state="up", parent="br0", options=(("mode", "vepa"),)),
            "macvlan",
            (("IFLA_MACVLAN_MODE", "passthru"),),
            "replace: mode passthru -> vepa",
        ),
    ],
)
def test_a_creation_attribute_that_differs_replaces_the_link(
    tmp_path: Path, child: Link, kind: str, data: tuple[tuple[str, Any], ...], expected: str
) -> None:
    kernel = _kernel_with(kind, link_index=2, data=data)
    kernel.addresses = {None: [ObservedAddress(None, "c0", "10.1.0.1/24", 4, False)]}
    desired = _lab_with(child)
    desired = DesiredState(links=desired.links, addresses=(Address(None, "c0", "10.1.0.1/24", HERE),))
    plan = make_plan(desired, kernel, book(tmp_path))
    # the address goes with the old link: it is put on the new one
    assert described(plan) == [f"~ link host/c0: {expected}", "+ address host/c0 10.1.0.1/24"]
    steps = [step.describe for _, step in plan.steps()]
    assert steps[:2] == ["delete host/c0 to create it anew", f"create {child.type} host/c0"]


@pytest.mark.parametrize(
    ("child", "kind", "data", "expected", "written"),
    [
        (
            Link(None, "c0", "ipvlan", HERE, state="up", parent="br0", options=(("mode", "l3"),)),
            "ipvlan",
            (("IFLA_IPVLAN_MODE", 0),),
            "mode l2 -> l3",
            {"IFLA_IPVLAN_MODE": 1},
        ),
        (
            Link(None, "c0", "macvlan", HERE, state="up", parent="br0", options=(("mode", "private"),)),
            "macvlan",
            (("IFLA_MACVLAN_MODE", "bridge"),),
            "mode bridge -> private",
            {"IFLA_MACVLAN_MODE": 1},
        ),
        # undeclared: the file format's default
        (
            Link(None, "c0", "macvlan", HERE, state="up", parent="br0"),
            "macvlan",
            (("IFLA_MACVLAN_MODE", "vepa"),),
            "mode vepa -> bridge",
            {"IFLA_MACVLAN_MODE": 4},
        ),
    ],
)
def test_a_mode_the_kernel_changes_in_place_is_changed_in_place(
    tmp_path: Path, child: Link, kind: str, data: tuple[tuple[str, Any], ...], expected: str, written: dict[str, int]
) -> None:
    kernel = _kernel_with(kind, link_index=2, data=data)
    kernel.addresses = {None: [ObservedAddress(None, "c0", "10.1.0.1/24", 4, False)]}
    desired = DesiredState(links=_lab_with(child).links, addresses=(Address(None, "c0", "10.1.0.1/24", HERE),))
    ledger = book(tmp_path)
    plan = make_plan(desired, kernel, ledger)
    assert described(plan) == [f"~ link host/c0: {expected}"]  # its address stays where it is
    recorder = Recorder()
    apply_plan(plan, recorder, ledger, Log())  # type: ignore[arg-type]
    assert recorder.writes == [(None, "c0", {"info_data": (kind, written)})]


@pytest.mark.parametrize(
    ("kind", "child", "data"),
    [
        (
            "vlan",
            Link(None, "c0", "vlan", HERE, state="up", parent="br1", options=(("id", 10),)),
            (("IFLA_VLAN_ID", 10), ("IFLA_VLAN_PROTOCOL", 0x8100)),
        ),
        (
            "macvlan",
            Link(None, "c0", "macvlan", HERE, state="up", parent="br1", options=(("mode", "bridge"),)),
            (("IFLA_MACVLAN_MODE", "bridge"),),
        ),
        (
            "ipvlan",
            Link(None, "c0", "ipvlan", HERE, state="up", parent="br1", options=(("mode", "l2"),)),
            (("IFLA_IPVLAN_MODE", 0),),
        ),
    ],
)
def test_another_parent_replaces_the_link(
    tmp_path: Path, kind: str, child: Link, data: tuple[tuple[str, Any], ...]
) -> None:
    kernel = _kernel_with(kind, link_index=2, data=data)
    assert described(make_plan(_lab_with(child), kernel, book(tmp_path))) == [
        "~ link host/c0: replace: parent br0 -> br1"
    ]
    same = _kernel_with(kind, link_index=3, data=data)
    assert described(make_plan(_lab_with(child), same, book(tmp_path))) == []


def test_a_parent_in_the_host_is_found_for_a_link_in_a_namespace(tmp_path: Path) -> None:
    kernel = FakeKernel(names={"red"})
    kernel.add_link(None, "br0", "bridge", owned=True)  # index 2
    kernel.add_link("red", "lo", None, owned=False, index=1)
    kernel.add_link(
        "red", "m0", "macvlan", owned=True, link_index=2, link_netnsid=0, data=(("IFLA_MACVLAN_MODE", "bridge"),)
    )
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=(
            Link(None, "br0", "bridge", HERE, state="up"),
            Link("red", "m0", "macvlan", HERE, state="up", parent="br0", options=(("mode", "bridge"),)),
        ),
    )
    assert described(make_plan(desired, kernel, book(tmp_path))) == []


def test_a_foreign_link_of_the_same_name_and_other_attributes_is_refused_not_replaced(tmp_path: Path) -> None:
    kernel = _kernel_with("vlan", link_index=2, data=(("IFLA_VLAN_ID", 10),))
    kernel.links[None][-1] = kernel.links[None][-1].__class__(**{**_fields(kernel.links[None][-1]), "alias": None})
    with pytest.raises(ConfigError, match="not created by netlab"):
        make_plan(
            _lab_with(Link(None, "c0", "vlan", HERE, state="up", parent="br0", options=(("id", 20),))),
            kernel,
            book(tmp_path),
        )


def _fields(link: Any) -> dict[str, Any]:
    return {name: getattr(link, name) for name in link.__dataclass_fields__}


def test_a_missing_parent_is_refused_with_the_file_and_line(tmp_path: Path) -> None:
    desired = DesiredState(links=(Link(None, "v10", "vlan", HERE, state="up", parent="eth9", options=(("id", 10),)),))
    with pytest.raises(ConfigError) as refused:
        make_plan(desired, FakeKernel(), book(tmp_path))
    (problem,) = refused.value.problems
    assert (problem.file, problem.line, problem.path) == (HERE.file, 7, "interfaces.v10.parent")
    assert "parent host/eth9 of host/v10 does not exist" in problem.message


def test_a_parent_netlab_removes_in_the_same_pass_is_refused(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "bridge", owned=True)
    desired = DesiredState(
        links=(Link(None, "m0", "macvlan", HERE, state="up", parent="br0", options=(("mode", "bridge"),)),)
    )
    with pytest.raises(ConfigError, match="no longer declared"):
        make_plan(desired, kernel, book(tmp_path))


def test_links_on_a_parent_made_anew_are_made_anew_after_it(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.add_link(None, "p0", "macvlan", owned=True)  # to become a bridge: replaced
    kernel.add_link(None, "m0", "macvlan", owned=True, link_index=2, data=(("IFLA_MACVLAN_MODE", "bridge"),))
    kernel.add_link(None, "m1", "macvlan", owned=True, link_index=3, data=(("IFLA_MACVLAN_MODE", "bridge"),))
    desired = DesiredState(
        links=(
            # declared child first: the parent is still planned, and created, before it
            Link(None, "m1", "macvlan", HERE, state="up", parent="m0", options=(("mode", "bridge"),)),
            Link(None, "m0", "macvlan", HERE, state="up", parent="p0", options=(("mode", "bridge"),)),
            Link(None, "p0", "bridge", HERE, state="up"),
        )
    )
    plan = make_plan(desired, kernel, book(tmp_path))
    assert described(plan) == [
        "~ link host/p0: replace: type macvlan -> bridge",
        "~ link host/m0: replace: its parent host/p0 is created anew",
        "~ link host/m1: replace: its parent host/m0 is created anew",
    ]
    created = [step.describe for _, step in plan.steps() if step.phase == Phase.CREATE_LINK]
    assert created == ["create bridge host/p0", "create macvlan host/m0", "create macvlan host/m1"]


def test_ports_of_a_bridge_made_anew_join_the_new_one(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "macvlan", owned=True)
    kernel.add_link(None, "eth1", None, owned=False, master="br0")
    desired = DesiredState(
        links=(Link(None, "eth1", "device", HERE, master="br0"), Link(None, "br0", "bridge", HERE, state="up"))
    )
    plan = make_plan(desired, kernel, book(tmp_path))
    assert described(plan) == [
        "~ link host/br0: replace: type macvlan -> bridge",
        "~ device host/eth1: master (none) -> br0",
    ]
    order = [step.describe for _, step in plan.steps()]
    assert order.index("create bridge host/br0") < order.index("set master of host/eth1")


def test_the_kernel_data_of_a_new_link_comes_from_the_table(tmp_path: Path) -> None:
    created: list[Any] = []

    class Creator(Recorder):
        def link_add(self, netns: str | None, name: str, kind: str, **kwargs: Any) -> None:
            created.append((name, kind, kwargs["parent"], kwargs["data"]))

    kernel = FakeKernel()
    kernel.add_link(None, "eth0", None, owned=False)
    desired = DesiredState(
        links=(
            Link(None, "v10", "vlan", HERE, state="up", parent="eth0", options=(("id", 10),)),
            Link(None, "mv0", "macvlan", HERE, state="up", parent="eth0", options=(("mode", "vepa"),)),
            Link(None, "iv0", "ipvlan", HERE, state="up", parent="eth0", options=(("mode", "l3s"),)),
        )
    )
    apply_plan(make_plan(desired, kernel, book(tmp_path)), Creator(), book(tmp_path), Log())  # type: ignore[arg-type]
    assert sorted(created) == [
        ("iv0", "ipvlan", (None, "eth0"), {"IFLA_IPVLAN_MODE": 2}),
        ("mv0", "macvlan", (None, "eth0"), {"IFLA_MACVLAN_MODE": 2}),
        ("v10", "vlan", (None, "eth0"), {"IFLA_VLAN_ID": 10, "IFLA_VLAN_PROTOCOL": 0x8100}),
    ]


# -- devices: what netlab changed is given back ------------------------------------


def test_a_device_keeps_its_originals_and_gets_them_back(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    kernel = FakeKernel()
    kernel.add_link(None, "eth1", None, owned=False, mtu=1500, mac="02:00:00:00:00:01", state="down")
    desired = DesiredState(links=(Link(None, "eth1", "device", HERE, mtu=1400),))
    plan = make_plan(desired, kernel, ledger)
    apply_plan(plan, Recorder(), ledger, Log())  # type: ignore[arg-type]
    assert ledger.get("device", (None, "eth1")) == {"mtu": 1500}
    assert not ledger.owns("link", (None, "eth1"))  # not netlab's to delete
    # later the mac and state are declared too: their originals join, the mtu's stays
    kernel.links[None][0] = kernel.links[None][0].__class__(**{**_fields(kernel.links[None][0]), "mtu": 1400})
    desired = DesiredState(links=(Link(None, "eth1", "device", HERE, mtu=1400, mac="02:00:00:00:00:99", state="up"),))
    apply_plan(make_plan(desired, kernel, ledger), Recorder(), ledger, Log())  # type: ignore[arg-type]
    assert ledger.get("device", (None, "eth1")) == {"mtu": 1500, "mac": "02:00:00:00:00:01", "state": "down"}
    kernel.links[None][0] = kernel.links[None][0].__class__(
        **{**_fields(kernel.links[None][0]), "mac": "02:00:00:00:00:99", "state": "up"}
    )
    assert described(make_plan(desired, kernel, ledger)) == []
    # the device leaves the files: everything goes back, nothing is deleted
    plan = make_plan(DesiredState(files=("lab.yaml",)), kernel, ledger)
    assert described(plan) == [
        "- device host/eth1: mtu 1400 -> 1500, mac 02:00:00:00:00:99 -> 02:00:00:00:00:01, state up -> down, "
        "given back as before netlab (the device stays)"
    ]
    recorder = Recorder()
    apply_plan(plan, recorder, ledger, Log())  # type: ignore[arg-type]
    assert recorder.writes == [(None, "eth1", {"mtu": 1500, "address": "02:00:00:00:00:01", "state": "down"})]
    assert not ledger.owns("device", (None, "eth1"))


def test_a_device_gets_back_its_master_unless_the_master_is_gone(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("device", (None, "eth1"), {"master": "br-theirs"})
    ledger.record("device", (None, "eth2"), {"master": "br-gone"})
    ledger.record("device", (None, "eth3"), {"master": None})
    kernel = FakeKernel()
    kernel.add_link(None, "br-theirs", "bridge", owned=False)
    kernel.add_link(None, "br0", "bridge", owned=True)
    for name in ("eth1", "eth2", "eth3"):
        kernel.add_link(None, name, None, owned=False, master="br0")
    plan = make_plan(DesiredState(files=("lab.yaml",)), kernel, ledger)
    assert sorted(described(plan)) == [
        "- device host/eth1: master br0 -> br-theirs, given back as before netlab (the device stays)",
        "- device host/eth2: its master br-gone is gone, no longer managed",
        "- device host/eth3: master br0 -> (none), given back as before netlab (the device stays)",
        "- link host/br0: bridge",
    ]
    order = [step.describe for _, step in plan.steps()]
    assert order.index("delete link host/br0") < order.index("set master of host/eth3")


def test_a_device_in_a_namespace_netlab_removes_gets_nothing_back(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("namespace", ("red",))
    ledger.record("device", ("red", "lo"), {"mtu": 65536})
    kernel = FakeKernel(names={"red"})
    kernel.add_link("red", "lo", None, owned=False, mtu=1500)
    assert described(make_plan(DesiredState(files=("lab.yaml",)), kernel, ledger)) == [
        "- namespace red: with everything in it"
    ]


# -- sysctls in namespaces being created -------------------------------------------


@dataclass
class FreshKernel(FakeKernel):
    fresh: dict[str, str] = field(default_factory=dict)

    def fresh_sysctl(self, key: str) -> str | None:
        return self.fresh.get(key)


def test_a_sysctl_of_a_namespace_being_created_keeps_a_fresh_namespaces_value(tmp_path: Path) -> None:
    kernel = FreshKernel(fresh={"net.ipv4.ip_forward": "0", "net.ipv4.conf.default.rp_filter": "2"})
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),),
        sysctls=(
            Sysctl("red", "net.ipv4.ip_forward", "1", HERE),
            # of a link not made yet: it will take the namespace's default
            Sysctl("red", "net.ipv4.conf.veth0.rp_filter", "0", HERE),
        ),
    )
    records = {c.name: c.record for c in make_plan(desired, kernel, book(tmp_path)).changes if c.kind == "sysctl"}
    assert records == {"net.ipv4.ip_forward": {"original": "0"}, "net.ipv4.conf.veth0.rp_filter": {"original": "2"}}


def test_a_sysctl_of_a_link_not_made_yet_keeps_its_namespaces_default(tmp_path: Path) -> None:
    kernel = FakeKernel(sysctls={(None, "net.ipv6.conf.default.forwarding"): "0"})
    desired = DesiredState(sysctls=(Sysctl(None, "net.ipv6.conf.br9.forwarding", "1", HERE),))
    (change,) = make_plan(desired, kernel, book(tmp_path)).changes
    assert change.record == {"original": "0"}


# -- the table ---------------------------------------------------------------------


def test_the_table_names_the_modules_of_the_drivers() -> None:
    from netlab.state.link_types import kernel_module

    modules = [kernel_module(kind) for kind in ("vlan", "bond", "ipvlan", "dummy", "vxlan")]
    assert modules == ["8021q", "bonding", "ipvlan", "dummy", "vxlan"]


def test_a_route_through_lo_of_a_namespace_being_created_is_planned_undeclared(tmp_path: Path) -> None:
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),), routes=(Route("red", "10.255.9.0/24", 254, 0, HERE, dev="lo"),)
    )
    assert described(make_plan(desired, FakeKernel(), book(tmp_path))) == [
        "+ namespace red",
        "+ route red/10.255.9.0/24: dev lo",
    ]


def test_a_device_gone_meanwhile_is_only_struck_from_the_ledger(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("device", (None, "eth9"), {"mtu": 1500})
    plan = make_plan(DesiredState(files=("lab.yaml",)), FakeKernel(), ledger)
    assert described(plan) == ["- device host/eth9: gone already, no longer managed"]
    assert plan.steps() == []
    apply_plan(plan, Recorder(), ledger, Log())  # type: ignore[arg-type]
    assert not ledger.owns("device", (None, "eth9"))


def test_an_attribute_the_file_no_longer_declares_is_given_back_and_the_device_stays_managed(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("device", (None, "eth1"), {"mtu": 1500, "mac": "02:00:00:00:00:01"})
    kernel = FakeKernel()
    kernel.add_link(None, "eth1", None, owned=False, mtu=1400, mac="02:00:00:00:00:99")
    desired = DesiredState(links=(Link(None, "eth1", "device", HERE, mtu=1400),))
    plan = make_plan(desired, kernel, ledger)
    assert described(plan) == [
        "~ device host/eth1: mac 02:00:00:00:00:99 -> 02:00:00:00:00:01, no longer managed: mac (given back as before netlab)"
    ]
    recorder = Recorder()
    apply_plan(plan, recorder, ledger, Log())  # type: ignore[arg-type]
    assert recorder.writes == [(None, "eth1", {"address": "02:00:00:00:00:01"})]
    assert ledger.get("device", (None, "eth1")) == {"mtu": 1500}  # the mtu's original is still known
    kernel.links[None][0] = kernel.links[None][0].__class__(
        **{**_fields(kernel.links[None][0]), "mac": "02:00:00:00:00:01"}
    )
    assert described(make_plan(desired, kernel, ledger)) == []
    # someone else changes the mac later: not netlab's business any more
    kernel.links[None][0] = kernel.links[None][0].__class__(
        **{**_fields(kernel.links[None][0]), "mac": "02:00:00:00:00:42"}
    )
    assert described(make_plan(desired, kernel, ledger)) == []


def test_an_undeclared_attribute_already_as_before_is_only_struck_from_the_ledger(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("device", (None, "eth1"), {"mtu": 1500, "state": "down"})
    kernel = FakeKernel()
    kernel.add_link(None, "eth1", None, owned=False, mtu=1400, state="down")
    plan = make_plan(DesiredState(links=(Link(None, "eth1", "device", HERE, mtu=1400),)), kernel, ledger)
    assert described(plan) == ["~ device host/eth1: no longer managed: state"]
    assert plan.steps() == []
    apply_plan(plan, Recorder(), ledger, Log())  # type: ignore[arg-type]
    assert ledger.get("device", (None, "eth1")) == {"mtu": 1500}


def test_a_pass_cut_short_keeps_the_originals_it_was_giving_back(tmp_path: Path) -> None:
    ledger = book(tmp_path)
    ledger.record("device", (None, "eth1"), {"mac": "02:00:00:00:00:01"})
    kernel = FakeKernel()
    kernel.add_link(None, "eth1", None, owned=False, mac="02:00:00:00:00:99")
    plan = make_plan(DesiredState(links=(Link(None, "eth1", "device", HERE, mtu=1400),)), kernel, ledger)

    class Failing(Recorder):
        def link_set(self, netns: str | None, name: str, **attrs: Any) -> None:
            raise OSError(5, "injected")

    with pytest.raises(Exception, match="injected"):
        apply_plan(plan, Failing(), ledger, Log())  # type: ignore[arg-type]
    assert ledger.get("device", (None, "eth1")) == {"mac": "02:00:00:00:00:01"}
