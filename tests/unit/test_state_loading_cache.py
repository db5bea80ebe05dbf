"""Loading again: a file whose bytes did not change is not read again into a new
result, a changed one is, and what the cache hands out can be changed by the
caller without changing the next load. Objects found valid by the schema before
are skipped, never their errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from netlab.state import evaluating, loading
from netlab.state.errors import ConfigError
from netlab.state.loading import clear_cache, load_generation
from netlab.state.reading import parse
from netlab.state.validating import check_schema

HOST = "node-a"
TEXT = "version: 1\nnamespaces: [{name: red}, {name: blue}]\n"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def _directory(tmp_path: Path, text: str = TEXT) -> Path:
    directory = tmp_path / "netlab.d"
    directory.mkdir(mode=0o755, exist_ok=True)
    (directory / "a.yaml").write_text(text)
    return directory


def test_an_unchanged_file_is_not_parsed_again(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    first = load_generation(directory, HOST)
    with mock.patch.object(evaluating, "parse", side_effect=AssertionError("parsed again")):
        again = load_generation(directory, HOST)
    assert again == first and again.namespaces[0] is first.namespaces[0]


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    load_generation(directory, HOST)
    (directory / "a.yaml").write_text(TEXT.replace("blue", "green"))
    assert [ns.name for ns in load_generation(directory, HOST).namespaces] == ["red", "green"]


def test_another_host_is_another_result(tmp_path: Path) -> None:
    directory = _directory(tmp_path, "version: 1\nmatch: {hostname: node-a}\nnamespaces: [{name: red}]\n")
    assert load_generation(directory, "node-a").namespaces
    assert not load_generation(directory, "node-b").namespaces


def test_problems_of_an_unchanged_file_are_reported_again(tmp_path: Path) -> None:
    directory = _directory(tmp_path, "version: 1\nnamespaces: [{name: red, colour: 1}]\n")
    for _ in range(2):
        with pytest.raises(ConfigError) as raised:
            load_generation(directory, HOST)
        assert [str(p).split(": ", 1)[0].rsplit("/", 1)[-1] for p in raised.value.problems] == ["a.yaml:2:26"]


def test_what_is_handed_out_is_a_copy(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    source = loading._Source("a.yaml", directory / "a.yaml")
    contribution, _ = evaluating._contribution(source, *loading._read(source), HOST)
    assert contribution is not None
    contribution.namespaces.clear()
    contribution.problems.append(contribution.doc.problem((), "x"))
    again, problems = evaluating._contribution(source, *loading._read(source), HOST)
    assert again is not None and len(again.namespaces) == 2 and again.problems == [] and problems == []


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    with mock.patch.object(evaluating, "MAX_CACHED_FILES", 3):
        for index in range(5):
            (directory / f"f{index}.yaml").write_text(f"version: 1\nnamespaces: [{{name: n{index}}}]\n")
        load_generation(directory, HOST)
        assert len(evaluating._results) == 3


def test_an_object_seen_valid_before_does_not_hide_a_broken_one() -> None:
    valid = "  - {name: red, sysctls: {net.ipv4.ip_forward: 1}}\n"
    doc, _ = parse("a.yaml", f"version: 1\nnamespaces:\n{valid}".encode(), is_json=False)
    assert doc is not None and check_schema(doc).problems == ()
    broken = "  - {name: red, sysctls: {net.ipv4.ip_forward: 1}, colour: 1}\n"
    doc, _ = parse("a.yaml", f"version: 1\nnamespaces:\n{valid}{broken}{valid}".encode(), is_json=False)
    assert doc is not None
    (problem,) = check_schema(doc).problems
    assert (problem.line, problem.column, problem.path) == (4, 52, "namespaces[1].colour")
    # the same object with another value is another object
    doc, _ = parse("a.yaml", b"version: 1\nnamespaces:\n  - {name: red, sysctls: {net.ipv4.ip_forward: 1.5}}\n", False)
    assert doc is not None and check_schema(doc).problems
