"""Reading files: YAML 1.2 and JSON into data with the line:column of every value,
and every way a file can be unreadable reported at the place the parser names."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from netlab.state.documents import format_path
from netlab.state.reading import parse

Problems = Callable[[dict[str, str | bytes]], list[str]]


def test_yaml_positions_of_keys_and_values() -> None:
    text = "version: 1\ninterfaces:\n  - name: br0\n    type: bridge\n    addresses: [10.0.0.1/24]\n"
    doc, problems = parse("f.yaml", text.encode(), is_json=False)
    assert problems == [] and doc is not None
    assert doc.position(("interfaces", 0)) == (3, 5)
    assert doc.position(("interfaces", 0, "type")) == (4, 11)
    assert doc.position(("interfaces", 0, "type"), at_key=True) == (4, 5)
    assert doc.position(("interfaces", 0, "addresses", 0)) == (5, 17)
    # a path that does not exist falls back to its nearest ancestor
    assert doc.position(("interfaces", 0, "mtu")) == (3, 5)


def test_json_positions() -> None:
    text = '{"version": 1,\n "interfaces": [\n  {"name": "br0", "type": "bridge"}]}\n'
    doc, problems = parse("f.json", text.encode(), is_json=True)
    assert problems == [] and doc is not None
    assert doc.data["interfaces"][0]["name"] == "br0"
    assert doc.position(("interfaces", 0, "type")) == (3, 27)


def test_json_positions_fall_back_to_line_1() -> None:
    # ruamel refuses implicit keys longer than 1024 characters, which JSON allows
    text = '{"version": 1,\n "' + "k" * 1100 + '": 1}'
    doc, problems = parse("f.json", text.encode(), is_json=True)
    assert problems == [] and doc is not None
    assert doc.position(("k" * 1100,)) == (1, 1)


def test_yaml_1_2_keeps_on_and_yes_as_strings() -> None:
    doc, _ = parse("f.yaml", b"version: 1\na: on\nb: yes\nc: true\n", is_json=False)
    assert doc is not None
    assert doc.data == {"version": 1, "a": "on", "b": "yes", "c": True}
    assert type(doc.data["c"]) is bool


def test_anchored_boolean_is_a_plain_bool() -> None:
    # ruamel keeps an anchored boolean as ScalarBoolean, an int subclass
    doc, _ = parse("f.yaml", b"version: 1\na: &t true\nb: *t\n", is_json=False)
    assert doc is not None and type(doc.data["a"]) is bool and type(doc.data["b"]) is bool


def test_path_formatting() -> None:
    assert format_path(("interfaces", 2, "addresses", 0)) == "interfaces[2].addresses[0]"
    assert format_path(("sysctls", "net.ipv4.ip_forward")) == 'sysctls["net.ipv4.ip_forward"]'
    assert format_path(()) == ""


def test_yaml_syntax_error_at_the_parsers_place(problems: Problems) -> None:
    assert problems({"a.yaml": "version: 1\ninterfaces: [\n  {name: x\n"}) == [
        "a.yaml:4:1: syntax error: while parsing a flow mapping: expected ',' or '}', but got '<stream end>': "
        "close the mapping opened at line 3, column 3 with '}', or put a ',' between its items"
    ]


@pytest.mark.parametrize(
    ("name", "text", "where", "fix"),
    [
        ("flow-list.yaml", "version: 1\nx: [a, 1\n", "3:1", "close the list opened at line 2, column 4 with ']'"),
        ("tab.yaml", "version: 1\nnamespaces:\n\t- name: a\n", "3:1", "indent with spaces"),
        ("quote.yaml", 'version: 1\nx: "abc\n', "3:1", "close the quote opened at line 2, column 4"),
        ("colon.yaml", "version: 1\nx: a: b\n", "2:5", "a value holding ': ' must be put in quotes"),
        ("indent.yaml", "version: 1\nx:\n  - a: 1\n   b: 2\n", "4:4", "check the indentation"),
        ("list.json", '{"version": 1,\n "hosts": [1, 2,]}\n', "2:16", "remove the comma"),
        ("object.json", '{"version": 1,\n "dns": {"search": [],\n}}\n', "2:22", "remove the comma"),
        ("quotes.json", "{'version': 1}\n", "1:2", "JSON writes strings and keys in double quotes"),
        ("open.json", '{"version": 1, "x": [1\n', "2:1", "the text ends before every '{' and '[' is closed"),
    ],
)
def test_a_syntax_error_says_how_to_fix_it(problems: Problems, name: str, text: str, where: str, fix: str) -> None:
    (problem,) = problems({name: text})
    assert problem.startswith(f"{name}:{where}: syntax error: ") and fix in problem


def test_yaml_duplicate_key(problems: Problems) -> None:
    (problem,) = problems({"a.yaml": "version: 1\nsysctls:\n  net.ipv4.ip_forward: 1\n  net.ipv4.ip_forward: 0\n"})
    assert problem.startswith("a.yaml:4:3: syntax error: found duplicate key")
    assert problem.endswith("write each key once")


def test_json_syntax_error(problems: Problems) -> None:
    assert problems({"a.json": '{"version": 1,\n "hosts": [,]}\n'}) == ["a.json:2:12: syntax error: Expecting value"]


def test_json_duplicate_key_with_position(problems: Problems) -> None:
    (problem,) = problems({"a.json": '{"version": 1,\n "version": 1}\n'})
    assert problem.startswith("a.json:2:2: syntax error: found duplicate key")


def test_empty_and_comment_only_files(problems: Problems) -> None:
    message = "the file is empty: start it with `version: 1`"
    assert problems({"a.yaml": "", "b.yaml": "# nothing yet\n\n", "c.json": "  \n", "d.yaml": "~\n"}) == [
        f"a.yaml:1:1: {message}",
        f"b.yaml:1:1: {message}",
        f"c.json:1:1: {message}",
        f"d.yaml:1:1: {message}",
    ]


def test_top_level_must_be_a_mapping(problems: Problems) -> None:
    assert problems({"a.yaml": "- version: 1\n", "b.json": "[1]", "c.yaml": "hello\n"}) == [
        "a.yaml:1:1: the top level must be a mapping that starts with `version: 1`, but it is a list",
        'b.json:1:1: the top level must be an object that starts with "version": 1, but it is a list',
        "c.yaml:1:1: the top level must be a mapping that starts with `version: 1`, but it is the single value 'hello'",
    ]


def test_non_utf8_names_the_byte(problems: Problems) -> None:
    assert problems({"a.yaml": b"version: 1\nhosts:\n  - {address: 10.0.0.1, names: [caf\xe9]}\n"}) == [
        "a.yaml:3:36: the file is not UTF-8 text (byte 0xe9): save it as UTF-8"
    ]


def test_byte_order_mark_is_accepted(load: Callable[[dict[str, str | bytes]], object]) -> None:
    load({"a.yaml": "\ufeffversion: 1\n".encode(), "b.json": '\ufeff{"version": 1}'.encode()})


def test_control_character_is_a_problem(problems: Problems) -> None:
    assert problems({"a.yaml": "version: 1\nx: \x07\n"}) == [
        "a.yaml:2:4: character 7 is not allowed in YAML: remove it"
    ]


def test_date_is_reported_with_advice(problems: Problems) -> None:
    assert problems({"a.yaml": "version: 1\nnamespaces:\n  - name: 2024-01-01\n"}) == [
        "a.yaml:3:11: this value is read as a date: put it in quotes if it is meant as text"
    ]


def test_two_documents_in_one_file(problems: Problems) -> None:
    (problem,) = problems({"a.yaml": "version: 1\n---\nversion: 1\n"})
    assert problem.startswith("a.yaml:2:1: syntax error:") and "single document" in problem


def test_alias_bomb_is_refused(problems: Problems) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        below = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([below] * 10)}]")
    (problem,) = problems({"a.yaml": "\n".join(lines) + "\n"})
    assert "expands to more than" in problem


def test_problems_of_every_file_at_once(problems: Problems) -> None:
    found = problems({"a.yaml": "version: [\n", "b.yaml": "", "c.json": "{", "d.yaml": "version: 1\n"})
    assert [p.split(":")[0] for p in found] == ["a.yaml", "b.yaml", "c.json"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a: !!int x", "2:4: 'x' cannot be read as int"),
        ("a: !!bool maybe", "2:4: 'maybe' cannot be read as bool"),
        ("a: [1, {b: 2024-02-30}]", "2:12: '2024-02-30' cannot be read as timestamp"),
        ("a: !!int 0x", "2:4: '0x' cannot be read as int"),
        ("a: !!omap x", "2:4: 'x' cannot be read as omap"),
        ('a: "x\\ud800"', "2:4: a: this text holds a NUL character or a lone surrogate"),
        ('"k\\x00": 1', '2:1: ["k\\u0000"]: this text holds a NUL character or a lone surrogate'),
    ],
)
def test_values_ruamel_cannot_construct(problems: Problems, line: str, expected: str) -> None:
    # ruamel raises ValueError/KeyError/IndexError for these: never let one escape
    (problem,) = problems({"a.yaml": f"version: 1\n{line}\n"})
    assert problem.startswith(f"a.yaml:{expected}")


def test_json_surrogate_escape(problems: Problems) -> None:
    (problem,) = problems({"a.json": '{"version": 1, "hosts": ["\\udc00"]}'})
    assert "lone surrogate" in problem
