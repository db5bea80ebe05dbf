"""`netlab show` from a fake kernel: the document `reporting.live_state` builds
from what every kind reads, in the file format, with `owned` where netlab made
the object. No root: the kinds read through the `KernelReader` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from netlab.controller import reporting
from netlab.controller.backends.iptables import NatTables, ObservedChain, ObservedNatRule
from netlab.controller.backends.nat_backends import Backend
from netlab.controller.backends.netlink import NETLAB_ROUTE_PROTO, ObservedAddress, ObservedRoute
from netlab.controller.backends.resolver_files import FileState
from netlab.controller.kinds import dns, hosts
from netlab.controller.kinds.nat import rule_specs
from netlab.state.ledger import Ledger
from netlab.state.model import (
    Address,
    DesiredState,
    Dns,
    HostsEntry,
    Link,
    Namespace,
    NatRule,
    Origin,
    Route,
    Sysctl,
)
from tests.unit.test_planning import FakeKernel, veth_pair

HERE = Origin("/etc/netlab.d/lab.yaml", 3, 5)
MASQUERADE = NatRule(None, "masquerade", HERE, source="192.168.15.0/24", out_interface="eth0")
FORWARD = NatRule("red", "dnat", HERE, protocol="tcp", port="8080", to="192.168.15.1:80")
GONE = NatRule(None, "masquerade", HERE, source="10.9.0.0/16")  # declared, not in the kernel


@dataclass
class ShowKernel(FakeKernel):
    """Links, addresses, routes and sysctls (FakeKernel), NAT tables and files."""

    tables: dict[str | None, NatTables] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def legacy_nat_exists(self, netns: str | None) -> bool:
        return netns in self.tables

    def nat(self, netns: str | None, backend: Backend = "iptables") -> NatTables:
        return self.tables.get(netns, NatTables()) if backend == "iptables" else NatTables()

    def file(self, path: str) -> FileState:
        if path in self.files:
            return FileState(path, "file", self.files[path], 0o644)
        return FileState(path, "absent")


def applied(*rules: NatRule) -> NatTables:
    found = tuple(
        ObservedNatRule(spec.family, spec.chain, spec.comment, spec.text(), spec)
        for rule in rules
        for spec in rule_specs(rule)
    )
    chains = sorted({(rule.family, rule.chain) for rule in found})
    return NatTables(tuple(ObservedChain(family, chain, 0, 1) for family, chain in chains), found)


def lab() -> DesiredState:
    return DesiredState(
        namespaces=(Namespace("red", HERE), Namespace("absent", HERE)),
        links=(
            Link(None, "v-net-0", "bridge", HERE, state="up"),
            *veth_pair("red", "veth-red", "veth-red-br", master="v-net-0"),
            Link(None, "eth0.10", "vlan", HERE, parent="eth0", options=(("id", 10),)),
        ),
        addresses=(Address("red", "veth-red", "192.168.15.1/24", HERE),),
        routes=(Route("red", "0.0.0.0/0", 254, 0, HERE, via="192.168.15.5"),),
        sysctls=(Sysctl(None, "net.ipv4.ip_forward", "1", HERE), Sysctl("red", "net.ipv4.ip_forward", "1", HERE)),
        nat=(MASQUERADE, FORWARD, GONE),
        dns=(Dns("red", ("192.168.15.5",), ("lab",), (), HERE),),
        hosts=(HostsEntry(None, "192.168.15.1", ("red",), HERE), HostsEntry("red", "192.168.15.5", ("gw",), HERE)),
        files=("lab.yaml",),
    )


def kernel() -> ShowKernel:
    found = ShowKernel(names={"red", "blue"})
    found.add_link(None, "eth0", "ether", owned=False)  # neither declared nor netlab's: not shown
    found.add_link(None, "v-net-0", "bridge", owned=True, mtu=1400)
    found.add_link(None, "veth-red-br", "veth", owned=True, master="v-net-0")
    # what the kernel reports, where the files say otherwise (protocol): shown as it is
    vlan_data = (("IFLA_VLAN_ID", 10), ("IFLA_VLAN_PROTOCOL", 0x88A8))
    found.add_link(None, "eth0.10", "vlan", owned=True, state="down", link_index=2, data=vlan_data)
    found.add_link("red", "lo", None, owned=False)
    found.add_link("red", "veth-red", "veth", owned=True, mac="02:00:00:00:00:02")
    found.add_link("red", "tap0", "tun", owned=False)  # in a namespace of netlab's: shown, not owned
    found.addresses = {
        None: [ObservedAddress(None, "eth0", "198.51.100.7/24", 4, False)],
        "red": [
            ObservedAddress("red", "veth-red", "192.168.15.1/24", 4, False),
            ObservedAddress("red", "veth-red", "fe80::1/64", 6, False),
            ObservedAddress("red", "lo", "127.0.0.1/8", 4, False),
        ],
    }
    found.routes = {
        None: [
            ObservedRoute(None, 254, "0.0.0.0/0", 0, "198.51.100.1", "eth0", 4, 4),  # the host's own: left out
            ObservedRoute(None, 100, "2001:db8::/32", 1024, None, "v-net-0", NETLAB_ROUTE_PROTO, 6),
        ],
        "red": [
            ObservedRoute("red", 254, "0.0.0.0/0", 0, "192.168.15.5", "veth-red", NETLAB_ROUTE_PROTO, 4),
            ObservedRoute("red", 254, "192.168.15.0/24", 0, None, "veth-red", 2, 4),
        ],
    }
    found.sysctls = {(None, "net.ipv4.ip_forward"): "1", ("red", "net.ipv4.ip_forward"): "0"}
    found.tables = {None: applied(MASQUERADE), "red": applied(FORWARD)}
    found.files = {
        "/etc/hosts": b"127.0.0.1\tlocalhost\n" + hosts.render_block([lab().hosts[0]]),
        "/etc/resolv.conf": b"nameserver 198.51.100.1\n",  # not netlab's: no header
        "/etc/netns/red/resolv.conf": dns.render(lab().dns[0]),
        "/etc/netns/red/hosts": hosts.render_netns_file([lab().hosts[1]]),
    }
    return found


def owning(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.json")
    ledger.record("namespace", ("red",), {})
    ledger.record("link", (None, "eth0.10"), {"type": "vlan"})
    ledger.record("sysctl", ("blue", "net.ipv4.ip_forward"), {"original": "0"})
    return ledger


def test_show_gives_every_kind_in_the_file_format(tmp_path: Path) -> None:
    document = reporting.live_state(lab(), kernel(), owning(tmp_path))
    assert document == {
        "version": 1,
        "namespaces": [
            {
                "name": "red",
                "owned": True,
                "sysctls": {"net.ipv4.ip_forward": 0},
                "dns": {"nameservers": ["192.168.15.5"], "search": ["lab"], "owned": True},
                "hosts": [{"address": "192.168.15.5", "names": ["gw"], "owned": True}],
            }
        ],
        "interfaces": [
            {
                "name": "v-net-0",
                "type": "bridge",
                "stp": False,
                "vlan_filtering": False,
                "forward_delay": 15,
                "state": "up",
                "mtu": 1400,
                "mac": "02:00:00:00:00:01",
                "owned": True,
            },
            {
                "name": "eth0.10",
                "type": "vlan",
                "parent": "eth0",
                "id": 10,
                "protocol": "802.1ad",
                "state": "down",
                "mtu": 1500,
                "mac": "02:00:00:00:00:01",
                "owned": True,
            },
            {
                "name": "veth-red",
                "netns": "red",
                "type": "veth",
                "state": "up",
                "mtu": 1500,
                "mac": "02:00:00:00:00:02",
                "addresses": ["192.168.15.1/24"],
                "peer": {
                    "name": "veth-red-br",
                    "state": "up",
                    "mtu": 1500,
                    "mac": "02:00:00:00:00:01",
                    "master": "v-net-0",
                },
                "owned": True,
            },
            {
                "name": "tap0",
                "netns": "red",
                "type": "device",
                "state": "up",
                "mtu": 1500,
                "mac": "02:00:00:00:00:01",
                "owned": False,
            },
        ],
        "routes": [
            {"to": "2001:db8::/32", "dev": "v-net-0", "metric": 1024, "table": 100, "owned": True},
            {"to": "default", "netns": "red", "via": "192.168.15.5", "dev": "veth-red", "owned": True},
            {"to": "192.168.15.0/24", "netns": "red", "dev": "veth-red", "owned": False},
        ],
        "sysctls": {"net.ipv4.ip_forward": 1},
        "nat": [
            {"type": "masquerade", "source": "192.168.15.0/24", "out_interface": "eth0", "owned": True},
            {"type": "dnat", "netns": "red", "protocol": "tcp", "port": "8080", "to": "192.168.15.1:80", "owned": True},
        ],
        "hosts": [{"address": "192.168.15.1", "names": ["red"], "owned": True}],
    }


def test_a_veth_end_away_from_where_the_files_put_it_is_shown_as_a_device(tmp_path: Path) -> None:
    moved = kernel()
    moved.links["red"] = [link for link in moved.links["red"] if link.name != "veth-red"]
    document = reporting.live_state(lab(), moved, owning(tmp_path))
    ends = [entry for entry in document["interfaces"] if entry["name"] == "veth-red-br"]
    assert ends == [
        {
            "name": "veth-red-br",
            "type": "device",
            "state": "up",
            "mtu": 1500,
            "mac": "02:00:00:00:00:01",
            "master": "v-net-0",
            "owned": True,
        }
    ]


def test_broken_hosts_markers_show_no_entries_and_raise_nothing(tmp_path: Path) -> None:
    broken = kernel()
    broken.files["/etc/hosts"] += b"# END netlab\n"
    document = reporting.live_state(lab(), broken, owning(tmp_path))
    assert "hosts" not in document
    assert document["namespaces"][0]["hosts"] == [{"address": "192.168.15.5", "names": ["gw"], "owned": True}]
