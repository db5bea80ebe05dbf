"""The resolver files backend on files in a temporary directory: atomic rename,
the in-place fallback for a file with a mount on it, modes, symlinks."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netlab.controller.backends import resolver_files


def test_a_write_replaces_the_file_by_rename_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "resolv.conf"
    target.write_bytes(b"nameserver 192.0.2.53\n")
    os.chmod(target, 0o644)
    inode = target.stat().st_ino
    resolver_files.write(str(target), b"nameserver 192.0.2.1\n", 0o644)
    assert target.read_bytes() == b"nameserver 192.0.2.1\n"
    assert target.stat().st_ino != inode  # a new file took the name: the rename path
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["resolv.conf"]  # no temp file left


def test_a_file_with_a_mount_on_it_is_rewritten_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "hosts"
    target.write_bytes(b"127.0.0.1 localhost\n" * 10)
    os.chmod(target, 0o644)
    inode = target.stat().st_ino

    def busy(source: str, destination: str) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    # rename(2) onto a mount point fails with EBUSY: a file bound from the same file system
    monkeypatch.setattr(os, "replace", busy)
    resolver_files.write(str(target), b"short\n", 0o644)
    assert target.read_bytes() == b"short\n"  # truncated to the new length
    assert target.stat().st_ino == inode
    assert sorted(os.listdir(tmp_path)) == ["hosts"]


def test_a_file_mounted_from_another_file_system_is_never_renamed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "resolv.conf"
    target.write_bytes(b"old\n")
    real_stat = os.stat

    def stat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        info = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        if str(path) != str(target):
            return info
        fields = list(info)
        fields[2] = info.st_dev + 1  # st_dev: not the directory's
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(resolver_files.tempfile, "mkstemp", lambda **kwargs: pytest.fail("no temp file beside a mount"))
    resolver_files.write(str(target), b"new\n", 0o644)
    assert target.read_bytes() == b"new\n"


def test_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    real = tmp_path / "stub-resolv.conf"
    real.write_bytes(b"nameserver 127.0.0.53\n")
    link = tmp_path / "resolv.conf"
    link.symlink_to(real)
    with pytest.raises(OSError, match="symlink"):
        resolver_files.write(str(link), b"nameserver 192.0.2.1\n", 0o644)
    assert real.read_bytes() == b"nameserver 127.0.0.53\n"
    assert link.is_symlink()


def test_reads_tell_files_symlinks_directories_and_absence_apart(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x\n")
    os.chmod(tmp_path / "file", 0o640)
    (tmp_path / "link").symlink_to("../run/systemd/resolve/stub-resolv.conf")
    (tmp_path / "dir").mkdir()
    assert resolver_files.read(str(tmp_path / "file")) == resolver_files.FileState(
        str(tmp_path / "file"), "file", b"x\n", 0o640
    )
    link = resolver_files.read(str(tmp_path / "link"))
    assert (link.type, link.symlink_to, link.content) == ("symlink", "../run/systemd/resolve/stub-resolv.conf", None)
    assert resolver_files.read(str(tmp_path / "dir")).type == "directory"
    assert not resolver_files.read(str(tmp_path / "none")).exists


def test_a_directory_goes_only_when_empty(tmp_path: Path) -> None:
    directory = tmp_path / "netns" / "red"
    resolver_files.make_directory(str(directory), 0o755)
    (directory / "someone-elses").write_text("")
    resolver_files.remove_directory_if_empty(str(directory))
    assert directory.exists()
    (directory / "someone-elses").unlink()
    resolver_files.remove_directory_if_empty(str(directory))
    assert not directory.exists()
    resolver_files.remove_directory_if_empty(str(directory))  # gone already: fine


def test_a_killed_writers_temp_files_go_with_the_next_write_removal_or_directory(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns-red"
    netns_dir.mkdir()
    target = netns_dir / "resolv.conf"
    target.write_bytes(b"nameserver 192.0.2.53\n")
    # what a write killed between its temp file and its rename leaves
    left = netns_dir / ".resolv.conf.k2j4x9.netlab.tmp"
    left.write_bytes(b"nameserver 192.0")
    (netns_dir / ".hosts.a1b2c3.netlab.tmp").write_bytes(b"127.0.0.1")
    resolver_files.write(str(target), b"nameserver 192.0.2.1\n", 0o644)
    assert sorted(os.listdir(netns_dir)) == [".hosts.a1b2c3.netlab.tmp", "resolv.conf"]  # only that file's own
    left.write_bytes(b"nameserver 192.0")
    resolver_files.remove(str(target))
    assert sorted(os.listdir(netns_dir)) == [".hosts.a1b2c3.netlab.tmp"]
    resolver_files.remove_directory_if_empty(str(netns_dir))  # destroy: netlab made the directory
    assert not netns_dir.exists()


def test_a_directory_with_someone_elses_file_stays_with_it(tmp_path: Path) -> None:
    (tmp_path / ".resolv.conf.k2j4x9.netlab.tmp").write_bytes(b"")
    (tmp_path / ".resolv.conf.swp").write_bytes(b"an editor's")
    resolver_files.remove_directory_if_empty(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".resolv.conf.swp"]


def test_a_temp_file_whose_writer_still_runs_is_not_a_leftover(tmp_path: Path) -> None:
    """Another netlab with its own state directory (a container, a test sandbox
    sharing the host's /etc) may be writing beside this one: its temp file,
    named with its pid, stays; a dead writer's goes."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        running = tmp_path / f".hosts.{other.pid}.x1y2z3.netlab.tmp"
        killed = tmp_path / f".hosts.{dead.pid}.a1b2c3.netlab.tmp"
        running.write_bytes(b"127.0.0.1")
        killed.write_bytes(b"127.0.0.1")
        resolver_files.write(str(tmp_path / "hosts"), b"127.0.0.1 localhost\n", 0o644)
        assert sorted(os.listdir(tmp_path)) == sorted(["hosts", running.name])
    finally:
        other.kill()
        other.wait()
