"""Kernel events for drift detection: one thread per namespace listening on an
rtnetlink socket for link, address and route changes. The daemon is told that
"something changed in namespace X" and re-plans; the planner decides whether
anything needs repair. Used by the daemon only.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
from collections.abc import Callable

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from netlab.controller.backends import namespaces

GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
RECEIVE_BUFFER = 4 * 1024 * 1024
POLL_SECONDS = 0.5

# Called with (netns, lost): lost is True when the kernel dropped events
# (ENOBUFS): the daemon must then resync everything.
EventHandler = Callable[[str | None, bool], None]


def _is_background(message: object) -> bool:
    """What the kernel does by itself: IPv6 link-local addresses and their routes
    appearing after a link comes up (DAD)."""
    get_attr = getattr(message, "get_attr", None)
    if get_attr is None:
        return False
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


class EventMonitor:
    """Listens in one namespace until stopped or the namespace disappears."""

    def __init__(self, netns: str | None, handler: EventHandler) -> None:
        self.netns = netns
        self._handler = handler
        self._stop = threading.Event()
        self._identity = _identity(netns)
        self._sock = namespaces.run_in(
            netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sock.bind((0, GROUPS))
        self._marshal = MarshalRtnl()
        self._poller = select.poll()
        self._poller.register(self._sock, select.POLLIN)
        self._thread = threading.Thread(target=self._run, name=f"events-{netns or 'host'}", daemon=True)
        self._thread.start()

    def is_current(self) -> bool:
        """Whether the namespace of this name is still the one listened to: after
        `ip netns del NAME` (and a new NAME) the socket keeps the old one alive,
        and hears nothing of the new one."""
        return self.netns is None or (self._identity is not None and _identity(self.netns) == self._identity)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * POLL_SECONDS)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            # poll, not select: with a socket per namespace, descriptors pass 1024
            ready = self._poller.poll(POLL_SECONDS * 1000)
            if not ready:
                continue
            try:
                data = self._sock.recv(65536)
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    self._handler(self.netns, True)
                    continue
                return  # socket closed: stopping
            messages = list(self._marshal.parse(data))
            if any(not _is_background(message) for message in messages):
                self._handler(self.netns, False)
