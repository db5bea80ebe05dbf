"""Reading desired-state files: the one entry point. `parse` turns one file's bytes
into a `Document` (data, and the line:column of every key and value) or the
problems that prevent it; `reparse` reads an edit of a few list items in place.
Called by `state.loading`; raises nothing. Which reader serves which case:

- YAML in the common subset (plain, quoted and flow scalars, block and flow
  collections; no anchor, tag, directive or block scalar): libyaml's event
  stream, `state.libyaml_reading`. Every file netlab ships, and the benchmark's:
  1000 namespaces in ~80 ms, where ruamel takes ~1.5 s.
- Every other YAML text, and every syntax error: ruamel.yaml, the reference,
  `state.ruamel_reading`. It defines what those files mean (YAML 1.2: libyaml
  reads 1.1, and takes tabs, `>#-` headers and flow forms that ruamel refuses)
  and the words and place of their problems: of the 1529 in 3000 mutated copies
  of the design example that ruamel refuses, libyaml alone accepts 4 % and puts
  the error at another line:column in 7 %.
- JSON: `json` for the data and its errors; libyaml's events (ruamel's where
  libyaml declines) for the positions, and ruamel to place a duplicate key or an
  over-long number.
- The limits (values, nesting depth) are counted on libyaml's events before
  ruamel reads anything, so a hostile file is refused in a fraction of a second.
- An edit of a few items of one top-level list in a file libyaml read: those
  items alone, read by libyaml and spliced into the previous document
  (`state.reparsing`). Loading 1000 namespaces again after one edit takes
  ~15 ms so, ~140 ms with the file read whole: the 50 ms edit target needs it.
"""

from __future__ import annotations

import json
from typing import Any

from netlab.state.documents import EMPTY_MESSAGE, DocPath, Document, Edit, Parsed
from netlab.state.errors import Problem
from netlab.state.libyaml_reading import MAX_NODES, MAX_NUMBER_LENGTH, TooLarge, check_limits, number_too_long
from netlab.state.libyaml_reading import read as read_fast
from netlab.state.reparsing import reparse_items


def load_tree(file: str, text: str) -> tuple[Any, list[Problem]]:
    """ruamel's tree of the text; ruamel is imported the first time a file
    needs it (some 5 ms: the files netlab ships never do)."""
    from netlab.state import ruamel_reading

    return ruamel_reading.load_tree(file, text)


def to_parsed(file: str, tree: Any) -> tuple[Parsed | None, list[Problem]]:
    from netlab.state import ruamel_reading

    return ruamel_reading.to_parsed(file, tree)


def parse(file: str, raw: bytes, is_json: bool) -> tuple[Document | None, list[Problem]]:
    """The document of one file's bytes, or the problems that prevent reading it."""
    text, problems = decode(file, raw)
    if text is None:
        return None, problems
    if not text.strip():
        return None, [Problem(file, 1, 1, "", EMPTY_MESSAGE)]
    return parse_json(file, text) if is_json else parse_yaml(file, text)


def reparse(doc: Document, old_text: str, new_text: str) -> tuple[Document, Edit] | None:
    """The document of `new_text`, built from `doc` (the parse of `old_text`) and a
    parse of the changed items alone when the edit changed a few items of one
    top-level block list; None for any other edit, and the caller parses the
    whole text (so the result is always the one `parse` gives)."""
    return reparse_items(doc, old_text, new_text)


