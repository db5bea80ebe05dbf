"""The ownership ledger: what netlab created or changed, kept as JSON in the state
directory so that later passes remove only what is netlab's and restore what it
changed. Written atomically (temp file, fsync, rename). Used by planning/applying.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict, cast

from netlab.state.errors import ConfigError, Problem

LEDGER_FILE = "ledger.json"
FORMAT_VERSION = 1

# an object's identity within its kind: (netns, name...), as the kinds make it
Key = tuple[Any, ...]


class Entry(TypedDict, total=False):
    """What the ledger remembers of one object, by the kinds that record it
    (most record nothing but the object's being netlab's: `{}`)."""

    original: str | None  # sysctl: the value before netlab first set it
    type: str  # link: the type netlab created it as
    # device: each attribute's value before netlab first changed it
    mtu: int
    mac: str | None
    master: str | None
    state: str
    # managed file (dns, hosts): whether a file was there before netlab's, its
    # permission bits, and whether netlab made its directory
    existed: bool | None
    mode: int | None
    made_dir: bool
    newline_added: bool  # hosts: netlab added the final newline the file lacked
    id: str  # nat: the rule's id, as its comment in the kernel carries it
    nftables: bool  # nat: the rule is in nftables (put there by netlab)
    iptables: bool  # nat: the rule is in the legacy iptables tables


class StoredEntry(TypedDict):
    """One entry as ledger.json keeps it: the key as a JSON list."""

    key: list[Any]
    data: Entry


class LedgerFile(TypedDict):
    """ledger.json: `{"version": 1, "objects": {kind: [entry, ...]}}`."""

    version: int
    objects: dict[str, list[StoredEntry]]


Entries = dict[str, dict[Key, Entry]]


class Ledger:
    """Entries per kind: key tuple -> a small dict of what is worth remembering
    (a sysctl's original value, a link's type)."""

    def __init__(self, path: Path, entries: Entries | None = None) -> None:
        self.path = path
        self._entries: Entries = entries or {}
        self._changed = False  # since loaded or saved
        self._file = _signature(path)  # the file as this ledger last saw it
        # derived, until a change: netns_of_entries, and each kind's entries as JSON
        self._namespaces: set[str | None] | None = None
        self._encoded: dict[str, str] = {}

    @classmethod
    def load(cls, state_dir: Path) -> Ledger:
        path = state_dir / LEDGER_FILE
        """The ledger of a state directory (empty when it has none); ConfigError
        when its file is not one (torn by hand, another program's): netlab
        cannot tell what is its own, so it changes nothing until the operator
        puts a good copy back (or moves the file away, and netlab then owns
        nothing it made before)."""
        try:
            raw: LedgerFile = json.loads(path.read_text(encoding="utf-8"))
            entries: Entries = {
                kind: {tuple(item["key"]): item.get("data", {}) for item in items}
                for kind, items in raw.get("objects", {}).items()
            }
        except FileNotFoundError:
            return cls(path)
        except (ValueError, LookupError, TypeError, AttributeError) as error:
            problem = f"not a ledger netlab can read ({type(error).__name__}: {error}); put a good copy back"
            raise ConfigError([Problem(str(path), 0, 0, "", problem)]) from error
        return cls(path, entries)

    def owns(self, kind: str, key: Key) -> bool:
        return key in self._entries.get(kind, {})

    def get(self, kind: str, key: Key) -> Entry | None:
        """A copy: what is recorded changes through `record` only (each kind's
        encoding is kept until then)."""
        data = self._entries.get(kind, {}).get(key)
        return None if data is None else data.copy()

    def keys(self, kind: str) -> Iterator[Key]:
        return iter(list(self._entries.get(kind, {})))

    def netns_of_entries(self) -> set[str | None]:
        """Every namespace that holds something netlab owns (key[0] of the
        namespaced kinds, and the namespaces themselves)."""
        if self._namespaces is None:
            self._namespaces = {key[0] for items in self._entries.values() for key in items}
        return set(self._namespaces)

    def is_current(self) -> bool:
        """Whether the file is still the one this ledger was loaded from or saved
        to (another netlab process may have written it since): the daemon keeps
        its ledger from pass to pass while it is."""
        return self._file is not None and _signature(self.path) == self._file

    def record(self, kind: str, key: Key, data: Entry | None = None) -> None:
        self._entries.setdefault(kind, {})[key] = data.copy() if data else {}
        self._changed_kind(kind)

    def forget(self, kind: str, key: Key) -> None:
        if self._entries.get(kind, {}).pop(key, None) is not None:
            self._changed_kind(kind)

    def forget_netns(self, netns: str) -> None:
        """Everything inside a removed namespace went with it."""
        for kind, items in self._entries.items():
            if kind == "namespace":
                continue
            for key in [key for key in items if key[0] == netns]:
                del items[key]
                self._changed_kind(kind)

    def snapshot(self) -> Entries:
        """A copy to go back to when a pass is rolled back."""
        return {kind: {key: data.copy() for key, data in items.items()} for kind, items in self._entries.items()}

    def restore(self, snapshot: Entries) -> None:
        self._entries = {kind: {key: data.copy() for key, data in items.items()} for kind, items in snapshot.items()}
        self._changed = True
        self._namespaces = None
        self._encoded.clear()

    def _changed_kind(self, kind: str) -> None:
        self._changed = True
        self._namespaces = None
        self._encoded.pop(kind, None)

    def count(self) -> int:
        return sum(len(items) for items in self._entries.values())

    def to_json(self) -> LedgerFile:
        return cast(LedgerFile, json.loads(self._text()))

    def _text(self) -> str:
        """The file's text. Entries are in the order they were recorded (sorting
        6000 by repr cost as much as encoding them), and each kind's are encoded
        again only when the kind changed: a pass that edits one address saves
        twice, and re-encoding every kind made that the slowest part of it."""
        parts = []
        for kind, items in sorted(self._entries.items()):
            if not items:
                continue
            if kind not in self._encoded:
                entries: list[StoredEntry] = [{"key": list(key), "data": data} for key, data in items.items()]
                self._encoded[kind] = json.dumps(entries, separators=(",", ":"))
            parts.append(f"{json.dumps(kind)}:{self._encoded[kind]}")
        return f'{{"version":{FORMAT_VERSION},"objects":{{{",".join(parts)}}}}}\n'

    def save(self) -> None:
        """Writes the ledger when it changed since it was loaded or saved (or the
        file is gone or was replaced)."""
        if not self._changed and self.is_current():
            return
        # compact: json's C encoder does not indent, and indenting 1000
        # namespaces' entries took four times as long as the rest of the save
        write_atomically(self.path, self._text())
        self._changed = False
        self._file = _signature(self.path)


def _signature(path: Path) -> tuple[int, ...] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory: a
    reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
