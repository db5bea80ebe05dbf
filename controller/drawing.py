"""Drawing: a topology (`topologies`) as a picture of boxes, nodes and edges, and
that picture as Graphviz DOT, Mermaid flowchart text, or SVG/PNG rendered by
Graphviz's `dot`. Called by the cli for `netlab graph`."""

from __future__ import annotations

import html
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from netlab.controller.topologies import Box, End, Key, Marked, Topology
from netlab.state.errors import NetlabError
from netlab.state.model import netns_label

HOST = "host"
OUTSIDE = "outside"
# how each mark looks: colour and line style (DOT and Mermaid alike)
LOOKS = {
    "": ("black", "solid"),
    "missing": ("red3", "dashed"),
    "different": ("darkorange", "bold"),
    "foreign": ("purple", "dotted"),
}
CHECK_COLOURS = {True: "green4", False: "red3", None: "gray50"}
MERMAID_COLOURS = {"black": "#333", "red3": "#cd0000", "darkorange": "#ff8c00", "purple": "#800080"}
MERMAID_COLOURS |= {"green4": "#008b00", "gray50": "#7f7f7f"}


@dataclass(frozen=True)
class Node:
    """`kind`: link (an end of a link), implied (a link named by another but not
    drawn itself: the machine's own eth0 under a vxlan), address (a gateway or a
    check's target that no drawn link holds), outside (beyond the uplink), or
    anchor (an invisible point of a box, where its routes and checks start)."""

    id: str
    box: str | None  # the box's name, None: outside every box
    kind: str
    lines: tuple[Marked, ...]
    mark: str = ""


@dataclass(frozen=True)
class Edge:
    """`kind`: veth, port (to its master), parent, route, nat or check."""

    tail: str
    head: str
    kind: str
    label: str = ""
    colour: str = "black"
    style: str = "solid"
    directed: bool = True


@dataclass
class Picture:
    boxes: list[Box] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)


def picture(topology: Topology) -> Picture:
    """Each box's anchor and ends, then the edges between them: cables, ports,
    parents, routes to their gateways, NAT out of (and into) the host, checks."""
    drawn = Picture(boxes=list(topology.boxes))
    for box in topology.boxes:
        _add(drawn, Node(_anchor(box.name), _box_id(box.name), "anchor", ()))
    for end in topology.ends:
        _add(drawn, Node(_end_id(end.netns, end.name), _box_id(end.netns), "link", _end_lines(end), end.mark))
    _cables(drawn, topology.ends)
    _routes(drawn, topology)
    _translations(drawn, topology)
    for probe in topology.probes:
        head = _target(drawn, probe.held_by, probe.target)
        colour = CHECK_COLOURS[probe.passed]
        verdict = {True: "passing", False: "FAILING", None: "no result"}[probe.passed]
        drawn.edges.append(
            Edge(_anchor(probe.netns), head, "check", f"check {probe.text}: {verdict}", colour, "dashed")
        )
    return drawn


def _add(drawn: Picture, node: Node) -> None:
    drawn.nodes.setdefault(node.id, node)


def _box_id(netns: str | None) -> str:
    return netns_label(netns)


def _anchor(netns: str | None) -> str:
    return f"anchor:{netns_label(netns)}"


def _end_id(netns: str | None, name: str) -> str:
    return f"link:{netns_label(netns)}/{name}"


def _end_lines(end: End) -> tuple[Marked, ...]:
    head = [Marked(end.name + (f" ({end.mark})" if end.mark else ""), end.mark), Marked(end.type)]
    if end.detail:
        head.append(Marked(end.detail, end.mark))
    return (*head, *(Marked(a.text + (f" ({a.mark})" if a.mark else ""), a.mark) for a in end.addresses))


def _implied(drawn: Picture, netns: str | None, name: str) -> str:
    """The node of a link, drawn as implied if no end of that name was drawn."""
    node = _end_id(netns, name)
    _add(drawn, Node(node, _box_id(netns), "implied", (Marked(name), Marked("not declared"))))
    return node


def _cables(drawn: Picture, ends: Iterable[End]) -> None:
    for end in ends:
        here = _end_id(end.netns, end.name)
        look = LOOKS[end.mark]
        if end.peer is not None and (end.type != "veth-peer" or end.peer not in {(e.netns, e.name) for e in ends}):
            there = _implied(drawn, *end.peer)
            drawn.edges.append(Edge(here, there, "veth", "", *look, directed=False))
        if end.master is not None:
            drawn.edges.append(Edge(here, _implied(drawn, end.netns, end.master), "port", "port", *look))
        if end.parent is not None:
            drawn.edges.append(Edge(here, _implied(drawn, None, end.parent), "parent", "on", *look))


