"""Raw rtnetlink for the benchmark's judges (verify.py and probe.py), stdlib only:
sockets, entering a network namespace, dumps, one acknowledged request, and
reading the messages netlab's topology is judged by (IPv4 addresses, main-table
default routes). Independent of the tools it judges: no pyroute2.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
RTM_DELLINK, RTM_GETLINK = 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_IFNAME, IFLA_MASTER = 3, 10
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY, RTA_TABLE = 4, 5, 15
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
RT_TABLE_MAIN = 254

# the fixed part after the 16-byte netlink header, by message family
IFINFOMSG = "BxHiII"  # family, type, index, flags, change
IFADDRMSG = "BBBBI"  # family, prefixlen, flags, scope, index
RTMSG = "BBBBBBBBI"  # family, dst_len, src_len, tos, table, protocol, scope, type, flags

_libc = ctypes.CDLL(None, use_errno=True)


def open_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)


def listen(groups: int) -> socket.socket:
    """A socket that hears these multicast groups, in the current namespace."""
    listener = open_socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    listener.bind((0, groups))
    return listener


def setns(fd: int, what: str = "a network namespace") -> None:
    """Moves this thread into the network namespace of an open file."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns {what}: {os.strerror(code)}")


def enter(path: str) -> None:
    """Moves this thread into the network namespace bound at a path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        setns(fd, path)
    finally:
        os.close(fd)


def attributes(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + 4 <= end:
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def rtattr(kind: int, value: bytes) -> bytes:
    data = struct.pack("HH", 4 + len(value), kind) + value
    return data + b"\0" * ((4 - len(data) % 4) % 4)


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, message) for every message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        yield kind, data[offset : offset + length]
        offset += (length + 3) & ~3


def dump(sock: socket.socket, kind: int, header: bytes) -> list[bytes]:
    """Every message answering one dump request."""
    sock.send(struct.pack("IHHII", 16 + len(header), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + header)
    found = []
    while True:
        for msg_type, message in messages(sock.recv(1 << 20)):
            if msg_type == NLMSG_DONE:
                return found
            if msg_type == NLMSG_ERROR:
                raise OSError(-struct.unpack_from("i", message, 16)[0], "netlink dump failed")
            found.append(message)


def request(message_type: int, body: bytes) -> None:
    """Sends one request in the current namespace and waits for its acknowledgement."""
    with open_socket() as sock:
        sock.send(struct.pack("IHHII", 16 + len(body), message_type, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body)
        answer = sock.recv(65536)
        kind = struct.unpack_from("H", answer, 4)[0]
        error = struct.unpack_from("i", answer, 16)[0] if kind == NLMSG_ERROR else 0
        if error:
            raise OSError(-error, os.strerror(-error))


def ipv4_address(message: bytes) -> tuple[int, str] | None:
    """(link index, "a.b.c.d/len") of an address message, if it is IPv4."""
    family, prefixlen, _, _, index = struct.unpack_from(IFADDRMSG, message, 16)
    attrs = attributes(message, 16 + struct.calcsize(IFADDRMSG), len(message))
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if family != socket.AF_INET or not raw:
        return None
    return index, f"{socket.inet_ntoa(raw)}/{prefixlen}"


def main_default_route(message: bytes) -> tuple[str | None, int | None] | None:
    """(gateway, output link index) of a route message, if it is an IPv4 default
    route of the main table."""
    family, dst_len, _, _, table = struct.unpack_from("BBBBB", message, 16)
    attrs = attributes(message, 16 + struct.calcsize(RTMSG), len(message))
    if RTA_TABLE in attrs:
        table = struct.unpack("I", attrs[RTA_TABLE])[0]
    if family != socket.AF_INET or dst_len != 0 or table != RT_TABLE_MAIN:
        return None
    gateway = socket.inet_ntoa(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None
    oif = struct.unpack("I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
    return gateway, oif
