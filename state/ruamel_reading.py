"""The reference reader of `state.reading`: ruamel.yaml (round-trip mode, YAML 1.2)
reads what the fast reader (`state.libyaml_reading`) declines - anchors, tags,
block scalars, directives, rare number forms, every syntax error - and defines
what each of those files means and the words and place of each of its problems.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from netlab.state.documents import EMPTY_MESSAGE, DocPath, Parsed, Position
from netlab.state.errors import Problem
from netlab.state.libyaml_reading import MAX_NODES, MAX_NUMBER_LENGTH, number_too_long


class _Unsupported(Exception):
    """A YAML value that has no JSON equivalent; carries the message and position."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass
class _Converter:
    """Turns ruamel's round-trip tree into plain data, recording positions."""

    values: dict[DocPath, Position] = field(default_factory=dict)
    keys: dict[DocPath, Position] = field(default_factory=dict)
    nodes: int = 0

    def convert(self, node: Any, path: DocPath, here: Position) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Unsupported(
                f"the document expands to more than {MAX_NODES} values (through aliases?): write it out plainly",
                here,
            )
        self.values.setdefault(path, here)
        if isinstance(node, Mapping):
            return self._mapping(node, path, here)
        if isinstance(node, (list, tuple)):
            return self._sequence(node, path, here)
        return _scalar(node, here)

    def _mapping(self, node: Mapping[Any, Any], path: DocPath, here: Position) -> dict[str, Any]:
        result: dict[str, Any] = {}
        positions = _lc_data(node)
        for raw_key, value in node.items():
            spot = positions.get(raw_key)
            key_at = (spot[0] + 1, spot[1] + 1) if spot else here
            value_at = (spot[2] + 1, spot[3] + 1) if spot and len(spot) >= 4 else key_at
            key = _key(raw_key, key_at)
            if key in result:
                raise _Unsupported(f"duplicate key {key!r}: write each key once", key_at)
            child_path = path + (key,)
            self.keys[child_path] = key_at
            result[key] = self.convert(value, child_path, value_at)
        return result

    def _sequence(self, node: list[Any] | tuple[Any, ...], path: DocPath, here: Position) -> list[Any]:
        result: list[Any] = []
        positions = _lc_data(node)
        for index, item in enumerate(node):
            spot = positions.get(index)
            item_at = (spot[0] + 1, spot[1] + 1) if spot else here
            result.append(self.convert(item, path + (index,), item_at))
        return result


def _lc_data(node: Any) -> Mapping[Any, Any]:
    lc = getattr(node, "lc", None)
    data = getattr(lc, "data", None)
    return data if isinstance(data, Mapping) else {}


def _node_position(node: Any) -> Position:
    lc = getattr(node, "lc", None)
    line, column = getattr(lc, "line", None), getattr(lc, "col", None)
    if isinstance(line, int) and isinstance(column, int):
        return (line + 1, column + 1)
    return (1, 1)


def _key(raw: Any, where: Position) -> str:
    if isinstance(raw, str):
        return str(raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return "null"
    if isinstance(raw, (int, float)):
        return str(raw)
    raise _Unsupported("a key must be a plain word, not a list or mapping", where)


def _scalar(node: Any, where: Position) -> Any:
    # ruamel keeps style information in subclasses (ScalarBoolean is an int!):
    # turn each back into the plain type it stands for.
    if node is None:
        return None
    if isinstance(node, bool) or type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, TaggedScalar):
        return str(node.value)
    if isinstance(node, (datetime.date, datetime.datetime)):
        raise _Unsupported("this value is read as a date: put it in quotes if it is meant as text", where)
    raise _Unsupported(
        f"a value of YAML type {type(node).__name__} is not supported: "
        "write a string, number, true/false, list or mapping",
        where,
    )


def _refuse_long_number(node: Any) -> None:
    value = node.value if isinstance(node, ScalarNode) else ""
    if len(value) > MAX_NUMBER_LENGTH:
        mark = node.start_mark
        raise _Unsupported(number_too_long(len(value)), (mark.line + 1, mark.column + 1))


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, refusing absurdly long numbers before it
    converts them: Python raises on more than 4300 digits, and a value of more
    digits than any netlab value needs is a mistake (or a hostile file)."""

    def construct_yaml_int(self, node: Any) -> Any:
        _refuse_long_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: Any) -> Any:
        _refuse_long_number(node)
        return super().construct_yaml_float(node)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)
_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_yaml_float)


class _Composer(Composer):
    """ruamel's composer, refusing an anchor defined twice at its second place:
    ruamel only warns, through `warnings`, naming its own source file and
    `<unicode string>`, and which node an alias means is then easily mistaken."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None and type(event) is not AliasEvent and anchor in self.anchors:
            first = self.anchors[anchor].start_mark
            message = (
                f"the anchor &{anchor} is defined a second time (first at line {first.line + 1}, "
                f"column {first.column + 1}): give each anchor its own name"
            )
            raise _Unsupported(message, (event.start_mark.line + 1, event.start_mark.column + 1))
        return super().compose_node(parent, index)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Composer = _Composer
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    return yaml


