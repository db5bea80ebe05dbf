"""A kernel for unit tests that holds nothing: no namespaces, links, NAT rules or
files. The fakes of each test module override what their kinds read. And
`observed_link`, a link as a dump shows it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from netlab.controller.backends.iptables import NatTables
from netlab.controller.backends.nat_backends import Backend, Choice
from netlab.controller.backends.netlink import NetnsDump, ObservedLink
from netlab.controller.backends.nftables import HookedChain
from netlab.controller.backends.resolver_files import FileState


@dataclass
class EmptyKernel:
    names: set[str] = field(default_factory=set)
    nat_backend: Backend = "iptables"  # where declared NAT rules go (`nat_choice`)

    def namespaces(self) -> frozenset[str]:
        return frozenset(self.names)

    def has_netns(self, netns: str | None) -> bool:
        return netns is None or netns in self.names

    def read_ahead(self, wanted: Iterable[str | None]) -> None:
        pass

    def dump(self, netns: str | None) -> NetnsDump:
        return NetnsDump((), (), ())

    def sysctl(self, netns: str | None, key: str) -> str | None:
        return None

    def fresh_sysctl(self, key: str) -> str | None:
        return None

    def legacy_nat_exists(self, netns: str | None) -> bool:
        return False

    def nat(self, netns: str | None, backend: Backend = "iptables") -> NatTables:
        return NatTables()

    def nat_choice(self) -> Choice:
        return Choice(self.nat_backend, "a unit test's kernel")

    def hooked_chains(self, netns: str | None) -> tuple[HookedChain, ...]:
        return ()

    def nftables_unavailable(self) -> str | None:
        return None

    def firewalld_running(self) -> bool:
        return False

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]:
        return ()

    def file(self, path: str) -> FileState:
        return FileState(path, "absent")

    def forget_reads(self) -> None:
        pass


def observed_link(
    netns: str | None, name: str, index: int, link_index: int | None = None, netnsid: int | None = None
) -> ObservedLink:
    """A link as a dump shows it, up; with `link_index`, a veth whose other end
    is that index (in the namespace `netnsid` names, when given)."""
    return ObservedLink(
        netns=netns,
        name=name,
        index=index,
        kind="veth" if link_index else None,
        state="up",
        mtu=1500,
        mac=None,
        master=None,
        alias=None,
        link_index=link_index,
        link_netnsid=netnsid,
    )
