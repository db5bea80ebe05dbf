"""Descriptors at scale: netlab's own sockets sit at 1024 and up, below which
select()-using libraries (libnftables) must find room, and the soft limit of
open files is raised to the hard one."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys

from netlab.controller.backends import descriptors


def test_a_socket_kept_high_is_the_same_socket_at_1024_or_more() -> None:
    descriptors.raise_file_limit()
    left, right = socket.socketpair()
    moved = descriptors.kept_high(left)
    try:
        assert moved.fileno() >= descriptors.SELECT_LIMIT
        assert left.fileno() == -1  # the low descriptor is given back
        moved.send(b"ping")
        assert right.recv(4) == b"ping"
        assert moved.family == socket.AF_UNIX and moved.type == socket.SOCK_STREAM
    finally:
        moved.close()
        right.close()


def test_the_soft_limit_of_open_files_is_raised_to_the_hard_one() -> None:
    code = (
        "import resource; from netlab.controller.backends import descriptors; "
        "descriptors.raise_file_limit(); print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = min(1024, hard)
    done = subprocess.run(
        ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [str(hard), str(hard)]