def _target(drawn: Picture, holder: Key | None, address: str) -> str:
    """The end holding an address (`topologies.resolved`), else a node of the address itself."""
    if holder is not None:
        return _end_id(*holder)
    node = f"address:{address}"
    _add(drawn, Node(node, None, "address", (Marked(address),)))
    return node


def _routes(drawn: Picture, topology: Topology) -> None:
    for way in topology.ways:
        if way.via is not None:
            head = _target(drawn, way.gateway, way.via)
        else:
            head = _implied(drawn, way.netns, way.dev or "?")
        mark = f" ({way.mark})" if way.mark else ""
        drawn.edges.append(Edge(_anchor(way.netns), head, "route", way.text + mark, *LOOKS[way.mark]))


def _translations(drawn: Picture, topology: Topology) -> None:
    """Masquerade and snat leave by their uplink (the box, when none is named);
    a port forward comes in from outside to the end holding its target."""
    if topology.translations:
        _add(drawn, Node(OUTSIDE, None, "outside", (Marked("outside"),)))
    for rule in topology.translations:
        mark = f" ({rule.mark})" if rule.mark else ""
        look = LOOKS[rule.mark]
        if rule.inbound:
            head = _end_id(*rule.target) if rule.target is not None else _anchor(rule.netns)
            drawn.edges.append(Edge(OUTSIDE, head, "nat", rule.text + mark, *look))
        else:
            tail = _implied(drawn, rule.netns, rule.uplink) if rule.uplink else _anchor(rule.netns)
            drawn.edges.append(Edge(tail, OUTSIDE, "nat", rule.text + mark, *look))


# -- DOT -----------------------------------------------------------------------------


