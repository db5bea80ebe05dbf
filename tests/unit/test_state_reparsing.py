"""Property: loading a directory again after an edit gives exactly what a cold load
of the edited files gives - the same objects at the same file:line:col, or the same
problems - whether the edit was read in place (`state.reading.reparse`) or not. And the
edits the daemon sees most (a value changed inside one item) are read in place."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlab.state import evaluating
from netlab.state.errors import ConfigError
from netlab.state.loading import clear_cache, load_generation
from netlab.state.model import DesiredState

HOST = "node-a"
BASE = """# lab
version: 1
namespaces:
  - name: red
    dns: {nameservers: [10.0.0.1]}
  - name: blue
    sysctls: {net.ipv4.ip_forward: 1}
  - {name: green}
interfaces:
  - {name: br0, type: bridge, addresses: [10.0.0.1/24]}
  - {name: eth0, type: veth, netns: red, addresses: [10.0.0.2/24], peer: {name: vr, master: br0}}
  - name: eth0
    type: veth
    netns: blue
    addresses: [10.0.0.3/24]
    peer: {name: vb, master: br0}
  - {name: eth0, type: veth, netns: green, addresses: [10.0.0.4/24], peer: {name: vg, master: br0}}
routes:
  - {netns: red, to: default, via: 10.0.0.1}
  - {netns: blue, to: default, via: 10.0.0.1}
  - netns: green
    to: default
    via: 10.0.0.1
sysctls: {net.ipv4.ip_forward: 1}
nat:
  - {type: masquerade, source: 10.0.0.0/24}
"""
OTHER = "version: 1\nnamespaces: [{name: grey}]\n"

# Replacements that keep a line's shape and ones that break it: other values,
# conflicts, dangling references, schema and syntax errors, YAML the fast reader
# declines, and changes of indentation or of the file's structure.
WORDS = [
    "red",
    "blue",
    "green",
    "grey",
    "pink",
    "br0",
    "vr",
    "eth0",
    "10.0.0.1",
    "10.0.0.9",
    "10.0.0.3/24",
    "10.0.1.3/24",
    "default",
    "bridge",
    "veth",
    "dummy",
    "up",
    "down",
    "1500",
    "&a red",
    "*a",
    "!!str x",
    "[",
    "}",
    "'",
    '"',
    "{",
    "yes",
    "~",
    "",
    "0x1f",
]
LINES = [
    "  - {name: pink}",
    "  - {name: red}",
    "  -",
    "  - name: pink",
    "    dns: {nameservers: [10.0.0.7]}",
    "    mtu: 1400",
    "      mtu: 1400",
    "- {name: pink}",
    "   - {name: pink}",
    "routes:",
    "interfaces:",
    "# note",
    "",
    "...",
    "---",
    "  - &x {name: pink}",
    "  - *x",
    "  - {netns: red, to: default, via: 10.9.9.9}",
    "  - {name: d0, type: dummy}",
    "  - {name: d0, type: dummy, netns: nowhere}",
    "\tx: 1",
    "%YAML 1.1",
    "  - {name: eth0, type: veth, netns: red, addresses: [10.0.0.2/24], peer: {name: vr, master: br0}}",
    "  - [unclosed",
    '  - "unclosed',
    "  - |",
    "      text",
    "zzz: 1",
]


@st.composite
def edits(draw: Any) -> list[tuple[str, int, str]]:
    operation = st.sampled_from(["word", "line", "insert", "delete", "move"])
    return draw(
        st.lists(
            st.tuples(operation, st.integers(0, 10_000), st.sampled_from(WORDS) | st.sampled_from(LINES)),
            min_size=1,
            max_size=3,
        )
    )


def _edited(text: str, operations: list[tuple[str, int, str]]) -> str:
    lines = text.split("\n")
    for operation, at, piece in operations:
        line = at % len(lines)
        if operation == "word":
            words = lines[line].split(" ")
            word = at // len(lines) % len(words)
            words[word] = piece + ("," if words[word].endswith(",") else "")
            lines[line] = " ".join(words)
        elif operation == "line":
            lines[line] = piece
        elif operation == "insert":
            lines.insert(line, piece)
        elif operation == "delete" and len(lines) > 1:
            del lines[line]
        elif operation == "move" and len(lines) > 1:
            moved = lines.pop(line)
            lines.insert(at // len(lines) % len(lines), moved)
    return "\n".join(lines)


Outcome = tuple[str, Any]


def _outcome(directory: Path) -> Outcome:
    """The state with every object's origin, or the problems, as comparable data."""
    try:
        state = load_generation(directory, HOST)
    except ConfigError as error:
        return ("problems", error.problems)
    return ("state", _with_origins(state))


