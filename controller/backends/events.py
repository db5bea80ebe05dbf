"""Kernel events for drift detection: an rtnetlink socket in every managed
namespace, listening for link, address and route changes, all served by one
thread waiting in epoll. The daemon is told "something changed in namespace X"
and re-reads that namespace only; the planner decides whether anything needs
repair. Used by the daemon only.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
)

from netlab.controller.backends import namespaces
from netlab.controller.backends.netlink import reads

GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
RECEIVE_BUFFER = 4 * 1024 * 1024
NLMSG_HEADER_SIZE = 16

# Called with the namespace that changed, or whose events the kernel dropped
# (ENOBUFS): either way, what is known of it is no longer to be trusted.
EventHandler = Callable[[str | None], None]


def changes_what_is_read(data: bytes) -> bool:
    """Whether a datagram of events holds a message of what netlab reads (the
    rule its dumps follow, `netlink.reads`): the rest (the kernel's own IPv6
    link-local addresses and routes after a link comes up, routes that are not
    unicast, per-protocol link notices) changes nothing read, and asks for no
    reading again. The messages' headers alone decide: nothing is decoded."""
    offset = 0
    while offset + NLMSG_HEADER_SIZE <= len(data):
        length, msg_type = struct.unpack_from("IH", data, offset)
        if length < NLMSG_HEADER_SIZE + 8:  # no fixed header that `reads` can look at
            return True  # malformed: whatever it was, read again
        if offset + length > len(data) or reads(msg_type, data, offset):
            return True
        offset += (length + 3) & ~3
    return False


def _identity(netns: str | None) -> tuple[int, int] | None:
    if netns is None:
        return None
    try:
        info = os.stat(namespaces.netns_path(netns))
    except OSError:
        return None
    return info.st_dev, info.st_ino


@dataclass
class _Listener:
    netns: str | None
    sock: socket.socket
    identity: tuple[int, int] | None


def _open_listener() -> socket.socket:
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind((0, GROUPS))
    return sock


class EventHub:
    """Listens in any number of namespaces with one thread. epoll, not select:
    with a socket per namespace, descriptors pass 1024; and one thread, not one
    per namespace: a thousand idle threads cost memory and wake-ups."""

    def __init__(self, handler: EventHandler) -> None:
        self._handler = handler
        self._epoll = select.epoll()
        self._listeners: dict[int, _Listener] = {}
        self._by_netns: dict[str | None, _Listener] = {}
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_read, select.EPOLLIN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kernel-events", daemon=True)
        self._thread.start()

    # -- what is listened to ----------------------------------------------------------

    def listen(self, netns: str | None) -> None:
        """Starts listening in `netns` (None: the host); raises OSError when the
        namespace cannot be entered."""
        if netns in self._by_netns:
            return
        listener = _Listener(netns, namespaces.run_in(netns, _open_listener), _identity(netns))
        with self._lock:
            self._listeners[listener.sock.fileno()] = listener
            self._by_netns[netns] = listener
        self._epoll.register(listener.sock.fileno(), select.EPOLLIN)

    def forget(self, netns: str | None) -> None:
        with self._lock:
            listener = self._by_netns.pop(netns, None)
            if listener is None:
                return
            self._listeners.pop(listener.sock.fileno(), None)
        self._epoll.unregister(listener.sock.fileno())
        listener.sock.close()

    def discard_pending(self, netns: str | None) -> None:
        """Drops what the namespace's socket holds unread: called just before the
        namespace is read, which shows whatever those events said. The kernel
        queues an event as it makes the change, so none is lost that the read
        would not show."""
        listener = self._by_netns.get(netns)
        if listener is None:
            return
        while True:
            try:
                listener.sock.recv(65536)
            except (BlockingIOError, ConnectionError):
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    return  # closed meanwhile

    def listening(self) -> set[str | None]:
        return set(self._by_netns)

    def is_current(self, netns: str | None) -> bool:
        """Whether the namespace of this name is still the one listened to: after
        `ip netns del NAME` (and a new NAME) the socket keeps the old one alive,
        and hears nothing of the new one."""
        listener = self._by_netns.get(netns)
        if listener is None or netns is None:
            return True
        return listener.identity is not None and _identity(netns) == listener.identity

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_write, b"\0")
        self._thread.join(timeout=2.0)
        for netns in list(self._by_netns):
            self.forget(netns)
        self._epoll.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                ready = self._epoll.poll()
            except InterruptedError:
                continue
            except (OSError, ValueError):  # closed under us: stopping
                return
            for fd, _ in ready:
                if fd == self._wake_read:
                    continue
                with self._lock:
                    listener = self._listeners.get(fd)
                if listener is not None:
                    self._drain(listener)

    def _drain(self, listener: _Listener) -> None:
        """Reads everything queued on the socket, then tells the handler once."""
        changed = lost = False
        while True:
            try:
                data = listener.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    lost = True
                    continue
                return  # closed while being read: forgotten
            if not changed:
                changed = changes_what_is_read(data)
        if changed or lost:
            self._handler(listener.netns)
