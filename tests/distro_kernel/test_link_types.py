"""Every link type this machine's kernel lacks (dummy, vlan, ipvlan, ipvtap,
bond, vrf) on Debian's own kernel, in the qemu guest scripts/test boots
(tools/qemu-kernel.sh): created, changed in place, changed so that it must be
a new link, removed, and a hand-made link of the type left alone; a bond
carries traffic over its active port, a vrf's table routes. Judged by
`ip -d -j link` and `ping`, not by netlab."""

from __future__ import annotations

import json

import pytest

from tests.link_lifecycle import Case, link_of, live
from tests.sandbox import Sandbox

pytestmark = [pytest.mark.kernel, pytest.mark.distro_kernel]


# d8 holds the foreign ipvlan and ipvtap: the kernel keeps an ipvlan's mode per
# lower device, so a sibling on the case's d9 would change mode with it
_DUMMIES = "  - {name: d0, type: dummy}\n  - {name: d8, type: dummy}\n  - {name: d9, type: dummy}\n"
CASES = [
    Case(
        "dummy",
        "dum1",
        "",
        "type: dummy, mtu: 1400",
        {"kind": "dummy", "mtu": 1400},
        ("mtu: 1400", "mtu: 1300"),
        {"mtu": 1300},
        ("type: dummy", "type: bridge"),  # a new type is a new link
        {"kind": "bridge", "mtu": 1300},
        ("f0", "type", "dummy"),
    ),
    Case(
        "vlan",
        "v10",
        _DUMMIES,
        "type: vlan, parent: d0, id: 10",
        {"kind": "vlan", "id": 10, "protocol": "802.1Q"},
        ("id: 10", "id: 10, mtu: 1400"),
        {"mtu": 1400, "id": 10},
        ("id: 10", "id: 20, protocol: 802.1ad"),
        {"kind": "vlan", "id": 20, "protocol": "802.1ad", "mtu": 1400},
        ("link", "d9", "name", "f0", "type", "vlan", "id", "99"),
    ),
    Case(
        "ipvlan",
        "iv0",
        _DUMMIES,
        "type: ipvlan, parent: d0, mode: l2",
        {"kind": "ipvlan", "mode": "l2"},
        ("mode: l2", "mode: l3"),
        {"mode": "l3"},
        ("parent: d0", "parent: d9"),  # a new parent is a new link
        {"kind": "ipvlan", "mode": "l3", "link": "d9"},
        ("link", "d8", "name", "f0", "type", "ipvlan", "mode", "l2"),
    ),
    Case(
        "ipvtap",
        "it0",
        _DUMMIES,
        "type: ipvtap, parent: d0, mode: l2",
        {"kind": "ipvtap", "mode": "l2"},
        ("mode: l2", "mode: l3"),
        {"mode": "l3"},
        ("parent: d0", "parent: d9"),
        {"kind": "ipvtap", "mode": "l3", "link": "d9"},
        ("link", "d8", "name", "f0", "type", "ipvtap", "mode", "l2"),
    ),
    Case(
        "bond",
        "bond0",
        "  - {name: p1, type: veth, master: bond0, peer: {name: p1b}}\n",
        "type: bond, mode: active-backup, miimon: 100",
        {"kind": "bond", "mode": "active-backup", "miimon": 100},
        ("miimon: 100", "miimon: 200"),
        {"miimon": 200},
        ("mode: active-backup", "mode: balance-rr"),
        {"kind": "bond", "mode": "balance-rr", "miimon": 200},
        ("f0", "type", "bond"),
    ),
    Case(
        "vrf",
        "vrf0",
        "  - {name: r1, type: veth, master: vrf0, addresses: [10.98.0.1/24], peer: {name: r1b}}\n",
        "type: vrf, table: 10",
        {"kind": "vrf", "table": 10},
        ("table: 10", "table: 10, mtu: 9000"),
        {"mtu": 9000, "table": 10},
        ("table: 10", "table: 20"),
        {"kind": "vrf", "table": 20, "mtu": 9000},
        ("f0", "type", "vrf", "table", "99"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.type for case in CASES])
def test_a_link_type_is_created_changed_replaced_removed_and_a_foreign_one_kept(sandbox: Sandbox, case: Case) -> None:
    live(sandbox, case)


def test_a_bond_carries_traffic_over_its_active_port_and_fails_over(sandbox: Sandbox) -> None:
    # two ports, their far ends joined by a bridge in namespace `far`, which holds the address pinged
    sandbox.write_config(
        "lab.yaml",
        """version: 1
namespaces: [{name: far}]
interfaces:
  - {name: bond0, type: bond, mode: active-backup, miimon: 50, addresses: [10.7.0.1/24]}
  - {name: p1, type: veth, master: bond0, peer: {name: p1b, netns: far, master: br0}}
  - {name: p2, type: veth, master: bond0, peer: {name: p2b, netns: far, master: br0}}
  - {name: br0, type: bridge, netns: far, addresses: [10.7.0.2/24]}
""",
    )
    sandbox.netlab("apply")
    active = link_of(sandbox, "bond0")["linkinfo"]["info_data"]["active_slave"]
    assert active in ("p1", "p2")
    sandbox.run("ping", "-c", "2", "-W", "5", "10.7.0.2")
    # the far end of the active port goes down: the bond moves to the other port, traffic goes on
    sandbox.run("ip", "-n", "far", "link", "set", f"{active}b", "down")
    other = {"p1": "p2", "p2": "p1"}[active]
    sandbox.run(
        "sh",
        "-c",
        f"for i in $(seq 50); do ip -d link show bond0 | grep -q 'active_slave {other}' && exit; sleep 0.2; done; exit 1",
    )
    sandbox.run("ping", "-c", "2", "-W", "5", "10.7.0.2")


def _vrf_lab(table: int) -> str:
    return f"""version: 1
namespaces: [{{name: red}}]
interfaces:
  - {{name: vrf0, type: vrf, table: {table}}}
  - {{name: r1, type: veth, master: vrf0, addresses: [10.8.0.1/24], peer: {{name: r1b, netns: red, addresses: [10.8.0.2/24]}}}}
  - {{name: lo, type: device, netns: red, addresses: [10.66.0.1/32]}}
routes:
  - {{to: 10.66.0.0/24, via: 10.8.0.2, vrf: vrf0}}
  - {{netns: red, to: default, via: 10.8.0.1}}
"""


def _routes(sandbox: Sandbox, *where: str) -> set[str]:
    return {route["dst"] for route in json.loads(sandbox.run("ip", "-j", "route", "show", *where).stdout or "[]")}


def test_a_vrf_table_routes_its_ports_and_a_route_naming_the_vrf_follows_its_table(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", _vrf_lab(10))
    sandbox.netlab("apply")
    assert {"10.8.0.0/24", "10.66.0.0/24"} <= _routes(sandbox, "table", "10")
    assert not {dst for dst in _routes(sandbox, "table", "main") if dst.startswith(("10.8.", "10.66."))}
    # the host reaches 10.66.0.1 only through the vrf's table
    sandbox.run("ping", "-c", "1", "-W", "5", "-I", "vrf0", "10.66.0.1")
    assert sandbox.run("ping", "-c", "1", "-W", "2", "10.66.0.1", check=False).returncode != 0
    # a new table is a new vrf; the route that names it moves with it
    sandbox.write_config("lab.yaml", _vrf_lab(20))
    sandbox.netlab("apply")
    assert "10.66.0.0/24" in _routes(sandbox, "table", "20") and "10.66.0.0/24" not in _routes(sandbox, "table", "10")
    sandbox.run("ping", "-c", "1", "-W", "5", "-I", "vrf0", "10.66.0.1")