def _with_origins(state: DesiredState) -> list[tuple[Any, Any]]:
    objects = [*state.namespaces, *state.links, *state.addresses, *state.routes, *state.sysctls]
    objects += [*state.nat, *state.dns, *state.hosts]
    return [(obj, obj.origin) for obj in objects] + [(state.files, None)]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def _after_edits(texts: list[str]) -> tuple[Outcome, Outcome]:
    """The outcome of loading each text in turn, then of a cold load of the last."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / "b.yaml").write_text(OTHER)
        clear_cache()
        for text in texts:
            (directory / "a.yaml").write_text(text)
            warm = _outcome(directory)
        clear_cache()
        return warm, _outcome(directory)


BOUNDED = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BOUNDED
@given(st.lists(edits(), min_size=1, max_size=4))
def test_a_load_after_edits_is_a_cold_load(steps: list[list[tuple[str, int, str]]]) -> None:
    texts = [BASE]
    for operations in steps:
        texts.append(_edited(texts[-1], operations))
    warm, cold = _after_edits(texts)
    assert warm == cold


@BOUNDED
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(WORDS)), min_size=1, max_size=6))
def test_a_load_after_edits_of_values_from_a_valid_file_is_a_cold_load(changes: list[tuple[int, str]]) -> None:
    # one word at a time from the valid file: the edits read in place, mostly
    texts = [BASE]
    for at, word in changes:
        texts.append(_edited(BASE, [("word", at, word)]))
    warm, cold = _after_edits(texts)
    assert warm == cold


def test_the_base_file_is_valid() -> None:
    warm, cold = _after_edits([BASE])
    assert warm == cold and warm[0] == "state"


def test_a_value_edited_in_one_item_is_read_in_place(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    load_generation(tmp_path, HOST)
    edited = BASE.replace("addresses: [10.0.0.3/24]", "addresses: [10.0.0.9/24]")
    (tmp_path / "a.yaml").write_text(edited)
    with mock.patch.object(evaluating, "parse", side_effect=AssertionError("parsed whole")):
        state = load_generation(tmp_path, HOST)
    assert "10.0.0.9/24" in {address.address for address in state.addresses}
    clear_cache()
    assert _with_origins(state) == _with_origins(load_generation(tmp_path, HOST))


@pytest.mark.parametrize(
    "edit",
    [
        ("  - {name: green}", "  - &g {name: green}"),  # an anchor
        ("    netns: blue\n", "    netns: blue\n    mtu: 1400\n"),  # a line more
        ("  - {name: green}", "  - {name: green"),  # a syntax error
        ("  - {name: green}", "- {name: green}"),  # another indentation
        ("  - {name: green}", "  - {name: green}\nzzz: 1"),  # the structure
    ],
)
def test_other_edits_read_the_whole_file(tmp_path: Path, edit: tuple[str, str]) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    load_generation(tmp_path, HOST)
    (tmp_path / "a.yaml").write_text(BASE.replace(*edit, 1))
    with mock.patch.object(evaluating, "parse", wraps=evaluating.parse) as parse:
        warm = _outcome(tmp_path)
    assert parse.called
    clear_cache()
    assert warm == _outcome(tmp_path)
