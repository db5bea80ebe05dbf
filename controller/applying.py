"""Applying: runs a plan's steps in phase order through the kernel facade,
keeps the ledger in step with what was done, logs one event per change, and
verifies by planning again. Called by the cli and the daemon.

Rollback of a pass that fails part way is not done here yet: the failing step is
reported and the ledger keeps what was done, so the next pass converges."""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from netlab.controller.backends.kernel import Kernel
from netlab.controller.backends.netlink import KernelRefused
from netlab.controller.changes import Change, Step
from netlab.controller.planning import Plan, make_plan
from netlab.state.errors import ApplyError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, netns_label

# Test-only: the step of that index (from 0) in every pass fails as if the kernel
# had refused it, so tests can prove that each step's failure is rolled back.
FAULT_VARIABLE = "NETLAB_TEST_FAIL_STEP"


def _injected_fault() -> int | None:
    value = os.environ.get(FAULT_VARIABLE)
    return int(value) if value and value.lstrip("-").isdigit() else None


class NotVerified(ApplyError):
    """Every step was done, but planning again still finds differences (in
    `remaining`): the kernel did not take a change as asked, or something else
    changed it meanwhile (the daemon tells the two apart by trying once more)."""

    def __init__(self, message: str, remaining: tuple[Change, ...] = ()) -> None:
        super().__init__(message)
        self.remaining = remaining


# an object as the daemon's back-off names it: (kind, key)
Held = frozenset[tuple[str, tuple[Any, ...]]]


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    duration_ms: float


def apply_plan(plan: Plan, kernel: Kernel, ledger: Ledger, log: Any) -> None:
    """Runs every step; a change is entered in (or struck from) the ledger once
    all its steps are done. If a step fails, the steps done so far are undone in
    reverse order and the ledger is put back as it was; what could not be undone
    is named in the error and left in the ledger for the next pass to finish.
    The ledger is saved whatever happens."""
    steps_left = Counter({id(change): len(change.steps) for change in plan.changes})
    spent: dict[int, float] = {id(change): 0.0 for change in plan.changes}
    before = ledger.snapshot()
    done: list[Step] = []
    _record_intent(plan, ledger)
    if any(change.kind == "nat" and change.steps for change in plan.changes):
        kernel.prepare_nat_changes()
    try:
        for change in plan.changes:
            if not change.steps:
                _account(change, ledger, log, 0.0)
        fail_at = _injected_fault()
        for index, (change, step) in enumerate(plan.steps()):
            began = time.monotonic()
            try:
                if index == fail_at:
                    raise KernelRefused(step.describe, errno.EIO, f"fault injected by {FAULT_VARIABLE} at step {index}")
                step.run(kernel)
            except (KernelRefused, OSError) as error:
                failure = f"{change}: could not {step.describe}: {error}"
                if change.origin:
                    failure += f" (declared at {change.origin})"
                raise ApplyError(failure + "\n" + _roll_back(done, kernel, ledger, before, log)) from error
            done.append(step)
            spent[id(change)] += time.monotonic() - began
            steps_left[id(change)] -= 1
            if steps_left[id(change)] == 0:
                _account(change, ledger, log, spent[id(change)])
    finally:
        # what the writes touched is read again; the rest is as it was
        kernel.forget_written()
        ledger.save()


def _record_intent(plan: Plan, ledger: Ledger) -> None:
    """Enters everything the pass is about to create into the ledger, and saves
    it, before the first kernel write: a process killed mid-pass leaves no
    object that the next pass does not know as netlab's (namespaces and
    addresses carry no kernel marker), and a sysctl's original value is on disk
    before it is overwritten."""
    intended = [c for c in plan.changes if c.action != "-" and c.record is not None and not ledger.owns(c.kind, c.key)]
    for change in intended:
        ledger.record(change.kind, change.key, change.record)
    if intended:
        ledger.save()


def _roll_back(
    done: list[Step], kernel: Kernel, ledger: Ledger, before: Any, log: Any
) -> str:
    """Undoes the steps of a failed pass, newest first. Returns what to tell the
    operator: that everything was undone, or which steps could not be."""
    left: list[str] = []
    for step in reversed(done):
        if step.irreversible:
            left.append(f"{step.describe}: cannot be undone ({step.irreversible})")
            continue
        if step.undo is None:
            continue
        try:
            step.undo(kernel)
        except (KernelRefused, OSError) as error:
            left.append(f"{step.describe}: undo failed: {error}")
            log.error("undo failed", step=step.describe, error=str(error))
    if not left:
        ledger.restore(before)
        log.warning("pass rolled back", steps_undone=len(done))
        return f"The {len(done)} steps done before it were undone; the previous state stays in force."
    log.error("pass rolled back only in part", left=left)
    return (
        "Rolled back in part; the next pass will finish the job. Not undone:\n"
        + "\n".join(f"  {line}" for line in left)
    )


def _account(change: Change, ledger: Ledger, log: Any, seconds: float) -> None:
    if change.action == "-":
        ledger.forget(change.kind, change.key)
        if change.kind == "namespace":
            ledger.forget_netns(change.name)
        if change.kind == "link":
            for key in list(ledger.keys("address")):
                if key[:2] == change.key:
                    ledger.forget("address", key)
    elif change.record is not None and not ledger.owns(change.kind, change.key):
        ledger.record(change.kind, change.key, change.record)
    log.info(
        "change applied",
        netns=netns_label(change.netns),
        kind=change.kind,
        name=change.name,
        action=change.action,
        detail=str(change),
        duration_ms=round(seconds * 1000, 2),
    )


def reconcile(
    desired: DesiredState,
    kernel: Kernel,
    ledger: Ledger,
    log: Any,
    scope: frozenset[str | None] | None = None,
    hold: Held = frozenset(),
) -> ApplyResult:
    """One pass: plan, apply, verify (of the namespaces in `scope`, when given;
    the objects in `hold`, which the daemon backs off from, are left alone).
    Raises ConfigError (refused plan) or ApplyError (failed step, or a kernel
    that does not show what was applied)."""
    began = time.monotonic()
    plan = _without(make_plan(desired, kernel, ledger, scope), hold)
    if plan:
        apply_plan(plan, kernel, ledger, log)
        plan = plan.done()  # the writes' closures go before verifying reads again
        verify(desired, kernel, ledger, scope, hold)
    return ApplyResult(plan, (time.monotonic() - began) * 1000)


def verify(
    desired: DesiredState,
    kernel: Kernel,
    ledger: Ledger,
    scope: frozenset[str | None] | None = None,
    hold: Held = frozenset(),
) -> None:
    """The kernel is right when a fresh plan is empty. The namespaces and files
    the pass wrote were forgotten after its writes, so they are read anew; what
    it did not touch is not read again."""
    remaining = _without(make_plan(desired, kernel, ledger, scope), hold).done()
    if remaining:
        raise NotVerified(
            "the kernel does not show what was applied; still different:\n"
            + "\n".join(f"  {change}" for change in remaining.changes),
            remaining.changes,
        )


def _without(plan: Plan, hold: Held) -> Plan:
    if not hold:
        return plan
    return Plan(tuple(change for change in plan.changes if (change.kind, change.key) not in hold))
