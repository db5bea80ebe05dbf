"""One rtnetlink socket, spoken to synchronously: requests are pyroute2 message
objects (pyroute2 encodes them and decodes the answers), but they go out and
come back on a plain blocking socket, without pyroute2's asyncio core, which
costs a loop round of some 0.2 ms per request. Used by the netlink backend.

Three calls: `request` (a write, acknowledged), `get` (one object) and `dump`
(every object of a kind). A refusal is raised as `KernelRefused`, named by the
caller's words for the request and carrying the kernel's own.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, TypeVar

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    nlmsg,
)
from pyroute2.netlink.marshal import Marshal
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netlab.controller.backends import descriptors
from netlab.state.errors import KernelRefused

SOL_NETLINK = 270
NETLINK_EXT_ACK = 11  # errors carry the kernel's own words ("Error: ...")
RECEIVE_SIZE = 65536  # a dump's datagrams are at most 32 KiB
# A dump the kernel marks inconsistent (the list changed while it was read) is
# read again, this many times at most; then the last one is taken as it is, as
# `ip` does. Right after many links come up, IPv6 address configuration keeps
# the host's address list changing for a second or more.
DUMP_ATTEMPTS = 3

T = TypeVar("T")
M = TypeVar("M", bound=nlmsg)

# Decides from a message's type and raw bytes (data, offset) whether to decode it at all.
RawFilter = Callable[[int, bytes, int], bool]


NLMSG_HEADER_SIZE = 16
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


def narrowed(message_class: type[M], keep: Mapping[str, Collection[str] | None]) -> type[M]:
    """A subclass of a pyroute2 message class whose messages decode only the
    attributes named in `keep` (a nested one given names: only those inside
    it); the others are cut out of the bytes before pyroute2 decodes them. The
    kernel sends some fifty attributes with every link and netlab reads eight:
    creating pyroute2's objects for the rest was most of a link's cost. Used for
    what is received only (`decode_as`); requests are built with the full class."""
    table = _nla_table(message_class)
    kept = frozenset(table[name][0] for name in keep)
    nested: dict[int, frozenset[int]] = {}
    for name, inner in keep.items():
        if inner is not None:
            number, class_name = table[name]
            inner_table = _nla_table(getattr(message_class, class_name))
            nested[number] = frozenset(inner_table[n][0] for n in inner)
    header_size = NLMSG_HEADER_SIZE + struct.calcsize("".join(fmt for _, fmt in message_class.fields))

    def decode(self: Any) -> None:
        self.data = _cut(self.data, self.offset, header_size, kept, nested)
        self.offset = 0
        message_class.decode(self)

    return type(f"narrowed_{message_class.__name__}", (message_class,), {"decode": decode})


def _nla_table(message_class: Any) -> dict[str, tuple[int, str]]:
    """Attribute names to their numbers and pyroute2 classes, from the class's
    `nla_map`: (name, class) pairs numbered by position, or (number, name, class)."""
    entries = message_class.nla_map
    if isinstance(entries[0][0], int):
        return {name: (number, nla_class) for number, name, nla_class, *_ in entries}
    return {name: (number, nla_class) for number, (name, nla_class, *_) in enumerate(entries)}


def _cut(
    data: bytes, offset: int, header_size: int, kept: frozenset[int], nested: Mapping[int, frozenset[int]]
) -> bytes:
    """The message at `offset` alone, with only the attributes of the kept types
    (and of a nested one, only its kept inner attributes), its length fixed."""
    (length,) = struct.unpack_from("I", data, offset)
    end = min(offset + length, len(data))  # a header claiming more than was received
    parts = [bytes(data[offset : offset + header_size])]
    parts.extend(_kept_attributes(data, offset + header_size, end, kept, nested))
    message = b"".join(parts)
    return struct.pack("I", len(message)) + message[4:]


def _kept_attributes(
    data: bytes, position: int, end: int, kept: frozenset[int], nested: Mapping[int, frozenset[int]]
) -> Iterator[bytes]:
    while position + 4 <= end:
        length, kind = struct.unpack_from("HH", data, position)
        if length < 4 or position + length > end:
            return  # malformed: what came before is all there is
        aligned = (length + 3) & ~3
        number = kind & NLA_TYPE_MASK
        if number in nested:
            inner = b"".join(_kept_attributes(data, position + 4, position + length, nested[number], {}))
            yield struct.pack("HH", 4 + len(inner), kind) + inner
        elif number in kept:
            yield bytes(data[position : position + aligned])
        position += aligned


# Shared by every socket (a marshal is some 3 KiB, and the daemon holds a socket
# per namespace): sequence numbers are unique across sockets, so the parsers a
# dump registers by sequence number cannot meet another socket's answers.
class _RtnlMarshal(Marshal):  # type: ignore[misc]
    """The messages netlab receives: links, addresses, routes (and the errors
    and ends every socket gets). pyroute2's MarshalRtnl knows every rtnetlink
    message and comes with its socket module, which imports asyncio: 25 ms of
    every netlab command's start."""

    msg_map = {
        RTM_NEWLINK: ifinfmsg,
        RTM_DELLINK: ifinfmsg,
        RTM_NEWADDR: ifaddrmsg,
        RTM_DELADDR: ifaddrmsg,
        RTM_NEWROUTE: rtmsg,
        RTM_DELROUTE: rtmsg,
    }


