"""The fast reader of `state.reading`: libyaml (through PyYAML's C parser) turns the
text into events, and one pass over them builds the data and the positions, with
plain scalars resolved by the YAML 1.2 rules ruamel applies. It declines (returns
None) on anything outside the common subset - a syntax error, a duplicate key, an
anchor, a tag, a directive, a block scalar (`|`, `>`), a value that is not text,
true/false, null or a plain number - and `state.reading` then has the reference
reader (`state.ruamel_reading`) read the file, so every problem and every odd
construct is reported as before. It also holds the limits every reader keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from yaml import YAMLError
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from netlab.state.documents import DocPath, Parsed, Position

_PARSER: Callable[[str], Any] | None
try:
    from yaml._yaml import CParser

    _PARSER = CParser
except ImportError:  # PyYAML built without libyaml: every file takes the reference path
    _PARSER = None

# Values in one file (aliases count as they expand: "billion laughs"). The
# benchmark's 1000 namespaces are 18,000; this many are some 5,500 namespaces
# (1 MiB of YAML), and a file beyond it is refused in a fraction of a second.
MAX_NODES = 100_000

# Plain scalars whose first character can start something other than text under
# ruamel's YAML 1.2 resolver (ruamel.yaml.resolver.implicit_resolvers): the forms
# read here are the common ones; the rest (0x1f, 1_000, +1, .inf, 1e3, dates,
# merge keys...) decline, so ruamel reads them as it always did.
_SPECIAL_FIRST = frozenset("-+.0123456789<=~nNtTfF")
_WORDS: dict[str, bool | None] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("~", "null", "Null", "NULL"), None),
}
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_POINT_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")
# ruamel's YAML 1.2 int, float and timestamp forms: a plain scalar matching one
# of these is a number or a date to ruamel, never text
_NOT_TEXT = re.compile(
    r"""(?:[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]\ -[0-9][0-9]?\ -[0-9][0-9]?
     (?:[Tt]|[\ \t]+)[0-9][0-9]?:[0-9][0-9]\ :[0-9][0-9]\ (?:\.[0-9]*)?
     (?:[\ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?
    |<<|=)""",
    re.X,
)
# No value of netlab's format is a number this long (a u64 has 20 digits), and
# Python refuses to turn more than 4300 digits into an int: longer numbers decline
# here, and `state.reading` refuses them at their place in every reader.
MAX_NUMBER_LENGTH = 100
# netlab's format nests six deep: a deeper document is refused here, before ruamel
# (which recurses per level and took seconds over 1000 `[`) reads it
MAX_DEPTH = 64
# Characters the two parsers disagree on: line breaks of YAML 1.1 that YAML 1.2
# reads as text (lines would be counted differently), and tabs, which libyaml
# accepts inside plain scalars where ruamel refuses them, and byte-order marks
# past the start.
DISPUTED = ("\x85", "\u2028", "\u2029", "\t", "\ufeff")


class _Decline(Exception):
    """The document needs the reference parser."""


class TooLarge(Exception):
    """The document is beyond a limit no netlab file comes near: refused at the
    value that crossed it, before any slower reader spends seconds on it."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _at(mark: Any) -> Position:
    """The 1-based line and column of a libyaml mark."""
    return (mark.line + 1, mark.column + 1)


def _too_deep(mark: Any) -> TooLarge:
    message = f"the document nests deeper than {MAX_DEPTH} levels here (netlab's files nest 6 deep): flatten it"
    return TooLarge(message, _at(mark))


def _too_many(mark: Any, max_nodes: int) -> TooLarge:
    message = f"the document holds more than {max_nodes} values (no netlab file needs that many): split it"
    return TooLarge(message, _at(mark))


def number_too_long(length: int) -> str:
    """The message for a number longer than `MAX_NUMBER_LENGTH`, from any reader."""
    return (
        f"this number is {length} characters long; no value in netlab's files needs more than "
        f"{MAX_NUMBER_LENGTH}: shorten it (or quote it, if it is text)"
    )


def _plain(value: str) -> Any:
    """A plain scalar under YAML 1.2's core schema as ruamel reads it."""
    if not value:
        raise _Decline  # an empty value: ruamel and libyaml place it differently
    first = value[0]
    if first not in _SPECIAL_FIRST:
        return value
    if first.isalpha() or first == "~":
        return _WORDS[value] if value in _WORDS else value
    if len(value) > MAX_NUMBER_LENGTH:
        raise _Decline  # a number is refused by the reference, text is read there as well
    if _DECIMAL.fullmatch(value):
        return int(value)
    if _POINT_FLOAT.fullmatch(value):
        return float(value)
    if _NOT_TEXT.fullmatch(value):
        raise _Decline
    return value


def _text(event: Any) -> Any:
    if event.anchor is not None or event.tag is not None:
        raise _Decline
    if not event.style:  # plain: '' from the C parser
        return _plain(event.value)
    if event.style in ("|", ">"):
        # block scalars: libyaml and ruamel read their headers differently
        # (`>#` passes one and not the other); rare in these files
        raise _Decline
    value: str = event.value
    if event.style == '"' and ("\x00" in value or not value.isascii() and not _encodable(value)):
        raise _Decline  # a NUL or a lone surrogate from an escape: the reference reports it
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read(text: str, max_nodes: int) -> Parsed | None:
    """The data and positions of a YAML (or JSON) text whose top level is a mapping,
    or None when the reference parser must read it. Raises `TooLarge` when the
    text has more than `max_nodes` values or nests deeper than `MAX_DEPTH`."""
    if _PARSER is None or text.startswith("%") or "\n%" in text or any(c in text for c in DISPUTED):
        return None  # directives (%YAML 1.1 changes what `on` means) and disputed characters
    try:
        return _build(_PARSER(text), max_nodes)
    except (_Decline, YAMLError, UnicodeError):
        return None


def _build(parser: Any, max_nodes: int) -> Parsed:
    get = parser.get_event
    values: dict[DocPath, Position] = {(): _at(_root(get).start_mark)}
    keys: dict[DocPath, Position] = {}
    data: dict[str, Any] = {}
    # the open collection, its path, whether it is a mapping, and the key of a
    # mapping entry whose value comes next; `enclosing` holds the outer ones
    container: Any = data
    path: DocPath = ()
    in_mapping = True
    key: str | None = None
    key_path: DocPath = ()
    enclosing: list[tuple[Any, DocPath, bool]] = []
    nodes = 1
    while True:
        event = get()
        kind = type(event)
        if kind is MappingEndEvent or kind is SequenceEndEvent:
            if not enclosing:
                break
            container, path, in_mapping = enclosing.pop()
            continue
        if in_mapping and key is None:
            key = _key(event, container)
            key_path = (*path, key)
            keys[key_path] = _at(event.start_mark)
            continue
        nodes += 1
        if nodes > max_nodes:
            raise _too_many(event.start_mark, max_nodes)
        child = key_path if in_mapping else (*path, len(container))
        values[child] = _at(event.start_mark)
        value = _value(event, kind, len(enclosing))
        if in_mapping:
            container[key] = value
            key = None
        else:
            container.append(value)
        if kind is not ScalarEvent:
            enclosing.append((container, path, in_mapping))
            container, path, in_mapping = value, child, kind is MappingStartEvent
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise _Decline  # a second document: the reference reports it
    return Parsed(data, values, keys)


def _root(get: Callable[[], Any]) -> Any:
    """The event that opens the top-level mapping of a plain single document."""
    if type(get()) is not StreamStartEvent or type(start := get()) is not DocumentStartEvent:
        raise _Decline
    if start.version is not None or start.tags:
        raise _Decline
    root = get()
    if type(root) is not MappingStartEvent or root.anchor is not None or root.tag is not None:
        raise _Decline  # empty, a list or a single value: the reference says so
    return root


def _key(event: Any, mapping: dict[str, Any]) -> str:
    """A key: text only, each once."""
    if type(event) is not ScalarEvent:
        raise _Decline
    name = _text(event)
    if type(name) is not str or name in mapping:
        raise _Decline
    return name


def _value(event: Any, kind: type[Any], depth: int) -> Any:
    """A scalar's value, or the empty collection an event opens."""
    if kind is ScalarEvent:
        return _text(event)
    if kind is MappingStartEvent or kind is SequenceStartEvent:
        if depth >= MAX_DEPTH:
            raise _too_deep(event.start_mark)
        if event.anchor is not None or event.tag is not None:
            raise _Decline
        return {} if kind is MappingStartEvent else []
    raise _Decline  # an alias


def check_limits(text: str, max_nodes: int) -> None:
    """Raises `TooLarge` where a text that `read` declined goes beyond its limits,
    counted as `read` counts (values, not keys; collections open): libyaml's
    events cost a fraction of ruamel's reading, which took minutes over a few
    megabytes before reaching its own bound. A syntax error ends the count: the
    reference reports it."""
    if _PARSER is None:
        return
    # per open collection: _KEY or _VALUE (a mapping's next node), or _ITEM
    open_collections: list[int] = []
    nodes = 0
    try:
        parser = _PARSER(text)
        while (event := parser.get_event()) is not None and type(event) is not StreamEndEvent:
            kind = type(event)
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                open_collections.pop()
                continue
            if kind not in _NODE_EVENTS:
                continue
            state = open_collections[-1] if open_collections else _ITEM
            if state == _KEY:
                open_collections[-1] = _VALUE
            else:
                if state == _VALUE:
                    open_collections[-1] = _KEY
                nodes += 1
                if nodes > max_nodes:
                    raise _too_many(event.start_mark, max_nodes)
            if kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(open_collections) > MAX_DEPTH:
                    raise _too_deep(event.start_mark)
                open_collections.append(_KEY if kind is MappingStartEvent else _ITEM)
    except YAMLError as error:
        # libyaml scans flow collections ahead, and stops at 1000 open ones
        mark = getattr(error, "problem_mark", None)
        if "maximum nesting depth" in str(getattr(error, "problem", "")) and mark is not None:
            raise _too_deep(mark) from None
    except UnicodeError:
        return


_ITEM, _KEY, _VALUE = range(3)
_NODE_EVENTS = frozenset({ScalarEvent, MappingStartEvent, SequenceStartEvent, AliasEvent})
