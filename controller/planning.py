"""Planning: compares the desired state with what the kernel shows and the ledger
owns, kind by kind, and returns the changes in the order they will be applied.
Called by the cli (plan, apply, destroy), applying (verification) and the daemon."""

from __future__ import annotations

from dataclasses import dataclass

from netlab.controller.changes import Change, Step
from netlab.controller.kinds import REGISTRY
from netlab.controller.kinds.contract import KernelReader, PlanContext
from netlab.state.errors import ConfigError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def steps(self) -> list[tuple[Change, Step]]:
        """Every kernel write of the plan, in phase order; within a phase, in the
        order the kinds planned them (stable sort)."""
        pairs = [(change, step) for change in self.changes for step in change.steps]
        return sorted(pairs, key=lambda pair: pair[1].phase)

    def counts(self) -> dict[str, int]:
        return {action: sum(1 for c in self.changes if c.action == action) for action in "+~-"}


def make_plan(desired: DesiredState, kernel: KernelReader, ledger: Ledger) -> Plan:
    """Raises ConfigError when the files ask for something the kernel's present
    state forbids (a name taken by a foreign link, a gateway out of reach)."""
    ctx = PlanContext(desired=desired, kernel=kernel, ledger=ledger)
    changes: list[Change] = []
    for kind in REGISTRY:
        changes.extend(kind.plan(ctx))
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return Plan(tuple(changes))
