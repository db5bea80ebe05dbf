"""`netlab graph` against Graphviz, a browser and the kernel: for every example
the DOT parses with Graphviz's own parser and has exactly the nodes and edges
its files declare (counted here from the YAML, not from netlab's model); the
Mermaid text keeps the grammar of the flowchart subset netlab writes; the
README's picture is the one the command makes now; the SVG renders in headless
Chromium to a screenshot that is not blank, with the namespaces' names in its
text; and `--live` marks a veth deleted, an address added and a port put on the
managed bridge by hand."""

from __future__ import annotations

import html
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from netlab.controller import drawing, topologies
from tests.sandbox import EXAMPLES, NETLAB, Sandbox, config_files, one_host_examples

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = [(f"cluster/{variant}", f"node{n}") for variant in ("routed", "vxlan") for n in (1, 2, 3)]
LABS = [(name, None) for name in one_host_examples()] + CLUSTER
NEEDS = "apt-get install graphviz chromium (scripts/setup-env test does)"


def need(tool: str) -> str:
    """A tool the test cannot do without: in CI (CI=true) its absence fails the
    test, as scripts/setup-env installs it; elsewhere it skips, saying why."""
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing, and CI must run this test: {NEEDS}")
        pytest.skip(f"needs {tool}: {NEEDS}")
    return found


def graph(lab: str, hostname: str | None, *options: str) -> subprocess.CompletedProcess[str]:
    host = ["--hostname", hostname] if hostname else []
    argv = [NETLAB, "graph", "--config-dir", str(EXAMPLES / lab), "--allow-untrusted-config", *host, *options]
    return subprocess.run(argv, capture_output=True, text=True, check=True)


def declared(lab: str, hostname: str | None) -> dict[str, Any]:
    """The lab's files merged as `hostname` loads them (match.hostname)."""
    merged: dict[str, Any] = {}
    for path in config_files(EXAMPLES / lab):
        doc = YAML(typ="safe").load(path.read_text())
        pattern = (doc.get("match") or {}).get("hostname")
        if pattern is not None and not (hostname and fnmatch(hostname, pattern)):
            continue
        for key in ("namespaces", "interfaces", "routes", "nat", "checks"):
            merged[key] = merged.get(key, []) + (doc.get(key) or [])
    return merged


def expected(files: dict[str, Any]) -> tuple[Counter[str], Counter[str]]:
    """Nodes and edges by kind, as the issue says the picture has them: a box
    (and its anchor) per namespace and the host; a node per link end; a node
    for each link named (a master, a parent, an uplink, a route's dev) but not
    declared; one per gateway or check target that no declared link holds; one
    `outside` for NAT. Edges: a cable per veth, one per bridge port and per
    parent, per route, NAT rule and check."""
    ends: dict[tuple[str | None, str], list[str]] = {}
    edges: Counter[str] = Counter()
    named: set[tuple[str | None, str]] = set()
    for link in files.get("interfaces", []):
        netns = link.get("netns")
        ends[(netns, link["name"])] = link.get("addresses", [])
        for end, where in ((link, netns), (link.get("peer"), None)):
            if end is None:
                continue
            where = end.get("netns", where) if end is not link else where
            if end.get("master"):
                edges["port"] += 1
                named.add((where, end["master"]))
        if link.get("parent"):
            edges["parent"] += 1
            named.add((None, link["parent"]))
        if link.get("peer"):
            edges["veth"] += 1
            peer = link["peer"]
            ends[(peer.get("netns"), peer["name"])] = peer.get("addresses", [])
    held = {ipaddress.ip_interface(a).ip.compressed for addresses in ends.values() for a in addresses}
    targets: set[str] = set()
    for route in files.get("routes", []):
        edges["route"] += 1
        if route.get("via"):
            targets.add(route["via"])
        else:
            named.add((route.get("netns"), route["dev"]))
    for rule in files.get("nat", []):
        edges["nat"] += 1
        if rule.get("out_interface"):
            named.add((rule.get("netns"), rule["out_interface"]))
    for check in files.get("checks", []):
        edges["check"] += 1
        target = check.get("ping") or check.get("address") or check.get("resolve") or check["tcp"].rsplit(":", 1)[0]
        targets.add(target.strip("[]"))
    boxes = 1 + len(files.get("namespaces", []))
    nodes = Counter(
        box=boxes,
        anchor=boxes,
        link=len(ends),
        implied=len(named - set(ends)),
        address=len(targets - held),
        outside=1 if files.get("nat") else 0,
    )
    return +nodes, +edges


