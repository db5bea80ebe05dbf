"""The daemon's parts together (daemon.py), over a fake kernel and a fake
reconcile, without the loop: a start with broken files enforces the last good
generation, a clean pass keeps the files as the last good one, a reload reads
and applies them again, and a full disk for the ledger, the last good copy or
status.json never ends the process: the daemon says it is failing, keeps the
network as it is, and recovers when the disk does. No root needed."""

from __future__ import annotations

import errno
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netlab.controller import health as health_module
from netlab.controller.backing_off import FIGHT_REPAIRS
from netlab.controller.daemon import Daemon, Settings
from netlab.controller.generations import LAST_GOOD_DIR
from netlab.state import ledger as ledger_module
from tests.unit.daemon_fakes import BLUE, LAB, FakeKernel, FakeReconcile, RecordingLog, address

BROKEN = "version: 1\nnamespaces: [{name: red, colour: 1}]\n"


def full(path: Path, *args: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "netlab.d"
    config.mkdir(mode=0o755)
    (config / "lab.yaml").write_text(LAB)
    return Settings(config_dir=config, state_dir=tmp_path / "state", run_dir=tmp_path / "run")


def daemon_of(settings: Settings) -> Daemon:
    settings.state_dir.mkdir(mode=0o700, exist_ok=True)
    settings.run_dir.mkdir(exist_ok=True)
    return Daemon(settings, RecordingLog(), kernel=FakeKernel(), reconcile_pass=FakeReconcile())


def fake(daemon: Daemon) -> FakeReconcile:
    assert isinstance(daemon.passes.reconcile, FakeReconcile)
    return daemon.passes.reconcile


def log(daemon: Daemon) -> RecordingLog:
    assert isinstance(daemon.log, RecordingLog)
    return daemon.log


def status(settings: Settings) -> dict[str, Any]:
    written: dict[str, Any] = json.loads((settings.run_dir / "status.json").read_text())
    return written


def test_a_clean_start_applies_the_files_and_keeps_them_as_the_last_good_ones(settings: Settings) -> None:
    daemon = daemon_of(settings)
    daemon._start()
    assert [call.desired.files for call in fake(daemon).calls] == [(str(settings.config_dir / "lab.yaml"),)]
    assert (settings.state_dir / LAST_GOOD_DIR / "lab.yaml").read_text() == LAB
    written = status(settings)
    assert written["state"] == "healthy" and written["daemon"] == "running"
    assert written["generation"]["number"] == 1 and written["generation"]["source"] == "config"
    assert written["last_apply"]["reason"] == "start"


def test_a_restart_with_broken_files_enforces_the_last_good_generation_until_they_are_fixed(settings: Settings) -> None:
    daemon_of(settings)._start()
    (settings.config_dir / "lab.yaml").write_text(BROKEN)
    restarted = daemon_of(settings)
    restarted._start()
    (enforced,) = fake(restarted).calls
    assert [ns.name for ns in enforced.desired.namespaces] == ["red"]
    written = status(settings)
    assert written["state"] == "degraded" and written["generation"]["source"] == "last-good"
    assert written["rejected"]["problems"][0]["file"] == str(settings.config_dir / "lab.yaml")
    (settings.config_dir / "lab.yaml").write_text(LAB)
    (settings.config_dir / "blue.yaml").write_text(BLUE)
    restarted._read_files()
    assert status(settings)["state"] == "healthy"
    assert (settings.state_dir / LAST_GOOD_DIR / "blue.yaml").read_text() == BLUE


def test_a_reload_reads_the_files_again_and_tries_every_object(settings: Settings) -> None:
    daemon = daemon_of(settings)
    daemon._start()
    for _ in range(FIGHT_REPAIRS):  # fought over: left alone for a while
        daemon.passes.backoff.repaired([address(1)], time.monotonic())
    assert daemon.passes.backoff.held(time.monotonic())
    daemon.reload_requested = True
    daemon._reload()
    assert not daemon.reload_requested
    assert [call.hold for call in fake(daemon).calls] == [frozenset(), frozenset()]
    written = status(settings)
    assert written["last_reload"]["state"] == "healthy" and written["last_apply"]["reason"] == "reload"
    assert written["generation"]["number"] == 1  # the same files: the same generation


def test_a_full_disk_for_the_ledger_fails_keeps_the_network_and_recovers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = daemon_of(settings)
    daemon._start()
    (settings.config_dir / "blue.yaml").write_text(BLUE)
    monkeypatch.setattr(ledger_module, "write_atomically", full)
    fake(daemon).outcomes.append((address(1),))
    daemon._read_files()
    written = status(settings)
    assert written["state"] == "failing" and "No space left on device" in written["last_error"]["message"]
    assert not (settings.state_dir / LAST_GOOD_DIR / "blue.yaml").exists()  # not applied: not kept
    monkeypatch.undo()
    daemon._pass("resync")  # the next pass: the disk has room again
    assert status(settings)["state"] == "healthy"
    assert (settings.state_dir / LAST_GOOD_DIR / "blue.yaml").read_text() == BLUE


def test_a_full_disk_for_the_last_good_copy_fails_and_recovers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = daemon_of(settings)
    monkeypatch.setattr(Path, "write_bytes", full)
    daemon._start()
    written = status(settings)
    assert written["state"] == "failing"
    assert (
        f"could not keep the last good generation in {settings.state_dir / LAST_GOOD_DIR}"
        in written["last_error"]["message"]
    )
    assert len(fake(daemon).calls) == 1  # nothing undone: the network is as the files say
    monkeypatch.undo()
    daemon._pass("drift")
    assert status(settings)["state"] == "healthy"
    assert (settings.state_dir / LAST_GOOD_DIR / "lab.yaml").read_text() == LAB


def test_a_full_run_directory_says_failing_and_recovers(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUS= says failing and why while status.json cannot be written; the
    network's own health is left as it is, and shown once it is written again."""
    daemon = daemon_of(settings)
    daemon._start()
    before = status(settings)
    monkeypatch.setattr(health_module, "write_atomically", full)
    fake(daemon).outcomes.append((address(1),))
    daemon._pass("drift")  # repaired, but not said in status.json
    line = daemon._publish()
    assert line.startswith("failing; ")
    assert f"last error: could not write {settings.run_dir / 'status.json'}: " in line
    assert daemon.health.state == "healthy" and daemon.health.last_error is None
    assert status(settings) == before  # `netlab status` shows the older one
    daemon._pass("drift")
    assert len(log(daemon).said("could not write status.json: `netlab status` shows an older one")) == 1
    monkeypatch.undo()
    daemon._pass("drift")
    written = status(settings)
    assert written["state"] == "healthy" and written["drift_repairs"] == 1
    assert log(daemon).said("status.json is written again")


def test_the_loop_does_what_the_schedule_says_until_a_stop(settings: Settings) -> None:
    # the real loop, in a thread, woken as the listeners and signal handlers do
    daemon = daemon_of(settings)
    daemon._start()
    loop = threading.Thread(target=daemon._loop)
    loop.start()
    try:
        daemon._on_kernel_event()  # drift heard: a pass DRIFT_QUIET later
        assert _eventually(lambda: len(fake(daemon).calls) == 2)
        assert _eventually(lambda: status(settings)["last_pass"]["reason"] == "drift")
        daemon._on_hup(signal.SIGHUP, None)
        assert _eventually(lambda: daemon.last_reload is not None)
        assert status(settings)["last_pass"]["reason"] == "reload"
    finally:
        daemon._on_term(signal.SIGTERM, None)
        loop.join(5)
    assert not loop.is_alive()
    assert len(fake(daemon).calls) == 3  # start, drift, reload


def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False
