"""The libyaml fast path reads what ruamel reads: same data (same types), same
positions of every key and value, or it declines and ruamel reads the file. The
properties compare both parsers on generated and mutated documents."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlab.state import reading
from netlab.state.documents import Document
from netlab.state.libyaml_reading import MAX_NODES, TooLarge, check_limits, read
from netlab.state.reading import parse
from tests.unit.test_state_fuzzing import edited

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = (Path(__file__).parent / "fixtures" / "design-example.yaml").read_text()
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml")) + sorted((ROOT / "examples").rglob("*.json"))
# NETLAB_FUZZ_EXAMPLES raises the bound for a long hunt, as in test_state_fuzzing
CHECKED = settings(
    max_examples=int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def reference(text: str, is_json: bool = False) -> tuple[Document | None, list[Any]]:
    """What ruamel alone makes of the text."""
    with mock.patch.object(reading, "read_fast", lambda text, max_nodes: None):
        return parse("f", text.encode("utf-8", "surrogatepass"), is_json)


def typed(value: Any) -> Any:
    """The value with every scalar's type spelled out (True == 1 in Python)."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def assert_same_as_reference(text: str) -> bool:
    """True when the fast path read the text (and agreed with ruamel)."""
    fast = read(text, MAX_NODES)
    if fast is None:
        return False
    doc, problems = reference(text)
    if doc is None and problems and problems[0].message.startswith("the YAML cannot be read: overlap in comment"):
        return True  # a crash of ruamel's comment bookkeeping on valid YAML is no behaviour to keep
    assert problems == [] and doc is not None, (text, problems)
    assert typed(fast.data) == typed(doc.data), text
    assert fast.values == dict(doc.values), text
    assert fast.keys == dict(doc.keys), text
    return True


# -- the documents netlab ships and the benchmark's ------------------------------