_marshal = _RtnlMarshal()
_sequences = itertools.count(1)


def decode_as(message_class: type, *msg_types: int) -> None:
    """Received messages of these types are decoded with `message_class` (one of
    pyroute2's, or `narrowed` from one), by every socket."""
    for msg_type in msg_types:
        _marshal.msg_map[msg_type] = message_class


class RtnlSocket:
    def __init__(self, sock: socket.socket | None = None) -> None:
        """Takes an rtnetlink socket (one opened inside another namespace), or
        opens one in the calling thread's namespace."""
        self._sock = descriptors.kept_high(
            sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        )
        self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self._sock.bind((0, 0))
        self._marshal = _marshal

    def close(self) -> None:
        self._sock.close()

    # -- requests ------------------------------------------------------------------

    def request(self, what: str, msg_type: int, msg: Any, flags: int = 0) -> None:
        """Sends a request and waits for its acknowledgement; raises `KernelRefused`
        (`what` names the request) if the kernel refused it."""
        for _ in self._answers(what, self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)):
            pass

    def get(self, what: str, msg_type: int, msg: Any) -> Any:
        """A single object asked for (RTM_GETLINK by name...); raises `KernelRefused`."""
        for answer in self._answers(what, self._send(msg, msg_type, NLM_F_REQUEST)):
            return answer
        raise KernelRefused(what, errno.EPROTO, "no answer")

    def dump(
        self, what: str, msg_type: int, msg: Any, convert: Callable[[Any], T], keep: RawFilter | None = None
    ) -> tuple[list[T], bool]:
        """Every object of a kind, each message turned by `convert` into what the
        caller keeps as it arrives (pyroute2's decoded messages are large); `keep`
        can pass over messages before they are decoded. A dump the kernel says was
        interrupted by a concurrent change is read again (`DUMP_ATTEMPTS`); the
        second value says whether the one returned is consistent."""
        attempt = 1
        while True:
            converted, interrupted = self._dump_once(what, msg_type, msg, convert, keep)
            if not interrupted or attempt == DUMP_ATTEMPTS:
                return converted, not interrupted
            attempt += 1

    # -- internals ---------------------------------------------------------------

    def _dump_once(
        self, what: str, msg_type: int, msg: Any, convert: Callable[[Any], T], keep: RawFilter | None
    ) -> tuple[list[T], bool]:
        sequence = self._next_sequence()
        if keep is not None:
            self._marshal.seq_map[sequence] = self._filtering_parser(keep)
        converted: list[T] = []
        interrupted = False
        try:
            for answer in self._answers(what, self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP, sequence)):
                header = answer["header"]
                interrupted |= bool(header["flags"] & NLM_F_DUMP_INTR)
                if header["type"] != NLMSG_DONE:
                    converted.append(convert(answer))
        finally:
            self._marshal.seq_map.pop(sequence, None)
        return converted, interrupted

    def _answers(self, what: str, sequence: int) -> Iterator[Any]:
        """The messages answering a request, up to its end: an acknowledgement
        (the end of a write), an error (raised), or a dump's NLMSG_DONE (given,
        for its flags). What belongs to other sequence numbers (the rest of a
        dump given up on) is passed over."""
        while True:
            for answer in self._marshal.parse(self._sock.recv(RECEIVE_SIZE)):
                header = answer["header"]
                if header["sequence_number"] != sequence:
                    continue
                if header["type"] == NLMSG_ERROR:
                    code = abs(answer["error"])
                    if code:
                        raise KernelRefused(what, code, os.strerror(code), answer.get_attr("NLMSGERR_ATTR_MSG"))
                    return
                yield answer
                if header["type"] == NLMSG_DONE:
                    return

    def _filtering_parser(self, keep: RawFilter) -> Callable[[bytes, int, int], Any]:
        def parse(data: bytes, offset: int, length: int) -> Any:
            length, key, flags, sequence = struct.unpack_from("IHHI", data, offset)
            if key not in (NLMSG_DONE, NLMSG_ERROR) and not keep(key, data, offset):
                return None
            return self._marshal.parse_one_message(key, flags, sequence, data, offset, length)

        return parse

    def _send(self, msg: Any, msg_type: int, flags: int, sequence: int | None = None) -> int:
        """Sends the message as a request of this type; returns its sequence number."""
        sequence = self._next_sequence() if sequence is None else sequence
        header = msg["header"]
        header["type"] = msg_type
        header["flags"] = flags
        header["sequence_number"] = sequence
        header["pid"] = 0
        msg.encode()
        self._sock.send(msg.data)
        return sequence

    @staticmethod
    def _next_sequence() -> int:
        return next(_sequences) % 0x7FFFFFFF + 1
