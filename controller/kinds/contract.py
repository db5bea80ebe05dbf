"""What every resource kind provides (`Kind`: plan, show), and what it is given:
the context of one planning pass (what the kernel shows, what the ledger owns)
with what the kinds planned before it decided (`Decided`, a value handed on in
registry order), or the context of `netlab show`. Used by every module in kinds/,
by planning and by reporting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from netlab.controller.backends.iptables import NatTables
from netlab.controller.backends.kernel import fresh_namespace_link
from netlab.controller.backends.nat_backends import Backend, Choice
from netlab.controller.backends.netlink import NetnsDump, ObservedLink
from netlab.controller.backends.nftables import HookedChain
from netlab.controller.backends.resolver_files import FileState
from netlab.controller.changes import Change, Note
from netlab.state.errors import Problem
from netlab.state.ledger import Key, Ledger
from netlab.state.model import DesiredState, Origin

LinkKey = tuple[str | None, str]


class KernelReader(Protocol):
    """The read side of `backends.kernel.Kernel`; unit tests pass a fake."""

    def namespaces(self) -> frozenset[str]: ...

    def has_netns(self, netns: str | None) -> bool: ...

    def dump(self, netns: str | None) -> NetnsDump: ...

    def read_ahead(self, wanted: Iterable[str | None]) -> None: ...

    def sysctl(self, netns: str | None, key: str) -> str | None: ...

    def fresh_sysctl(self, key: str) -> str | None: ...

    def legacy_nat_exists(self, netns: str | None) -> bool: ...

    def nat(self, netns: str | None, backend: Backend = "iptables") -> NatTables: ...

    def nat_choice(self) -> Choice: ...

    def nftables_unavailable(self) -> str | None: ...

    def hooked_chains(self, netns: str | None) -> tuple[HookedChain, ...]: ...

    def firewalld_running(self) -> bool: ...

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]: ...

    def file(self, path: str) -> FileState: ...


@dataclass(frozen=True)
class Decided:
    """What a kind's plan decided that the kinds planned after it must know: a
    namespace or link made anew holds nothing of what the kernel shows now, one
    removed takes its contents with it, and a link losing an IPv4 address loses
    its routes. Each kind returns its own; planning joins them (`|`) and hands
    the sum to the next kind, which reads it and never changes it."""

    created_namespaces: frozenset[str] = frozenset()
    removed_namespaces: frozenset[str] = frozenset()
    created_links: frozenset[LinkKey] = frozenset()  # created, or deleted and created anew
    removed_links: frozenset[LinkKey] = frozenset()
    losing_ipv4: frozenset[LinkKey] = frozenset()

    def __or__(self, other: Decided) -> Decided:
        return Decided(**{part.name: getattr(self, part.name) | getattr(other, part.name) for part in fields(self)})

    def namespace_is_fresh(self, netns: str | None) -> bool:
        """True for a namespace this pass creates: empty but for its loopback."""
        return netns is not None and netns in self.created_namespaces

    def link_is_fresh(self, netns: str | None, name: str) -> bool:
        """True when the link will be (re)created by this pass, so whatever the
        kernel shows on it now will not be there."""
        return self.namespace_is_fresh(netns) or (netns, name) in self.created_links


@dataclass(frozen=True)
class Planned:
    """What a kind's plan returns: its changes, and what the kinds after it must
    know of them."""

    changes: tuple[Change, ...] = ()
    decided: Decided = Decided()
    notes: tuple[Note, ...] = ()  # what the operator should know beside the changes


@dataclass(frozen=True)
class PlanContext:
    desired: DesiredState
    kernel: KernelReader
    ledger: Ledger
    # the namespaces (None: the host) this pass plans; None: all of them. `desired`
    # then holds only their objects (see `planning.make_plan`)
    scope: frozenset[str | None] | None = None
    # what the kinds planned before this one decided (see `Decided`)
    decided: Decided = Decided()
    # why the plan cannot be carried out: every kind adds to it (`refuse`), none
    # reads it; planning raises them all
    problems: list[Problem] = field(default_factory=list)

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
        every namespace holding something in the ledger, that exists; not one
        the kinds before decided to remove (all it holds goes with it: a
        thousand namespaces destroyed are not read first)."""
        names = {ns.name for ns in self.desired.namespaces} | {
            netns for netns in self.ledger.netns_of_entries() if netns is not None
        }
        for key in self.ledger.keys("namespace"):
            names.add(key[0])
        names -= self.decided.removed_namespaces
        found = [None] + sorted(name for name in names if self.kernel.has_netns(name))
        return [netns for netns in found if self.in_scope(netns)]

    def observed_link(self, netns: str | None, name: str) -> ObservedLink | None:
        """The link as the kernel shows it; in a namespace this pass creates, as it
        will be once the namespace exists (its loopback, up)."""
        if netns is not None and self.decided.namespace_is_fresh(netns):
            return fresh_namespace_link(netns, name)
        return self.kernel.dump(netns).link(name)


@dataclass(frozen=True)
class ShowContext:
    """What `netlab show` looks at: the files, the kernel, the ledger, and the
    namespaces it shows (declared or netlab's, that exist)."""

    desired: DesiredState
    kernel: KernelReader
    ledger: Ledger
    namespaces: tuple[str, ...]

    @classmethod
    def of(cls, desired: DesiredState, kernel: KernelReader, ledger: Ledger) -> ShowContext:
        owned = {key[0] for key in ledger.keys("namespace")}
        names = sorted(({ns.name for ns in desired.namespaces} | owned) & kernel.namespaces())
        return cls(desired, kernel, ledger, tuple(names))

    @property
    def netns_shown(self) -> list[str | None]:
        """The host (None) and the namespaces shown."""
        return [None, *self.namespaces]


@dataclass(frozen=True)
class Shown:
    """A kind's part of `netlab show`'s document, in the file format: fields of
    the document (`fields`) and of the entries of the namespaces shown
    (`in_namespaces`, by name). Reporting puts the parts together in registry
    order."""

    document: dict[str, Any] = field(default_factory=dict)
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def by_netns(cls, name: str, values: dict[str | None, Any]) -> Shown:
        """One field, `name`, of the host (None: a field of the document) and of
        each namespace; left out where its value is empty."""
        host = {name: values[None]} if values.get(None) else {}
        return cls(host, {netns: {name: value} for netns, value in values.items() if netns is not None and value})


class Kind(Protocol):
    """One resource kind: plans the changes that make the kernel match the files,
    and shows what the kernel holds of it."""

    name: str

    def plan(self, ctx: PlanContext) -> Planned: ...

    def show(self, view: ShowContext) -> Shown: ...
