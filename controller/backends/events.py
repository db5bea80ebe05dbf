"""Kernel events for drift detection: in every managed namespace an rtnetlink
socket, listening for link, address and route changes, and a netfilter socket
listening for nftables changes (NFNLGRP_NFTABLES) to netlab's own tables, all
served by one thread waiting in epoll. The daemon is told "something changed in
namespace X" (and which: RTNL or NFTABLES) and re-reads that only; the planner
decides whether anything needs repair. Used by the daemon only.
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
from typing import Literal

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
)

from netlab.controller.backends import descriptors, namespaces
from netlab.controller.backends.netlink import reads

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 16  # a transaction's end: carries no table
NFTA_TABLE = 1  # the table's name: the first attribute of a table, chain, rule, set or object message
NFGENMSG_SIZE = 4
OWN_TABLE = b"netlab"  # the nftables backend's tables (`nftables.TABLE`)

RTNL: Literal["rtnl"] = "rtnl"
NFTABLES: Literal["nftables"] = "nftables"
Heard = Literal["rtnl", "nftables"]

GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
RECEIVE_BUFFER = 4 * 1024 * 1024
NLMSG_HEADER_SIZE = 16

# Called with the namespace that changed, or whose events the kernel dropped
# (ENOBUFS), and what was heard: either way, what is known of that is no
# longer to be trusted.
EventHandler = Callable[[str | None, Heard], None]


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


def touches_own_tables(data: bytes) -> bool:
    """Whether a datagram of nftables events holds a change to netlab's own
    tables (a table, chain, rule or set message naming one): other tools'
    changes, and the generation messages ending each transaction, ask for
    nothing. Malformed: read again."""
    offset = 0
    while offset + NLMSG_HEADER_SIZE <= len(data):
        length, msg_type = struct.unpack_from("IH", data, offset)
        if length < NLMSG_HEADER_SIZE or offset + length > len(data):
            return True
        if msg_type >> 8 == NFNL_SUBSYS_NFTABLES and msg_type & 0xFF != NFT_MSG_NEWGEN:
            attribute = offset + NLMSG_HEADER_SIZE + NFGENMSG_SIZE
            if attribute + 4 > offset + length:
                return True
            attr_length, attr_type = struct.unpack_from("HH", data, attribute)
            if attr_type & 0x3FFF != NFTA_TABLE or attr_length < 4:
                return True
            name = data[attribute + 4 : attribute + attr_length].rstrip(b"\0")
            if name == OWN_TABLE:
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
    heard: Heard


def _open_socket(protocol: int, groups: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, protocol)
    sock = descriptors.kept_high(sock)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


def _open_listeners() -> dict[Heard, socket.socket]:
    """The namespace's sockets: rtnetlink always; nftables' where the kernel has
    nf_tables (without it, there is nothing of netlab's there to hear)."""
    sockets: dict[Heard, socket.socket] = {RTNL: _open_socket(socket.NETLINK_ROUTE, GROUPS)}
    try:
        sockets[NFTABLES] = _open_socket(NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1))
    except OSError:
        pass
    return sockets


class EventHub:
    """Listens in any number of namespaces with one thread. epoll, not select:
    with a socket per namespace, descriptors pass 1024; and one thread, not one
    per namespace: a thousand idle threads cost memory and wake-ups."""

    def __init__(self, handler: EventHandler) -> None:
        self._handler = handler
        self._epoll = select.epoll()
        self._listeners: dict[int, _Listener] = {}
        self._by_netns: dict[str | None, dict[Heard, _Listener]] = {}
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
        identity = _identity(netns)
        listeners = {
            heard: _Listener(netns, sock, identity, heard)
            for heard, sock in namespaces.run_in(netns, _open_listeners).items()
        }
        with self._lock:
            for listener in listeners.values():
                self._listeners[listener.sock.fileno()] = listener
            self._by_netns[netns] = listeners
        for listener in listeners.values():
            self._epoll.register(listener.sock.fileno(), select.EPOLLIN)

    def forget(self, netns: str | None) -> None:
        with self._lock:
            listeners = self._by_netns.pop(netns, None)
            if listeners is None:
                return
            for listener in listeners.values():
                self._listeners.pop(listener.sock.fileno(), None)
        for listener in listeners.values():
            self._epoll.unregister(listener.sock.fileno())
            listener.sock.close()

    def discard_pending(self, netns: str | None, heard: Heard = RTNL) -> None:
        """Drops what the namespace's socket for `heard` holds unread: called just
        before that is read, which shows whatever those events said. The kernel
        queues an event as it makes the change, so none is lost that the read
        would not show."""
        listener = self._by_netns.get(netns, {}).get(heard)
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
        listener = self._by_netns.get(netns, {}).get(RTNL)
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
                changed = changes_what_is_read(data) if listener.heard == RTNL else touches_own_tables(data)
        if changed or lost:
            self._handler(listener.netns, listener.heard)
