"""The rtnetlink transport's bookkeeping, against a scripted socket: answers are
matched to requests by sequence number, what is left of other requests passed
over, refusals raised as KernelRefused naming the request with the kernel's
words, a dump the kernel marks interrupted is read again, messages
a dump's filter passes over are never decoded, and what is left of an abandoned
dump does not leak into the next answer; a narrowed message decodes only the
attributes it keeps. The real kernel's side is in
tests/integration/test_rtnl_kernel.py."""

from __future__ import annotations

import errno
import socket
from collections import deque
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, nlmsgerr
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netlab.controller.backends.rtnl import DUMP_ATTEMPTS, RtnlSocket, narrowed
from netlab.state.errors import KernelRefused


class ScriptedSocket:
    """Stands in for the kernel: records what is sent, and answers each
    request through `answer(sequence, sent_bytes)`, which returns datagrams."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[bytes] = []
        self.queue: deque[bytes] = deque()

    def setsockopt(self, *args: Any) -> None:
        pass

    def bind(self, address: Any) -> None:
        pass

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        sequence = int.from_bytes(data[8:12], "little")
        self.queue.extend(self.answer(sequence, bytes(data)))
        return len(data)

    def recv(self, size: int) -> bytes:
        assert self.queue, "the transport waited for an answer that will never come"
        return self.queue.popleft()

    def close(self) -> None:
        pass


def ack(sequence: int, code: int = 0, words: str | None = None) -> bytes:
    msg = nlmsgerr()
    msg["header"]["type"] = NLMSG_ERROR
    msg["header"]["sequence_number"] = sequence
    msg["error"] = -code
    # the request itself, as the kernel quotes it (an empty link message)
    quoted = ifinfmsg()
    quoted["header"]["type"] = RTM_NEWLINK
    quoted["header"]["sequence_number"] = sequence
    quoted.encode()
    msg["attrs"] = [("NLMSGERR_ATTR_MSG", words)] if words else []
    msg.encode()
    # nlmsgerr is the error code followed by the quoted request's header and body
    data = bytearray(msg.data[:20]) + quoted.data + msg.data[20:]
    data[0:4] = len(data).to_bytes(4, "little")
    return bytes(data)


def link(sequence: int, index: int, name: str, flags: int = NLM_F_MULTI) -> bytes:
    msg = ifinfmsg()
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = sequence
    msg["index"] = index
    msg["attrs"] = [("IFLA_IFNAME", name)]
    msg.encode()
    return bytes(msg.data)


def done(sequence: int, flags: int = NLM_F_MULTI) -> bytes:
    header = bytearray(20)
    header[0:4] = (20).to_bytes(4, "little")
    header[4:6] = NLMSG_DONE.to_bytes(2, "little")
    header[6:8] = flags.to_bytes(2, "little")
    header[8:12] = sequence.to_bytes(4, "little")
    return bytes(header)


def names(rtnl: RtnlSocket) -> tuple[list[str], bool]:
    return rtnl.dump("read links", RTM_GETLINK, ifinfmsg(), lambda msg: msg.get_attr("IFLA_IFNAME"))


def transport(answer: Any) -> tuple[RtnlSocket, ScriptedSocket]:
    fake = ScriptedSocket(answer)
    return RtnlSocket(fake), fake  # type: ignore[arg-type]


def test_an_acknowledgement_of_another_request_is_passed_over() -> None:
    # what a request given up on left behind comes first; then this one's refusal
    rtnl, _ = transport(
        lambda sequence, data: [ack(sequence + 1000), ack(sequence, errno.EEXIST, "Error: already there")]
    )
    with pytest.raises(KernelRefused) as refused:
        rtnl.request("create link host/d0", RTM_NEWLINK, ifinfmsg())
    assert refused.value.code == errno.EEXIST
    assert str(refused.value) == "create link host/d0: File exists (errno 17) (the kernel: Error: already there)"


def test_a_refusal_without_words_has_only_its_errno() -> None:
    rtnl, _ = transport(lambda sequence, data: [ack(sequence, errno.ENODEV)])
    with pytest.raises(KernelRefused) as refused:
        rtnl.request("set link host/d0", RTM_NEWLINK, ifinfmsg())
    assert refused.value.code == errno.ENODEV
    assert str(refused.value) == "set link host/d0: No such device (errno 19)"


def test_an_interrupted_dump_is_read_again_and_counted_once() -> None:
    attempts: list[int] = []

    def answer(sequence: int, data: bytes) -> list[bytes]:
        attempts.append(sequence)
        if len(attempts) == 1:  # changed meanwhile: the kernel flags the dump
            return [link(sequence, 1, "lo") + link(sequence, 2, "eth0", NLM_F_MULTI | NLM_F_DUMP_INTR), done(sequence)]
        return [link(sequence, 1, "lo") + link(sequence, 3, "eth1"), done(sequence)]

    rtnl, _ = transport(answer)
    assert names(rtnl) == (["lo", "eth1"], True)
    assert len(attempts) == 2


def test_a_dump_that_never_settles_is_taken_as_it_is_and_said_so() -> None:
    attempts: list[int] = []

    def answer(sequence: int, data: bytes) -> list[bytes]:
        attempts.append(sequence)
        return [link(sequence, len(attempts), "lo", NLM_F_MULTI | NLM_F_DUMP_INTR), done(sequence)]

    rtnl, _ = transport(answer)
    assert names(rtnl) == (["lo"], False)  # the last reading's, once
    assert len(attempts) == DUMP_ATTEMPTS


def test_messages_the_filter_passes_over_are_never_decoded() -> None:
    def answer(sequence: int, data: bytes) -> list[bytes]:
        return [link(sequence, 1, "lo") + link(sequence, 2, "eth0") + link(sequence, 3, "eth1"), done(sequence)]

    rtnl, _ = transport(answer)
    seen: list[int] = []

    def keep(msg_type: int, data: bytes, offset: int) -> bool:
        assert msg_type == RTM_NEWLINK
        index = int.from_bytes(data[offset + 20 : offset + 24], "little")  # ifinfmsg's index
        seen.append(index)
        return index != 2

    kept, _ = rtnl.dump("read links", RTM_GETLINK, ifinfmsg(), lambda msg: msg.get_attr("IFLA_IFNAME"), keep=keep)
    assert kept == ["lo", "eth1"]
    assert seen == [1, 2, 3]


def test_the_rest_of_an_abandoned_dump_does_not_answer_the_next_request() -> None:
    def answer(sequence: int, data: bytes) -> list[bytes]:
        if int.from_bytes(data[4:6], "little") == RTM_GETLINK:
            return [link(sequence, 1, "lo"), link(sequence, 2, "eth0"), done(sequence)]
        return [ack(sequence)]

    rtnl, fake = transport(answer)

    def fail_on_eth0(msg: Any) -> str:
        if msg["index"] == 2:
            raise RuntimeError("a reader gave up half way")
        return "lo"

    with pytest.raises(RuntimeError):
        rtnl.dump("read links", RTM_GETLINK, ifinfmsg(), fail_on_eth0)
    assert len(fake.queue) == 1  # the dump's end is still waiting in the socket
    rtnl.request("set link", RTM_NEWLINK, ifinfmsg())  # reads past it to its own acknowledgement
    assert not fake.queue


def test_a_get_returns_the_object_or_raises_the_refusal() -> None:
    def answer(sequence: int, data: bytes) -> list[bytes]:
        if b"eth0" in data:
            return [link(sequence, 2, "eth0", 0)]
        return [ack(sequence, errno.ENODEV, "Error: no such device")]

    rtnl, _ = transport(answer)
    found = rtnl.get("find link host/eth0", RTM_GETLINK, _named("eth0"))
    assert found["index"] == 2
    with pytest.raises(KernelRefused) as refused:
        rtnl.get("find link host/nothere", RTM_GETLINK, _named("nothere"))
    assert refused.value.code == errno.ENODEV
    assert str(refused.value).startswith("find link host/nothere: No such device")


def _named(name: str) -> ifinfmsg:
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", name)]
    return msg


def test_the_socket_it_opens_is_rtnetlink() -> None:
    rtnl = RtnlSocket()
    try:
        assert rtnl._sock.family == socket.AF_NETLINK and rtnl._sock.proto == socket.NETLINK_ROUTE
    finally:
        rtnl.close()


def _encoded_link() -> bytes:
    msg = ifinfmsg()
    msg["header"]["type"] = RTM_NEWLINK
    msg["index"] = 7
    msg["flags"] = 1
    msg["attrs"] = [
        ("IFLA_IFNAME", "br0"),
        ("IFLA_TXQLEN", 1000),
        ("IFLA_MTU", 1400),
        (
            "IFLA_LINKINFO",
            {"attrs": [("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_STP_STATE", 1)]})]},
        ),
        ("IFLA_IFALIAS", "netlab"),
    ]
    msg.encode()
    return bytes(msg.data)


def test_a_narrowed_message_decodes_only_the_attributes_kept() -> None:
    data = _encoded_link()
    link_message = narrowed(ifinfmsg, {"IFLA_IFNAME": None, "IFLA_IFALIAS": None, "IFLA_LINKINFO": ("IFLA_INFO_KIND",)})
    msg = link_message(data)
    msg.decode()
    assert (msg["index"], msg["flags"]) == (7, 1)  # the fixed header is kept whole
    assert [name for name, _ in msg["attrs"]] == ["IFLA_IFNAME", "IFLA_LINKINFO", "IFLA_IFALIAS"]
    assert msg.get_attr("IFLA_IFNAME") == "br0" and msg.get_attr("IFLA_IFALIAS") == "netlab"
    info = msg.get_attr("IFLA_LINKINFO")
    assert [name for name, _ in info["attrs"]] == ["IFLA_INFO_KIND"] and info.get_attr("IFLA_INFO_KIND") == "bridge"
    whole = ifinfmsg(data)
    whole.decode()
    assert whole.get_attr("IFLA_MTU") == 1400  # what was cut out was there


def test_a_narrowed_message_stops_at_a_malformed_attribute() -> None:
    data = bytearray(_encoded_link())
    # the second attribute (after the 32-byte headers and the 8-byte IFLA_IFNAME) claims a length under 4
    data[40:42] = (2).to_bytes(2, "little")
    msg = narrowed(ifinfmsg, {"IFLA_IFNAME": None, "IFLA_IFALIAS": None})(bytes(data))
    msg.decode()
    assert [name for name, _ in msg["attrs"]] == ["IFLA_IFNAME"]


def test_a_narrowed_message_claiming_more_than_was_received_decodes_what_is_there() -> None:
    data = _encoded_link()[:44]  # cut inside the second attribute; the header still says the whole length
    msg = narrowed(ifinfmsg, {"IFLA_IFNAME": None, "IFLA_MTU": None})(data)
    msg.decode()
    assert [name for name, _ in msg["attrs"]] == ["IFLA_IFNAME"]
