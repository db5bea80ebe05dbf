"""Files made to break the reader (found by fuzzing, issues 12 and 13): each gets a
located problem from every reader (libyaml's fast path, ruamel, json), never a
traceback, and the loader raises ConfigError, so the daemon keeps the last good
generation."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
from netlab.state.loading import load_generation
from netlab.state.parsing import parse

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
