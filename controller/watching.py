"""Watching the config directory with watchdog (inotify). The parent directory is
watched too, so a git-sync style swap of a symlinked directory is seen, and the
watch follows the link's new target. Every event only sets a flag: the daemon
reads the directory once it has been quiet for the debounce interval.
Used by the daemon, which also watches /run/netns here for namespaces deleted by hand."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch


class _Flagger(FileSystemEventHandler):
    """Sets the flags on a change; `only` limits it to events naming one path
    (in the parent directory, only the config path itself matters: /etc has
    many other files, /etc/hosts among them)."""

    def __init__(self, wake: threading.Event, watcher: ConfigWatcher, only: str | None = None) -> None:
        self._wake = wake
        self._watcher = watcher
        self._only = only

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads, ours included, are not changes
        if self._only is not None:
            paths = {os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")}
            if self._only not in paths:
                return
        self._watcher.last_change = time.monotonic()
        self._watcher.touched.set()
        self._wake.set()


class _EntryCaller(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("created", "deleted", "moved"):
            self._on_change()


class ConfigWatcher:
    def __init__(self, config_dir: Path, wake: threading.Event) -> None:
        self.config_dir = Path(os.path.abspath(config_dir))
        self.touched = threading.Event()
        self.last_change = 0.0  # time.monotonic() of the latest event
        self._handler = _Flagger(wake, self)
        self._observer = Observer()
        self._target: tuple[str, int, int] | None = None  # path, device, inode
        self._target_watch: ObservedWatch | None = None
        self._entry_watches: set[str] = set()
        parent = self.config_dir.parent
        self._observer.schedule(_Flagger(wake, self, str(self.config_dir)), str(parent), recursive=False)
        self.follow()
        self._observer.start()

    def follow(self) -> None:
        """Watches what the config path points at now (call at every generation):
        a symlink swapped to another target, or a directory replaced by another
        one of the same name (whose old watch died with it), gets a new watch."""
        target = os.path.realpath(self.config_dir)
        try:
            info = os.stat(target)
            identity: tuple[str, int, int] | None = (target, info.st_dev, info.st_ino)
        except OSError:
            identity = None
        if identity is not None and identity == self._target:
            return
        if self._target_watch is not None:
            self._observer.unschedule(self._target_watch)
            self._target_watch = None
        self._target = identity
        if identity is not None and os.path.isdir(target):
            self._target_watch = self._observer.schedule(self._handler, target, recursive=False)

    def watch_entries(self, directory: str, on_change: Callable[[], None]) -> bool:
        """Calls `on_change` when an entry of `directory` is created, deleted or
        renamed (the daemon: /run/netns, where `ip netns del` leaves no netlink
        event). False while the directory does not exist; call again later."""
        if directory in self._entry_watches:
            return True
        if not os.path.isdir(directory):
            return False
        self._observer.schedule(_EntryCaller(on_change), directory, recursive=False)
        self._entry_watches.add(directory)
        return True

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=2)
