"""Reading a file again after a small edit: only the items of one top-level block
list (`namespaces:`, `interfaces:`...) whose lines changed are read, in place, by
libyaml, and spliced into the previous document of the same file. Used through
`state.reading.reparse`; it returns None whenever the edit is anything but that,
and the whole file is parsed instead, so the result is always a full parse's.
"""

from __future__ import annotations

import bisect
from typing import Any

from netlab.state.documents import DocPath, Document, Edit, Position
from netlab.state.libyaml_reading import DISPUTED, MAX_NODES, TooLarge
from netlab.state.libyaml_reading import read as read_fast


def _changed_lines(old: list[str], new: list[str]) -> tuple[int, int, int]:
    """The lines that differ: old[start:old_stop] became new[start:new_stop]."""
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and old[-1 - end] == new[-1 - end]:
        end += 1
    return start, len(old) - end, len(new) - end


def _top_lines(doc: Document) -> list[int]:
    """The 0-based lines of the top-level keys, in order."""
    return sorted(doc.keys[(key,)][0] - 1 for key in doc.data)


def _item_start(doc: Document, lines: list[str], section: str, index: int) -> tuple[int, int] | None:
    """The line of an item and the column of its `-`, when the item is written as
    `<spaces>- value` on one line (the form the splice relies on)."""
    line, column = doc.values[(section, index)]
    text = lines[line - 1]
    dash = len(text) - len(text.lstrip(" "))
    if dash < 1 or not text.startswith("- ", dash) or column - 1 <= dash:
        return None
    return line - 1, dash


def reparse_items(doc: Document, old_text: str, new_text: str) -> tuple[Document, Edit] | None:
    """The document of `new_text`, built from `doc` (the full parse of `old_text`)
    and a parse of the changed items alone; None where that cannot be proven to
    equal a full parse of `new_text`."""
    if not doc.libyaml or "\r" in new_text or new_text.startswith("%") or "\n%" in new_text:
        return None
    if any(c in new_text for c in DISPUTED):
        return None
    old_lines, new_lines = old_text.split("\n"), new_text.split("\n")
    start, old_stop, new_stop = _changed_lines(old_lines, new_lines)
    if old_stop - start != new_stop - start:
        return None  # lines inserted or removed: every later position moves
    found = _section_of(doc, old_lines, start, old_stop)
    if found is None:
        return None
    section, first, last, begin, end, dash = found
    piece = new_lines[begin:end]
    if any(line.startswith(("---", "...")) for line in piece):
        return None  # a document marker would end the document here
    # blank lines keep every line number: the piece is parsed where it stands
    fragment = "\n" * (begin - 1) + "x:\n" + "\n".join(piece) + "\n"
    try:
        fast = read_fast(fragment, MAX_NODES)
    except TooLarge:
        return None  # a full parse refuses it
    if fast is None or list(fast.data) != ["x"] or not isinstance(fast.data["x"], list):
        return None
    items: list[Any] = fast.data["x"]
    if len(items) != last - first + 1 or fast.values[("x",)] != (begin + 1, dash + 1):
        return None
    spliced = _spliced(doc, section, first, last, items, fast.values, fast.keys)
    return (spliced, Edit(section, first, last)) if spliced is not None else None


def _section_of(doc: Document, lines: list[str], start: int, stop: int) -> tuple[str, int, int, int, int, int] | None:
    """The block-list section whose items hold the changed lines [start, stop),
    with a whole unchanged item line on each side: (section, first item, last
    item, first line, line after the last item, column of the dashes)."""
    tops = _top_lines(doc)
    for section, items in doc.data.items():
        if not isinstance(items, list) or not items or doc.keys[(section,)][1] != 1:
            continue
        item_lines = [doc.values[(section, index)][0] - 1 for index in range(len(items))]
        key_line = doc.keys[(section,)][0] - 1
        after = [line for line in tops if line > key_line]
        section_end = after[0] if after else len(lines)
        if not item_lines[0] < start < section_end or stop > section_end:
            continue
        # the item holding the line before the change, through the one holding
        # the line after it: their first lines and the next item's are unchanged
        first = bisect.bisect_right(item_lines, start - 1) - 1
        last = bisect.bisect_right(item_lines, stop) - 1 if stop < section_end else len(items) - 1
        bounds = [_item_start(doc, lines, section, index) for index in (first, last + 1) if index < len(items)]
        dashes = {bound[1] if bound is not None else -1 for bound in bounds}
        if len(dashes) != 1 or -1 in dashes:
            return None
        end = item_lines[last + 1] if last + 1 < len(items) else section_end
        return section, first, last, item_lines[first], end, dashes.pop()
    return None


def _spliced(
    doc: Document,
    section: str,
    first: int,
    last: int,
    items: list[Any],
    values: dict[DocPath, Position],
    keys: dict[DocPath, Position],
) -> Document | None:
    data = dict(doc.data)
    listed = list(data[section])
    listed[first : last + 1] = items
    data[section] = listed
    new_values = dict(doc.values)
    new_keys = dict(doc.keys)
    for index in range(first, last + 1):
        for path, is_key in _paths(doc.data[section][index], (section, index)):
            del (new_keys if is_key else new_values)[path]
    for path, position in values.items():
        if len(path) >= 2:
            new_values[_moved(path, section, first)] = position
    for path, position in keys.items():
        if len(path) >= 3:
            new_keys[_moved(path, section, first)] = position
    if len(new_values) > MAX_NODES:
        return None  # as `libyaml_reading` declines, so that the reference reports it
    return Document(doc.file, data, new_values, new_keys, libyaml=True)


def _moved(path: DocPath, section: str, first: int) -> DocPath:
    """A path of the fragment `x: [items]` as the path of the same value in the file."""
    index = path[1]
    assert isinstance(index, int)  # below `x`, the fragment's list
    return (section, first + index, *path[2:])


def _paths(node: Any, path: DocPath) -> list[tuple[DocPath, bool]]:
    """The paths a parse records for a value: the value's, and below it each key's
    and each value's (flag set for a key)."""
    found: list[tuple[DocPath, bool]] = [(path, False)]
    if isinstance(node, dict):
        for key, value in node.items():
            found.append(((*path, key), True))
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found