def decode(file: str, raw: bytes) -> tuple[str | None, list[Problem]]:
    """UTF-8 text (a leading byte-order mark is dropped), or the problem saying where
    the first byte that is not UTF-8 sits."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        byte = raw[error.start : error.start + 1].hex()
        message = f"the file is not UTF-8 text (byte 0x{byte}): save it as UTF-8"
        return None, [Problem(file, line, column, "", message)]


def parse_yaml(file: str, text: str) -> tuple[Document | None, list[Problem]]:
    fast, problems = _read_fast(file, text)
    if problems:
        return None, problems
    if fast is not None:
        # the fast path reads no text that `_checked` would refuse
        return Document(file, fast.data, fast.values, fast.keys, libyaml=True), []
    tree, problems = load_tree(file, text)
    if problems:
        return None, problems
    parsed, problems = to_parsed(file, tree)
    if parsed is None:
        return None, problems
    return _checked(Document(file, parsed.data, parsed.values, parsed.keys))


def parse_json(file: str, text: str) -> tuple[Document | None, list[Problem]]:
    """JSON is parsed by `json` (its errors carry line:col); the YAML parsers then
    read the same text for positions, which only degrade to line 1 when they cannot."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=_json_int, parse_float=_json_float)
    except json.JSONDecodeError as error:
        return None, [_json_problem(file, text, error)]
    except _LongNumber as error:
        # JSON is YAML: ruamel finds the number's place and refuses it there
        problems = _limit_problems(file, text) or load_tree(file, text)[1]
        return None, problems or [Problem(file, 1, 1, "", number_too_long(error.length))]
    except RecursionError:
        return None, [Problem(file, 1, 1, "", "the document is nested too deeply: flatten it")]
    if isinstance(data, dict) and not duplicates:
        fast, problems = _read_fast(file, text)
    else:  # ruamel reads it to place the problem: never beyond the limits
        fast, problems = None, _limit_problems(file, text)
    if problems:
        return None, problems
    if fast is not None:
        return _checked(Document(file, data, fast.values, fast.keys))
    tree, problems = load_tree(file, text)
    if problems and any("duplicate key" in p.message for p in problems):
        return None, problems
    if duplicates:
        return None, [Problem(file, 1, 1, "", f"duplicate key {duplicates[0]!r}: write each key once")]
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else f"the single value {data!r}"
        message = f'the top level must be an object that starts with "version": 1, but it is {found}'
        return None, [Problem(file, 1, 1, "", message)]
    # positions only from a reading of the text that is itself clean
    located = to_parsed(file, tree)[0] if not problems else None
    if located is None or _unusable_text(located.data) is not None:
        return _checked(Document(file, data))
    return _checked(Document(file, data, located.values, located.keys))


def _unusable_text(node: Any, path: DocPath = ()) -> tuple[DocPath, bool] | None:
    """The first string (value, or key when the flag is set) holding a NUL or a lone
    surrogate (from escapes like "\\ud800"): no file, name or argument can carry those."""
    if isinstance(node, str):
        return (path, False) if _is_unusable(node) else None
    if isinstance(node, dict):
        for key, value in node.items():
            if _is_unusable(key):
                return (path + (key,), True)
            found = _unusable_text(value, path + (key,))
            if found:
                return found
    if isinstance(node, list):
        for index, item in enumerate(node):
            found = _unusable_text(item, path + (index,))
            if found:
                return found
    return None


def _is_unusable(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


def _checked(doc: Document) -> tuple[Document | None, list[Problem]]:
    found = _unusable_text(doc.data)
    if found is None:
        return doc, []
    path, at_key = found
    message = "this text holds a NUL character or a lone surrogate (an escape like \\ud800): remove it"
    return None, [doc.problem(path, message, at_key)]


def _read_fast(file: str, text: str) -> tuple[Parsed | None, list[Problem]]:
    """libyaml's reading of the text, or None for the reference to read it; a text
    beyond the limits is refused here, by either, before the reference reads it."""
    try:
        fast = read_fast(text, MAX_NODES)
    except TooLarge as error:
        return None, [_too_large(file, error)]
    return fast, [] if fast is not None else _limit_problems(file, text)


def _limit_problems(file: str, text: str) -> list[Problem]:
    try:
        check_limits(text, MAX_NODES)
    except TooLarge as error:
        return [_too_large(file, error)]
    return []


def _too_large(file: str, error: TooLarge) -> Problem:
    return Problem(file, error.position[0], error.position[1], "", error.message)


def _json_problem(file: str, text: str, error: json.JSONDecodeError) -> Problem:
    """json's error, at its place, with what to do for the commonest mistakes
    (a comma after the last item, single quotes, a bracket never closed)."""
    position = error.pos
    before = text[:position].rstrip()
    here = text[position : position + 1]
    fix = None
    if before.endswith(",") and here in ("}", "]"):
        # point at the comma itself
        position = len(before) - 1
        fix = "remove the comma: JSON allows none after the last item"
    elif here == "'":
        fix = 'JSON writes strings and keys in double quotes: "like this"'
    elif not text[position:].strip():
        fix = "the text ends before every '{' and '[' is closed: close them"
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    message = f"syntax error: {error.msg}" + (f": {fix}" if fix else "")
    return Problem(file, line, column, "", message)


class _LongNumber(Exception):
    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def _json_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _LongNumber(len(literal))
    return int(literal)


def _json_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _LongNumber(len(literal))
    return float(literal)
