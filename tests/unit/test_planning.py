"""Planning against a fake kernel: what changes, what is refused, in which order.
No root, no kernel: the kinds read through the `KernelReader` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netlab.controller.backends.netlink import (
    NETLAB_LINK_ALIAS,
    NETLAB_ROUTE_PROTO,
    NetnsDump,
    ObservedAddress,
    ObservedLink,
    ObservedRoute,
)
from netlab.controller.changes import Phase
from netlab.controller.kinds.sysctl import link_of
from netlab.controller.planning import make_plan
from netlab.state.errors import ConfigError
from netlab.state.ledger import Ledger
from netlab.state.link_types import LINK_TYPES
from netlab.state.model import Address, DesiredState, Link, Namespace, Origin, Route, Sysctl
from tests.unit.fake_kernels import EmptyKernel

HERE = Origin("/etc/netlab.d/lab.yaml", 3, 5)


@dataclass
class FakeKernel(EmptyKernel):  # no NAT rules, no resolver files
    links: dict[str | None, list[ObservedLink]] = field(default_factory=dict)
    addresses: dict[str | None, list[ObservedAddress]] = field(default_factory=dict)
    routes: dict[str | None, list[ObservedRoute]] = field(default_factory=dict)
    sysctls: dict[tuple[str | None, str], str] = field(default_factory=dict)
    dumps: list[str | None] = field(default_factory=list)

    def dump(self, netns: str | None) -> NetnsDump:
        self.dumps.append(netns)
        return NetnsDump(
            tuple(self.links.get(netns, [])),
            tuple(self.addresses.get(netns, [])),
            tuple(self.routes.get(netns, [])),
        )

    def sysctl(self, netns: str | None, key: str) -> str | None:
        return self.sysctls.get((netns, key))

    def add_link(self, netns: str | None, name: str, kind: str | None, *, owned: bool, **attrs: object) -> None:
        links = self.links.setdefault(netns, [])
        values: dict[str, object] = dict(
            netns=netns,
            name=name,
            index=len(links) + 2,
            kind=kind,
            state="up",
            mtu=1500,
            mac="02:00:00:00:00:01",
            master=None,
            alias=NETLAB_LINK_ALIAS if owned else None,
            link_index=None,
            link_netnsid=None,
        )
        if kind == "bridge":  # what the kernel reports of a bridge made with no options
            values["data"] = tuple((a.kernel, a.to_kernel(a.default)) for a in LINK_TYPES["bridge"].attributes)
        values.update(attrs)
        links.append(ObservedLink(**values))  # type: ignore[arg-type]


def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.json")


def veth_pair(netns: str, name: str, peer: str, **peer_attrs: object) -> tuple[Link, Link]:
    return (
        Link(netns, name, "veth", HERE, state="up", peer_netns=None, peer_name=peer),
        Link(None, peer, "veth-peer", HERE, state="up", peer_netns=netns, peer_name=name, **peer_attrs),  # type: ignore[arg-type]
    )


def bridge_lab() -> DesiredState:
    return DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=(
            Link(None, "v-net-0", "bridge", HERE, state="up"),
            *veth_pair("red", "veth-red", "veth-red-br", master="v-net-0"),
        ),
        addresses=(
            Address(None, "v-net-0", "192.168.15.5/24", HERE),
            Address("red", "veth-red", "192.168.15.1/24", HERE),
        ),
        routes=(Route("red", "0.0.0.0/0", 254, 0, HERE, via="192.168.15.5"),),
        sysctls=(Sysctl(None, "net.ipv4.ip_forward", "1", HERE),),
        files=("lab.yaml",),
    )


def test_empty_kernel_gets_everything_in_dependency_order(tmp_path: Path) -> None:
    kernel = FakeKernel(sysctls={(None, "net.ipv4.ip_forward"): "0"})
    plan = make_plan(bridge_lab(), kernel, ledger(tmp_path))
    assert [str(c) for c in plan.changes] == [
        "+ namespace red",
        "+ link host/v-net-0: bridge",
        "+ link red/veth-red: veth, peer host/veth-red-br",
        "+ link host/veth-red-br: veth peer of red/veth-red",
        "+ address host/v-net-0 192.168.15.5/24",
        "+ address red/veth-red 192.168.15.1/24",
        "+ route red/default: via 192.168.15.5",
        "~ sysctl host/net.ipv4.ip_forward: value 0 -> 1",
    ]
    phases = [step.phase for _, step in plan.steps()]
    assert phases == sorted(phases)
    described = [step.describe for _, step in plan.steps()]
    assert described.index("create namespace red") < described.index("create veth red/veth-red")
    assert described.index("set master of host/veth-red-br") < described.index("add 192.168.15.1/24 to red/veth-red")
    assert described.index("set red/veth-red up") < described.index("install route default in red")


def test_matching_kernel_plans_nothing_and_dumps_each_namespace_once(tmp_path: Path) -> None:
    kernel = FakeKernel(names={"red"}, sysctls={(None, "net.ipv4.ip_forward"): "1"})
    kernel.add_link(None, "v-net-0", "bridge", owned=True)
    kernel.add_link(None, "veth-red-br", "veth", owned=True, master="v-net-0")
    kernel.add_link("red", "veth-red", "veth", owned=True)
    kernel.addresses = {
        None: [ObservedAddress(None, "v-net-0", "192.168.15.5/24", 4, False)],
        "red": [
            ObservedAddress("red", "veth-red", "192.168.15.1/24", 4, False),
            ObservedAddress("red", "veth-red", "fe80::1/64", 6, False),
        ],
    }
    kernel.routes = {
        "red": [ObservedRoute("red", 254, "0.0.0.0/0", 0, "192.168.15.5", "veth-red", NETLAB_ROUTE_PROTO, 4)]
    }
    plan = make_plan(bridge_lab(), kernel, ledger(tmp_path))
    assert not plan, [str(c) for c in plan.changes]


def test_only_the_declared_attribute_that_differs_changes(tmp_path: Path) -> None:
    desired = DesiredState(links=(Link(None, "eth0", "device", HERE, mtu=9000),))
    kernel = FakeKernel()
    kernel.add_link(None, "eth0", None, owned=False, master="br-foreign", state="down")
    plan = make_plan(desired, kernel, ledger(tmp_path))
    assert [str(c) for c in plan.changes] == ["~ device host/eth0: mtu 1500 -> 9000"]
    assert [step.phase for _, step in plan.steps()] == [Phase.SET_LINK]


def test_a_foreign_link_with_a_declared_name_is_refused_with_its_origin(tmp_path: Path) -> None:
    desired = DesiredState(links=(Link(None, "br0", "bridge", HERE, state="up"),))
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "bridge", owned=False)
    with pytest.raises(ConfigError) as refused:
        make_plan(desired, kernel, ledger(tmp_path))
    problem = refused.value.problems[0]
    assert (problem.file, problem.line, problem.column) == (HERE.file, 3, 5)
    assert "not created by netlab" in problem.message


def test_a_missing_device_is_refused(tmp_path: Path) -> None:
    desired = DesiredState(links=(Link(None, "eth7", "device", HERE, mtu=9000),))
    with pytest.raises(ConfigError, match="device host/eth7 does not exist"):
        make_plan(desired, FakeKernel(), ledger(tmp_path))


def test_owned_link_of_another_type_is_replaced(tmp_path: Path) -> None:
    desired = DesiredState(links=(Link(None, "br0", "bridge", HERE, state="up"),))
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "macvlan", owned=True)
    plan = make_plan(desired, kernel, ledger(tmp_path))
    assert [str(c) for c in plan.changes] == ["~ link host/br0: replace: type macvlan -> bridge"]
    assert [step.phase for _, step in plan.steps()][:2] == [Phase.DELETE_LINK, Phase.CREATE_LINK]


def test_removed_objects_go_only_where_netlab_owns_them(tmp_path: Path) -> None:
    kernel = FakeKernel(names={"red"})
    kernel.add_link(None, "old-br", "bridge", owned=True)
    kernel.add_link(None, "docker0", "bridge", owned=False)
    kernel.addresses = {
        None: [
            ObservedAddress(None, "docker0", "172.17.0.1/16", 4, False),
            ObservedAddress(None, "docker0", "172.18.0.1/16", 4, False),
        ]
    }
    kernel.routes = {
        None: [
            ObservedRoute(None, 254, "10.9.0.0/16", 0, "172.17.0.2", "docker0", NETLAB_ROUTE_PROTO, 4),
            ObservedRoute(None, 254, "10.8.0.0/16", 0, "172.17.0.2", "docker0", 4, 4),
        ]
    }
    book = ledger(tmp_path)
    book.record("namespace", ("red",))
    book.record("address", (None, "docker0", "172.18.0.1/16"))
    plan = make_plan(DesiredState(files=("x.yaml",)), kernel, book)
    assert sorted(str(c) for c in plan.changes) == [
        "- address host/docker0 172.18.0.1/16",
        "- link host/old-br: bridge",
        "- namespace red: with everything in it",
        "- route host/10.9.0.0/16",
    ]
    phases = [step.phase for _, step in plan.steps()]
    assert phases == [Phase.DELETE_ROUTE, Phase.DELETE_ADDRESS, Phase.DELETE_LINK, Phase.DELETE_NAMESPACE]


def test_removing_a_primary_ipv4_address_puts_back_the_secondaries_that_stay(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.add_link(None, "eth0", None, owned=False)
    kernel.addresses = {
        None: [
            ObservedAddress(None, "eth0", "10.0.0.2/24", 4, False),
            ObservedAddress(None, "eth0", "10.0.0.9/24", 4, True),
        ]
    }
    book = ledger(tmp_path)
    book.record("address", (None, "eth0", "10.0.0.2/24"))
    desired = DesiredState(
        links=(Link(None, "eth0", "device", HERE),), addresses=(Address(None, "eth0", "10.0.0.22/24", HERE),)
    )
    plan = make_plan(desired, kernel, book)
    described = [step.describe for _, step in plan.steps()]
    assert described == [
        "remove 10.0.0.2/24 from host/eth0",
        "put back 10.0.0.9/24 on host/eth0",
        "add 10.0.0.22/24 to host/eth0",
    ]


def test_a_foreign_route_on_a_declared_key_is_refused(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.addresses = {None: [ObservedAddress(None, "eth0", "10.0.0.2/24", 4, False)]}
    kernel.routes = {None: [ObservedRoute(None, 254, "0.0.0.0/0", 0, "10.0.0.1", "eth0", 16, 4)]}
    desired = DesiredState(routes=(Route(None, "0.0.0.0/0", 254, 0, HERE, via="10.0.0.3"),))
    with pytest.raises(ConfigError, match="netlab did not install"):
        make_plan(desired, kernel, ledger(tmp_path))


def test_a_host_route_through_an_unreachable_gateway_is_refused(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.addresses = {None: [ObservedAddress(None, "eth0", "10.0.0.2/24", 4, False)]}
    desired = DesiredState(routes=(Route(None, "10.244.2.0/24", 254, 100, HERE, via="10.1.0.3"),))
    with pytest.raises(ConfigError, match="gateway 10.1.0.3 is not inside any subnet"):
        make_plan(desired, kernel, ledger(tmp_path))
    reachable = DesiredState(routes=(Route(None, "10.244.2.0/24", 254, 100, HERE, via="10.0.0.3"),))
    assert [str(c) for c in make_plan(reachable, kernel, ledger(tmp_path)).changes] == [
        "+ route host/10.244.2.0/24 metric 100: via 10.0.0.3"
    ]


def test_sysctl_keeps_its_original_and_gets_it_back(tmp_path: Path) -> None:
    kernel = FakeKernel(sysctls={(None, "net.ipv4.ip_forward"): "0"})
    desired = DesiredState(sysctls=(Sysctl(None, "net.ipv4.ip_forward", "1", HERE),))
    book = ledger(tmp_path)
    plan = make_plan(desired, kernel, book)
    assert plan.changes[0].record == {"original": "0"}
    book.record("sysctl", (None, "net.ipv4.ip_forward"), {"original": "0"})
    kernel.sysctls[(None, "net.ipv4.ip_forward")] = "1"
    restore = make_plan(DesiredState(files=("x",)), kernel, book)
    assert [str(c) for c in restore.changes] == ["- sysctl host/net.ipv4.ip_forward: value 1 -> 0 (as before netlab)"]


def test_a_veth_whose_peer_is_renamed_is_replaced(tmp_path: Path) -> None:
    kernel = FakeKernel(names={"red"})
    kernel.add_link("red", "veth-red", "veth", owned=True)
    kernel.add_link(None, "old-peer", "veth", owned=True)
    desired = DesiredState(namespaces=(Namespace("red", HERE),), links=veth_pair("red", "veth-red", "new-peer"))
    plan = make_plan(desired, kernel, ledger(tmp_path))
    assert [str(c) for c in plan.changes] == [
        "~ link red/veth-red: replace: its peer is not host/new-peer",
        "+ link host/new-peer: veth peer of red/veth-red",
        "- link host/old-peer: veth",
    ]


def test_a_route_on_a_renamed_veth_peer_is_installed_anew(tmp_path: Path) -> None:
    """Renaming the peer replaces the pair: the kernel deletes the routes through
    the old peer with it, so a route that names only its gateway is planned as
    new on the new peer (else it is missing after the pass, and verification
    fails), and an owned route no longer declared is removed and forgotten."""
    kernel = FakeKernel(names={"red"})
    kernel.add_link("red", "veth-red", "veth", owned=True)
    kernel.add_link(None, "old-peer", "veth", owned=True)
    kernel.addresses = {None: [ObservedAddress(None, "old-peer", "10.7.0.1/24", 4, False)]}
    kernel.routes = {
        None: [
            ObservedRoute(None, 254, "10.8.0.0/24", 0, "10.7.0.2", "old-peer", NETLAB_ROUTE_PROTO, 4),
            ObservedRoute(None, 254, "10.9.0.0/24", 0, "10.7.0.2", "old-peer", NETLAB_ROUTE_PROTO, 4),
        ]
    }
    red, peer = veth_pair("red", "veth-red", "new-peer")
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=(red, peer),
        addresses=(Address(None, "new-peer", "10.7.0.1/24", HERE),),
        routes=(Route(None, "10.8.0.0/24", 254, 0, HERE, via="10.7.0.2"),),
    )
    plan = make_plan(desired, kernel, ledger(tmp_path))
    routes = [str(c) for c in plan.changes if c.kind == "route"]
    assert routes == ["- route host/10.9.0.0/24", "+ route host/10.8.0.0/24: via 10.7.0.2"]


def test_a_route_on_a_link_that_stays_is_left_alone(tmp_path: Path) -> None:
    kernel = FakeKernel()
    kernel.add_link(None, "br0", "bridge", owned=True)
    kernel.addresses = {None: [ObservedAddress(None, "br0", "10.7.0.1/24", 4, False)]}
    kernel.routes = {None: [ObservedRoute(None, 254, "10.8.0.0/24", 0, "10.7.0.2", "br0", NETLAB_ROUTE_PROTO, 4)]}
    desired = DesiredState(
        links=(Link(None, "br0", "bridge", HERE, state="up"),),
        addresses=(Address(None, "br0", "10.7.0.1/24", HERE),),
        routes=(Route(None, "10.8.0.0/24", 254, 0, HERE, via="10.7.0.2"),),
    )
    assert not make_plan(desired, kernel, ledger(tmp_path))


@pytest.mark.parametrize(
    ("declared", "kernel_shows"),
    [
        ("01", "1"),
        ("010", "8"),
        ("0x10", "16"),
        ("-01", "-1"),
        ("4096  87380\t6291456", "4096 87380 6291456"),
        ("cubic", "cubic"),
    ],
)
def test_a_sysctl_is_compared_as_the_kernel_prints_it(tmp_path: Path, declared: str, kernel_shows: str) -> None:
    kernel = FakeKernel(sysctls={(None, "net.ipv4.some_key"): kernel_shows})
    desired = DesiredState(sysctls=(Sysctl(None, "net.ipv4.some_key", declared, HERE),))
    assert not make_plan(desired, kernel, ledger(tmp_path))


def test_a_sysctl_is_written_as_the_kernel_prints_it(tmp_path: Path) -> None:
    kernel = FakeKernel(sysctls={(None, "net.ipv4.ip_forward"): "0"})
    desired = DesiredState(sysctls=(Sysctl(None, "net.ipv4.ip_forward", "01", HERE),))
    plan = make_plan(desired, kernel, ledger(tmp_path))
    assert [str(c) for c in plan.changes] == ["~ sysctl host/net.ipv4.ip_forward: value 0 -> 1"]


def test_a_sysctl_of_a_link_made_anew_is_written_again(tmp_path: Path) -> None:
    """Renaming a veth's end makes its peer anew under the same name: the value
    read now is the old peer's, the new one starts with the kernel's default,
    so the sysctl is set again in the same pass."""
    kernel = FakeKernel(names={"red"}, sysctls={(None, "net.ipv4.conf.veth-red-br.proxy_arp"): "1"})
    kernel.add_link("red", "veth-old", "veth", owned=True)
    kernel.add_link(None, "veth-red-br", "veth", owned=True)
    desired = DesiredState(
        namespaces=(Namespace("red", HERE),),
        links=veth_pair("red", "veth-new", "veth-red-br"),
        sysctls=(Sysctl(None, "net.ipv4.conf.veth-red-br.proxy_arp", "1", HERE),),
    )
    plan = make_plan(desired, kernel, ledger(tmp_path))
    assert "~ sysctl host/net.ipv4.conf.veth-red-br.proxy_arp: value (none) -> 1" in [str(c) for c in plan.changes]


@pytest.mark.parametrize(
    ("key", "link"),
    [
        ("net.ipv4.conf.veth0.rp_filter", "veth0"),
        ("net.ipv6.neigh.eth0.10.retrans_time_ms", "eth0.10"),
        ("net.ipv4.conf.all.forwarding", None),
        ("net.ipv4.ip_forward", None),
    ],
)
def test_the_link_of_a_sysctl(key: str, link: str | None) -> None:
    assert link_of(key) == link


def test_the_links_of_a_namespace_leaving_the_files_go_in_one_write(tmp_path: Path) -> None:
    """A destroy of a thousand veths is one group deletion, not a thousand:
    every removed link of a namespace is a change of its own, and all of them
    share one step, which a pass runs once (`Plan.batches`)."""
    kernel = FakeKernel(names=set())
    for name in ("vh1", "vh2", "br0"):
        kernel.add_link(None, name, "veth" if name.startswith("vh") else "bridge", owned=True)
    kernel.add_link(None, "docker0", "bridge", owned=False)
    plan = make_plan(DesiredState(files=("x.yaml",)), kernel, ledger(tmp_path))
    assert sorted(str(c) for c in plan.changes) == [
        "- link host/br0: bridge",
        "- link host/vh1: veth",
        "- link host/vh2: veth",
    ]
    ((step, changes),) = plan.batches()
    assert step.phase == Phase.DELETE_LINK and len(changes) == 3
    assert step.describe == "delete 3 links of host (vh1, vh2, br0)"


def test_a_namespace_being_removed_is_not_read(tmp_path: Path) -> None:
    """What a namespace holds goes with it: a destroy of a thousand of them
    reads none of them first."""
    kernel = FakeKernel(names={"red", "blue"})
    book = ledger(tmp_path)
    book.record("namespace", ("red",))
    book.record("address", ("red", "eth0", "10.0.0.2/24"))
    book.record("route", ("red", 254, "0.0.0.0/0", 0))
    desired = DesiredState(namespaces=(Namespace("blue", HERE),), files=("x.yaml",))
    plan = make_plan(desired, kernel, book)
    assert [str(c) for c in plan.changes] == ["- namespace red: with everything in it"]
    assert "red" not in kernel.dumps and "blue" in kernel.dumps