def parsed(dot_text: str) -> tuple[Counter[str], Counter[str]]:
    """Graphviz's own parse of the DOT (dot -Tjson, no layout), by `class`."""
    done = subprocess.run([need("dot"), "-Tjson0"], input=dot_text, capture_output=True, text=True, check=True)
    graph = json.loads(done.stdout)
    nodes = Counter(obj["class"] for obj in graph.get("objects", []))
    edges = Counter(edge["class"] for edge in graph.get("edges", []))
    return nodes, edges


@pytest.mark.parametrize(("lab", "hostname"), LABS)
def test_the_dot_has_exactly_what_the_files_declare(lab: str, hostname: str | None) -> None:
    nodes, edges = parsed(graph(lab, hostname, "--format", "dot").stdout)
    want_nodes, want_edges = expected(declared(lab, hostname))
    assert nodes == want_nodes
    assert edges == want_edges


# The flowchart subset netlab writes, line by line (Mermaid's grammar for these forms).
QUOTED = r'"[^"<>|]+(?:<br/>[^"<>|]*)*"'
MERMAID_LINES = [
    ("header", re.compile(r"flowchart LR")),
    ("subgraph", re.compile(rf"  subgraph (box\d+)\[{QUOTED}\]")),
    ("end", re.compile(r"  end")),
    ("node", re.compile(rf" {{2,4}}(n\d+)(?:\[{QUOTED}\]|\(\({QUOTED}\)\)|\{{\{{{QUOTED}\}}\}})")),
    ("edge", re.compile(rf"  ((?:n|box)\d+) (?:---|-->|-\.->)(?:\|{QUOTED}\|)? ((?:n|box)\d+)")),
    (
        "classDef",
        re.compile(
            r"  classDef (missing|different|foreign) stroke:#[0-9a-f]{3,6},stroke-width:2px(,stroke-dasharray:5 5)?"
        ),
    ),
    ("class", re.compile(r"  class (n\d+) (missing|different|foreign)")),
    ("linkStyle", re.compile(r"  linkStyle (\d+) stroke:#[0-9a-f]{3,6},color:#[0-9a-f]{3,6}")),
]


def mermaid_problems(text: str) -> list[str]:
    """Each line one of MERMAID_LINES; subgraphs closed, not nested; every edge
    between ids declared (nodes, or subgraphs); every linkStyle an edge's index."""
    problems, declared_ids, used, depth, edges = [], set(), set(), 0, 0
    lines = text.rstrip("\n").split("\n")
    if lines[0] != "flowchart LR":
        problems.append(f"first line {lines[0]!r}")
    for number, line in enumerate(lines[1:], 2):
        kind = next((kind for kind, form in MERMAID_LINES[1:] if form.fullmatch(line)), None)
        if kind is None:
            problems.append(f"line {number} is none of the forms: {line!r}")
            continue
        match = next(form for k, form in MERMAID_LINES if k == kind).fullmatch(line)
        assert match is not None
        if kind == "subgraph":
            depth += 1
            declared_ids.add(match.group(1))
        elif kind == "end":
            depth -= 1
        elif kind == "node":
            declared_ids.add(match.group(1))
        elif kind == "edge":
            used.update((match.group(1), match.group(2)))
            edges += 1
        elif kind == "linkStyle" and int(match.group(1)) >= edges:
            problems.append(f"line {number}: linkStyle of no edge")
        if depth not in (0, 1):
            problems.append(f"line {number}: subgraphs nested or closed twice")
    if depth:
        problems.append("a subgraph is not closed")
    problems += [f"edge to undeclared {name}" for name in sorted(used - declared_ids)]
    return problems


