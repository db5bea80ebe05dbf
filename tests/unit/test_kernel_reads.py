"""The kernel facade's one cache: after a write of each kind, exactly what it
touched is read again and nothing else (verification trusts the rest); and the
one rule of what netlab reads is the dumps' and the event listeners' alike.
No kernel: the backends are stood in for, and the messages built by hand."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netlab.controller.backends import events, iptables, namespaces, nftables, resolver_files, rtnl, sysctls
from netlab.controller.backends.iptables import NatTables
from netlab.controller.backends.kernel import Kernel
from netlab.controller.backends.netlink import Netlink, NetnsDump, reads
from netlab.controller.backends.rtnl import RtnlSocket
from netlab.state.errors import KernelRefused
from tests.unit.fake_kernels import observed_link

NAMESPACES = ("red", "blue")
PATH = "/etc/netns/red/resolv.conf"
EVERY = {(what, netns) for what in ("dump", "sysctl", "nat", "nft-nat") for netns in (None, *NAMESPACES)} | {
    ("file", PATH)
}


# the host's vh-red (7) pairs with red's eth0 (2); blue holds only its loopback
DUMPS = {
    None: NetnsDump((observed_link(None, "lo", 1), observed_link(None, "vh-red", 7, 2, 0)), (), ()),
    "red": NetnsDump((observed_link("red", "lo", 1), observed_link("red", "eth0", 2, 7, 0)), (), ()),
    "blue": NetnsDump((observed_link("blue", "lo", 1),), (), ()),
}


class Connection:
    """Stands in for a namespace's rtnetlink socket: every write is accepted."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns

    def request(self, what: str, msg_type: int, msg: Any, flags: int = 0) -> None:
        pass

    def get(self, what: str, msg_type: int, msg: Any) -> Any:
        name = msg.get_attr("IFLA_IFNAME")
        return {"index": next(each.index for each in DUMPS[self.netns].links if each.name == name)}


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Kernel, set[tuple[str, str | None]]]]:
    """A kernel facade over stand-in backends, and the set of what it read from them."""
    backend_reads: set[tuple[str, str | None]] = set()

    def counted(what: str, answer: Callable[[str | None], Any]) -> Callable[..., Any]:
        def read(netns: str | None, *args: Any) -> Any:
            backend_reads.add((what, netns))
            return answer(netns)

        return read

    monkeypatch.setattr(namespaces, "list_namespaces", lambda: frozenset(NAMESPACES))
    monkeypatch.setattr(Netlink, "dump", lambda self, netns: counted("dump", DUMPS.__getitem__)(netns))
    monkeypatch.setattr(Netlink, "connection", lambda self, netns: Connection(netns))
    monkeypatch.setattr(Netlink, "adopt", lambda self, netns, sock: Connection(netns))
    monkeypatch.setattr(sysctls, "read", counted("sysctl", lambda netns: "1"))
    monkeypatch.setattr(sysctls, "write", lambda netns, key, value: None)
    monkeypatch.setattr(iptables, "legacy_nat_exists", lambda netns: True)
    monkeypatch.setattr(iptables, "dump", counted("nat", lambda netns: NatTables()))
    monkeypatch.setattr(iptables, "change", lambda netns, ops: None)
    monkeypatch.setattr(nftables, "unavailable", lambda: None)
    monkeypatch.setattr(nftables, "dump", counted("nft-nat", lambda netns: NatTables()))
    monkeypatch.setattr(nftables, "change", lambda netns, ops: None)
    monkeypatch.setattr(namespaces, "create_namespace", lambda name, then: None)
    monkeypatch.setattr(namespaces, "remove_namespace", lambda name: None)
    monkeypatch.setattr(
        resolver_files, "read", counted("file", lambda path: resolver_files.FileState(str(path), "absent"))
    )
    monkeypatch.setattr(resolver_files, "write", lambda path, data, mode: None)
    with Kernel() as facade:
        read_everything(facade)
        assert backend_reads == EVERY
        yield facade, backend_reads


