"""File descriptors at scale. netlab keeps a netlink socket per namespace (and
the daemon an event listener per namespace too): 5000 namespaces are some
10000 descriptors, where a service starts with a soft limit of 1024
(systemd's default, `LimitNOFILE=1024:524288`). And libnftables waits on its
netlink socket with select(), which cannot take a descriptor of 1024 or more:
glibc ends the process ("bit out of range 0 - FD_SETSIZE on fd_set").

So netlab raises its soft limit to the hard one, as systemd asks of a program
that needs many files, and keeps its own long-lived sockets at 1024 and up,
leaving the descriptors below to the libraries it calls. Used by the netlink
connections and the event listeners."""

from __future__ import annotations

import fcntl
import resource
import socket

SELECT_LIMIT = 1024  # FD_SETSIZE: select() takes descriptors below it only

_raised = False


def raise_file_limit() -> None:
    """The soft limit of open files up to the hard one (once per process)."""
    global _raised
    if _raised:
        return
    _raised = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass  # kept as it is: a few hundred namespaces still fit


def kept_high(sock: socket.socket) -> socket.socket:
    """The socket, moved to a descriptor of SELECT_LIMIT or more where the
    limit leaves room (else it stays where it is; so does what is not a
    socket of the standard library: a test's scripted one)."""
    if not isinstance(sock, socket.socket):
        return sock
    try:
        fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, SELECT_LIMIT)
    except OSError:
        return sock
    moved = type(sock)(fileno=fd)  # family, type and protocol read from the descriptor
    moved.settimeout(sock.gettimeout())
    sock.close()
    return moved
