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
import re
import select
import socket
import struct
import sys
import time

import rtnetlink as nl

# the gateway of a namespace's bridge, 10.K.0.1 (topology.gateway)
GATEWAY = re.compile(r"^10\.\d+\.0\.1$")
TIMEOUT = 60.0
MNT_DETACH = 2
GROUPS = nl.RTMGRP_LINK | nl.RTMGRP_IPV4_IFADDR | nl.RTMGRP_IPV4_ROUTE

_libc = ctypes.CDLL(None, use_errno=True)


def _is_default_route(message: bytes) -> bool:
    route = nl.main_default_route(message)
    return route is not None and route[0] is not None and GATEWAY.match(route[0]) is not None


def _has_default_route() -> bool:
    """Whether the current namespace's main table has the default route via its bridge's gateway."""
    with nl.open_socket() as sock:
        header = struct.pack(nl.RTMSG, socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        return any(_is_default_route(message) for message in nl.dump(sock, nl.RTM_GETROUTE, header))


def _addresses() -> set[str]:
    """The IPv4 addresses of the current namespace."""
    with nl.open_socket() as sock:
        header = struct.pack(nl.IFADDRMSG, socket.AF_INET, 0, 0, 0, 0)
        found = (nl.ipv4_address(message) for message in nl.dump(sock, nl.RTM_GETADDR, header))
        return {address.split("/")[0] for _, address in filter(None, found)}


def _del_netns(netns: str, expected: str, own: int) -> dict[str, object]:
    """Unmounts and unlinks /run/netns/NETNS (what `ip netns del` does), then
    waits for a namespace bound on that name again (a mount: another device
    than /run/netns's) that holds the address and the default route: listening
    in it from the moment it is seen, and looking again at each event."""
    nl.setns(own, "back to the root namespace")
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
    nl.enter(path)
    listener = nl.listen(GROUPS)
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
    return {
        "action": "del-netns",
        "began_wall": began_wall,
        "bound_s": bound_s,
        "address_s": address_s,
        "route_s": route_s,
    }


def main() -> None:
    action, netns = sys.argv[1], sys.argv[2]
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    nl.enter(f"/run/netns/{netns}")
    listener = nl.listen(GROUPS)

    if action == "rename":
        expected, source, target = sys.argv[3], sys.argv[4], sys.argv[5]
        began_wall, began = time.time(), time.perf_counter()
        os.rename(source, target)
    elif action == "del-addr":
        expected = sys.argv[3].split("/")[0]
        prefixlen = int(sys.argv[3].split("/")[1])
        raw = socket.inet_aton(expected)
        body = struct.pack(nl.IFADDRMSG, socket.AF_INET, prefixlen, 0, 0, socket.if_nametoindex("eth0"))
        body += nl.rtattr(nl.IFA_LOCAL, raw) + nl.rtattr(nl.IFA_ADDRESS, raw)
        nl.request(nl.RTM_DELADDR, body)
        began_wall, began = time.time(), time.perf_counter()
    elif action == "del-link":
        link = sys.argv[3]
        nl.setns(own, "back to the root namespace")
        body = struct.pack(nl.IFINFOMSG, socket.AF_UNSPEC, 0, socket.if_nametoindex(link), 0, 0)
        nl.request(nl.RTM_DELLINK, body)
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
        for kind, message in nl.messages(data):
            if kind == nl.RTM_NEWADDR and address_s is None:
                found = nl.ipv4_address(message)
                if found and (expected is None or found[1].split("/")[0] == expected):
                    address_s = now
                    if route_s is None and action != "del-link" and _has_default_route():
                        route_s = now  # it never went (another address of its subnet stayed)
            elif kind == nl.RTM_NEWROUTE and route_s is None and _is_default_route(message):
                route_s = now
    print(json.dumps({"action": action, "began_wall": began_wall, "address_s": address_s, "route_s": route_s}))


if __name__ == "__main__":
    main()
