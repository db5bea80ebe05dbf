"""The generations the state directory keeps, for every writer (`netlab apply`,
`netlab try`, the daemon): the last good one, the files of the last pass that
applied a generation cleanly (what a daemon started with broken files enforces,
and what a `netlab try` that is not confirmed goes back to), and the one held
back, files tried with `netlab try` and rolled back for want of a confirmation
(neither the daemon nor the next `netlab apply` after a crash applies them
again until they change). Used by cli.py, generations.py and trying.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from netlab.state.ledger import write_atomically
from netlab.state.loading import Snapshot

LAST_GOOD_DIR = "last-good"
HELD_BACK_FILE = "held-back.json"


def digest_of(snapshot: Snapshot) -> str:
    """What names a generation: its files' names and bytes, as read."""
    hasher = hashlib.sha256()
    for name, data in snapshot.contents().items():
        hasher.update(Path(name).name.encode() + b"\0")
        hasher.update(b"<unreadable>" if data is None else data)
    return hasher.hexdigest()[:12]


def contents_of(snapshot: Snapshot) -> dict[str, bytes]:
    """The bytes of a snapshot's readable files, by path: what was validated."""
    return {name: data for name, data in snapshot.contents().items() if data is not None}


def keep_files(directory: Path, contents: Mapping[str, bytes]) -> None:
    """Writes `contents` (by path; only the names count) as the whole of
    `directory`, replacing what was there in one rename: a crash leaves the old
    copy or the new one, never a mix."""
    fresh = directory.with_name(f".{directory.name}.new")
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(mode=0o700, parents=True)
    for name, data in contents.items():
        copy = fresh / Path(name).name
        copy.write_bytes(data)
        sync_file(copy)  # a power cut must not leave an empty copy
    sync_dir(fresh)
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    fresh.rename(directory)
    sync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def sync_dir(directory: Path) -> None:
    """Makes a directory's entries durable (after files were made or renamed in it)."""
    sync_file(directory)


def sync_file(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def keep_last_good(state_dir: Path, contents: Mapping[str, bytes]) -> None:
    keep_files(state_dir / LAST_GOOD_DIR, contents)


def forget_last_good(state_dir: Path) -> None:
    """After `netlab destroy`: nothing is in force, so nothing may come back."""
    shutil.rmtree(state_dir / LAST_GOOD_DIR, ignore_errors=True)


class HeldBackJson(TypedDict):
    digest: str  # of the files tried
    tried: str  # when the try began (UTC)
    rolled_back: str  # when it was rolled back (UTC)
    why: str


def hold_back(state_dir: Path, held: HeldBackJson) -> None:
    write_atomically(state_dir / HELD_BACK_FILE, json.dumps(held, indent=2) + "\n")


def held_back(state_dir: Path) -> HeldBackJson | None:
    """The generation held back, when there is one (an unreadable record holds nothing back)."""
    try:
        document = json.loads((state_dir / HELD_BACK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("digest"), str):
        return None
    return HeldBackJson(
        digest=document["digest"],
        tried=str(document.get("tried", "")),
        rolled_back=str(document.get("rolled_back", "")),
        why=str(document.get("why", "")),
    )


def release_held_back(state_dir: Path) -> None:
    """Files applied on purpose (`netlab apply`, a confirmed try, other files): nothing is held back any more."""
    (state_dir / HELD_BACK_FILE).unlink(missing_ok=True)
