"""Connectivity checks: what the files say the network must do, tried from
inside each check's namespace with sockets (never `ping` or a shell). A ping is
an ICMP echo over a raw socket; a tcp check a TCP connect; a resolve check
looks the name up as `ip netns exec` would: the namespace's own hosts file and
resolv.conf (/etc/netns/NAME/..., where they exist; else the host's), hosts
first, then each nameserver over UDP (nsswitch's common `files dns`).

A socket belongs to the namespace it is made in: each is made in the namespace
thread (`namespaces.run_in`, a fraction of a millisecond) and used from a
worker of its own, so that the checks wait for their answers side by side and
the whole run takes about the longest timeout. Used by `netlab check`, by
`apply` and by the daemon (`gate`: a pass after which a check fails that passed
before it is rolled back)."""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from netlab.controller.backends import namespaces
from netlab.controller.kinds.managed_files import etc_path
from netlab.state.model import Check, netns_label

PING_INTERVAL = 0.2  # seconds between echo requests while a ping waits
MAX_WORKERS = 64


@dataclass(frozen=True)
class Outcome:
    """What one check found: whether it passed, and in words what happened."""

    check: Check
    passed: bool
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        check = self.check
        return {
            "check": str(check),
            "from": netns_label(check.netns),
            "kind": check.kind,
            "target": check.target,
            "expect": check.expect,
            **({"address": check.address} if check.address is not None else {}),
            "passed": self.passed,
            "detail": self.detail,
            "ms": round(self.seconds * 1000, 1),
            "declared": str(check.origin),
        }

    def __str__(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}  {self.check}: {self.detail}  ({self.check.origin})"


def run_checks(checks: Sequence[Check]) -> list[Outcome]:
    """Every check, side by side; the outcomes in the order of the checks."""
    if not checks:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(checks)), thread_name_prefix="check") as pool:
        return list(pool.map(run_check, checks))


def run_check(check: Check) -> Outcome:
    began = time.monotonic()
    try:
        if check.netns is not None and not os.path.exists(namespaces.netns_path(check.netns)):
            answered, detail = None, f"namespace {check.netns} does not exist"
        else:
            answered, detail = _PROBES[check.kind](check)
    except OSError as error:
        # no socket in the namespace (it went), or the host refuses raw sockets
        answered, detail = None, f"could not run: {error.strerror or error}"
    except Exception as error:  # noqa: BLE001 - a bug of ours fails the check, never the daemon
        answered, detail = None, f"could not run (a bug in netlab: {type(error).__name__}: {error})"
    seconds = time.monotonic() - began
    if answered is None:
        return Outcome(check, False, detail, seconds)
    passed = answered if check.expect == "reachable" else not answered
    return Outcome(check, passed, detail, seconds)


def failing(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [outcome for outcome in outcomes if not outcome.passed]


def newly_failing(before: Iterable[Outcome], after: Iterable[Outcome]) -> list[Outcome]:
    """The checks that passed before and fail after (a check failing already,
    or new, does not count: kubernetes-nmstate's rule for its probes)."""
    passed_before = {outcome.check.key for outcome in before if outcome.passed}
    return [outcome for outcome in after if not outcome.passed and outcome.check.key in passed_before]


# -- the probes: (answered, what happened); answered None when it could not run ------

Probe = Callable[[Check], tuple[bool | None, str]]


def _socket_in(netns: str | None, family: int, kind: int, protocol: int = 0) -> socket.socket:
    return namespaces.run_in(netns, lambda: socket.socket(family, kind, protocol))


def _ping(check: Check) -> tuple[bool | None, str]:
    address = ipaddress.ip_address(check.target)
    v6 = address.version == 6
    family, protocol = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    ident = random.randrange(1, 0xFFFF)
    began = time.monotonic()
    deadline = began + check.timeout
    with _socket_in(check.netns, family, socket.SOCK_RAW, protocol) as sock:
        sock.setblocking(False)
        sequence, next_send = 0, began
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False, f"no answer in {check.timeout:g} s"
            if now >= next_send:
                sequence += 1
                try:
                    sock.sendto(_echo_request(v6, ident, sequence), (str(address), 0))
                except OSError as error:
                    if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EPERM):
                        return False, f"cannot send: {os.strerror(error.errno)}"
                    raise
                next_send = now + PING_INTERVAL
            if not _readable(sock, min(deadline, next_send) - now):
                continue
            packet, sender = sock.recvfrom(65535)
            answer = _echo_answer(v6, packet, ident)
            if answer == "reply" and ipaddress.ip_address(sender[0].split("%")[0]) == address:
                return True, f"answered in {(time.monotonic() - began) * 1000:.1f} ms"
            if answer is not None and answer != "reply":
                return False, answer


