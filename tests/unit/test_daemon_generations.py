"""Reading generations (generations.py): one snapshot of the files per
generation, so what is validated is what is kept and hashed, whatever a writer
does meanwhile; invalid files leave the generation in force; the last good
generation is enforced at a start with broken files, and kept after a clean
pass (a full disk fails the health until it can be written). No root needed."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from netlab.controller import generations as generations_module
from netlab.controller.generations import LAST_GOOD_DIR, Generations, digest_of
from netlab.controller.health import Health
from netlab.state import loading
from netlab.state.loading import take_snapshot
from tests.unit.daemon_fakes import BLUE, LAB, RecordingLog

BROKEN = "version: 1\nnamespaces: [{name: red, colour: 1}]\n"


def reader(dirs: tuple[Path, Path], log: RecordingLog | None = None) -> Generations:
    return Generations(dirs[0], dirs[1], Health(), log or RecordingLog())


def test_each_file_is_read_once_per_generation(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    (dirs[0] / "blue.yaml").write_text(BLUE)
    opened: list[str] = []
    real = loading._read

    def counting(source: Any) -> Any:
        if source.taken is None:
            opened.append(source.path.name)
        return real(source)

    real_bytes = Path.read_bytes

    def counting_bytes(path: Path) -> bytes:
        opened.append(path.name)
        return real_bytes(path)

    monkeypatch.setattr(loading, "_read", counting)
    monkeypatch.setattr(Path, "read_bytes", counting_bytes)
    generations = reader(dirs)
    assert generations.read() == "new"
    assert sorted(opened) == ["blue.yaml", "lab.yaml"]


def test_a_write_after_the_snapshot_is_not_in_the_generation(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the race the second read looked for: what is validated, hashed and kept as
    # the last good copy are the bytes of the snapshot, even when the file changes
    # before it is parsed (that write makes its own event, and a new generation)
    path = dirs[0] / "lab.yaml"
    path.write_text(LAB)

    def snapshot_then_write(config_dir: Path) -> loading.Snapshot:
        snapshot = take_snapshot(config_dir)
        path.write_text(BROKEN)
        return snapshot

    monkeypatch.setattr(generations_module, "take_snapshot", snapshot_then_write)
    generations = reader(dirs)
    assert generations.read() == "new"
    generation = generations.current
    assert generation is not None
    assert [ns.name for ns in generation.desired.namespaces] == ["red"]
    assert generation.contents == {str(path): LAB.encode()}
    monkeypatch.undo()
    (dirs[0] / "lab.yaml").write_text(LAB)
    assert generation.digest == digest_of(take_snapshot(dirs[0]))


def test_unchanged_files_are_no_new_generation_unless_forced(dirs: tuple[Path, Path]) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    generations = reader(dirs)
    assert generations.read() == "new"
    generations.keep_pending = False
    assert generations.read() == "unchanged"
    assert generations.read(force=True) == "new"  # a reload validates them again
    assert generations.current is not None and generations.current.number == 1
    assert generations.keep_pending
    (dirs[0] / "blue.yaml").write_text(BLUE)
    assert generations.read() == "new"
    assert generations.current.number == 2


def test_broken_files_are_rejected_once_and_an_undo_restores_the_generation(dirs: tuple[Path, Path]) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    log = RecordingLog()
    generations = reader(dirs, log)
    generations.read()
    good = generations.current
    (dirs[0] / "lab.yaml").write_text(BROKEN)
    assert generations.read() == "rejected"
    health = generations.health
    assert health.state == "degraded" and health.rejected is not None
    assert health.rejected["problems"][0]["file"] == str(dirs[0] / "lab.yaml")
    assert generations.current is good  # the generation in force stays
    assert generations.read() == "unchanged"  # the same broken files: said already
    assert len(log.said("generation rejected: the last good generation stays in force")) == 1
    (dirs[0] / "lab.yaml").write_text(LAB)
    assert generations.read() == "restored"
    assert health.rejected is None and generations.current is good


def test_a_start_with_broken_files_enforces_the_last_good_generation(dirs: tuple[Path, Path]) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    first = reader(dirs)
    first.read()
    first.keep_if_due()
    assert (dirs[1] / LAST_GOOD_DIR / "lab.yaml").read_text() == LAB
    (dirs[0] / "lab.yaml").write_text(BROKEN)
    restarted = reader(dirs)
    assert restarted.read() == "rejected"
    kept = restarted.current
    assert kept is not None and kept.source == "last-good" and kept.number == 0
    assert [ns.name for ns in kept.desired.namespaces] == ["red"]
    assert restarted.health.state == "degraded"
    assert not restarted.keep_pending  # the last good copy is not what the files say


def test_a_start_with_broken_files_and_nothing_kept_enforces_nothing(dirs: tuple[Path, Path]) -> None:
    (dirs[0] / "lab.yaml").write_text(BROKEN)
    log = RecordingLog()
    generations = reader(dirs, log)
    assert generations.read() == "rejected"
    assert generations.current is None
    assert log.said("no last good generation kept yet: enforcing nothing until the files are fixed")


def test_the_last_good_copy_is_kept_once_after_a_clean_pass(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    generations = reader(dirs)
    generations.read()
    generations.keep_if_due()
    assert not generations.keep_pending
    written: list[Path] = []
    monkeypatch.setattr(Path, "write_bytes", lambda path, data: written.append(path))
    generations.keep_if_due()  # a later pass of the same generation writes nothing
    assert written == []


def test_a_full_disk_for_the_last_good_copy_fails_the_health_until_it_is_written(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    generations = reader(dirs)
    generations.read()
    real = Path.write_bytes

    def full(path: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Path, "write_bytes", full)
    generations.keep_if_due()
    health = generations.health
    assert health.state == "failing" and health.last_error is not None
    assert f"could not keep the last good generation in {dirs[1] / LAST_GOOD_DIR}" in health.last_error["message"]
    assert "No space left on device" in health.last_error["message"]
    assert generations.keep_pending and not (dirs[1] / LAST_GOOD_DIR).exists()
    monkeypatch.setattr(Path, "write_bytes", real)
    generations.keep_if_due()  # the next clean pass
    assert not generations.keep_pending
    assert (dirs[1] / LAST_GOOD_DIR / "lab.yaml").read_text() == LAB


def test_an_unexpected_error_while_loading_rejects_the_generation_naming_the_file(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    (dirs[0] / "blue.yaml").write_text(BLUE + "# make the loader fail\n")
    real = loading._evaluate

    def evaluate(sources: Any, hostname: Any) -> Any:
        for source in sources:
            if b"# make the loader fail" in source.path.read_bytes():
                raise RecursionError("a stand-in for a bug")
        return real(sources, hostname)

    monkeypatch.setattr(loading, "_evaluate", evaluate)
    generations = reader(dirs)
    assert generations.read() == "rejected"
    rejected = generations.health.rejected
    assert rejected is not None
    assert [p["file"] for p in rejected["problems"]] == [str(dirs[0] / "blue.yaml")]
    assert "RecursionError" in rejected["problems"][0]["message"]
