"""Checks across objects and files: conflicts name both places, references must
resolve, an address is assigned once per namespace, and a namespace's gateways
must be reachable from what the files declare there."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

Problems = Callable[[dict[str, str | bytes]], list[str]]
V1 = "version: 1\n"
RED = V1 + "namespaces: [{name: red}]\n"


@pytest.fixture
def problems(problems: Problems) -> Problems:
    """The shared fixture, with the directory of the absolute `file:line` that
    messages name for the first place written as `{dir}`."""

    def relative(files: dict[str, str | bytes]) -> list[str]:
        return [re.sub(r"/\S*/netlab\.d-\d+/", "{dir}/", p) for p in problems(files)]

    return relative


ONCE = ": declare it once (all files of the directory are merged into one state)"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "a.yaml": V1 + "interfaces:\n  - {name: br0, type: bridge}\n",
                "b.yaml": V1 + "interfaces:\n  - {name: br0, type: dummy}\n",
            },
            "b.yaml:3:5: interfaces[0]: interface 'br0' in namespace host is already declared at "
            "{dir}/a.yaml:3 (as a bridge)" + ONCE,
            id="interface across files",
        ),
        pytest.param(
            {
                "a.yaml": V1 + "interfaces:\n  - {name: uplink, type: bridge}\n",
                "b.yaml": V1 + "interfaces:\n  - name: v0\n    type: veth\n    peer: {name: uplink}\n",
            },
            "b.yaml:5:11: interfaces[0].peer: interface 'uplink' in namespace host, the peer of veth 'v0', is "
            "already declared at {dir}/a.yaml:3 (as a bridge)" + ONCE,
            id="veth peer and another interface",
        ),
        pytest.param(
            {"a.yaml": V1 + "interfaces:\n  - {name: v0, type: veth, peer: {name: v1}}\n  - {name: v1, type: dummy}\n"},
            "a.yaml:4:5: interfaces[1]: interface 'v1' in namespace host is already declared at {dir}/a.yaml:3 "
            "(as the peer of veth 'v0')" + ONCE,
            id="interface and an earlier peer",
        ),
        pytest.param(
            {
                "a.yaml": V1 + "interfaces:\n  - {name: d0, type: bridge, addresses: [10.0.0.1/24]}\n",
                "b.yaml": V1 + "interfaces:\n  - {name: d1, type: bridge, addresses: [10.0.0.2/24, 10.0.0.1/16]}\n",
            },
            "b.yaml:3:55: interfaces[0].addresses[1]: address 10.0.0.1 is already assigned in namespace host at "
            "{dir}/a.yaml:3 (10.0.0.1/24 on d0): an address can be assigned only once per namespace",
            id="address assigned twice",
        ),
    ],
)
def test_a_second_declaration_names_the_first(problems: Problems, files: dict[str, str | bytes], expected: str) -> None:
    assert problems(files) == [expected]


def test_same_name_in_two_namespaces_is_no_conflict(problems: Problems) -> None:
    assert (
        problems(
            {
                "a.yaml": RED
                + "interfaces:\n  - {name: eth0, type: device}\n  - {name: eth0, type: device, netns: red}\n"
            }
        )
        == []
    )


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (
            RED,
            V1 + "namespaces:\n  - name: red\n",
            "b.yaml:3:5: namespaces[0]: namespace 'red' is already declared at {dir}/a.yaml:2",
        ),
        (
            V1 + "routes: [{to: 10.0.0.0/8, via: 192.0.2.1}]\n",
            V1 + "routes: [{to: 10.0.0.0/8, dev: eth0, table: main, metric: 0}]\n",
            "b.yaml:2:10: routes[0]: the route to 10.0.0.0/8 (table 254, metric 0) in namespace host is "
            "already declared at {dir}/a.yaml:2",
        ),
        (
            V1 + "sysctls: {net.ipv4.ip_forward: 1}\n",
            V1 + "sysctls:\n  net.ipv4.ip_forward: 0\n",
            'b.yaml:3:3: sysctls["net.ipv4.ip_forward"]: sysctl net.ipv4.ip_forward in namespace host is '
            "already declared at {dir}/a.yaml:2",
        ),
        (
            V1 + "nat: [{type: masquerade, source: 10.0.0.0/8}]\n",
            V1 + "nat:\n  - type: masquerade\n    source: 10.0.0.0/8\n",
            "b.yaml:3:5: nat[0]: this masquerade rule in namespace host is already declared at {dir}/a.yaml:2",
        ),
        (
            V1 + "hosts: [{address: 10.0.0.1, names: [a]}]\n",
            V1 + "hosts: [{address: 10.0.0.1, names: [b]}]\n",
            "b.yaml:2:9: hosts[0]: the hosts entry for 10.0.0.1 in namespace host is already declared at "
            "{dir}/a.yaml:2",
        ),
        (
            V1 + "dns: {nameservers: [10.0.0.1]}\n",
            V1 + "dns:\n  search: [lab]\n",
            "b.yaml:3:3: dns: dns for namespace host is already declared at {dir}/a.yaml:2",
        ),
    ],
    ids=["namespace", "route", "sysctl", "nat", "hosts", "dns"],
)
def test_conflicts_name_both_places(problems: Problems, first: str, second: str, expected: str) -> None:
    assert problems({"a.yaml": first, "b.yaml": second}) == [expected + ONCE]


def test_conflict_within_one_file(problems: Problems) -> None:
    found = problems({"a.yaml": V1 + "routes:\n  - {to: default, dev: eth0}\n  - {to: 0.0.0.0/0, via: 10.0.0.1}\n"})
    assert [p.split(" is already")[0] for p in found] == [
        "a.yaml:4:5: routes[1]: the route to 0.0.0.0/0 (table 254, metric 0) in namespace host"
    ]


def test_routes_differing_in_metric_or_family_do_not_conflict(problems: Problems) -> None:
    text = V1 + "routes:\n  - {to: default, dev: eth0}\n  - {to: default, dev: eth0, metric: 10}\n" \
        "  - {to: default, via: 'fe80::1', dev: eth0}\n"  # fmt: skip
    assert problems({"a.yaml": text}) == []


def test_undeclared_namespaces(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": RED
            + "interfaces:\n  - {name: v0, type: veth, netns: rde, peer: {name: v1, netns: blue}}\n"
            + "routes:\n  - {to: default, dev: lo, netns: green}\n"
            + "nat:\n  - {type: masquerade, source: 10.0.0.0/8, netns: ref}\n"
        }
    ) == [
        "a.yaml:4:35: interfaces[0].netns: namespace 'rde' is not declared (did you mean 'red'?): add "
        "`- name: rde` under `namespaces:` (in any file), or fix the name",
        "a.yaml:4:64: interfaces[0].peer.netns: namespace 'blue' is not declared: add `- name: blue` under "
        "`namespaces:` (in any file), or fix the name",
        "a.yaml:6:35: routes[0].netns: namespace 'green' is not declared: add `- name: green` under "
        "`namespaces:` (in any file), or fix the name",
        "a.yaml:8:51: nat[0].netns: namespace 'ref' is not declared (did you mean 'red'?): add `- name: ref` "
        "under `namespaces:` (in any file), or fix the name",
    ]


def test_namespace_declared_in_another_file(problems: Problems) -> None:
    assert problems({"a.yaml": RED, "b.yaml": V1 + "interfaces: [{name: d0, type: bridge, netns: red}]\n"}) == []


def test_master_must_take_ports_and_be_in_the_same_namespace(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": RED
            + "interfaces:\n"
            + "  - {name: br0, type: bridge}\n"
            + "  - {name: d0, type: dummy, master: br1}\n"
            + "  - {name: v0, type: veth, netns: red, master: br0, peer: {name: v1, master: d0}}\n"
            + "  - {name: docker0, type: device}\n"
            + "  - {name: v2, type: veth, peer: {name: v3, master: docker0}}\n"
            + "  - {name: bond0, type: bond}\n"
            + "  - {name: blue, type: vrf, table: 10}\n"
            + "  - {name: v4, type: veth, master: blue, peer: {name: v5, master: bond0}}\n"
            + "  - {name: lab, type: bridge, master: blue}\n"
            + "  - {name: inner, type: bridge, master: br0}\n"
        }
    ) == [
        "a.yaml:5:37: interfaces[1].master: master 'br1' is not declared in namespace host (did you mean "
        "'br0'?): declare it there (bridge, bond, vrf), or `type: device` for one that exists already",
        "a.yaml:6:48: interfaces[2].master: master 'br0' is not declared in namespace red: declare it "
        "there (bridge, bond, vrf), or `type: device` for one that exists already",
        "a.yaml:6:78: interfaces[2].peer.master: master 'd0' is a dummy (declared at {dir}/a.yaml:5), which "
        "takes no ports: a link's master is one of bridge, bond, vrf",
        "a.yaml:13:41: interfaces[9].master: a bridge cannot be a port of another bridge (the kernel refuses "
        "it): remove `master`, or connect the bridges with a veth pair",
    ]


def test_bridge_cannot_be_a_port(problems: Problems) -> None:
    assert problems(
        {"a.yaml": V1 + "interfaces:\n  - {name: br0, type: bridge}\n  - {name: br1, type: bridge, master: br0}\n"}
    ) == [
        "a.yaml:4:39: interfaces[1].master: a bridge cannot be a port of another bridge (the kernel refuses "
        "it): remove `master`, or connect the bridges with a veth pair"
    ]


def test_route_dev_in_a_namespace_must_be_declared_there(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": RED
            + "interfaces: [{name: v0, type: veth, netns: red, peer: {name: v1}}]\n"
            + "routes:\n"
            + "  - {netns: red, to: 10.0.0.0/8, dev: v1}\n"
            + "  - {netns: red, to: 10.1.0.0/16, dev: lo}\n"
            + "  - {netns: red, to: 10.2.0.0/16, dev: v0}\n"
            + "  - {to: 10.3.0.0/16, dev: eth7}\n"  # the host may have eth7 already
        }
    ) == [
        "a.yaml:5:39: routes[0].dev: dev 'v1' is not an interface declared in namespace red: "
        "declare it there, or fix the name"
    ]


def test_gateway_outside_every_prefix_in_a_namespace(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": RED
            + "interfaces: [{name: v0, type: veth, netns: red, addresses: [192.168.15.1/24], peer: {name: v1}}]\n"
            + "routes:\n"
            + "  - {netns: red, to: default, via: 192.168.16.1}\n"
            + "  - {netns: red, to: 10.0.0.0/8, via: 192.168.15.5}\n"
            + "  - {to: 10.0.0.0/8, via: 172.16.0.1}\n"  # the host: checked against the kernel later
        }
    ) == [
        "a.yaml:5:36: routes[0].via: gateway 192.168.16.1 is not inside the prefix of any address on an up "
        "interface in namespace red (addresses there: 192.168.15.1/24 on v0): the kernel would refuse the "
        "route (\"Nexthop has invalid gateway\"); add an address in the gateway's subnet to that namespace's "
        "interface, or fix `via`"
    ]


def test_gateway_through_a_down_link(problems: Problems) -> None:
    (problem,) = problems(
        {
            "a.yaml": RED
            + "interfaces: [{name: br0, type: bridge, netns: red, state: down, addresses: [10.0.0.1/24]}]\n"
            + "routes: [{netns: red, to: default, via: 10.0.0.254}]\n"
        }
    )
    assert problem.startswith("a.yaml:4:41: routes[0].via: gateway 10.0.0.254 is reached only through br0")


def test_gateway_with_dev_must_be_on_that_dev(problems: Problems) -> None:
    text = RED + (
        "interfaces:\n"
        "  - {name: a0, type: bridge, netns: red, addresses: [10.0.0.1/24]}\n"
        "  - {name: b0, type: bridge, netns: red, addresses: [10.1.0.1/24]}\n"
        "routes:\n"
        "  - {netns: red, to: 10.9.0.0/16, via: 10.1.0.2, dev: b0}\n"
        "  - {netns: red, to: 10.8.0.0/16, via: 10.0.0.2, dev: b0}\n"
    )
    (problem,) = problems({"a.yaml": text})
    assert problem.startswith("a.yaml:8:40: routes[1].via: gateway 10.0.0.2 is not inside the prefix of any "
                              "address on an up interface on b0 in namespace red (addresses there: 10.1.0.1/24 on b0)")  # fmt: skip


def test_gateway_reachable_through_a_link_route_or_link_local(problems: Problems) -> None:
    text = RED + (
        "interfaces: [{name: b0, type: bridge, netns: red}]\n"
        "routes:\n"
        "  - {netns: red, to: 10.7.0.0/24, dev: b0}\n"
        "  - {netns: red, to: default, via: 10.7.0.1}\n"
        "  - {netns: red, to: default, via: 'fe80::1', dev: b0}\n"
    )
    assert problems({"a.yaml": text}) == []


def test_gateway_that_is_the_namespaces_own_address(problems: Problems) -> None:
    text = RED + "interfaces: [{name: b0, type: bridge, netns: red, addresses: [10.0.0.1/24]}]\n" \
        "routes: [{netns: red, to: default, via: 10.0.0.1}]\n"  # fmt: skip
    (problem,) = problems({"a.yaml": text})
    assert "is an address of namespace red itself (10.0.0.1/24 on b0)" in problem


def test_gateway_family_and_link_local(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": V1
            + "routes:\n  - {to: 10.0.0.0/8, via: '2001:db8::1'}\n  - {to: '::/0', via: 'fe80::1'}\n"
            + "  - {to: 10.0.0.1/8, dev: eth0}\n"
        }
    ) == [
        "a.yaml:3:27: routes[0].via: gateway 2001:db8::1 is IPv6 but the destination 10.0.0.0/8 is IPv4: "
        "use a gateway of the same family",
        "a.yaml:4:23: routes[1].via: gateway fe80::1 is link-local, which only means something on one link: "
        "add `dev:` with the interface it is reached through",
        "a.yaml:5:10: routes[2].to: '10.0.0.1/8' has host bits set, so it is not a network: write 10.0.0.0/8",
    ]


def test_nat_host_bits_and_mixed_families(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": V1
            + "nat:\n  - {type: masquerade, source: 192.168.15.1/24}\n"
            + "  - {type: snat, source: 10.0.0.0/8, to_source: '2001:db8::1'}\n"
        }
    ) == [
        "a.yaml:3:32: nat[0].source: '192.168.15.1/24' has host bits set, so it is not a network: write "
        "192.168.15.0/24",
        "a.yaml:4:5: nat[1]: the rule mixes IPv4 and IPv6 (source is IPv4, to_source is IPv6): a NAT rule is "
        "for one family",
    ]


def test_invalid_item_does_not_cause_follow_on_errors(problems: Problems) -> None:
    # the bridge has a schema error; the veth naming it as master must not add
    # "master not declared", nor the route a gateway error in `red`
    found = problems(
        {
            "a.yaml": RED
            + "interfaces:\n  - {name: br0, type: bridge, mtu: 1}\n"
            + "  - {name: v0, type: veth, peer: {name: v1, master: br0}}\n"
            + "  - {name: r0, type: bridge, netns: red, mtu: 1, addresses: [10.0.0.1/24]}\n"
            + "routes: [{netns: red, to: default, via: 10.0.0.2}]\n",
        }
    )
    assert [p.split(": ")[1] for p in found] == ["interfaces[0].mtu", "interfaces[2].mtu"]


def test_unparseable_file_suppresses_reference_checks(problems: Problems) -> None:
    found = problems(
        {"a.yaml": "version: 1\nnamespaces: [\n", "b.yaml": V1 + "interfaces: [{name: d, type: bridge, netns: red}]\n"}
    )
    assert len(found) == 1 and found[0].startswith("a.yaml:3:1: syntax error")


VRF = V1 + "interfaces:\n  - {name: vrf0, type: vrf, table: 10}\n  - {name: br0, type: bridge}\n"


def test_a_route_naming_a_vrf_goes_in_its_table_even_from_another_file(load: Callable[..., object]) -> None:
    state = load(
        {
            "a.yaml": VRF,
            "b.yaml": V1 + "routes:\n  - {to: 10.66.0.0/24, dev: br0, vrf: vrf0}\n  - {to: 10.67.0.0/24, dev: br0}\n",
        }
    )
    assert {(route.to, route.table, route.vrf) for route in state.routes} == {  # type: ignore[attr-defined]
        ("10.66.0.0/24", 10, "vrf0"),
        ("10.67.0.0/24", 254, None),
    }


def test_a_vrf_route_and_a_table_route_to_the_same_place_are_one_route_declared_twice(problems: Problems) -> None:
    assert problems(
        {
            "a.yaml": VRF
            + "routes:\n  - {to: 10.66.0.0/24, dev: br0, vrf: vrf0}\n  - {to: 10.66.0.0/24, dev: br0, table: 10}\n"
        }
    ) == [
        "a.yaml:7:5: routes[1]: the route to 10.66.0.0/24 (table 10, metric 0) in namespace host is already declared "
        "at {dir}/a.yaml:6" + ONCE
    ]


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        pytest.param(
            "{to: 10.66.0.0/24, dev: br0, vrf: vrf1}",
            "a.yaml:7:39: routes[0].vrf: vrf 'vrf1' is not declared in namespace host (did you mean 'vrf0'?): "
            "declare {name: vrf1, type: vrf, table: N} there, or write `table: N`",
            id="undeclared",
        ),
        pytest.param(
            "{to: 10.66.0.0/24, dev: br0, vrf: br0}",
            "a.yaml:7:39: routes[0].vrf: 'br0' is a bridge link, not a vrf: name a vrf of namespace host, or write "
            "`table: N`",
            id="not a vrf",
        ),
        pytest.param(
            "{to: 10.66.0.0/24, dev: br0, vrf: red}\n  - {to: 10.66.0.0/24, dev: br0, vrf: blue}",
            "a.yaml:7:39: routes[0].vrf: vrf 'red' is not declared in namespace host: "
            "declare {name: red, type: vrf, table: N} there, or write `table: N`\n"
            "a.yaml:8:39: routes[1].vrf: vrf 'blue' is not declared in namespace host: "
            "declare {name: blue, type: vrf, table: N} there, or write `table: N`",
            id="two unknown, not one route twice",
        ),
        pytest.param(
            "{netns: red, to: 10.66.0.0/24, dev: br0, vrf: vrf0}",
            "a.yaml:7:51: routes[0].vrf: vrf 'vrf0' is not declared in namespace red: a vrf 'vrf0' is declared "
            "in namespace host: leave the route's `netns` out",
            id="in another namespace",
        ),
        pytest.param(
            "{to: 10.66.0.0/24, dev: br0, vrf: vrf0, table: 10}",
            "a.yaml:7:5: routes[0]: a route goes in one table: write `table` or `vrf` (the VRF's table), not both",
            id="both",
        ),
    ],
)
def test_a_route_naming_no_vrf_is_refused(problems: Problems, route: str, expected: str) -> None:
    files = {
        "a.yaml": VRF.replace("version: 1\n", "version: 1\nnamespaces: [{name: red}]\n") + f"routes:\n  - {route}\n"
    }
    assert problems(files) == expected.split("\n")


def test_links_on_one_parent_agree_on_what_the_kernel_keeps_per_parent(problems: Problems) -> None:
    files = {
        "a.yaml": RED + "interfaces:\n  - {name: iv0, type: ipvlan, parent: eth0}\n"
        "  - {name: iv1, type: ipvlan, parent: eth1, mode: l3}\n",
        "b.yaml": V1 + "interfaces:\n  - {name: it0, type: ipvtap, parent: eth0, mode: l3, netns: red}\n"
        "  - {name: iv2, type: ipvlan, parent: eth1, mode: l3}\n",
    }
    assert problems(files) == [
        "b.yaml:3:51: interfaces[0].mode: ipvtap 'it0' has mode l3, but ipvlan 'iv0' on the same parent eth0 has "
        "l2 (the default) ({dir}/a.yaml:4): the kernel keeps one mode for all of them: give them the same mode"
    ]
