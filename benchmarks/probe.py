"""Times the daemon from inside a sandbox: does one thing (renames an edited file
into the config directory, deletes an address, a veth or a namespace) and waits for
the kernel to show netlab's answer, listening on an rtnetlink socket opened in
the namespace beforehand. Stdlib only, so it judges netlab without its libraries.

usage (inside the sandbox):
  probe.py rename NETNS ADDRESS SOURCE TARGET   rename SOURCE over TARGET; wait for ADDRESS in NETNS
  probe.py del-addr NETNS ADDRESS               delete ADDRESS (a/len) from eth0 in NETNS; wait for it back
  probe.py del-link NETNS LINK                  delete LINK (a veth end) in the root namespace; wait
                                                until NETNS has its address and default route again
  probe.py del-netns NETNS ADDRESS              remove NETNS as `ip netns del` does; wait until a new
                                                NETNS is bound and shows ADDRESS and its default route
Prints one JSON object: seconds from the act to the address coming back and to
the default route coming back (0 when the act did not take the route away; null
when nothing came within the timeout), and the act's wall-clock time (for
matching the daemon's log).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 17, 20, 21, 22, 24, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY, RTA_TABLE = 5, 15
RT_TABLE_MAIN = 254
GATEWAY = "10.0.0.1"
TIMEOUT = 60.0
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns {path}: {os.strerror(code)}")
    finally:
        os.close(fd)


def _attributes(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + 4 <= end:
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _request(message_type: int, body: bytes) -> None:
    """Sends one request in the current namespace and waits for its acknowledgement."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.send(struct.pack("IHHII", 16 + len(body), message_type, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body)
        answer = sock.recv(65536)
        kind = struct.unpack_from("H", answer, 4)[0]
        error = struct.unpack_from("i", answer, 16)[0] if kind == NLMSG_ERROR else 0
        if error:
            raise OSError(-error, os.strerror(-error))


def _rtattr(kind: int, value: bytes) -> bytes:
    data = struct.pack("HH", 4 + len(value), kind) + value
    return data + b"\0" * ((4 - len(data) % 4) % 4)


