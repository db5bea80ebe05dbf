"""Applying: runs a plan's steps in phase order through the kernel facade,
keeps the ledger in step with what was done, logs one event per change, and
verifies by planning again. Called by the cli and the daemon.

A pass that fails part way (a refused step, a bug of ours in a step, or a
kernel that does not show what was applied) is rolled back: its steps are
undone newest first, and the ledger keeps only what is still in the kernel."""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.controller.backends.kernel import Kernel
from netlab.controller.changes import Change, Step
from netlab.controller.planning import Plan, make_plan
from netlab.state.errors import ApplyError, KernelRefused
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, netns_label

# Test-only: the step of that index (from 0) in every pass fails as if the kernel
# had refused it, so tests can prove that each step's failure is rolled back.
FAULT_VARIABLE = "NETLAB_TEST_FAIL_STEP"
# Test-only, "INDEX:PATH": before the step of that index, the pass creates PATH
# and waits until it is gone, so a test can change the kernel between plan and
# write (someone else's route appearing meanwhile) without a race.
PAUSE_VARIABLE = "NETLAB_TEST_PAUSE_AT_STEP"


def _injected_fault() -> int | None:
    value = os.environ.get(FAULT_VARIABLE)
    return int(value) if value and value.lstrip("-").isdigit() else None


def _injected_pause() -> tuple[int, Path] | None:
    index, _, path = os.environ.get(PAUSE_VARIABLE, "").partition(":")
    return (int(index), Path(path)) if index.isdigit() and path else None


def _pause(path: Path) -> None:
    path.touch()
    while path.exists():
        time.sleep(0.01)


class NotVerified(ApplyError):
    """Every step was done, but planning again still found differences (in
    `remaining`): the kernel did not keep a change as asked, or something else
    changed it meanwhile. The pass was rolled back (the message says how far)."""

    def __init__(self, message: str, remaining: tuple[Change, ...] = ()) -> None:
        super().__init__(message)
        self.remaining = remaining


# an object as the daemon's back-off names it: (kind, key)
Held = frozenset[tuple[str, tuple[Any, ...]]]


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    duration_ms: float


@dataclass
class Applied:
    """What a pass did, to undo it: each step carried out with its change, in the
    order they ran, and the ledger as it was before the pass."""

    before: dict[str, Any]
    done: list[tuple[Change, Step]] = field(default_factory=list)

    def roll_back(self, kernel: Kernel, ledger: Ledger, log: Any) -> str:
        """Undoes the steps, newest first, and leaves in the ledger what the
        kernel still holds: the entry of a change none of whose writes remains
        is as before the pass (an entry recorded ahead of a write never done, or
        undone, goes). A change whose undo failed counts as made; one of which
        only a deletion stays (it cannot be undone: a link replaced, whose new
        link was undone) counts as removed. Returns what to tell the operator."""
        left: list[str] = []
        undo_failed: list[Change] = []
        deleted: list[Change] = []
        for change, step in reversed(self.done):
            if step.irreversible:
                left.append(f"{step.describe}: cannot be undone ({step.irreversible})")
                deleted.append(change)
                continue
            if step.undo is None:
                continue  # nothing of its own to undo (a fresh link's settings go with it)
            try:
                step.undo(kernel)
            except (KernelRefused, OSError) as error:
                left.append(f"{step.describe}: undo failed: {error}")
                undo_failed.append(change)
                log.error("undo failed", step=step.describe, error=str(error))
        ledger.restore(self.before)
        for change in _once(reversed(undo_failed)):
            _enter(change, ledger)
        for change in _once(reversed(deleted)):
            if not any(change is other for other in undo_failed):
                _enter(change, ledger, gone=True)
        if not left:
            log.warning("pass rolled back", steps_undone=len(self.done))
            return f"The {len(self.done)} steps done before it were undone; the previous state stays in force."
        log.error("pass rolled back only in part", left=left)
        return (
            "Rolled back in part; the next pass will finish the job. Not undone:\n"
            + "\n".join(f"  {line}" for line in left)
        )


def apply_plan(plan: Plan, kernel: Kernel, ledger: Ledger, log: Any, applied: Applied | None = None) -> Applied:
    """Runs every step; a change is entered in (or struck from) the ledger once
    all its steps are done. If a step fails, the steps done so far are undone in
    reverse order (`Applied.roll_back`) and ApplyError says what failed and what
    could not be undone; an error of any other type is raised as it is, after
    the same rollback. The ledger is saved whatever happens. Returns what was
    done, for the caller to roll back if verification fails; given `applied`
    (an earlier round of the same pass), the steps join it, and a failure
    undoes both rounds."""
    steps_left = Counter({id(change): len(change.steps) for change in plan.changes})
    spent: dict[int, float] = {id(change): 0.0 for change in plan.changes}
    if applied is None:
        applied = Applied(ledger.snapshot())
    _record_intent(plan, ledger)
    if any(change.kind == "nat" and change.steps for change in plan.changes):
        kernel.prepare_nat_changes()
    try:
        for change in plan.changes:
            if not change.steps:
                _account(change, ledger, log, 0.0)
        fail_at = _injected_fault()
        pause = _injected_pause()
        for index, (change, step) in enumerate(plan.steps()):
            if pause is not None and index == pause[0]:
                _pause(pause[1])
            began = time.monotonic()
            try:
                if index == fail_at:
                    raise KernelRefused(step.describe, errno.EIO, f"fault injected by {FAULT_VARIABLE} at step {index}")
                step.run(kernel)
            except (KernelRefused, OSError) as error:
                failure = f"{change}: could not {step.describe}: {error}"
                if change.origin:
                    failure += f" (declared at {change.origin})"
                raise ApplyError(failure + "\n" + applied.roll_back(kernel, ledger, log)) from error
            except Exception:
                # a bug of ours, mid-pass: the kernel is put back before it is reported
                log.error("step failed unexpectedly", step=step.describe, change=str(change))
                applied.roll_back(kernel, ledger, log)
                raise
            applied.done.append((change, step))
            spent[id(change)] += time.monotonic() - began
            steps_left[id(change)] -= 1
            if steps_left[id(change)] == 0:
                _account(change, ledger, log, spent[id(change)])
    finally:
        ledger.save()
    return applied


