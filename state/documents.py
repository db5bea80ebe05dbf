"""A parsed desired-state file: plain data plus the 1-based line:column of every key
and value (`Document`), so that every problem can name `file:line:col`. Made by
`state.reading`; read by validating, building, cross-checking and loading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netlab.state.errors import Problem
from netlab.state.model import Origin

EMPTY_MESSAGE = "the file is empty: start it with `version: 1`"

DocPath = tuple[str | int, ...]
Position = tuple[int, int]


def format_path(path: DocPath) -> str:
    """`("interfaces", 2, "addresses", 0)` → `interfaces[2].addresses[0]`; keys that
    are not plain words (sysctl names) are quoted: `sysctls["net.ipv4.ip_forward"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


@dataclass(frozen=True)
class Parsed:
    """What a reader makes of a text: the data, where each value starts (by path)
    and where the key of each mapping entry starts (by the entry's path)."""

    data: dict[str, Any]
    values: dict[DocPath, Position]
    keys: dict[DocPath, Position]


@dataclass(frozen=True)
class Document:
    """One parsed file. `values` maps a path to where its value starts; `keys` maps
    the path of a mapping entry to where its key starts."""

    file: str
    data: dict[str, Any]
    values: Mapping[DocPath, Position] = field(default_factory=dict)
    keys: Mapping[DocPath, Position] = field(default_factory=dict)
    # read by libyaml (`state.libyaml_reading`): `state.reparsing` may splice into it
    libyaml: bool = False

    def position(self, path: DocPath, at_key: bool = False) -> Position:
        """The position of `path`, or of its nearest ancestor that has one (a JSON
        file whose positions could not be read falls back to line 1)."""
        if at_key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: DocPath, message: str, at_key: bool = False) -> Problem:
        line, column = self.position(path, at_key)
        return Problem(self.file, line, column, format_path(path), message)

    def origin(self, path: DocPath, at_key: bool = False) -> Origin:
        line, column = self.position(path, at_key)
        return Origin(self.file, line, column)

    def get(self, path: DocPath) -> Any:
        """The value at `path`, or None where the path does not lead anywhere."""
        node: Any = self.data
        for part in path:
            if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
            elif isinstance(part, str) and isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return None
        return node


@dataclass(frozen=True)
class Edit:
    """The items `first`..`last` (inclusive) of `section` were read again after an
    edit (`state.reparsing`); every other item, and every position outside them,
    is the previous one."""

    section: str
    first: int
    last: int
