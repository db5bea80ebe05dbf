"""The daemon's look for writers that hold a config file open (watching.py):
what inotify tells (a modify until its close-write), and what /proc tells
(processes holding a file open for writing). No root needed: the writers are
this user's own processes, and the events are fed to the watcher by hand."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileClosedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent

from netlab.controller.watching import ConfigWatcher, OpenWrite, writers_in

HOLDER = """
import os, sys
fds = [os.open(path, int(flags)) for path, flags in zip(sys.argv[1::2], sys.argv[2::2])]
print("open", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder() -> Iterator[object]:
    """Starts a process holding files open with the given flags until the test ends."""
    started: list[subprocess.Popen[str]] = []

    def hold(*opens: tuple[Path, int]) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", HOLDER]
        for path, flags in opens:
            argv += [str(path), str(flags)]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "open"
        return process

    yield hold
    for process in started:
        process.communicate(timeout=10)


def test_proc_names_the_process_writing_a_config_file(tmp_path: Path, holder: object) -> None:
    for name in ("lab.yaml", "read.yaml", "rdwr.json", "notes.txt", ".lab.yaml.swp", "lab.yaml~"):
        (tmp_path / name).write_text("version: 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.yaml").write_text("version: 1\n")
    writer = holder(  # type: ignore[operator]
        (tmp_path / "lab.yaml", os.O_WRONLY | os.O_APPEND),
        (tmp_path / "read.yaml", os.O_RDONLY),
        (tmp_path / "rdwr.json", os.O_RDWR),
        (tmp_path / "notes.txt", os.O_WRONLY),
        (tmp_path / ".lab.yaml.swp", os.O_WRONLY),
        (tmp_path / "lab.yaml~", os.O_WRONLY),
        (tmp_path / "sub" / "deep.yaml", os.O_WRONLY),
    )
    scan = writers_in(str(tmp_path))
    assert scan.writers == (
        OpenWrite(str(tmp_path / "lab.yaml"), writer.pid),
        OpenWrite(str(tmp_path / "rdwr.json"), writer.pid),
    )


def test_proc_finds_no_writer_once_the_file_is_closed(tmp_path: Path, holder: object) -> None:
    (tmp_path / "lab.yaml").write_text("version: 1\n")
    writer = holder((tmp_path / "lab.yaml", os.O_WRONLY))  # type: ignore[operator]
    assert writers_in(str(tmp_path)).writers
    writer.communicate(timeout=10)
    assert writers_in(str(tmp_path)).writers == ()


def test_proc_sees_through_a_symlinked_directory(tmp_path: Path, holder: object) -> None:
    # git-sync: the config path is a link to the revision's directory
    (tmp_path / "rev1").mkdir()
    (tmp_path / "rev1" / "lab.yaml").write_text("version: 1\n")
    (tmp_path / "current").symlink_to("rev1")
    writer = holder((tmp_path / "current" / "lab.yaml", os.O_WRONLY))  # type: ignore[operator]
    assert writers_in(str(tmp_path / "current")).writers == (
        OpenWrite(str(tmp_path / "rev1" / "lab.yaml"), writer.pid),
    )


def test_this_process_is_not_a_writer(tmp_path: Path) -> None:
    with open(tmp_path / "lab.yaml", "w"):
        assert writers_in(str(tmp_path)).writers == ()


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[ConfigWatcher]:
    (tmp_path / "netlab.d").mkdir()
    watching = ConfigWatcher(tmp_path / "netlab.d", threading.Event())
    yield watching
    watching.stop()


def test_a_modify_is_a_write_until_its_close(watcher: ConfigWatcher) -> None:
    path = f"{watcher.config_dir}/lab.yaml"
    watcher.track_writes(FileModifiedEvent(path))
    assert watcher.being_written() == (OpenWrite(path),)
    watcher.track_writes(FileModifiedEvent(path))
    watcher.track_writes(FileClosedEvent(path))
    assert watcher.being_written() == ()


def test_a_file_renamed_while_written_is_still_written_and_a_delete_ends_it(watcher: ConfigWatcher) -> None:
    old, new = f"{watcher.config_dir}/lab.yaml", f"{watcher.config_dir}/lab2.yaml"
    watcher.track_writes(FileModifiedEvent(old))
    watcher.track_writes(FileMovedEvent(old, new))
    assert watcher.being_written() == (OpenWrite(new),)
    watcher.track_writes(FileDeletedEvent(new))
    assert watcher.being_written() == ()


def test_a_save_by_rename_leaves_nothing_being_written(watcher: ConfigWatcher) -> None:
    # sed -i, editors and the sandbox's write_config: a temp file, closed, renamed over
    temp, path = f"{watcher.config_dir}/.lab.yaml.tmp", f"{watcher.config_dir}/lab.yaml"
    watcher.track_writes(FileModifiedEvent(temp))
    watcher.track_writes(FileClosedEvent(temp))
    watcher.track_writes(FileMovedEvent(temp, path))
    assert watcher.being_written() == ()
    # a temp file that is no desired-state file is not waited for even while open
    watcher.track_writes(FileModifiedEvent(temp))
    watcher.track_writes(FileMovedEvent(temp, path))
    assert watcher.being_written() == ()


def test_a_lost_close_is_forgotten_only_after_a_quiet_while(watcher: ConfigWatcher) -> None:
    path = f"{watcher.config_dir}/lab.yaml"
    watcher.track_writes(FileModifiedEvent(path))
    assert watcher.forget_writes({path}, quiet_for=60) == []
    assert watcher.being_written() == (OpenWrite(path),)
    time.sleep(0.01)
    assert watcher.forget_writes({path}, quiet_for=0.005) == [path]
    assert watcher.being_written() == ()


def test_real_events_from_inotify_track_an_in_place_write(watcher: ConfigWatcher) -> None:
    path = watcher.config_dir / "lab.yaml"
    with open(path, "w") as handle:
        handle.write("version: 1\n")
        handle.flush()
        assert _eventually(lambda: watcher.being_written() == (OpenWrite(str(path)),))
    assert _eventually(lambda: watcher.being_written() == ())


def _eventually(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False