def _readable(sock: socket.socket, seconds: float) -> bool:
    """poll(), not select(): a daemon watching hundreds of namespaces holds
    descriptors past 1024, which select() refuses."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0, int(seconds * 1000))))


def _echo_request(v6: bool, ident: int, sequence: int) -> bytes:
    payload = b"netlab-check".ljust(32, b".")
    header = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, sequence)
    if v6:
        return header + payload  # the kernel fills in an ICMPv6 checksum
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, checksum, ident, sequence) + payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


_UNREACHABLE_V4 = {0: "network unreachable", 1: "host unreachable", 3: "port unreachable", 13: "prohibited"}
_UNREACHABLE_V6 = {0: "no route", 1: "prohibited", 3: "address unreachable", 4: "port unreachable"}


def _echo_answer(v6: bool, packet: bytes, ident: int) -> str | None:
    """ "reply" for our echo's reply, words for an error about our echo, None
    for anything else a raw socket sees (other pings, other ICMP)."""
    if not v6:
        if not packet:
            return None
        packet = packet[(packet[0] & 0x0F) * 4 :]  # a raw IPv4 socket hands the IP header too
    if len(packet) < 8:
        return None
    kind, code, _, packet_ident = struct.unpack("!BBHH", packet[:6])
    if kind == (129 if v6 else 0):
        return "reply" if packet_ident == ident else None
    if kind == (1 if v6 else 3):
        # the error quotes our packet: its IP header, then our echo's header
        quoted = packet[8:]
        if not v6 and quoted:
            quoted = quoted[(quoted[0] & 0x0F) * 4 :]
        elif v6:
            quoted = quoted[40:]
        if len(quoted) >= 6 and struct.unpack("!H", quoted[4:6])[0] == ident:
            words = (_UNREACHABLE_V6 if v6 else _UNREACHABLE_V4).get(code, f"unreachable (code {code})")
            return f"{words}, says the network"
    return None


def _tcp(check: Check) -> tuple[bool | None, str]:
    host, _, port = check.target.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    began = time.monotonic()
    with _socket_in(check.netns, family, socket.SOCK_STREAM) as sock:
        sock.settimeout(check.timeout)
        try:
            sock.connect((host, int(port)))
        except TimeoutError:
            return False, f"no answer in {check.timeout:g} s"
        except OSError as error:
            return False, os.strerror(error.errno) if error.errno else str(error)
    return True, f"connected in {(time.monotonic() - began) * 1000:.1f} ms"


# -- resolve --------------------------------------------------------------------------


def _resolve(check: Check) -> tuple[bool | None, str]:
    name = check.target.rstrip(".").lower()
    deadline = time.monotonic() + check.timeout
    found = _in_hosts(_namespace_file(check.netns, "hosts"), name)
    where = "the hosts file"
    if not found:
        found, where = _by_dns(check, name, deadline)
    if not found:
        return False, f"does not resolve ({where})"
    listed = ", ".join(sorted(found))
    if check.address is not None and check.address not in found:
        return False, f"resolves to {listed}, not {check.address} ({where})"
    return True, f"resolves to {listed} ({where})"


def _namespace_file(netns: str | None, name: str) -> str:
    """The file as `ip netns exec` shows it: the namespace's own where it exists."""
    own = etc_path(netns, name)
    return own if os.path.exists(own) else etc_path(None, name)