def dot(drawn: Picture) -> str:
    """Graphviz DOT: a cluster per box, every node and edge with `class` saying
    its kind (the SVG keeps it; the tests count by it)."""
    lines = [
        "digraph netlab {",
        '  graph [rankdir=LR, compound=true, fontname="DejaVu Sans", nodesep=0.3];',
        '  node [shape=box, style="rounded", fontname="DejaVu Sans", fontsize=10];',
        '  edge [fontname="DejaVu Sans", fontsize=9];',
    ]
    for box in drawn.boxes:
        colour, style = LOOKS[box.mark]
        label = _box_label(box)
        lines.append(f"  subgraph {_quoted(_cluster_of(_box_id(box.name)))} {{")
        lines.append(f"    label={_quoted(label)}; color={colour}; style={_quoted(style)}; class=box;")
        if box.spelled:
            lines.append(f"    tooltip={_quoted(box.spelled)};")
        lines += [f"    {_dot_node(node)}" for node in drawn.nodes.values() if node.box == _box_id(box.name)]
        lines.append("  }")
    lines += [f"  {_dot_node(node)}" for node in drawn.nodes.values() if node.box is None]
    lines += [f"  {_dot_edge(edge, drawn.nodes)}" for edge in drawn.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _box_label(box: Box) -> str:
    name = HOST if box.name is None else box.name
    if box.members:
        name = f"{name}: {len(box.members)} namespaces of one shape"
    return name + (f" ({box.mark})" if box.mark else "")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_node(node: Node) -> str:
    if node.kind == "anchor":
        return f'{_quoted(node.id)} [class=anchor, shape=point, width=0.01, style=invis, label=""];'
    colour, style = LOOKS[node.mark]
    shape = {"link": "box", "implied": "box", "address": "ellipse", "outside": "doubleoctagon"}[node.kind]
    styles = "rounded,dashed" if node.kind == "implied" else f"rounded,{style}"
    return (
        f"{_quoted(node.id)} [class={node.kind}, shape={shape}, style={_quoted(styles)}, color={colour}, "
        f"label={_html_label(node.lines)}];"
    )


def _html_label(lines: tuple[Marked, ...]) -> str:
    rows = []
    for number, line in enumerate(lines):
        # Graphviz expands \N (the node name) here too, after the entities: a backslash is written twice
        text = html.escape(line.text).replace("\\", "\\\\")
        text = f"<b>{text}</b>" if number == 0 else text
        colour = LOOKS[line.mark][0]
        rows.append(f'<font color="{colour}">{text}</font>' if line.mark else text)
    return "<" + "<br/>".join(rows) + ">"


def _dot_edge(edge: Edge, nodes: dict[str, Node]) -> str:
    """An edge from (to) an anchor is drawn from (to) the border of its box,
    unless its other end is inside that box (Graphviz would only warn)."""
    tail, head = nodes.get(edge.tail), nodes.get(edge.head)
    attributes = [
        f"class={edge.kind}",
        f"label={_quoted(edge.label)}",
        f"color={edge.colour}",
        f"fontcolor={edge.colour}",
        f"style={edge.style}",
    ]
    if not edge.directed:
        attributes.append("dir=none")
    if tail is not None and tail.kind == "anchor" and tail.box is not None and (head is None or head.box != tail.box):
        attributes.append(f"ltail={_quoted(_cluster_of(tail.box))}")
    if head is not None and head.kind == "anchor" and head.box is not None and (tail is None or tail.box != head.box):
        attributes.append(f"lhead={_quoted(_cluster_of(head.box))}")
    return f"{_quoted(edge.tail)} -> {_quoted(edge.head)} [{', '.join(attributes)}];"


def _cluster_of(box: str) -> str:
    return f"cluster_{box}"


# -- Mermaid -------------------------------------------------------------------------


def mermaid(drawn: Picture) -> str:
    """A Mermaid flowchart: a subgraph per box (edges start at the subgraph
    itself, so there are no anchors), node ids n1, n2 ... in drawing order, a
    class per mark and a linkStyle per coloured edge."""
    ids = {node: f"n{number}" for number, node in enumerate(drawn.nodes, 1)}
    boxes = {_box_id(box.name): f"box{number}" for number, box in enumerate(drawn.boxes, 1)}
    ends = {node.id: boxes[node.box] for node in drawn.nodes.values() if node.kind == "anchor" and node.box}
    lines = ["flowchart LR"]
    for box in drawn.boxes:
        lines.append(f'  subgraph {boxes[_box_id(box.name)]}["{_mermaid_text(_box_label(box))}"]')
        lines += [
            f"    {_mermaid_node(ids[node.id], node)}"
            for node in drawn.nodes.values()
            if node.box == _box_id(box.name) and node.kind != "anchor"
        ]
        lines.append("  end")
    lines += [f"  {_mermaid_node(ids[node.id], node)}" for node in drawn.nodes.values() if node.box is None]
    styles = []
    for number, edge in enumerate(drawn.edges):
        tail, head = ends.get(edge.tail, ids.get(edge.tail)), ends.get(edge.head, ids.get(edge.head))
        arrow = "---" if not edge.directed else "-.->" if edge.style in ("dashed", "dotted") else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""  # Mermaid refuses an empty ||
        lines.append(f"  {tail} {arrow}{label} {head}")
        if edge.colour != "black":
            styles.append(
                f"  linkStyle {number} stroke:{MERMAID_COLOURS[edge.colour]},color:{MERMAID_COLOURS[edge.colour]}"
            )
    for mark, (colour, style) in LOOKS.items():
        if mark:
            dash = ",stroke-dasharray:5 5" if style != "solid" else ""
            lines.append(f"  classDef {mark} stroke:{MERMAID_COLOURS[colour]},stroke-width:2px{dash}")
    lines += [f"  class {ids[node.id]} {node.mark}" for node in drawn.nodes.values() if node.mark]
    return "\n".join(lines + styles) + "\n"


def _mermaid_node(node_id: str, node: Node) -> str:
    text = "<br/>".join(_mermaid_text(line.text) for line in node.lines)
    opening, closing = {"address": ("((", "))"), "outside": ("{{", "}}")}.get(node.kind, ("[", "]"))
    return f'{node_id}{opening}"{text}"{closing}'


def _mermaid_text(text: str) -> str:
    """Mermaid's entity codes for what would end a quoted label or start markup,
    and for `#`, which starts an entity code itself (so it goes first)."""
    for character, code in (
        ("#", "#35;"),
        ("&", "#amp;"),
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("|", "#124;"),
    ):
        text = text.replace(character, code)
    return text


# -- rendering -----------------------------------------------------------------------


def rendered(dot_text: str, output_format: str) -> bytes:
    """SVG or PNG from Graphviz's `dot`, run with argv and the DOT on stdin (no
    shell; dot is Graphviz's own program, and its Python wrappers run it too)."""
    program = shutil.which("dot")
    if program is None:
        raise NetlabError(
            f"netlab graph --format {output_format} needs Graphviz's `dot`: install graphviz "
            "(apt-get install graphviz; scripts/setup-env does), or use --format dot or mermaid, which need nothing"
        )
    done = subprocess.run([program, f"-T{output_format}"], input=dot_text.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise NetlabError(
            f"Graphviz's dot could not render the picture: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout
