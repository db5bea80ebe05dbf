"""`netlab graph` without root or kernel: invalid files give validate's located
problems (exit 1, no traceback); without Graphviz's dot, svg asks for graphviz
while dot and mermaid still work; 300 namespaces of one shape fold into one box
and 3 do not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from netlab.controller import drawing, topologies
from netlab.state.loading import load_generation

NETLAB = str(Path(sys.executable).with_name("netlab"))


def lab(count: int) -> str:
    lines = ["version: 1", "namespaces:", *(f"  - name: ns{i}" for i in range(1, count + 1))]
    lines += ["interfaces:", "  - {name: br0, type: bridge, addresses: [10.0.0.1/16]}"]
    lines += [
        f"  - {{name: eth0, type: veth, netns: ns{i}, addresses: [10.0.{i // 250}.{i % 250 + 2}/16], "
        f"peer: {{name: veth-ns{i}, master: br0}}}}"
        for i in range(1, count + 1)
    ]
    lines += ["routes:", *(f"  - {{netns: ns{i}, to: default, via: 10.0.0.1}}" for i in range(1, count + 1))]
    return "\n".join(lines) + "\n"


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
