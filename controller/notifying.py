"""Talking to systemd (Type=notify): a datagram to $NOTIFY_SOCKET, nothing when
not run by systemd. No maintained small package does this; it is ten lines.
Used by the daemon."""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str) -> bool:
    """Sends `READY=1`, `STATUS=...` and the like; False when there is no systemd
    or it does not listen (like sd_notify: a socket gone while systemd re-executes
    must not take the daemon down with it)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, when systemd asks for pings from this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


def reloading() -> None:
    monotonic_usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)
    notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")
