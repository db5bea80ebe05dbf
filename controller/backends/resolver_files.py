"""The resolver files backend: reads and writes /etc/resolv.conf, /etc/hosts and
their per-namespace copies under /etc/netns/NAME, and the copies of original
files netlab keeps in its state directory. Called by the dns and hosts kinds,
through the Kernel.

Writes never follow a symlink, keep the file's mode, and are atomic (a temp
file in the same directory, fsync, rename) except where a bind mount sits on
the file (see `write`). A temp file left by a writer that was killed is
removed by the next write or removal of that file, and before netlab removes
a directory it made.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Literal

FileType = Literal["absent", "file", "symlink", "directory", "other"]

TEMP_SUFFIX = ".netlab.tmp"


@dataclass(frozen=True)
class FileState:
    path: str
    type: FileType
    content: bytes | None = None  # a regular file's bytes
    mode: int | None = None  # permission bits of a regular file
    symlink_to: str | None = None

    @property
    def exists(self) -> bool:
        return self.type != "absent"


def signature(path: str) -> tuple[int, ...] | None:
    """What changes whenever the file does (None: there is no file): compared
    to tell whether a file read earlier must be read again."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read(path: str) -> FileState:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return FileState(path, "absent")
    if stat.S_ISLNK(info.st_mode):
        return FileState(path, "symlink", symlink_to=os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return FileState(path, "directory")
    if not stat.S_ISREG(info.st_mode):
        return FileState(path, "other")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return FileState(path, "file", handle.read(), stat.S_IMODE(info.st_mode))


def write(path: str, data: bytes, mode: int) -> None:
    """Replaces the file's content: temp file in the same directory, fsync,
    rename, fsync the directory; a reader sees the old file or the new one.

    A file with a bind mount on it (a container's /etc/resolv.conf and
    /etc/hosts, a test sandbox) cannot be renamed over: rename(2) fails with
    EBUSY on a mount point. Such a file is rewritten in place instead, which is
    not atomic (a reader may see a short file for a moment) but is the only way
    to change it, and leaves no temp file beside the mount. A symlink is never
    replaced or written through."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, f"{path} is a symlink: netlab does not write through it")
    if _mounted_from_elsewhere(path):
        _rewrite_in_place(path, data, mode)
        return
    directory, name = os.path.split(path)
    _remove_leftover_temps(directory, name)
    # the writer's pid in the name: a leftover is told from a write under way
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        try:
            os.replace(temp, path)
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise
            # a file bound from the same file system: a mount point all the same
            os.unlink(temp)
            _rewrite_in_place(path, data, mode)
            return
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _rewrite_in_place(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    directory, name = os.path.split(path)
    _remove_leftover_temps(directory, name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _fsync_directory(directory)


def make_directory(path: str, mode: int) -> None:
    os.makedirs(path, mode=mode, exist_ok=True)


def remove_directory_if_empty(path: str) -> None:
    """Removes a directory netlab made once nothing is left in it; files someone
    else put there keep it; netlab's own leftover temp files do not."""
    _remove_leftover_temps(path, "*")
    try:
        os.rmdir(path)
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
            raise


def _remove_leftover_temps(directory: str, name: str) -> None:
    """Removes the temp files of an earlier write of `name` (a glob) that never
    reached its rename: the writer was killed. netlab's lock keeps its own
    writes apart, but not those of a netlab with another state directory
    sharing this directory (a container or a test sandbox with a private
    /var/lib/netlab and the host's /etc): a temp file whose writer still runs
    is left alone."""
    try:
        entries = os.listdir(directory or ".")
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in fnmatch.filter(entries, f".{name}.*{TEMP_SUFFIX}"):
        if _writer_alive(entry):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except FileNotFoundError:
            continue


def _writer_alive(temp_name: str) -> bool:
    """Whether the process named in a temp file's name (`.NAME.PID.XXXX` plus
    the suffix) is running; a name without a pid is an older netlab's leftover."""
    parts = temp_name[: -len(TEMP_SUFFIX)].split(".")
    if len(parts) < 4 or not parts[-2].isdigit() or int(parts[-2]) == os.getpid():
        return False
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mounted_from_elsewhere(path: str) -> bool:
    """Whether a file from another file system is mounted on `path` (its device
    is not its directory's): a stat each, where reading /proc/self/mountinfo, a
    line per mount and so per namespace, made writing N files cost N². A file
    bound from the same file system is caught when renaming over it fails."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path) or ".").st_dev
    except OSError:
        return False


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
