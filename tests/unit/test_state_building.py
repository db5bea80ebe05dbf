"""The model built from valid files: a veth gives two links, defaults are filled in
the way the controller and the kernel expect, values are normalised, files merge
in name order, and `match.hostname` decides which files count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from netlab.state.link_types import LINK_TYPES, Attribute
from netlab.state.loading import load_generation
from netlab.state.model import Address, DesiredState, Dns, HostsEntry, Link, NatRule, Origin, Route, Sysctl
from netlab.state.validating import load_schema

Load = Callable[[dict[str, str | bytes]], DesiredState]
# the link types as the schema lists them (a message quotes them all)
LINK_TYPE_NAMES = ", ".join(load_schema()["$defs"]["interface"]["properties"]["type"]["enum"])
V1 = "version: 1\n"
HOSTNAME = "node-a"  # the name the `load` and `problems` fixtures load as


def one_file(*lines: str) -> dict[str, str | bytes]:
    """A directory of one YAML file, `a.yaml`: `version: 1` and these lines."""
    return {"a.yaml": V1 + "".join(f"{line}\n" for line in lines)}


def test_design_example_loads_cleanly(tmp_path: Path, design_example: bytes) -> None:
    (tmp_path / "example.yaml").write_bytes(design_example)
    state = load_generation(tmp_path, hostname="node-a")
    assert [ns.name for ns in state.namespaces] == ["red", "blue"]
    assert [(link.netns, link.name, link.type) for link in state.links] == [
        (None, "v-net-0", "bridge"),
        ("red", "veth-red", "veth"),
        (None, "veth-red-br", "veth-peer"),
        (None, "eth0", "device"),
    ]
    assert [r.key for r in state.routes] == [("red", 254, "0.0.0.0/0", 0), (None, 254, "10.244.2.0/24", 100)]
    assert {(s.netns, s.key, s.value) for s in state.sysctls} == {
        ("red", "net.ipv4.ip_forward", "1"),
        (None, "net.ipv4.ip_forward", "1"),
    }
    assert state.nat[1].port == "8080" and state.nat[1].to == "192.168.15.2:80"
    assert [d.netns for d in state.dns] == ["red", None]
    assert state.hosts[0] == HostsEntry("red", "192.168.15.2", ("blue",), Origin("x", 1))
    assert state.files == (str(tmp_path.resolve() / "example.yaml"),)


def test_design_example_contributes_nothing_on_other_hosts(tmp_path: Path, design_example: bytes) -> None:
    (tmp_path / "example.yaml").write_bytes(design_example)
    assert load_generation(tmp_path, hostname="edge-7").links  # glob match
    state = load_generation(tmp_path, hostname="node-b")
    assert state.links == () and state.namespaces == () and len(state.files) == 1


def test_veth_gives_two_links_pointing_at_each_other(load: Load) -> None:
    state = load(one_file(
        "namespaces: [{name: red}]",
        "interfaces:",
        "  - {name: br0, type: bridge}",
        "  - name: v-red", "    type: veth", "    netns: red", "    mtu: 9000", "    mac: 02:AA:BB:CC:DD:EE",
        "    addresses: [10.0.0.1/24]",
        "    peer: {name: v-red-br, master: br0, state: down, addresses: ['2001:DB8::1/64']}",
    ))  # fmt: skip
    veth, peer = state.links[1], state.links[2]
    assert veth == Link(
        netns="red", name="v-red", type="veth", origin=veth.origin, state="up", mtu=9000,
        mac="02:aa:bb:cc:dd:ee", peer_netns=None, peer_name="v-red-br",
    )  # fmt: skip
    assert peer == Link(
        netns=None, name="v-red-br", type="veth-peer", origin=peer.origin, state="down",
        master="br0", peer_netns="red", peer_name="v-red",
    )  # fmt: skip
    assert veth.origin.line == 5 and peer.origin.line == 11
    assert [(a.netns, a.interface, a.address) for a in state.addresses] == [
        ("red", "v-red", "10.0.0.1/24"),
        (None, "v-red-br", "2001:db8::1/64"),
    ]


def test_link_defaults(load: Load) -> None:
    state = load(one_file(
        "interfaces:",
        "  - {name: eth0, type: device}",
        "  - {name: d0, type: dummy}",
        "  - {name: eth0.10, type: vlan, parent: eth0, id: 10}",
        "  - {name: mv0, type: macvlan, parent: eth0}",
        "  - {name: iv0, type: ipvlan, parent: eth0}",
        "  - {name: mv1, type: macvlan, parent: eth0, mode: vepa, state: down}",
    ))  # fmt: skip
    summary = [(link.name, link.state, link.options, link.parent) for link in state.links]
    assert summary == [
        ("eth0", None, (), None),  # a device's state is managed only when declared
        ("d0", "up", (), None),
        ("eth0.10", "up", (("id", 10),), "eth0"),
        ("mv0", "up", (), "eth0"),
        ("iv0", "up", (), "eth0"),
        ("mv1", "down", (("mode", "vepa"),), "eth0"),
    ]
    # what an undeclared attribute means is the table's
    mode = {link.name: _attribute(link.type, "mode").declared(link) for link in state.links[3:]}
    assert mode == {"mv0": "bridge", "iv0": "l2", "mv1": "vepa"}
    assert _attribute("vlan", "protocol").declared(state.links[2]) == "802.1Q"


def _attribute(link_type: str, key: str) -> Attribute:
    return next(a for a in LINK_TYPES[link_type].attributes if a.key == key)


def test_routes_normalised(load: Load) -> None:
    state = load(one_file(
        "routes:",
        "  - {to: default, via: 10.0.0.1}",
        "  - {to: default, via: '2001:db8::1'}",
        "  - {to: default, dev: eth0, table: 100}",
        "  - {to: 10.1.2.3, dev: eth0, table: local}",
        "  - {to: '2001:DB8:1::/48', dev: eth0, table: default, metric: 5}",
        "  - {to: 10.9.0.0/16, via: 10.0.0.1, table: main}",
    ))  # fmt: skip
    assert [(r.to, r.table, r.metric, r.via, r.dev) for r in state.routes] == [
        ("0.0.0.0/0", 254, 0, "10.0.0.1", None),
        ("::/0", 254, 1024, "2001:db8::1", None),
        ("0.0.0.0/0", 100, 0, None, "eth0"),
        ("10.1.2.3/32", 255, 0, None, "eth0"),
        ("2001:db8:1::/48", 253, 5, None, "eth0"),
        ("10.9.0.0/16", 254, 0, "10.0.0.1", None),
    ]
    assert all(isinstance(r, Route) for r in state.routes)


def test_sysctl_values_are_strings(load: Load) -> None:
    state = load(one_file(
        "sysctls:", "  net.ipv4.ip_forward: true", "  net.ipv6.conf.all.forwarding: false",
        "  net.core.somaxconn: 4096", "  net.ipv4.tcp_rmem: 4096 87380 6291456",
    ))  # fmt: skip
    assert [(s.key, s.value) for s in state.sysctls] == [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "0"),
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_rmem", "4096 87380 6291456"),
    ]
    assert state.sysctls[0] == Sysctl(None, "net.ipv4.ip_forward", "1", Origin("a.yaml", 3, 3))
    assert state.sysctls[0].origin.line == 3 and state.sysctls[0].origin.column == 3


def test_namespace_children(load: Load) -> None:
    state = load(one_file(
        "namespaces:",
        "  - name: red",
        "    sysctls: {net.ipv4.ip_forward: 1}",
        "    dns: {nameservers: ['2001:DB8::53'], search: [lab.internal], options: [ndots:2, rotate]}",
        "    hosts: [{address: 10.0.0.2, names: [db]}]",
    ))  # fmt: skip
    assert state.sysctls[0].netns == "red"
    assert state.dns == (Dns("red", ("2001:db8::53",), ("lab.internal",), ("ndots:2", "rotate"), Origin("", 0)),)
    assert state.hosts[0].netns == "red"


def test_nat_rules_normalised(load: Load) -> None:
    state = load(one_file(
        "nat:",
        "  - {type: masquerade, source: 10.0.0.0/8, out_interface: eth0}",
        "  - {type: snat, source: 10.0.0.5, to_source: 192.0.2.1, destination: 0.0.0.0/0}",
        "  - {type: dnat, protocol: udp, port: '053-053', to: '[2001:DB8::2]:53'}",
        "  - {type: dnat, protocol: tcp, port: 8000-8080, to: 10.0.0.2, in_interface: eth0}",
    ))  # fmt: skip
    origin = Origin("", 0)
    assert state.nat == (
        NatRule(None, "masquerade", origin, source="10.0.0.0/8", out_interface="eth0"),
        NatRule(None, "snat", origin, source="10.0.0.5/32", destination="0.0.0.0/0", to_source="192.0.2.1"),
        NatRule(None, "dnat", origin, protocol="udp", port="53", to="[2001:db8::2]:53"),
        NatRule(None, "dnat", origin, protocol="tcp", port="8000-8080", to="10.0.0.2", in_interface="eth0"),
    )


def test_files_merge_in_name_order(load: Load) -> None:
    state = load(
        {
            "b.json": '{"version": 1, "interfaces": [{"name": "b0", "type": "bridge"}]}',
            "a.yaml": V1 + "interfaces: [{name: a0, type: bridge}]\n",
            "c.yml": V1 + "interfaces: [{name: c0, type: bridge}]\n",
        }
    )
    assert [link.name for link in state.links] == ["a0", "b0", "c0"]
    assert [Path(f).name for f in state.files] == ["a.yaml", "b.json", "c.yml"]
    assert state.links[1].origin.file.endswith("b.json") and state.links[1].origin.line == 1


def test_match_hostname(load: Load) -> None:
    files = {
        "a.yaml": V1 + f"match: {{hostname: {HOSTNAME}}}\ninterfaces: [{{name: a0, type: bridge}}]\n",
        "b.yaml": V1 + "match: {hostname: [other, NODE-*]}\ninterfaces: [{name: b0, type: bridge}]\n",
        "c.yaml": V1 + "match: {hostname: other}\ninterfaces: [{name: a0, type: bridge}]\n",
    }
    # c.yaml does not apply: its a0 is no conflict
    assert [link.name for link in load(files).links] == ["a0", "b0"]


def test_match_short_name_of_fqdn(write_config: Callable[[dict[str, str | bytes]], Path]) -> None:
    directory = write_config({"a.yaml": V1 + "match: {hostname: node-a}\ninterfaces: [{name: a0, type: bridge}]\n"})
    assert load_generation(directory, hostname="node-a.lab.example").links


def test_non_matching_file_is_still_validated(problems: Callable[[dict[str, str | bytes]], list[str]]) -> None:
    assert problems({"a.yaml": V1 + "match: {hostname: other}\ninterfaces: [{name: a0, type: bridg}]\n"}) == [
        f"a.yaml:3:31: interfaces[0].type: 'bridg' is not one of: {LINK_TYPE_NAMES} (did you mean 'bridge'?)"
    ]


def test_json_whole_numbers_written_as_floats(load: Load) -> None:
    state = load({"a.json": '{"version": 1, "interfaces": [{"name": "b0", "type": "bridge", "mtu": 1500.0}]}'})
    assert state.links[0].mtu == 1500 and isinstance(state.links[0].mtu, int)


def test_address_model_values() -> None:
    assert Address(None, "eth0", "10.0.0.2/24", Origin("f", 1)).family == 4


def test_a_namespace_named_host_is_refused(problems: Callable[[dict[str, str | bytes]], list[str]]) -> None:
    """`host` is the host's own namespace in the files (a check's `from: host`)
    and in every plan and picture: a namespace of that name would be the host."""
    assert problems({"a.yaml": V1 + "namespaces:\n  - name: red\n  - name: host\n"}) == [
        "a.yaml:4:11: namespaces[1].name: a namespace cannot be named `host`: the files say `host` for the host's "
        "own namespace (a check's `from`), and so do plans and pictures; choose another name"
    ]
