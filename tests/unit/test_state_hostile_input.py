"""Files made to break the reader (found by fuzzing, issues 12 and 13): each gets a
located problem from every reader (libyaml's fast path, ruamel, json), never a
traceback, and the loader raises ConfigError, so the daemon keeps the last good
generation."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from netlab.state import reading
from netlab.state.errors import ConfigError
from netlab.state.libyaml_reading import MAX_NODES, TooLarge, check_limits, read
from netlab.state.loading import load_generation
from netlab.state.reading import parse

DIGITS = "9" * 4301  # one more than Python turns into an int


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("plain.yaml", f"version: 1\nsysctls: {{net.x.y: {DIGITS}}}\n", (2, 20)),
        ("block.yaml", f"version: 1\nx:\n  - 1\n  - {DIGITS}\n", (4, 5)),
        ("key.yaml", f"version: 1\nx: {{? {DIGITS} : 1}}\n", (2, 7)),
        ("tagged.yaml", f"version: 1\nx: !!int {DIGITS}\n", (2, 4)),
        ("hex.yaml", f"version: 1\nx: 0x{DIGITS}\n", (2, 4)),  # no int limit, but str() of it fails
        ("underscores.yaml", f"version: 1\nx: 1_{DIGITS}\n", (2, 4)),
        ("float.yaml", f"version: 1\nx: 1{DIGITS}.5\n", (2, 4)),
        ("int.json", f'{{"version": 1,\n "x": [1, -{DIGITS}]}}\n', (2, 11)),
        ("float.json", f'{{"version": 1, "x": {DIGITS}.5e3}}\n', (1, 21)),
    ],
)
def test_a_number_longer_than_any_value_is_a_located_problem(
    tmp_path: Path, name: str, text: str, where: tuple[int, int]
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_generation(tmp_path, hostname="h")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == where
    assert "characters long; no value in netlab's files needs more than 100: shorten it" in problem.message
    assert DIGITS not in problem.message


@pytest.mark.parametrize("is_json", [False, True])
def test_a_number_of_a_hundred_characters_is_still_read(is_json: bool) -> None:
    number = "1" * 100
    text = f'{{"version": 1, "x": {number}}}' if is_json else f"version: 1\nx: {number}\n"
    doc, problems = parse("f", text.encode(), is_json=is_json)
    assert problems == [] and doc is not None and doc.data["x"] == int(number)


def _never_read_by_ruamel(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_reader(file: str, text: str) -> Any:
        raise AssertionError("the reference reader was asked to read a file beyond the limits")

    monkeypatch.setattr(reading, "load_tree", slow_reader)


MANY = ", ".join(["x"] * (MAX_NODES + 10))


@pytest.mark.parametrize(
    ("name", "text", "where", "says"),
    [
        # 1000 `[`: libyaml stops at its own bound, ruamel took seconds over it
        ("brackets.yaml", "version: 1\nx: " + "[" * 1000 + "]" * 1000 + "\n", (2, 1003), "nests deeper than 64"),
        ("unclosed.yaml", "version: 1\nx: " + "[" * 900 + "\n", (2, 68), "nests deeper than 64"),
        ("block.yaml", "version: 1\n" + "".join(" " * i + "a:\n" for i in range(100)), (67, 66), "nests deeper"),
        ("anchored.yaml", "version: 1\ny: &a [" + "[" * 80 + "]" * 80 + "]\n", (2, 71), "nests deeper than 64"),
        ("deep.json", '{"version": 1, "x": ' + "[" * 500 + "]" * 500 + "}\n", (1, 85), "nests deeper than 64"),
        ("many.yaml", f"version: 1\nx: [{MANY}]\n", (2, 5 + 3 * (MAX_NODES - 3)), "more than 100000 values"),
        # an anchor makes the fast reader decline: the limits are counted all the same
        ("many-anchored.yaml", f"version: 1\ny: &a 1\nx: [{MANY}]\n", (3, 5 + 3 * (MAX_NODES - 4)), "values"),
        ("many.json", f'{{"version": 1, "x": [{MANY.replace("x", "1")}]}}', (1, 22 + 3 * (MAX_NODES - 3)), "values"),
        # json reads these whole; ruamel would read them again only to place a problem
        ("list.json", f"[{MANY.replace('x', '1')}]", (1, 2 + 3 * (MAX_NODES - 1)), "values"),
        (
            "twice.json",
            f'{{"version": 1, "version": 1, "x": [{MANY.replace("x", "1")}]}}',
            (1, 36 + 3 * (MAX_NODES - 4)),
            "values",
        ),
    ],
)
def test_a_file_beyond_the_limits_is_refused_before_the_slow_reader_reads_it(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, where: tuple[int, int], says: str
) -> None:
    _never_read_by_ruamel(monkeypatch)
    doc, (problem, *others) = parse(name, text.encode(), is_json=name.endswith(".json"))
    assert doc is None and others == []
    assert (problem.line, problem.column) == where and says in problem.message


def test_keys_do_not_count_as_values() -> None:
    # a mapping of n entries holds n values, as the reference counts them
    entries = ", ".join(f"k{i}: 1" for i in range(MAX_NODES - 3))
    text = f"version: 1\nx: {{{entries}}}\n"
    assert read(text, MAX_NODES) is not None
    check_limits(text, MAX_NODES)
    check_limits(text.replace("x: {", "x: &a {"), MAX_NODES)  # as the declined path counts
    with pytest.raises(TooLarge):
        check_limits(text.replace("k0: 1", "k0: 1, k: 2"), MAX_NODES)


@pytest.mark.parametrize("key", ["net.a\\nb", "net.a\\0b", "net.a\\e[2Jb", "net.\\u202eb"])
def test_messages_quote_the_files_control_characters_escaped(tmp_path: Path, key: str) -> None:
    # a duplicate key is quoted by ruamel as it is: ESC[2J would clear the terminal
    (tmp_path / "dup.yaml").write_text(f'version: 1\nsysctls:\n  "{key}": 1\n  "{key}": 1\n')
    (tmp_path / "name\x1b[2J.yaml").write_text("version: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_generation(tmp_path, hostname="h")
    texts = [text for problem in caught.value.problems for text in (problem.file, problem.path, problem.message)]
    assert all(text.isprintable() for text in [*texts, str(caught.value).replace("\n", "")])
    duplicate, name = caught.value.problems
    assert "duplicate key" in duplicate.message and "\\" in duplicate.message
    assert name.file.endswith("name\\x1b[2J.yaml")


def test_a_reused_anchor_is_a_located_problem_not_a_library_warning() -> None:
    text = "version: 1\nnamespaces: [&n {name: a}, &n {name: b}]\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc, problems = parse("a.yaml", text.encode(), is_json=False)
    assert caught == [] and doc is None
    assert [str(problem) for problem in problems] == [
        "a.yaml:2:28: the anchor &n is defined a second time (first at line 2, column 14): give each anchor its own name"
    ]
