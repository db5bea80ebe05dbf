"""The ledger's file is written only when the ledger changed, and a ledger knows
when another process has written the file since (the daemon keeps its ledger
from pass to pass only while it has not)."""

from __future__ import annotations

import os
from pathlib import Path

from netlab.state.ledger import LEDGER_FILE, Ledger


def _identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


def test_an_unchanged_ledger_is_not_written_again(tmp_path: Path) -> None:
    ledger = Ledger.load(tmp_path)
    ledger.record("namespace", ("red",))
    ledger.save()
    written = _identity(tmp_path / LEDGER_FILE)
    ledger.save()  # nothing changed: the atomic write (a new inode) is skipped
    assert _identity(tmp_path / LEDGER_FILE) == written
    ledger.forget("namespace", ("blue",))  # not there: still nothing changed
    ledger.save()
    assert _identity(tmp_path / LEDGER_FILE) == written
    ledger.forget("namespace", ("red",))
    ledger.save()
    assert _identity(tmp_path / LEDGER_FILE) != written
    assert not Ledger.load(tmp_path).owns("namespace", ("red",))


def test_a_ledger_knows_when_another_process_wrote_its_file(tmp_path: Path) -> None:
    mine = Ledger.load(tmp_path)
    assert not mine.is_current()  # no file yet: read it again next time
    mine.record("namespace", ("red",))
    mine.save()
    assert mine.is_current()
    theirs = Ledger.load(tmp_path)
    assert theirs.is_current()
    theirs.record("namespace", ("blue",))
    theirs.save()
    assert not mine.is_current()
    assert Ledger.load(tmp_path).owns("namespace", ("blue",))


def test_a_removed_file_is_written_again_even_without_changes(tmp_path: Path) -> None:
    ledger = Ledger.load(tmp_path)
    ledger.record("namespace", ("red",))
    ledger.save()
    os.unlink(tmp_path / LEDGER_FILE)
    ledger.save()
    assert Ledger.load(tmp_path).owns("namespace", ("red",))


def test_what_is_saved_is_what_was_recorded_after_any_sequence_of_changes(tmp_path: Path) -> None:
    # each kind's encoding is kept between saves: a stale one would show here
    ledger = Ledger(tmp_path / "ledger.json")
    ledger.record("link", (None, "br0"), {"type": "bridge"})
    ledger.record("address", ("red", "eth0", "10.0.0.2/24"))
    ledger.record("address", ("blue", "eth0", "10.0.0.3/24"))
    ledger.save()
    ledger.forget("address", ("red", "eth0", "10.0.0.2/24"))
    ledger.record("sysctl", (None, "net.ipv4.ip_forward"), {"original": "0"})
    ledger.save()
    ledger.record("link", (None, "br0"), {"type": "bridge", "made": True})
    ledger.forget_netns("blue")
    ledger.save()
    again = Ledger.load(tmp_path)
    assert list(again.keys("address")) == []
    assert again.get("link", (None, "br0")) == {"type": "bridge", "made": True}
    assert again.get("sysctl", (None, "net.ipv4.ip_forward")) == {"original": "0"}
    assert again.to_json() == ledger.to_json()
    before = ledger.snapshot()
    ledger.record("address", ("red", "eth0", "10.0.0.9/24"))
    ledger.save()
    ledger.restore(before)
    ledger.save()
    assert list(Ledger.load(tmp_path).keys("address")) == []
