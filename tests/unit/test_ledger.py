"""The ledger's file is written only when the ledger changed, and a ledger knows
when another process has written the file since (the daemon keeps its ledger
from pass to pass only while it has not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
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


# a ledger.json as netlab has written it since format version 1 (entries of each kind's shape)
WRITTEN = (
    '{"version":1,"objects":{'
    '"address":[{"key":["red","veth-red","10.0.0.1/24"],"data":{}}],'
    '"device":[{"key":[null,"eth1"],"data":{"mtu":1500,"master":null}}],'
    '"hosts":[{"key":[null],"data":{"existed":true,"newline_added":false}}],'
    '"link":[{"key":[null,"br0"],"data":{"type":"bridge"}}],'
    '"nat":[{"key":[null,"masquerade","10.0.0.0/24","eth0"],"data":{"id":"a1b2c3"}}],'
    '"sysctl":[{"key":[null,"net.ipv4.ip_forward"],"data":{"original":"0"}}]'
    "}}\n"
)


def test_the_file_format_is_kept_byte_for_byte(tmp_path: Path) -> None:
    """State directories written by earlier versions stay readable, and a
    ledger saved again writes the same bytes."""
    (tmp_path / LEDGER_FILE).write_text(WRITTEN)
    ledger = Ledger.load(tmp_path)
    assert ledger.get("device", (None, "eth1")) == {"mtu": 1500, "master": None}
    assert ledger.get("sysctl", (None, "net.ipv4.ip_forward")) == {"original": "0"}
    ledger.record("namespace", ("blue",))
    ledger.forget("namespace", ("blue",))
    os.unlink(tmp_path / LEDGER_FILE)
    ledger.save()
    assert (tmp_path / LEDGER_FILE).read_text() == WRITTEN
    assert ledger.to_json()["objects"]["link"] == [{"key": [None, "br0"], "data": {"type": "bridge"}}]


@pytest.mark.parametrize(
    "text", ['{"version": 1, "obj', '["not", "a", "ledger"]', '{"objects": {"link": [{"data": {}}]}}']
)
def test_a_file_that_is_not_a_ledger_is_a_problem_naming_it(tmp_path: Path, text: str) -> None:
    (tmp_path / LEDGER_FILE).write_text(text)
    with pytest.raises(ConfigError) as raised:
        Ledger.load(tmp_path)
    (problem,) = raised.value.problems
    assert problem.file == str(tmp_path / LEDGER_FILE)
    assert problem.message.startswith("not a ledger netlab can read (")