def _marked_problem(file: str, error: MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 1
    parts = [error.context, error.problem]
    if isinstance(error, DuplicateKeyError):
        parts = [error.problem, "write each key once"]
    else:
        parts.append(_yaml_fix(error))
    message = ": ".join(str(part) for part in parts if part)
    return Problem(file, line, column, "", f"syntax error: {message or 'invalid YAML'}")


def _opened_at(error: MarkedYAMLError) -> str:
    mark = error.context_mark
    return f" opened at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_fix(error: MarkedYAMLError) -> str | None:
    """What to do about the commonest YAML syntax errors, from the parser's words."""
    context, problem = str(error.context or ""), str(error.problem or "")
    if "'\\t'" in problem:
        return "indent with spaces: YAML does not allow tabs there"
    for opener, closer, what in (("flow mapping", "}", "mapping"), ("flow sequence", "]", "list")):
        if opener in context:
            return f"close the {what}{_opened_at(error)} with '{closer}', or put a ',' between its items"
    if "quoted scalar" in context:
        return f"close the quote{_opened_at(error)}"
    if "mapping values are not allowed" in problem:
        return "a value holding ': ' must be put in quotes; a nested mapping starts on a new, indented line"
    if "block" in context and "expected <block end>" in problem:
        return "check the indentation: the items of one list or mapping start in the same column"
    return None


def _reader_problem(file: str, text: str, error: ReaderError) -> Problem:
    position = error.position if isinstance(error.position, int) else 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return Problem(file, line, column, "", f"character {error.character!r} is not allowed in YAML: remove it")


def _nodes_inside_out(node: Node) -> Iterator[Node]:
    """Every node of a composed tree, children before their parent."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            yield from _nodes_inside_out(key)
            yield from _nodes_inside_out(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _nodes_inside_out(item)
    yield node


def _constructor_problem(file: str, text: str, error: Exception) -> Problem:
    """Finds the node that could not be constructed by constructing each alone."""
    try:
        root = _yaml().compose(text)
    except Exception:  # noqa: BLE001 - same parser, same failure: fall back to line 1
        root = None
    for node in _nodes_inside_out(root) if root is not None else ():
        try:
            _yaml().constructor.construct_object(node, deep=True)
        except Exception as found:  # noqa: BLE001 - see load_tree
            tag = str(node.tag).rsplit(":", 1)[-1]
            shown = repr(node.value) if isinstance(node, ScalarNode) else f"this {tag}"
            message = f"{shown} cannot be read as {tag} ({found}): fix it, or quote it if it is text"
            return Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, "", message)
    return Problem(file, 1, 1, "", f"the YAML cannot be read: {error}")


def load_tree(file: str, text: str) -> tuple[Any, list[Problem]]:
    try:
        return _yaml().load(text), []
    except MarkedYAMLError as error:
        return None, [_marked_problem(file, error)]
    except ReaderError as error:
        return None, [_reader_problem(file, text, error)]
    except YAMLError as error:
        return None, [Problem(file, 1, 1, "", f"syntax error: {error}")]
    except RecursionError:
        # the parser recurses per nesting level; a few thousand `[` exhaust the stack
        return None, [Problem(file, 1, 1, "", "the document is nested too deeply: flatten it")]
    except _Unsupported as error:
        return None, [Problem(file, error.position[0], error.position[1], "", error.message)]
    except Exception as error:  # noqa: BLE001
        # ruamel's constructors raise plain Python errors (ValueError, KeyError,
        # AttributeError...) for a node its tag cannot take: `!!int x`, `2024-02-30`,
        # `!!omap` on a scalar. The file caused them, so they are reported as a
        # problem of the file, at the node: loading never crashes on any bytes.
        return None, [_constructor_problem(file, text, error)]


def to_parsed(file: str, tree: Any) -> tuple[Parsed | None, list[Problem]]:
    """The data and positions of a loaded tree, or the problem that keeps it from
    being netlab data (not a mapping, a date, a key that is a list...)."""
    if tree is None:
        return None, [Problem(file, 1, 1, "", EMPTY_MESSAGE)]
    root_at = _node_position(tree)
    if not isinstance(tree, Mapping):
        found = "a list" if isinstance(tree, (list, tuple)) else f"the single value {tree!r}"
        message = f"the top level must be a mapping that starts with `version: 1`, but it is {found}"
        return None, [Problem(file, root_at[0], root_at[1], "", message)]
    converter = _Converter()
    try:
        data = converter.convert(tree, (), root_at)
    except _Unsupported as error:
        return None, [Problem(file, error.position[0], error.position[1], "", error.message)]
    except RecursionError:
        # ruamel turns a recursive alias into None, so only absurd nesting gets here
        return None, [Problem(file, 1, 1, "", "the document is nested too deeply: flatten it")]
    return Parsed(data, converter.values, converter.keys), []
