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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from netlab.controller.backends import namespaces
from netlab.controller.backends.netlink import RTN_UNICAST, LinkMessage

GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
RECEIVE_BUFFER = 4 * 1024 * 1024
AF_BRIDGE = 7

# Called with the namespace that changed, or whose events the kernel dropped
# (ENOBUFS): either way, what is known of it is no longer to be trusted.
EventHandler = Callable[[str | None], None]


def _is_background(message: Any) -> bool:
    """What netlab does not read, so that it need not read anything again: the
    kernel's own IPv6 link-local addresses and routes (they appear after a link
    comes up, DAD), routes that are not unicast (the kernel keeps them, of
    type local and broadcast, with each address, in the local table), and
    per-protocol link notices (AF_INET6 address-configuration state, AF_BRIDGE
    port state), which come beside the plain link message when a link itself
    changes."""
    get_attr = getattr(message, "get_attr", None)
    if get_attr is None:
        return False
    kind = message["header"]["type"]
    if kind in (RTM_NEWLINK, RTM_DELLINK):
        return message["family"] in (socket.AF_INET6, AF_BRIDGE)
    if kind in (RTM_NEWROUTE, RTM_DELROUTE):
        if message["type"] != RTN_UNICAST:
            return True
    for name in ("IFA_ADDRESS", "RTA_DST"):
        value = get_attr(name)
        if isinstance(value, str) and value.startswith("fe80:"):
            return True
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
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
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
        self._marshal = MarshalRtnl()
        self._marshal.msg_map[RTM_NEWLINK] = self._marshal.msg_map[RTM_DELLINK] = LinkMessage
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
                changed = any(not _is_background(message) for message in self._marshal.parse(data))
        if changed or lost:
            self._handler(listener.netns)