def _read_lines(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return [line.split("#", 1)[0].split() for line in file]
    except OSError:
        return []


def _in_hosts(path: str, name: str) -> set[str]:
    found: set[str] = set()
    for fields in _read_lines(path):
        if len(fields) >= 2 and name in (field.lower() for field in fields[1:]):
            try:
                found.add(str(ipaddress.ip_address(fields[0].split("%")[0])))
            except ValueError:
                continue
    return found


def _by_dns(check: Check, name: str, deadline: float) -> tuple[set[str], str]:
    nameservers: list[str] = []
    search: list[str] = []
    ndots = 1
    for fields in _read_lines(_namespace_file(check.netns, "resolv.conf")):
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            for option in fields[1:]:
                if option.startswith("ndots:") and option[6:].isdigit():
                    ndots = int(option[6:])
    if not nameservers:
        return set(), "not in the hosts file, and no nameserver in resolv.conf"
    suffixed = [f"{name}.{domain.strip('.')}" for domain in search]
    candidates = [name, *suffixed] if name.count(".") >= ndots else [*suffixed, name]
    for candidate in candidates:
        for index, server in enumerate(nameservers):
            # a silent server gets its share of what is left, not all of it
            share = (deadline - time.monotonic()) / (len(nameservers) - index)
            found = _query(check.netns, server, candidate, time.monotonic() + share)
            if found:
                return found, f"nameserver {server}"
            if time.monotonic() >= deadline:
                return set(), f"no answer from {', '.join(nameservers)} in {check.timeout:g} s"
    return set(), f"not in the hosts file, nor known to {', '.join(nameservers)}"


def _query(netns: str | None, server: str, name: str, deadline: float) -> set[str]:
    """A and AAAA for `name` from one nameserver over UDP: the addresses found
    (none when it answers without any, fails or is silent until the deadline)."""
    try:
        address = ipaddress.ip_address(server.split("%")[0])
    except ValueError:
        return set()
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    found: set[str] = set()
    with _socket_in(netns, family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        asked: dict[int, int] = {}
        try:
            sock.connect((str(address), 53))  # so that an ICMP port unreachable is told
            for qtype in (1, 28):
                ident = random.randrange(0, 0x10000)
                asked[ident] = qtype
                sock.send(_question(ident, name, qtype))
        except OSError:
            return set()
        while asked:
            left = deadline - time.monotonic()
            if left <= 0 or not _readable(sock, left):
                break
            try:
                packet, sender = sock.recvfrom(65535)
            except OSError:
                break  # ICMP port unreachable (the socket is connected): no nameserver there
            if ipaddress.ip_address(sender[0].split("%")[0]) != address or len(packet) < 12:
                continue
            ident = struct.unpack("!H", packet[:2])[0]
            if ident in asked:
                del asked[ident]
                found |= _answers(packet)
    return found


def _question(ident: int, name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(part)]) + part for part in (label.encode("idna") for label in name.split(".")))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(packet: bytes, at: int) -> int:
    while at < len(packet):
        length = packet[at]
        if length & 0xC0 == 0xC0:
            return at + 2
        if length == 0:
            return at + 1
        at += length + 1
    raise ValueError("truncated name")


def _answers(packet: bytes) -> set[str]:
    """The A and AAAA records of an answer (none for an error, or garbage)."""
    try:
        _, flags, questions, answers, _, _ = struct.unpack("!HHHHHH", packet[:12])
        if flags & 0x000F:
            return set()  # NXDOMAIN, SERVFAIL...
        at = 12
        for _ in range(questions):
            at = _skip_name(packet, at) + 4
        found: set[str] = set()
        for _ in range(answers):
            at = _skip_name(packet, at)
            rtype, _, _, length = struct.unpack("!HHIH", packet[at : at + 10])
            data = packet[at + 10 : at + 10 + length]
            if rtype == 1 and length == 4:
                found.add(str(ipaddress.IPv4Address(data)))
            elif rtype == 28 and length == 16:
                found.add(str(ipaddress.IPv6Address(data)))
            at += 10 + length
        return found
    except (struct.error, ValueError, IndexError):
        return set()


_PROBES: dict[str, Probe] = {"ping": _ping, "tcp": _tcp, "resolve": _resolve}