def _has_default_route() -> bool:
    """Whether the current namespace's main table has the default route via GATEWAY."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        header = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        sock.send(struct.pack("IHHII", 16 + len(header), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + header)
        found = False
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("IH", data, offset)
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return found
                found = found or _is_default_route(data, offset, length)
                offset += (length + 3) & ~3


def _is_default_route(data: bytes, offset: int, length: int) -> bool:
    family, dst_len, _, _, table = struct.unpack_from("BBBBB", data, offset + 16)
    attrs = _attributes(data, offset + 28, offset + length)
    if RTA_TABLE in attrs:
        table = struct.unpack("I", attrs[RTA_TABLE])[0]
    gateway = socket.inet_ntoa(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None
    return family == socket.AF_INET and dst_len == 0 and table == RT_TABLE_MAIN and gateway == GATEWAY


def _addresses() -> set[str]:
    """The IPv4 addresses of the current namespace."""
    found = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        header = struct.pack("BBBBI", socket.AF_INET, 0, 0, 0, 0)
        sock.send(struct.pack("IHHII", 16 + len(header), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + header)
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("IH", data, offset)
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return found
                attrs = _attributes(data, offset + 24, offset + length)
                raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
                if raw:
                    found.add(socket.inet_ntoa(raw))
                offset += (length + 3) & ~3


def _del_netns(netns: str, expected: str, own: int) -> dict[str, object]:
    """Unmounts and unlinks /run/netns/NETNS (what `ip netns del` does), then
    waits for a namespace bound on that name again (a mount: another device
    than /run/netns's) that holds the address and the default route: listening
    in it from the moment it is seen, and looking again at each event."""
    if _libc.setns(own, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the root namespace")
    path = f"/run/netns/{netns}"
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), f"umount {path}")
    os.unlink(path)
    began_wall, began = time.time(), time.perf_counter()
    deadline = began + TIMEOUT
    bound_s = address_s = route_s = None
    while time.perf_counter() < deadline:
        try:
            if os.stat(path).st_dev != os.stat("/run/netns").st_dev:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    else:
        return {"action": "del-netns", "began_wall": began_wall, "bound_s": None, "address_s": None, "route_s": None}
    bound_s = time.perf_counter() - began
    _setns(path)
    listener = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    listener.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE))
    while (address_s is None or route_s is None) and time.perf_counter() < deadline:
        # looked at after the listener is bound: nothing made since is missed
        now = time.perf_counter() - began
        if address_s is None and expected in _addresses():
            address_s = now
        if route_s is None and _has_default_route():
            route_s = now
        if address_s is not None and route_s is not None:
            break
        ready, _, _ = select.select([listener], [], [], max(0.0, deadline - time.perf_counter()))
        if not ready:
            break
        listener.recv(1 << 20)
    return {"action": "del-netns", "began_wall": began_wall, "bound_s": bound_s, "address_s": address_s, "route_s": route_s}


def main() -> None:
    action, netns = sys.argv[1], sys.argv[2]
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    _setns(f"/run/netns/{netns}")
    listener = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    listener.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE))

    if action == "rename":
        expected, source, target = sys.argv[3], sys.argv[4], sys.argv[5]
        began_wall, began = time.time(), time.perf_counter()
        os.rename(source, target)
    elif action == "del-addr":
        expected = sys.argv[3].split("/")[0]
        prefixlen = int(sys.argv[3].split("/")[1])
        raw = socket.inet_aton(expected)
        body = struct.pack("BBBBI", socket.AF_INET, prefixlen, 0, 0, socket.if_nametoindex("eth0"))
        body += _rtattr(IFA_LOCAL, raw) + _rtattr(IFA_ADDRESS, raw)
        _request(RTM_DELADDR, body)
        began_wall, began = time.time(), time.perf_counter()
    elif action == "del-link":
        link = sys.argv[3]
        if _libc.setns(own, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the root namespace")
        body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, socket.if_nametoindex(link), 0, 0)
        _request(RTM_DELLINK, body)
        began_wall, began = time.time(), time.perf_counter()
        expected = None
    elif action == "del-netns":
        print(json.dumps(_del_netns(netns, sys.argv[3].split("/")[0], own)))
        return
    else:
        sys.exit(f"unknown action {action}")

    # The kernel drops the default route without a word when eth0 loses its last
    # IPv4 address, and keeps it when another address of the subnet remains: after
    # a deleted address, wait for the route only if it is gone. (An edit through
    # netlab re-installs it; a deleted veth takes it along.)
    address_s = None
    route_s = 0.0 if action == "del-addr" and _has_default_route() else None
    deadline = began + TIMEOUT
    while (address_s is None or route_s is None) and time.perf_counter() < deadline:
        ready, _, _ = select.select([listener], [], [], max(0.0, deadline - time.perf_counter()))
        if not ready:
            break
        data = listener.recv(1 << 20)
        now = time.perf_counter() - began
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("IH", data, offset)
            if kind == RTM_NEWADDR and address_s is None:
                family = data[offset + 16]
                attrs = _attributes(data, offset + 24, offset + length)
                raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
                if family == socket.AF_INET and raw and (expected is None or socket.inet_ntoa(raw) == expected):
                    address_s = now
                    if route_s is None and action != "del-link" and _has_default_route():
                        route_s = now  # it never went (another address of its subnet stayed)
            elif kind == RTM_NEWROUTE and route_s is None and _is_default_route(data, offset, length):
                route_s = now
            offset += (length + 3) & ~3
    print(json.dumps({"action": action, "began_wall": began_wall, "address_s": address_s, "route_s": route_s}))


if __name__ == "__main__":
    main()
