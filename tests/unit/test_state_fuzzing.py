"""Property: whatever the bytes of the files, `load_generation` returns a
DesiredState or raises ConfigError whose every problem has a real line:col;
never another exception. Valid documents are mutated as text and as data."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlab.state.errors import ConfigError
from netlab.state.loading import load_generation
from netlab.state.model import DesiredState
from netlab.state.reading import parse

FIXTURE = (Path(__file__).parent / "fixtures" / "design-example.yaml").read_text()
COMPANION = """version: 1
namespaces: [{name: green}]
interfaces:
  - {name: g0, type: veth, netns: green, addresses: [10.9.0.1/24], peer: {name: g1, master: v-net-0}}
  - {name: vl10, type: vlan, parent: eth0, id: 10, netns: red}
routes:
  - {netns: green, to: default, via: 10.9.0.254, dev: g0}
  - {netns: red, to: '2001:db8::/64', via: 'fe80::1', dev: veth-red}
"""
_doc, _ = parse("fixture.yaml", FIXTURE.encode(), is_json=False)
assert _doc is not None
FIXTURE_DATA: dict[str, Any] = _doc.data
# NETLAB_FUZZ_EXAMPLES raises the bound for a long hunt; the default keeps the unit suite quick
BOUNDED = settings(
    max_examples=int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["default", "veth", "red", "10.0.0.1/24", "up", "eth0", "::/0", "1-2", "net.x"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


def _check(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for name, content in files.items():
            (Path(directory) / name).write_bytes(content)
        try:
            state = load_generation(Path(directory), hostname="node-a")
        except ConfigError as error:
            assert error.problems
            for problem in error.problems:
                assert problem.line >= 1 and problem.column >= 1, str(problem)
                assert problem.message
        else:
            assert isinstance(state, DesiredState)


def test_unmutated_documents_are_valid() -> None:
    # the mutations start from documents that load, so every failure is theirs
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "a.yaml").write_text(FIXTURE)
        (Path(directory) / "b.yaml").write_text(COMPANION)
        assert len(load_generation(Path(directory), hostname="node-a").links) == 7
        (Path(directory) / "a.yaml").unlink()
        (Path(directory) / "a.json").write_text(json.dumps(FIXTURE_DATA))
        assert load_generation(Path(directory), hostname="node-a").routes


# Pieces of YAML and JSON syntax that reach the corners of the parser: tags whose
# constructors raise plain Python errors, anchors, merge keys, escapes.
SNIPPETS = [
    "!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ", "!!timestamp ", "!!omap ", "!!set ", "!!str ",
    "!!map ", "!!seq ", "!foo ", "&a ", "*a", "<<: ", "? ", "---\n", "...\n", "%YAML 1.1\n---\n", "2024-02-30",
    "0x", "1e999", ".nan", "~", "|\n", ">-\n", "{", "}", "[", "]", ",", ":", "- ", "#", '"', "'", "\t",
    "\\x00", "\\ud800", "\\U0010ffff", "\\", "\n  ", "\n", "true", "on", "null",
]  # fmt: skip
edits = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "replace"]),
        st.integers(min_value=0),
        st.characters() | st.sampled_from(SNIPPETS),
    ),
    min_size=1,
    max_size=6,
)


def edited(text: str, operations: list[tuple[str, int, str]]) -> str:
    """The text after each (delete | insert | overwrite, position, snippet) in turn."""
    for operation, where, char in operations:
        at = where % (len(text) + 1)
        if operation == "delete":
            text = text[:at] + text[at + 1 :]
        elif operation == "insert":
            text = text[:at] + char + text[at:]
        else:
            text = text[:at] + char + text[at + len(char) :]
    return text


@BOUNDED
@given(operations=edits, as_json=st.booleans())
def test_text_mutations(operations: list[tuple[str, int, str]], as_json: bool) -> None:
    source = json.dumps(FIXTURE_DATA, indent=1) if as_json else FIXTURE
    name = "a.json" if as_json else "a.yaml"
    _check({name: edited(source, operations).encode("utf-8", "surrogatepass"), "b.yaml": COMPANION.encode()})


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, path + (index,))
    return found


ALL_PATHS = _paths(FIXTURE_DATA)[1:]


def _mutate(data: Any, path: tuple[Any, ...], operation: str, value: Any) -> Any:
    data = json.loads(json.dumps(data))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "replace":
        parent[last] = value
    elif operation == "drop":
        del parent[last]
    elif operation == "insert" and isinstance(parent, dict):
        parent[f"{last}x" if isinstance(value, str) else str(value)] = value
    elif operation == "insert" and isinstance(parent, list):
        parent.insert(last, value)
    elif operation == "copy" and isinstance(parent, list):
        parent.append(parent[last])  # the same object twice: conflicts
    return data


@BOUNDED
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["replace", "drop", "insert", "copy"]), json_values),
        min_size=1,
        max_size=3,
    ),
    as_json=st.booleans(),
)
def test_data_mutations(mutations: list[tuple[tuple[Any, ...], str, Any]], as_json: bool) -> None:
    data: Any = FIXTURE_DATA
    for path, operation, value in mutations:
        try:
            data = _mutate(data, path, operation, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    text = json.dumps(data, indent=1, allow_nan=True)
    # JSON is YAML 1.2 too (mostly): the same text goes through both parsers
    _check({"a.json" if as_json else "a.yaml": text.encode(), "b.yaml": COMPANION.encode()})


@BOUNDED
@given(line=st.integers(min_value=0, max_value=60), times=st.integers(min_value=1, max_value=3))
def test_duplicated_lines(line: int, times: int) -> None:
    # duplicating a line duplicates keys, list items, whole objects
    lines = FIXTURE.splitlines(keepends=True)
    at = line % len(lines)
    mutated = lines[: at + 1] + [lines[at]] * times + lines[at + 1 :]
    _check({"a.yaml": "".join(mutated).encode(), "b.yaml": COMPANION.encode()})


@BOUNDED
@given(content=st.binary(max_size=200), name=st.sampled_from(["a.yaml", "a.json"]))
def test_random_bytes(content: bytes, name: str) -> None:
    _check({name: content})


@BOUNDED
@given(prefix=st.sampled_from(["version: 1\n", "", '{"version": 1, "x": ']), body=st.text(max_size=120))
def test_random_text(prefix: str, body: str) -> None:
    _check({"a.yaml": (prefix + body).encode("utf-8", "surrogatepass")})
