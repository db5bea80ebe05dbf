"""Watching the config directory with watchdog (inotify). The parent directory is
watched too, so a git-sync style swap of a symlinked directory is seen, and the
watch follows the link's new target. Every event only sets a flag: the daemon
reads the directory once it has been quiet for the debounce interval, and once
no writer holds a file of it open (a modify not yet followed by its close, or a
process found holding one in /proc: see `writers_in`).
Used by the daemon, which also watches /run/netns here for namespaces deleted by
hand, and the resolver files it manages (`FileWatcher`)."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from netlab.state.loading import is_config_file_name


@dataclass(frozen=True, order=True)
class OpenWrite:
    """A config file some process has open for writing: what it holds may be
    half of what it is writing. `pid` is None where only inotify told (a
    modify seen, its close not yet)."""

    path: str
    pid: int | None = None

    def __str__(self) -> str:
        return self.path if self.pid is None else f"{self.path} (process {self.pid})"


@dataclass(frozen=True)
class WriterScan:
    writers: tuple[OpenWrite, ...]
    complete: bool  # False: some processes could not be looked at (no CAP_SYS_PTRACE)


def writers_in(directory: str, proc: str = "/proc") -> WriterScan:
    """The processes holding a desired-state file directly in `directory` open
    for writing (O_WRONLY or O_RDWR in /proc/PID/fdinfo), this one left out.
    It finds writers that opened a file before inotify watched it (before the
    daemon started, or in a directory swapped in); it costs a readlink per open
    descriptor of the host, so the daemon looks only then, and while it waits."""
    prefix = os.path.join(os.path.realpath(directory), "")
    me = str(os.getpid())
    found: list[OpenWrite] = []
    complete = True
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit() and name != me]
    except OSError:
        return WriterScan((), False)
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue  # ended meanwhile (or a kernel thread)
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            name = target[len(prefix) :]
            if not target.startswith(prefix) or "/" in name or not is_config_file_name(name):
                continue  # " (deleted)" ends no config file name either
            if _open_for_writing(f"{proc}/{pid}/fdinfo/{fd}") and _same_file(f"{fd_dir}/{fd}", target):
                found.append(OpenWrite(target, int(pid)))
    return WriterScan(tuple(sorted(set(found))), complete)


def _same_file(descriptor: str, path: str) -> bool:
    """Whether an open descriptor is the file `path` names here: the path a
    descriptor's link shows is as its process sees it, which in another mount
    namespace (a container, a test sandbox) can be another file of the same
    name; and a file replaced by a rename since is not the one to be read."""
    try:
        held, here = os.stat(descriptor), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)


def _open_for_writing(fdinfo: str) -> bool:
    try:
        with open(fdinfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError, IndexError):
        pass  # closed meanwhile, or a format this kernel does not have: not a writer seen
    return False


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
        elif not event.is_directory:
            self._watcher.track_writes(event)
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
        # config files modified and not closed since: being written now (by
        # path, with the time.monotonic() of the latest modify)
        self._writing: dict[str, float] = {}
        self._writing_lock = threading.Lock()
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
        with self._writing_lock:
            self._writing.clear()  # of the directory watched before
        if identity is not None and os.path.isdir(target):
            self._target_watch = self._observer.schedule(self._handler, target, recursive=False)

    def track_writes(self, event: FileSystemEvent) -> None:
        """Keeps the set of config files being written: a modify opens a write,
        its close-write (IN_CLOSE_WRITE) ends it; a rename carries it along, a
        delete ends it. A file renamed into place was closed before: a save by
        rename (editors, git-sync) never waits."""
        src = os.fsdecode(event.src_path)
        with self._writing_lock:
            if event.event_type == "modified" and is_config_file_name(os.path.basename(src)):
                self._writing[src] = time.monotonic()
            elif event.event_type in ("closed", "deleted"):
                self._writing.pop(src, None)
            elif event.event_type == "moved" and src in self._writing:
                since = self._writing.pop(src)
                dest = os.fsdecode(event.dest_path)
                if is_config_file_name(os.path.basename(dest)):
                    self._writing[dest] = since

    def being_written(self) -> tuple[OpenWrite, ...]:
        """Config files of the watched directory modified and not yet closed."""
        with self._writing_lock:
            return tuple(OpenWrite(path) for path in sorted(self._writing))

    def forget_writes(self, paths: set[str], quiet_for: float) -> list[str]:
        """Forgets the writes of `paths` (which a complete look at /proc found
        nobody holding open) that had no event for `quiet_for` seconds: their
        close was lost (an inotify queue overflow), or the file was truncated
        by path, which opens nothing. Returns the paths forgotten."""
        now = time.monotonic()
        with self._writing_lock:
            gone = [path for path in paths if now - self._writing.get(path, now) >= quiet_for]
            for path in gone:
                del self._writing[path]
        return gone

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


_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_IGNORED, _IN_Q_OVERFLOW = 0x400, 0x800, 0x8000, 0x4000
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
# the file itself: written in place, replaced or removed
_FILE_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_DELETE_SELF | _IN_MOVE_SELF
# its directory: the file made, removed or renamed over (reads make no event)
_DIRECTORY_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT = struct.Struct("iIII")


class FileWatcher:
    """Calls `on_change` when one of the watched files changes: written in
    place, replaced by a rename, made or removed. The daemon watches the
    resolver files it manages with it, so their drift is repaired at once.

    Raw inotify, not watchdog: watchdog 7 watches a file through its directory,
    and a directory hears nothing of an in-place write to a file with a bind
    mount on it (a container's /etc/resolv.conf and /etc/hosts; tried here).
    So each file is watched itself, and its directory for a file renamed over
    it or made anew; `watch` is called again after each pass, and watches a
    file that is another inode by now."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._lock = threading.Lock()
        self._files: dict[str, tuple[int, int, int]] = {}  # path: (wd, device, inode)
        self._directories: dict[str, int] = {}  # directory: wd
        self._names: dict[int, set[str]] = {}  # a directory's wd: the names watched in it
        self._stopping = False
        self._thread = threading.Thread(target=self._read, name="netlab-file-watch", daemon=True)
        self._thread.start()

    @property
    def watched(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._files) | frozenset(
                os.path.join(directory, name)
                for directory, wd in self._directories.items()
                for name in self._names.get(wd, ())
            )

    def watch(self, paths: set[str]) -> None:
        """Watches these files (and no others): a file that does not exist yet
        is watched through its directory, once that exists."""
        with self._lock:
            for path in set(self._files) - paths:
                self._unwatch_file(path)
            names: dict[str, set[str]] = {}
            for path in paths:
                directory, name = os.path.split(path)
                names.setdefault(directory, set()).add(name)
                self._watch_file(path)
            for directory in set(self._directories) - set(names):
                self._remove(self._directories.pop(directory))
            for directory, wanted in names.items():
                wd = self._directories.get(directory)
                if wd is None:
                    wd = self._add(directory, _DIRECTORY_MASK)
                    if wd < 0:
                        continue  # not there yet: the next pass tries again
                    self._directories[directory] = wd
                self._names[wd] = wanted

    def stop(self) -> None:
        self._stopping = True
        self._thread.join(timeout=2)
        os.close(self._fd)

    def _watch_file(self, path: str) -> None:
        try:
            info = os.stat(path)
        except OSError:
            self._unwatch_file(path)
            return
        known = self._files.get(path)
        if known is not None and known[1:] == (info.st_dev, info.st_ino):
            return
        self._unwatch_file(path)
        wd = self._add(path, _FILE_MASK)
        if wd >= 0:
            self._files[path] = (wd, info.st_dev, info.st_ino)

    def _unwatch_file(self, path: str) -> None:
        known = self._files.pop(path, None)
        if known is not None and known[0] not in self._directories.values():
            self._remove(known[0])

    def _add(self, path: str, mask: int) -> int:
        return int(self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask))

    def _remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self._fd, wd)  # gone already (the file removed): nothing to do
        self._names.pop(wd, None)

    def _read(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stopping:
            if not poller.poll(200):
                continue
            try:
                data = os.read(self._fd, 64 * 1024)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                return  # closed by stop()
            if self._matters(data):
                self._on_change()

    def _matters(self, data: bytes) -> bool:
        """Whether a batch of events names a watched file (a directory's events
        name every file in it; /etc has many)."""
        found = False
        offset = 0
        with self._lock:
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    found = True  # events were lost: one look at everything
                elif mask & _IN_IGNORED:
                    continue  # a watch ended (its file removed): the directory said so
                elif name:
                    found |= os.fsdecode(name) in self._names.get(wd, ())
                else:
                    found = True  # the file itself
        return found
