"""Planning: compares the desired state with what the kernel shows and the ledger
owns, kind by kind in registry order (each kind is handed what those before it
decided), and returns the changes in the order they will be applied.
Called by the cli (plan, apply, destroy), applying (verification) and the daemon."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from netlab.controller.changes import Change, Note, Step
from netlab.controller.kinds import REGISTRY
from netlab.controller.kinds.contract import KernelReader, PlanContext
from netlab.state.errors import ApplyError, ConfigError, KernelRefused
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, Link, Namespace


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    notes: tuple[Note, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def steps(self) -> list[tuple[Change, Step]]:
        """Every kernel write of the plan, in phase order; within a phase, in the
        order the kinds planned them (stable sort)."""
        pairs = [(change, step) for change in self.changes for step in change.steps]
        return sorted(pairs, key=lambda pair: pair[1].phase)

    def batches(self) -> list[tuple[Step, list[Change]]]:
        """Each kernel write once, with the changes it does (a batch of NAT
        rules or of link deletions is one write for many), in phase order."""
        by_step: dict[int, tuple[Step, list[Change]]] = {}
        for change, step in self.steps():
            by_step.setdefault(id(step), (step, []))[1].append(change)
        return list(by_step.values())

    def done(self) -> Plan:
        """The same changes without their steps: what a pass did, to report, once
        the closures of its writes (thousands in a cold start) can go."""
        return Plan(tuple(replace(change, steps=()) for change in self.changes), self.notes)

    def counts(self) -> dict[str, int]:
        return {action: sum(1 for c in self.changes if c.action == action) for action in "+~-"}


def make_plan(
    desired: DesiredState, kernel: KernelReader, ledger: Ledger, scope: frozenset[str | None] | None = None
) -> Plan:
    """Raises ConfigError when the files ask for something the kernel's present
    state forbids (a name taken by a foreign link, a gateway out of reach), and
    ApplyError when the kernel's state cannot be read.
    With a `scope`, only those namespaces (None: the host) are planned: what the
    desired state, the kernel and the ledger hold elsewhere is not looked at."""
    if scope is not None:
        desired = desired.within(scope)
    ctx = PlanContext(desired=desired, kernel=kernel, ledger=ledger, scope=scope)
    changes: list[Change] = []
    notes: list[Note] = []
    try:
        kernel.read_ahead(ctx.managed_netns())  # every kind reads each of them
        for kind in REGISTRY:
            planned = kind.plan(ctx)
            changes.extend(planned.changes)
            notes.extend(planned.notes)
            # what this kind decided, handed on to the kinds after it
            ctx = replace(ctx, decided=ctx.decided | planned.decided)
    except (KernelRefused, OSError) as error:
        raise ApplyError(f"could not read the kernel's state: {error}") from error
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return Plan(tuple(changes), tuple(notes))


def scope_of_edit(before: DesiredState, after: DesiredState) -> frozenset[str | None]:
    """The namespaces whose desired objects differ between two generations: where
    a pass from a kernel that matched `before` has anything to do for `after`.
    A link reaches into a second namespace too: a veth's peer is planned with it,
    and a link with a parent is made beside the parent, in the host."""
    scope: set[str | None] = set()
    for bucket in fields(DesiredState):
        if bucket.name == "files":
            continue
        old, new = getattr(before, bucket.name), getattr(after, bucket.name)
        if old == new:
            continue
        for obj in set(old).symmetric_difference(new):
            if isinstance(obj, Namespace):
                scope.add(obj.name)
                continue
            scope.add(obj.netns)
            if isinstance(obj, Link) and obj.peer_name is not None:
                scope.add(obj.peer_netns)
            if isinstance(obj, Link) and obj.parent is not None:
                scope.add(None)
    return frozenset(scope)