@pytest.mark.parametrize(("lab", "hostname"), LABS)
def test_the_mermaid_keeps_the_grammar(lab: str, hostname: str | None) -> None:
    text = graph(lab, hostname, "--format", "mermaid").stdout
    assert mermaid_problems(text) == []
    _, want_edges = expected(declared(lab, hostname))
    assert len(re.findall(r"^  \S+ (?:---|-->|-\.->)[| ]", text, re.M)) == sum(want_edges.values())


MERMAID_VERSION = "11.17.2"  # scripts/setup-env installs this one
MERMAID_JS = Path(
    os.environ.get(
        "NETLAB_MERMAID_JS", f"/var/cache/netlab/mermaid-{MERMAID_VERSION}/node_modules/mermaid/dist/mermaid.min.js"
    )
)
PARSER_PAGE = """<!doctype html><html><body><pre id="out">pending</pre>
<script src="%s"></script>
<script>
const texts = %s;
(async () => {
  mermaid.initialize({startOnLoad: false});
  const out = {};
  for (const [name, text] of Object.entries(texts)) {
    try { await mermaid.parse(text); out[name] = null; } catch (e) { out[name] = String((e && e.message) || e); }
  }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>"""


def mermaid_parsed(texts: dict[str, str], where: Path) -> dict[str, str | None]:
    """Each text through Mermaid's own parser (`mermaid.parse`, the version
    code-hosting sites render with), all in one headless Chromium: None where it
    parses, else Mermaid's error."""
    chromium = need("chromium")
    if not MERMAID_JS.is_file():
        message = f"Mermaid {MERMAID_VERSION} is not at {MERMAID_JS}: scripts/setup-env test installs it from npm"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    page = where / "parse.html"
    page.write_text(PARSER_PAGE % (MERMAID_JS.as_uri(), json.dumps(texts)))
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={where / 'profile'}"]
    argv += ["--allow-file-access-from-files", "--virtual-time-budget=30000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found is not None and found.group(1) != "pending", f"the parser page did not finish: {dom[:500]}"
    return json.loads(html.unescape(found.group(1)))


def test_the_mermaid_parses_with_mermaids_own_parser(tmp_path: Path) -> None:
    texts = {f"{lab} {hostname or ''}": graph(lab, hostname, "--format", "mermaid").stdout for lab, hostname in LABS}
    texts["awkward labels"] = drawing.mermaid(AWKWARD)
    assert mermaid_parsed(texts, tmp_path) == dict.fromkeys(texts)


def test_mermaids_parser_refuses_what_it_should(tmp_path: Path) -> None:
    bad = {"empty label": 'flowchart LR\n  n1["a"]\n  n1 ---|""| n2\n', "a stray quote": 'flowchart LR\n  n1["a"b"]\n'}
    assert all(mermaid_parsed(bad, tmp_path).values())


# labels with what Mermaid could take for syntax: quotes, pipes, markup, entities, brackets
WEIRD = 'a "b" | c <d> & e #35; f # [g] {h} (i) : j … k → l * m \\N n; o'
AWKWARD = drawing.Picture(
    boxes=[topologies.Box(None), topologies.Box(WEIRD)],
    nodes={
        "x": drawing.Node("x", "host", "link", (topologies.Marked(WEIRD), topologies.Marked("veth"))),
        "y": drawing.Node("y", WEIRD, "address", (topologies.Marked(WEIRD),)),
        "z": drawing.Node("z", None, "outside", (topologies.Marked("outside"),)),
    },
    edges=[
        drawing.Edge("x", "y", "veth", "", directed=False),
        drawing.Edge("y", "z", "nat", WEIRD, "red3", "dashed"),
    ],
)


def test_mermaid_text_escapes_what_would_be_syntax() -> None:
    text = drawing.mermaid(AWKWARD)
    assert "---|" not in text and "  n1 --- n2" in text  # no empty label
    assert "#quot;b#quot; #124; c #lt;d#gt; #amp; e #35;35; f #35; [g]" in text
    assert mermaid_problems(text) == []


def test_the_grammar_check_finds_a_broken_line() -> None:
    broken = 'flowchart LR\n  subgraph box1["host"]\n    n1["a"b"]\n  n1 --> n9\n'
    assert len(mermaid_problems(broken)) == 4  # the quote (so n1 is undeclared), the unclosed subgraph, n9


def test_the_readme_picture_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "netlab graph --config-dir examples/bridge --format svg --output docs/bridge.svg"
    assert command in readme and "![" in readme and "(docs/bridge.svg)" in readme
    svg = graph("bridge", None, "--format", "svg").stdout
    assert drawn_text(svg) == drawn_text((ROOT / "docs/bridge.svg").read_text()), (
        f"docs/bridge.svg is stale: run `{command}`"
    )


def drawn_text(svg: str) -> Counter[str]:
    """What an SVG of Graphviz's says, not where: its texts, titles and classes
    (another Graphviz version places them elsewhere, and that is no staleness)."""
    return Counter(re.findall(r"<(?:text|title)\b[^>]*>([^<]*)<|class=\"([^\"]*)\"", svg))


def png_pixels(png: bytes) -> set[bytes]:
    """The distinct pixels of an 8-bit RGB(A) PNG (Chromium's screenshots), unfiltered."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks, header = 8, b"", b""
    while at < len(png):
        (length,), kind = struct.unpack(">I", png[at : at + 4]), png[at + 4 : at + 8]
        body = png[at + 8 : at + 8 + length]
        header = body if kind == b"IHDR" else header
        chunks += body if kind == b"IDAT" else b""
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    size = 3 if colour == 2 else 4
    raw, stride, previous, pixels = zlib.decompress(chunks), width * size, bytearray(width * size), set()
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up, corner = previous[i], previous[i - size] if i >= size else 0
            guess = (0, left, up, (left + up) // 2, _paeth(left, up, corner))[kind]
            line[i] = (line[i] + guess) & 0xFF
        pixels.update(bytes(line[i : i + size]) for i in range(0, stride, size * 7))
        previous = line
    return pixels


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def test_the_svg_renders_in_a_browser(tmp_path: Path) -> None:
    chromium = need("chromium")
    svg = tmp_path / "bridge.svg"
    graph("bridge", None, "--format", "svg", "--output", str(svg))
    browser = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1200,900", svg.as_uri()],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert len(png_pixels(shot.read_bytes())) > 2, "the screenshot is blank"
    dom = subprocess.run([*browser, "--dump-dom", svg.as_uri()], capture_output=True, text=True, check=True, timeout=60)
    for name in ("host", "red", "blue", "orange"):
        assert f">{name}<" in dom.stdout, f"the browser's document has no text {name}"


@pytest.mark.kernel
def test_live_marks_a_deleted_veth_and_a_foreign_address(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    sandbox.netlab("apply")
    sandbox.run("ip", "-n", "blue", "link", "del", "veth-blue", check=True)
    sandbox.run("ip", "-n", "red", "addr", "add", "10.99.0.7/24", "dev", "veth-red", check=True)
    sandbox.run(
        "ip", "link", "add", "spy0", "type", "veth", "peer", "name", "spy1", check=True
    )  # someone's port on the managed bridge
    sandbox.run("ip", "link", "set", "spy0", "master", "v-net-0", check=True)
    sandbox.run(
        "ip", "link", "add", "quiet0", "type", "veth", "peer", "name", "quiet1", check=True
    )  # someone's link on nothing of netlab's
    dot_text = sandbox.netlab("graph", "--live", "--format", "dot").stdout
    nodes = {m.group(1): m.group(2) for m in re.finditer(r'^\s*"(link:[^"]+)" \[(.*)\];$', dot_text, re.M)}
    assert "veth-blue (missing)" in nodes["link:blue/veth-blue"] and "color=red3" in nodes["link:blue/veth-blue"]
    assert "veth-blue-br (missing)" in nodes["link:host/veth-blue-br"]
    assert "10.99.0.7/24 (foreign)" in nodes["link:red/veth-red"]
    assert "192.168.15.1/24<" in nodes["link:red/veth-red"]  # the declared one, there, unmarked
    assert "(missing)" not in nodes["link:red/veth-red"] and "(foreign)" not in nodes["link:orange/veth-orange"]
    assert "spy0 (foreign)" in nodes["link:host/spy0"] and "link:host/quiet0" not in nodes
    assert re.search(r'^\s*"link:host/spy0" -> "link:host/v-net-0" \[class=port,.*color=purple', dot_text, re.M)
    parsed(dot_text)  # and it still parses