def _record_intent(plan: Plan, ledger: Ledger) -> None:
    """Enters everything the pass is about to create into the ledger, and saves
    it, before the first kernel write: a process killed mid-pass leaves no
    object that the next pass does not know as netlab's (namespaces and
    addresses carry no kernel marker), and a sysctl's original value is on disk
    before it is overwritten. A pass that fails takes back what it did not make
    (`Applied.roll_back`)."""
    intended = [c for c in plan.changes if c.action != "-" and _tells_the_ledger(c, ledger)]
    for change in intended:
        _learn(change, ledger)
    if intended:
        ledger.save()


def _tells_the_ledger(change: Change, ledger: Ledger) -> bool:
    """Whether the change's record says something the ledger does not know: the
    object is not in it, or the record has keys its entry lacks (the original
    of a second attribute of a `device`)."""
    if change.record is None:
        return False
    recorded = ledger.get(change.kind, change.key)
    return recorded is None or not change.record.keys() <= recorded.keys()


def _drop(change: Change, ledger: Ledger) -> None:
    """Takes out of the change's ledger entry the keys it says are done with,
    after its steps (a write-ahead never drops: a pass cut short keeps them)."""
    recorded = ledger.get(change.kind, change.key)
    if recorded is not None and any(key in recorded for key in change.record_drops):
        ledger.record(change.kind, change.key, {k: v for k, v in recorded.items() if k not in change.record_drops})


def _learn(change: Change, ledger: Ledger) -> None:
    """Adds the change's record to the ledger; what the ledger holds already (an
    original value) is kept."""
    assert change.record is not None
    ledger.record(change.kind, change.key, {**change.record, **(ledger.get(change.kind, change.key) or {})})


def _account(change: Change, ledger: Ledger, log: Any, seconds: float) -> None:
    _enter(change, ledger)
    log.info(
        "change applied",
        netns=netns_label(change.netns),
        kind=change.kind,
        name=change.name,
        action=change.action,
        detail=str(change),
        duration_ms=round(seconds * 1000, 2),
    )


def _once(changes: Iterable[Change]) -> list[Change]:
    """Each change once (a NAT batch's step belongs to several), in order."""
    seen: list[Change] = []
    for change in changes:
        if not any(change is other for other in seen):
            seen.append(change)
    return seen


def _enter(change: Change, ledger: Ledger, gone: bool = False) -> None:
    """What the ledger learns from a change made: a removed object (or one that
    is `gone`, deleted to be made anew) is no longer netlab's, with what went
    with it; a created one is."""
    if change.action == "-" or gone:
        ledger.forget(change.kind, change.key)
        if change.kind == "namespace":
            ledger.forget_netns(change.name)
        if change.kind == "link":
            for key in list(ledger.keys("address")):
                if key[:2] == change.key:
                    ledger.forget("address", key)
    else:
        if _tells_the_ledger(change, ledger):
            _learn(change, ledger)
        _drop(change, ledger)


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
    Raises ConfigError (refused plan) or ApplyError (failed step, rolled back),
    NotVerified among them: the kernel did not show what was applied, and the
    pass was rolled back like a refused step."""
    began = time.monotonic()
    plan = _without(make_plan(desired, kernel, ledger, scope), hold)
    if plan:
        apply_and_verify(plan, desired, kernel, ledger, log, scope, hold)
        plan = plan.done()
    return ApplyResult(plan, (time.monotonic() - began) * 1000)


def apply_and_verify(
    plan: Plan,
    desired: DesiredState,
    kernel: Kernel,
    ledger: Ledger,
    log: Any,
    scope: frozenset[str | None] | None = None,
    hold: Held = frozenset(),
) -> None:
    """Applies a plan made for `desired` and verifies it; a pass that does not
    verify is rolled back (NotVerified). `reconcile` plans first; `netlab
    destroy` applies the plan the operator was shown and agreed to."""
    applied = apply_plan(plan, kernel, ledger, log)
    # the run closures go when the caller lets go of the plan; the undo
    # closures of what was done stay until the pass is verified
    try:
        try:
            verify(desired, kernel, ledger, scope, hold)
        except NotVerified as first:
            # Someone else may have changed what the pass had just written
            # (an editor saving a managed file, a script racing it): the
            # differences are made once more, in the same pass. What the
            # kernel does not keep as asked stays different, and only then
            # is the whole pass rolled back.
            remaining = [str(change) for change in first.remaining]
            log.info("the kernel changed while the pass ran: making the differences once more", remaining=remaining)
            apply_plan(_without(make_plan(desired, kernel, ledger, scope), hold), kernel, ledger, log, applied)
            verify(desired, kernel, ledger, scope, hold)
    except NotVerified as error:
        log.error("pass not verified: rolling it back", remaining=[str(change) for change in error.remaining])
        try:
            outcome = applied.roll_back(kernel, ledger, log)
        finally:
            ledger.save()
        raise NotVerified(f"{error}\n{outcome}", error.remaining) from None


def verify(
    desired: DesiredState,
    kernel: Kernel,
    ledger: Ledger,
    scope: frozenset[str | None] | None = None,
    hold: Held = frozenset(),
) -> None:
    """The kernel is right when a fresh plan is empty; else NotVerified, with
    the changes still to make (without their steps). The namespaces and files
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