def read_everything(kernel: Kernel) -> None:
    for netns in (None, *NAMESPACES):
        kernel.dump(netns)
        kernel.sysctl(netns, "net.ipv4.ip_forward")
        kernel.nat(netns)
        kernel.nat(netns, "nftables")
    kernel.file(PATH)


def read_again_after(
    kernel: Kernel, backend_reads: set[tuple[str, str | None]], write: Callable[[Kernel], None]
) -> set[Any]:
    """What is read from the backends when everything is read again after `write`
    (everything was read before)."""
    backend_reads.clear()
    write(kernel)
    read_everything(kernel)
    return set(backend_reads)


WRITES: dict[str, tuple[Callable[[Kernel], None], set[tuple[str, str | None]]]] = {
    # a write of links makes their sysctls stale too (a link brings or takes its conf.LINK.*)
    "link set": (lambda k: k.netlink.link_set("blue", "lo", mtu=1400), {("dump", "blue"), ("sysctl", "blue")}),
    "veth add": (
        lambda k: k.netlink.link_add(None, "vh-blue", "veth", peer=("blue", "eth0")),
        {("dump", None), ("dump", "blue"), ("sysctl", None), ("sysctl", "blue")},
    ),
    "macvlan add": (
        lambda k: k.netlink.link_add("blue", "mv0", "macvlan", parent=(None, "vh-red")),
        {("dump", None), ("dump", "blue"), ("sysctl", None), ("sysctl", "blue")},
    ),
    "link delete": (
        lambda k: k.netlink.link_del(None, "vh-red"),
        {("dump", None), ("dump", "red"), ("sysctl", None), ("sysctl", "red")},
    ),
    "address add": (lambda k: k.netlink.addr_add("red", "eth0", "10.0.0.2/24"), {("dump", "red")}),
    "address delete": (lambda k: k.netlink.addr_del("red", "eth0", "10.0.0.2/24"), {("dump", "red")}),
    "route add": (
        lambda k: k.netlink.route_add("red", to="0.0.0.0/0", table=254, metric=0, via="10.0.0.1", dev=None),
        {("dump", "red")},
    ),
    "route replace": (
        lambda k: k.netlink.route_replace(None, to="10.9.0.0/16", table=254, metric=0, via=None, dev="vh-red"),
        {("dump", None)},
    ),
    "route delete": (lambda k: k.netlink.route_del("blue", to="0.0.0.0/0", table=254, metric=0), {("dump", "blue")}),
    "sysctl": (lambda k: k.write_sysctl("red", "net.ipv4.ip_forward", "0"), {("sysctl", "red")}),
    "nat": (lambda k: k.change_nat("blue", [iptables.ensure_chain(4, "NETLAB-POSTROUTING")]), {("nat", "blue")}),
    "nftables nat": (
        lambda k: k.change_nat("blue", [iptables.ensure_chain(4, "NETLAB-POSTROUTING")], "nftables"),
        {("nft-nat", "blue")},
    ),
    "file": (lambda k: k.write_file(PATH, b"nameserver 10.0.0.1\n", 0o644), {("file", PATH)}),
    "namespace created": (
        lambda k: k.create_namespace("blue"),
        {("dump", "blue"), ("sysctl", "blue"), ("nat", "blue"), ("nft-nat", "blue")},
    ),
    "namespace removed": (lambda k: k.remove_namespace("blue"), EVERY),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_makes_exactly_what_it_touched_read_again(kernel: tuple[Kernel, set[Any]], write: str) -> None:
    facade, backend_reads = kernel
    do, touched = WRITES[write]
    assert read_again_after(facade, backend_reads, do) == touched


def test_a_write_refused_by_the_kernel_still_makes_its_namespace_read_again(
    kernel: tuple[Kernel, set[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal may come after part of the work (a veth made, its alias not set)."""
    facade, backend_reads = kernel

    def refused(self: Connection, what: str, msg_type: int, msg: Any, flags: int = 0) -> None:
        raise KernelRefused(what, errno.EEXIST, "File exists")

    def write(k: Kernel) -> None:
        monkeypatch.setattr(Connection, "request", refused)
        with pytest.raises(KernelRefused):
            k.netlink.addr_add("red", "eth0", "10.0.0.2/24")

    assert read_again_after(facade, backend_reads, write) == {("dump", "red")}


@pytest.mark.parametrize(
    ("heard", "read_again"), [(events.RTNL, {("dump", "red")}), (events.NFTABLES, {("nft-nat", "red")})]
)
def test_heard_changes_and_a_resync_forget_what_they_say(
    kernel: tuple[Kernel, set[Any]], heard: events.Heard, read_again: set[tuple[str, str]]
) -> None:
    """rtnetlink events forget the namespace's dump, nftables events netlab's
    nftables tables there; the legacy tables only a resync."""
    facade, backend_reads = kernel
    sysctls_too = {("sysctl", netns) for netns in (None, *NAMESPACES)}  # sysctls make no events

    def hear(k: Kernel) -> None:
        k._heard("red", heard)
        k.forget_heard()

    assert read_again_after(facade, backend_reads, hear) == read_again | sysctls_too
    assert read_again_after(facade, backend_reads, Kernel.forget_reads) == EVERY


# -- one rule of what netlab reads ---------------------------------------------------


def _encoded(message: Any, msg_type: int, **fields: Any) -> bytes:
    message["header"]["type"] = msg_type
    for name, value in fields.items():
        message[name] = value
    message.encode()
    return bytes(message.data)


SAMPLES: dict[str, tuple[bytes, bool]] = {
    "a link": (_encoded(ifinfmsg(), RTM_NEWLINK, index=3, attrs=[("IFLA_IFNAME", "eth0")]), True),
    "a link's IPv6 configuration notice": (_encoded(ifinfmsg(), RTM_NEWLINK, family=socket.AF_INET6, index=3), False),
    "a bridge port's state notice": (_encoded(ifinfmsg(), RTM_NEWLINK, family=7, index=3), False),
    "an IPv4 address": (_encoded(ifaddrmsg(), RTM_NEWADDR, family=socket.AF_INET, prefixlen=24, index=3), True),
    "an IPv6 global address": (_encoded(ifaddrmsg(), RTM_NEWADDR, family=socket.AF_INET6, prefixlen=64, index=3), True),
    "an IPv6 link-local address": (
        _encoded(ifaddrmsg(), RTM_DELADDR, family=socket.AF_INET6, prefixlen=64, scope=253, index=3),
        False,
    ),
    "a route of netlab's": (_encoded(rtmsg(), RTM_NEWROUTE, family=socket.AF_INET, table=254, proto=213, type=1), True),
    "a static route of someone's": (
        _encoded(rtmsg(), RTM_NEWROUTE, family=socket.AF_INET, table=254, proto=4, type=1),
        True,
    ),
    "a connected route (the kernel's)": (
        _encoded(rtmsg(), RTM_NEWROUTE, family=socket.AF_INET, dst_len=24, table=254, proto=2, scope=253, type=1),
        False,
    ),
    "a local route": (
        _encoded(rtmsg(), RTM_NEWROUTE, family=socket.AF_INET, dst_len=32, table=255, proto=2, type=2),
        False,
    ),
    "a broadcast route of someone's": (
        _encoded(rtmsg(), RTM_NEWROUTE, family=socket.AF_INET, table=255, proto=4, type=3),
        False,
    ),
}


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_the_dumps_and_the_event_listeners_read_the_same_messages(sample: str) -> None:
    data, read = SAMPLES[sample]
    # the dumps' way: the parser a filtered dump registers, which decodes a
    # message or passes it over (None)
    transport = RtnlSocket.__new__(RtnlSocket)  # no socket: the parser needs only the marshal
    transport._marshal = rtnl._marshal
    dumped = transport._filtering_parser(reads)(data, 0, len(data)) is not None
    # the listeners' way: a datagram of events that holds only this message
    heard = events.changes_what_is_read(data)
    assert (dumped, heard) == (read, read)


def test_a_datagram_of_events_is_drift_when_any_message_in_it_is_read() -> None:
    background = SAMPLES["a link's IPv6 configuration notice"][0] + SAMPLES["a local route"][0]
    assert not events.changes_what_is_read(background)
    assert events.changes_what_is_read(background + SAMPLES["an IPv4 address"][0])