@pytest.mark.parametrize("path", EXAMPLES + [Path(__file__).parent / "fixtures" / "design-example.yaml"], ids=str)
def test_shipped_documents_take_the_fast_path(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".json":
        fast, (doc, _) = read(text, MAX_NODES), reference(text, is_json=True)
        assert fast is not None and doc is not None
        assert fast.values == dict(doc.values) and fast.keys == dict(doc.keys)
    else:
        assert assert_same_as_reference(text)


def test_benchmark_topology_takes_the_fast_path() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from topology import Topology
    finally:
        sys.path.pop(0)
    assert assert_same_as_reference(Topology(30, nat=True, dns=True).netlab_yaml())


# -- YAML 1.2, not 1.1 -----------------------------------------------------------


def test_yaml_1_2_scalars() -> None:
    text = (
        "version: 1\na: on\nb: yes\nc: true\nd: False\ne: NO\nf: ~\ng: null\nh: 12\ni: -3\nj: 1.50\n"
        "k: 10.0.0.1/24\nl: '1'\nm: \"true\"\nn: y\no: 0\np: ns1\nq: nULL\n"
    )
    fast = read(text, MAX_NODES)
    assert fast is not None
    assert typed(fast.data) == typed(
        {
            "version": 1, "a": "on", "b": "yes", "c": True, "d": False, "e": "NO", "f": None, "g": None,
            "h": 12, "i": -3, "j": 1.5, "k": "10.0.0.1/24", "l": "1", "m": "true", "n": "y", "o": 0,
            "p": "ns1", "q": "nULL",
        }
    )  # fmt: skip
    assert assert_same_as_reference(text)


@pytest.mark.parametrize(
    "value",
    ["0x1f", "0o17", "017", "+1", "1_000", "1e3", ".5", ".inf", "-.inf", ".nan", "2024-01-01", "1.", "0b101", "-0"],
)
def test_other_numbers_and_dates_go_to_ruamel_or_agree(value: str) -> None:
    assert_same_as_reference(f"version: 1\na: {value}\nb: [{value}]\n")


@pytest.mark.parametrize(
    "text",
    [
        "%YAML 1.1\n---\nversion: 1\na: on\n",  # ruamel reads 1.1 then: `on` is true
        "version: 1\na: &x [1]\nb: *x\n",
        "version: 1\na: !!str 1\n",
        "version: 1\n<<: {a: 1}\n",
        "version: 1\na:\n",  # an empty value: placed differently by the two parsers
        "version: 1\nversion: 1\n",
        "version: 1\n1: x\n",
        'version: 1\na: "x\\0"\n',
        "version: 1\n---\nversion: 1\n",
        "- version: 1\n",
        "version: [\n",
        "version: 1\na: \u2028\n",
    ],
)
def test_declines_what_ruamel_must_read(text: str) -> None:
    assert read(text, MAX_NODES) is None


def test_duplicate_key_is_still_reported_with_its_place() -> None:
    doc, problems = parse("f.yaml", b"version: 1\nsysctls:\n  a.b: 1\n  a.b: 0\n", is_json=False)
    assert doc is None and str(problems[0]).startswith("f.yaml:4:3: syntax error: found duplicate key")


def test_columns_count_characters_not_bytes() -> None:
    assert assert_same_as_reference("version: 1\nhosts: [{names: [café, 'ünï'], address: 10.0.0.1}]\n")


def test_deep_nesting_is_no_crash() -> None:
    # libyaml's composer recurses in C (a segfault at 100 000 levels): the fast path
    # reads events, keeps no C stack; libyaml itself stops at 1000 open brackets
    text = "version: 1\na: " + "[" * 200_000 + "]" * 200_000 + "\n"
    assert read(text, MAX_NODES) is None
    with pytest.raises(TooLarge) as caught:
        check_limits(text, MAX_NODES)
    assert caught.value.position == (2, 1003)


def test_node_bound() -> None:
    text = "version: 1\na: [" + ", ".join(["x"] * 50) + "]\n"
    assert read(text, 60) is not None
    with pytest.raises(TooLarge) as caught:
        read(text, 40)
    assert caught.value.position == (2, 5 + 3 * 37)  # the 41st value: the root, 1, the list, 37 x before


def test_positions_in_a_big_file() -> None:
    lines = ["version: 1", "namespaces:"] + [f"  - name: ns{i}" for i in range(2000)]
    lines.insert(1500, "  - name: [oops]")
    from netlab.state.validating import check_schema

    doc, _ = parse("big.yaml", ("\n".join(lines) + "\n").encode(), is_json=False)
    assert doc is not None
    (problem,) = check_schema(doc).problems
    assert (problem.line, problem.column, problem.path) == (1501, 11, "namespaces[1498].name")


# -- the two parsers agree ---------------------------------------------------------

SCALARS = st.sampled_from(
    [
        "x", "eth0", "10.0.0.1/24", "::1", "fe80::1", "on", "yes", "No", "true", "False", "TRUE", "~", "null",
        "Null", "0", "7", "-3", "1.5", "-0.25", "1e3", "0x1F", "0o7", "07", "+1", "1_0", ".5", ".inf", ".NaN",
        "2024-01-01", "1.", "a b", "a:b", "a#b", "é", "ẞtraße", "'q'", "'it''s'", '"d"', '"t\\tab"', '"\\u00e9"',
        "''", '""', "-", "-x", "<<", "=", "?x", "x:", "|\n  lit\n", ">-\n  fold\n  ed\n",
    ]
)  # fmt: skip
KEYS = st.sampled_from(["a", "b", "name", "net.ipv4.x", "'q k'", '"d k"', "1", "true", "~", "on", "<<", "é"])


@st.composite
def documents(draw: Any, depth: int = 0, indent: int = 0) -> str:
    """A YAML text: block or flow collections of random scalars, with comments."""
    kind = draw(st.sampled_from(["map", "seq", "flow"] if depth < 3 else ["scalar"]))
    pad = " " * indent
    if kind == "scalar":
        return str(draw(SCALARS))
    if kind == "flow":
        items = draw(st.lists(st.tuples(KEYS, SCALARS), max_size=3))
        if draw(st.booleans()):
            return "{" + ", ".join(f"{k}: {v}" for k, v in items if "\n" not in v) + "}"
        return "[" + ", ".join(v for _, v in items if "\n" not in v) + "]"
    entries = draw(st.lists(st.tuples(KEYS, st.integers(0, 9)), min_size=1, max_size=3))
    lines = []
    for key, seed in entries:
        child = draw(documents(depth + 1, indent + 2))
        comment = "  # note" if seed == 3 else ""
        nested = child.startswith(("{", "[")) is False and ("\n" in child and not child.startswith(("|", ">")))
        head = f"{pad}{key}:" if kind == "map" else f"{pad}-"
        if nested or (seed == 5 and not child.startswith(("|", ">"))):
            lines.append(f"{head}{comment}\n{child if nested else pad + '  ' + child}")
        else:
            lines.append(f"{head} {child}{comment if not child.startswith(('|', '>')) else ''}")
    return "\n".join(lines) + "\n" if depth else "\n".join(lines)


@CHECKED
@given(body=documents(depth=0, indent=0))
def test_generated_documents(body: str) -> None:
    text = (
        body
        if body.startswith(("version", "{"))
        else "version: 1\nbody:\n" + "\n".join("  " + line for line in body.splitlines())
    )
    assert_same_as_reference(text + "\n")


SNIPPETS = [
    "!!str ", "&a ", "*a", "<<: ", "? ", "---\n", "...\n", "%YAML 1.1\n---\n", "2024-02-30", "0x", "1e999",
    ".nan", "~", "|\n", ">-\n", "{", "}", "[", "]", ",", ":", "- ", "#", '"', "'", "\t", "\\x00", "\\ud800",
    "\\", "\n  ", "\n", "true", "on", "null", " ", "é", "\r\n", "\ufeff",
]  # fmt: skip


@CHECKED
@given(
    operations=st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace"]), st.integers(min_value=0), st.sampled_from(SNIPPETS)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_fixture(operations: list[tuple[str, int, str]]) -> None:
    assert_same_as_reference(edited(FIXTURE, operations))


@CHECKED
@given(data=st.dictionaries(st.text(max_size=6), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
), max_size=4), indent=st.sampled_from([None, 1, 2]))  # fmt: skip
def test_json_positions_agree(data: dict[str, Any], indent: int | None) -> None:
    text = json.dumps({"version": 1, **data}, indent=indent)
    fast = read(text, MAX_NODES)
    doc, problems = reference(text, is_json=True)
    if fast is not None and doc is not None:
        assert fast.values == dict(doc.values) and fast.keys == dict(doc.keys), text


def test_a_block_scalar_header_is_read_by_the_reference() -> None:
    # libyaml takes `>#-` as a folded scalar; ruamel (the reference) refuses it
    text = "version: 1\nmatch: >#-\n these hosts\n"
    assert read(text, MAX_NODES) is None
    assert reference(text)[1], "the reference reports the header"
