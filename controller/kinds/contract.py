"""What every resource kind provides, and the context of one planning pass that
the kinds share (what the kernel shows, what the ledger owns, what earlier kinds
decided to create or remove). Used by every module in kinds/ and by planning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from netlab.controller.backends.iptables import NatTables
from netlab.controller.backends.kernel import fresh_namespace_link
from netlab.controller.backends.netlink import NetnsDump, ObservedLink
from netlab.controller.backends.resolver_files import FileState
from netlab.controller.changes import Change
from netlab.state.errors import Problem
from netlab.state.ledger import Key, Ledger
from netlab.state.model import DesiredState, Origin


class KernelReader(Protocol):
    """The read side of `backends.kernel.Kernel`; unit tests pass a fake."""

    def namespaces(self) -> frozenset[str]: ...

    def has_netns(self, netns: str | None) -> bool: ...

    def dump(self, netns: str | None) -> NetnsDump: ...

    def read_ahead(self, wanted: Iterable[str | None]) -> None: ...

    def sysctl(self, netns: str | None, key: str) -> str | None: ...

    def fresh_sysctl(self, key: str) -> str | None: ...

    def legacy_nat_exists(self, netns: str | None) -> bool: ...

    def nat(self, netns: str | None) -> NatTables: ...

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]: ...

    def file(self, path: str) -> FileState: ...


@dataclass
class PlanContext:
    desired: DesiredState
    kernel: KernelReader
    ledger: Ledger
    problems: list[Problem] = field(default_factory=list)
    # decisions of kinds planned earlier that later kinds depend on
    created_namespaces: set[str] = field(default_factory=set)
    removed_namespaces: set[str] = field(default_factory=set)
    created_links: set[tuple[str | None, str]] = field(default_factory=set)
    removed_links: set[tuple[str | None, str]] = field(default_factory=set)
    # links that lose an IPv4 address in this pass: the kernel may drop their routes
    losing_ipv4: set[tuple[str | None, str]] = field(default_factory=set)
    # the namespaces (None: the host) this pass plans; None: all of them. `desired`
    # then holds only their objects (see `planning.make_plan`)
    scope: frozenset[str | None] | None = None

    def in_scope(self, netns: str | None) -> bool:
        return self.scope is None or netns in self.scope

    def owned_keys(self, kind: str) -> list[Key]:
        """The ledger's keys of a kind in the namespaces this pass plans (every
        kind's key starts with its namespace)."""
        return [key for key in self.ledger.keys(kind) if self.in_scope(key[0])]

    def refuse(self, origin: Origin | None, path: str, message: str) -> None:
        """Records why the plan cannot be carried out; planning raises them all."""
        if origin is None:
            self.problems.append(Problem("(kernel)", 0, 0, path, message))
        else:
            self.problems.append(Problem(origin.file, origin.line, origin.column, path, message))

    @property
    def state_dir(self) -> Path:
        """netlab's state directory, where the ledger is and where copies of the
        files netlab took over are kept."""
        return self.ledger.path.parent

    def managed_netns(self) -> list[str | None]:
        """The namespaces a pass looks into: the host, every declared namespace and
        every namespace holding something in the ledger, that exists."""
        names = {ns.name for ns in self.desired.namespaces} | {
            netns for netns in self.ledger.netns_of_entries() if netns is not None
        }
        for key in self.ledger.keys("namespace"):
            names.add(key[0])
        found = [None] + sorted(name for name in names if self.kernel.has_netns(name))
        return [netns for netns in found if self.in_scope(netns)]

    def observed_link(self, netns: str | None, name: str) -> ObservedLink | None:
        """The link as the kernel shows it; in a namespace this pass creates, as it
        will be once the namespace exists (its loopback, up)."""
        if netns is not None and netns in self.created_namespaces:
            return fresh_namespace_link(netns, name)
        return self.kernel.dump(netns).link(name)

    def link_is_fresh(self, netns: str | None, name: str) -> bool:
        """True when the link will be (re)created by this pass, so whatever the
        kernel shows on it now will not be there."""
        return (
            (netns is not None and netns in self.created_namespaces)
            or (netns, name) in self.created_links
        )


class Kind(Protocol):
    """One resource kind: plans the changes that make the kernel match the files."""

    name: str

    def plan(self, ctx: PlanContext) -> list[Change]: ...
