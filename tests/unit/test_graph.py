"""`netlab graph` without root or kernel: invalid files give validate's located
problems (exit 1, no traceback); without Graphviz's dot, svg asks for graphviz
while dot and mermaid still work; 300 namespaces of one shape fold into one box
and 3 do not."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from netlab.controller import drawing, topologies
from netlab.state.loading import load_generation

NETLAB = str(Path(sys.executable).with_name("netlab"))


def pods(count: int, host_end: str, gateway: str | Callable[[int], str], extra_every: int = 0) -> str:
    """Pods on a bridge br0 whose host ends are named by `host_end` (`veth{i}`:
    names that do not hold the namespace's), a default route via `gateway`."""
    lines = ["version: 1", "namespaces:", *(f"  - name: ns{i}" for i in range(1, count + 1))]
    lines += ["interfaces:", "  - {name: br0, type: bridge, addresses: [10.0.0.1/16, 10.0.0.254/16]}"]
    lines += [
        f"  - {{name: eth0, type: veth, netns: ns{i}, addresses: [10.0.{i // 250}.{i % 250 + 2}/16], "
        f"peer: {{name: {host_end.format(i=i)}, master: br0}}}}"
        for i in range(1, count + 1)
    ]
    lines += ["routes:"]
    for i in range(1, count + 1):
        via = gateway(i) if callable(gateway) else gateway
        lines.append(f"  - {{netns: ns{i}, to: default, via: {via}}}")
        if extra_every and i % extra_every == 0:
            lines.append(f"  - {{netns: ns{i}, to: 10.9.0.0/16, via: 10.0.0.1}}")
    return "\n".join(lines) + "\n"


def lab(count: int) -> str:
    return pods(count, "veth-ns{i}", "10.0.0.1")


def graph(config: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [NETLAB, "graph", "--config-dir", str(config), "--allow-untrusted-config", *options]
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def test_invalid_files_are_named_with_their_line_as_validate_names_them(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("version: 1\ninterfaces:\n  - {name: x, type: nonsense}\n")
    done = graph(tmp_path, "--format", "dot")
    said = subprocess.run([NETLAB, "validate", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    problems = [line for line in said.stderr.splitlines() if line.startswith(str(tmp_path))]
    assert problems and f"{tmp_path}/lab.yaml:3:" in problems[0]
    assert all(problem in done.stderr for problem in problems)


def test_without_dot_svg_asks_for_graphviz_and_text_formats_still_work(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(lab(3))
    no_dot = {**os.environ, "PATH": str(tmp_path / "empty")}
    done = graph(tmp_path, "--format", "svg", env=no_dot)
    assert done.returncode == 1 and "install graphviz" in done.stderr and "Traceback" not in done.stderr
    for text_format in ("dot", "mermaid"):
        assert graph(tmp_path, "--format", text_format, env=no_dot).returncode == 0


def test_the_format_follows_the_output_suffix(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(lab(3))
    assert graph(tmp_path, "--output", str(tmp_path / "lab.mmd")).returncode == 0
    assert (tmp_path / "lab.mmd").read_text().startswith("flowchart LR\n")


def picture_of(tmp_path: Path, count: int) -> drawing.Picture:
    (tmp_path / "lab.yaml").write_text(lab(count))
    desired = load_generation(tmp_path, strict_modes=False)
    return drawing.picture(topologies.grouped(topologies.from_files(desired)))


def test_300_namespaces_of_one_shape_are_one_box(tmp_path: Path) -> None:
    drawn = picture_of(tmp_path, 300)
    assert [box.name for box in drawn.boxes] == [None, "ns1..ns300"]
    assert len(drawn.boxes[1].members) == 300
    links = [node for node in drawn.nodes.values() if node.kind == "link"]
    assert sorted(node.lines[0].text for node in links) == ["br0", "eth0", "veth-*"]
    eth0 = next(node for node in links if node.lines[0].text == "eth0")
    assert eth0.lines[2].text == "10.0.0.3/16 … 10.0.1.52/16"  # ns1's … ns300's
    assert sorted(edge.kind for edge in drawn.edges) == ["port", "route", "veth"]
    assert "ns1..ns300: 300 namespaces of one shape" in drawing.dot(drawn)


def test_3_namespaces_are_drawn_each(tmp_path: Path) -> None:
    drawn = picture_of(tmp_path, 3)
    assert [box.name for box in drawn.boxes] == [None, "ns1", "ns2", "ns3"]
    assert sum(edge.kind == "veth" for edge in drawn.edges) == 3


def drawn_from(tmp_path: Path, text: str, results: dict[str, bool] | None = None) -> drawing.Picture:
    (tmp_path / "lab.yaml").write_text(text)
    desired = load_generation(tmp_path, strict_modes=False)
    return drawing.picture(topologies.grouped(topologies.from_files(desired, results)))


def edges_of(drawn: drawing.Picture) -> set[tuple[str, str, str, str]]:
    return {(edge.kind, edge.tail, edge.head, edge.label) for edge in drawn.edges}


def test_pods_whose_host_ends_do_not_carry_their_names_still_fold(tmp_path: Path) -> None:
    drawn = drawn_from(tmp_path, pods(300, "veth{i}", "10.0.0.1"))
    assert [box.name for box in drawn.boxes] == [None, "ns1..ns300"]
    assert edges_of(drawn) == {
        ("veth", "link:ns1..ns300/eth0", "link:host/veth1 … veth300", ""),
        ("port", "link:host/veth1 … veth300", "link:host/br0", "port"),
        ("route", "anchor:ns1..ns300", "link:host/br0", "default via 10.0.0.1"),
    }


def test_pods_through_different_gateways_are_different_shapes(tmp_path: Path) -> None:
    drawn = drawn_from(tmp_path, pods(300, "veth{i}", lambda i: "10.0.0.1" if i <= 150 else "10.0.0.254"))
    routes = sorted(edge.label for edge in drawn.edges if edge.kind == "route")
    assert [box.name for box in drawn.boxes] == [None, "ns1..ns150", "ns151..ns300"]
    assert routes == ["default via 10.0.0.1", "default via 10.0.0.254"]


def test_a_gateway_of_each_pods_own_veth_is_that_folded_end_not_a_loose_address(tmp_path: Path) -> None:
    lines = ["version: 1", "namespaces:", *(f"  - name: pod{i}" for i in range(1, 21)), "interfaces:"]
    lines += [
        f"  - {{name: cali{i}, type: veth, addresses: [10.1.{i}.1/24], "
        f"peer: {{name: eth0, netns: pod{i}, addresses: [10.1.{i}.2/24]}}}}"
        for i in range(1, 21)
    ]
    lines += ["routes:", *(f"  - {{netns: pod{i}, to: default, via: 10.1.{i}.1}}" for i in range(1, 21))]
    drawn = drawn_from(tmp_path, "\n".join(lines) + "\n")
    assert not [node for node in drawn.nodes.values() if node.kind == "address"]
    assert edges_of(drawn) == {
        ("veth", "link:host/cali1 … cali20", "link:pod1..pod20/eth0", ""),
        ("route", "anchor:pod1..pod20", "link:host/cali1 … cali20", "default via 10.1.1.1 … 10.1.20.1"),
    }


def test_a_group_that_is_not_a_range_is_not_named_as_one(tmp_path: Path) -> None:
    drawn = drawn_from(tmp_path, pods(300, "veth-ns{i}", "10.0.0.1", extra_every=10))
    groups = {box.name: box for box in drawn.boxes if box.members}
    assert sorted(groups) == ["ns1, ns2, …, ns299", "ns10, ns20, …, ns300"]
    assert len(groups["ns1, ns2, …, ns299"].members) == 270
    assert groups["ns1, ns2, …, ns299"].spelled.startswith("ns1..ns9, ns11..ns19, ")
    assert 'tooltip="ns10, ns20, ' in drawing.dot(drawn)
    few = drawn_from(tmp_path, pods(30, "veth-ns{i}", "10.0.0.1", extra_every=10))
    assert sorted(box.name for box in few.boxes if box.members) == [
        "ns1..ns9, ns11..ns19, ns21..ns29",
        "ns10, ns20, ns30",
    ]


LINKS = """version: 1
namespaces: [{name: red}]
interfaces:
  - {name: eth1, type: device}
  - {name: eth1.10, type: vlan, parent: eth1, id: 10, addresses: ["2001:db8::1/64"]}
  - {name: bond0, type: bond}
  - {name: dummy1, type: dummy, master: bond0}
  - {name: blue, type: vrf, table: 10}
  - {name: dummy2, type: dummy, master: blue, addresses: [10.5.0.1/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [10.6.0.2/24], peer: {name: veth-red-h}}
routes:
  - {to: "2001:db8:1::/48", via: "2001:db8::2"}
  - {to: 10.7.0.0/16, via: 10.5.0.9, vrf: blue, metric: 20}
nat:
  - {type: dnat, protocol: tcp, port: 8080, to: "10.6.0.2:80", in_interface: eth1}
  - {type: masquerade, source: 10.6.0.0/24, out_interface: eth1}
checks:
  - {from: red, ping: 10.5.0.1}
  - {from: host, tcp: "10.6.0.2:80"}
"""


def test_vlan_bond_vrf_ipv6_and_nat_are_drawn_between_the_right_ends(tmp_path: Path) -> None:
    drawn = drawn_from(tmp_path, LINKS, {"red ping 10.5.0.1": True, "host tcp 10.6.0.2:8080": False})
    assert edges_of(drawn) == {
        ("parent", "link:host/eth1.10", "link:host/eth1", "on"),
        ("port", "link:host/dummy1", "link:host/bond0", "port"),
        ("port", "link:host/dummy2", "link:host/blue", "port"),
        ("veth", "link:red/veth-red", "link:host/veth-red-h", ""),
        ("route", "anchor:host", "address:2001:db8::2", "2001:db8:1::/48 via 2001:db8::2"),
        ("route", "anchor:host", "address:10.5.0.9", "10.7.0.0/16 via 10.5.0.9 vrf blue metric 20"),
        ("nat", "outside", "link:red/veth-red", "dnat tcp/8080 → 10.6.0.2:80"),
        ("nat", "link:host/eth1", "outside", "masquerade 10.6.0.0/24"),
        ("check", "anchor:red", "link:host/dummy2", "check red ping 10.5.0.1: passing"),
        ("check", "anchor:host", "link:red/veth-red", "check host tcp 10.6.0.2:80: no result"),
    }
    colours = {edge.label: edge.colour for edge in drawn.edges if edge.kind == "check"}
    # a result is the check's whose text it carries: another check's (same line or not) colours nothing
    assert colours == {"check red ping 10.5.0.1: passing": "green4", "check host tcp 10.6.0.2:80: no result": "gray50"}


def test_live_marks_another_parent_and_master_as_different_and_draws_a_foreign_port(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LINKS)
    desired = load_generation(tmp_path, strict_modes=False)
    document = {
        "namespaces": [{"name": "red"}],
        "interfaces": [
            {"name": "eth1", "type": "device"},
            {"name": "eth2", "type": "device", "owned": False},
            {"name": "eth1.10", "type": "vlan", "parent": "eth2", "addresses": ["2001:db8::1/64"]},
            {"name": "bond0", "type": "bond"},
            {"name": "dummy1", "type": "dummy"},
            {"name": "blue", "type": "vrf"},
            {"name": "dummy2", "type": "dummy", "master": "blue", "addresses": ["10.5.0.1/24"]},
            {"name": "eth9", "type": "device", "master": "bond0", "owned": False},
            {
                "name": "veth-red",
                "netns": "red",
                "type": "veth",
                "addresses": ["10.6.0.2/24"],
                "peer": {"name": "veth-red-h"},
            },
        ],
    }
    topology = topologies.from_live(desired, document)
    ends = {end.name: end for end in topology.ends}
    assert (ends["eth1.10"].mark, ends["eth1.10"].detail) == ("different", "parent eth2, not eth1")
    assert (ends["dummy1"].mark, ends["dummy1"].detail) == ("different", "master none, not bond0")
    assert ends["eth9"].mark == "foreign"
    drawn = drawing.picture(topology)
    assert ("port", "link:host/eth9", "link:host/bond0", "port") in edges_of(drawn)
    assert "color=darkorange" in next(
        line for line in drawing.dot(drawn).splitlines() if '"link:host/eth1.10" [' in line
    )


def test_an_edge_from_a_box_to_its_own_link_has_no_ltail_and_a_backslash_stays_one(tmp_path: Path) -> None:
    drawn = drawn_from(tmp_path, LINKS)
    text = drawing.dot(drawn)
    check = next(line for line in text.splitlines() if "class=check" in line and '"anchor:red"' in line)
    assert "ltail" in check  # red's box to a host link: from the border of red
    (tmp_path / "lab.yaml").write_text(
        "version: 1\ninterfaces:\n  - {name: d0, type: dummy, addresses: [10.0.0.1/24]}\n"
        "checks:\n  - {from: host, ping: 10.0.0.1}\n"
    )
    own = drawing.dot(drawn_from(tmp_path, (tmp_path / "lab.yaml").read_text()))
    assert "ltail" not in next(line for line in own.splitlines() if "class=check" in line)
    label = drawing._html_label((topologies.Marked("a\\Nb"),))
    assert "a\\\\Nb" in label
    svg = subprocess.run(["dot", "-Tsvg"], input=f"digraph {{ X [label={label}]; }}", capture_output=True, text=True)
    assert ">a\\Nb<" in svg.stdout


def test_files_for_other_hosts_only_draw_nothing_and_say_how_to_draw_them(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("version: 1\nmatch: {hostname: node1}\nnamespaces: [{name: red}]\n")
    done = graph(tmp_path, "--format", "dot", "--hostname", "elsewhere")
    assert done.returncode == 0 and "--hostname NAME" in done.stderr and "host elsewhere" in done.stderr
    assert "red" in graph(tmp_path, "--format", "dot", "--hostname", "node1").stdout


def test_host_rules_and_checks_aimed_at_each_pod_fold_with_the_pods(tmp_path: Path) -> None:
    text = (
        lab(20)
        + "nat:\n"
        + "".join(
            f'  - {{type: dnat, protocol: tcp, port: {8000 + i}, to: "10.0.0.{i + 2}:80"}}\n' for i in range(1, 21)
        )
    )
    text += "checks:\n" + "".join(f"  - {{from: host, ping: 10.0.0.{i + 2}}}\n" for i in range(1, 21))
    text += "  - {from: host, tcp: '10.0.0.3:22'}\n"  # another kind of check: an edge of its own
    drawn = drawn_from(tmp_path, text, {f"host ping 10.0.0.{i + 2}": True for i in range(1, 21)})
    aimed = sorted(edge[0::3] for edge in edges_of(drawn) if edge[0] in ("nat", "check"))
    assert aimed == [
        ("check", "check host ping 10.0.0.3 … 10.0.0.22: passing"),
        ("check", "check host tcp 10.0.0.3:22: no result"),
        ("nat", "dnat tcp/8001 … tcp/8020 → 10.0.0.3:80 … 10.0.0.22:80"),
    ]
    assert {edge.head for edge in drawn.edges if edge.kind in ("nat", "check")} == {"link:ns1..ns20/eth0"}
