"""Applying: runs a plan's steps in phase order through the kernel facade,
keeps the ledger in step with what was done, logs one event per change, and
verifies by planning again. Called by the cli and the daemon.

A pass that fails part way is rolled back, whatever made it fail: a refused
step, a kernel that does not show what was applied, a read refused while
verifying, a bug of ours in a step or an undo, an interrupt (Ctrl-C). Its steps
are undone newest first, the ledger keeps only what is still in the kernel, and
then the error goes on: a refusal as ApplyError, anything else as it was."""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from netlab.controller.backends.kernel import Kernel
from netlab.controller.changes import Change, Step
from netlab.controller.checks import Outcome, newly_failing, run_checks
from netlab.controller.planning import Plan, make_plan
from netlab.state.errors import ApplyError, KernelRefused, NetlabError
from netlab.state.ledger import Entries, Entry, Key, Ledger
from netlab.state.model import Check, DesiredState, netns_label

if TYPE_CHECKING:
    from netlab.controller.logs import Log  # a sibling layer: only its type

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
    changed it meanwhile. The pass was rolled back (the message says how far).
    It stays here, not in state/errors: what it carries are the controller's
    changes, and state/ does not import the controller."""

    def __init__(self, message: str, remaining: tuple[Change, ...] = ()) -> None:
        super().__init__(message)
        self.remaining = remaining


class CheckBroken(ApplyError):
    """A pass after which a check fails that passed before it: rolled back
    (the message says how far), the checks that broke named with their files."""

    def __init__(self, message: str, broken: tuple[Outcome, ...]) -> None:
        super().__init__(message)
        self.broken = broken


@dataclass(frozen=True)
class Checking:
    """The declared checks around a pass: run before and after one that changes
    something (`run`: `checks.run_checks`, a fake in unit tests); with
    `rollback`, a pass that breaks a check that passed before is undone."""

    run: Callable[[Sequence[Check]], list[Outcome]] = run_checks
    rollback: bool = True


class _StepRefused(ApplyError):
    """A step the kernel (or the system) refused, named with its change; never
    leaves `apply_plan`, which adds what the rollback did."""


# an object as the daemon's back-off names it: (kind, key)
Held = frozenset[tuple[str, Key]]


@dataclass(frozen=True)
class Pass:
    """What a reconcile pass works with: the generation to make true, the
    kernel and ledger it reads and writes, its log, the namespaces it looks at
    (`scope`, None for all) and the objects it leaves alone (`hold`, which the
    daemon backs off from)."""

    desired: DesiredState
    kernel: Kernel
    ledger: Ledger
    log: Log
    scope: frozenset[str | None] | None = None
    hold: Held = frozenset()

    def plan(self) -> Plan:
        """What differs now, of the scope, without the held objects."""
        return _without(make_plan(self.desired, self.kernel, self.ledger, self.scope), self.hold)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    duration_ms: float
    checks: tuple[Outcome, ...] = ()  # after the pass, when checks were asked for


@dataclass
class Applied:
    """What a pass did, to undo it: each step carried out with the changes it
    did (several for a batch: NAT rules, link deletions), in the order they
    ran, and the ledger as it was before the pass; once rolled back, what the
    rollback told (a second call does nothing more)."""

    before: Entries
    done: list[tuple[tuple[Change, ...], Step]] = field(default_factory=list)
    outcome: str | None = None

    def roll_back(self, kernel: Kernel, ledger: Ledger, log: Log) -> str:
        """Undoes the steps, newest first, and leaves in the ledger what the
        kernel still holds: the entry of a change none of whose writes remains
        is as before the pass (an entry recorded ahead of a write never done, or
        undone, goes). A change whose undo failed counts as made; one of which
        only a deletion stays (it cannot be undone: a link replaced, whose new
        link was undone) counts as removed. An undo that raises anything else (a
        bug of ours, an interrupt) counts as failed too; the other steps are
        undone all the same, and it is raised once the ledger is right. Returns
        what to tell the operator."""
        if self.outcome is not None:
            return self.outcome
        left: list[str] = []
        undo_failed: list[Change] = []
        deleted: list[Change] = []
        unexpected: BaseException | None = None
        for changes, step in reversed(self.done):
            if step.irreversible:
                left.append(f"{step.describe}: cannot be undone ({step.irreversible})")
                deleted += changes
                continue
            if step.undo is None:
                continue  # nothing of its own to undo (a fresh link's settings go with it)
            try:
                step.undo(kernel)
            except BaseException as error:  # noqa: BLE001 - raised below, once the rest is undone
                left.append(f"{step.describe}: undo failed: {str(error) or type(error).__name__}")
                undo_failed += changes
                log.error("undo failed", step=step.describe, error=repr(error))
                if not isinstance(error, (KernelRefused, OSError)):
                    unexpected = unexpected or error
        _settle(ledger, self.before, undo_failed, deleted)
        self.outcome = _told(log, left, len(self.done))
        if unexpected is not None:
            raise unexpected
        return self.outcome


def _settle(ledger: Ledger, before: Entries, undo_failed: list[Change], deleted: list[Change]) -> None:
    """The ledger after a rollback: as before the pass, but for the changes
    whose undo failed (still made) and those of which only a deletion stays."""
    ledger.restore(before)
    for change in _once(reversed(undo_failed)):
        _enter(change, ledger)
    for change in _once(reversed(deleted)):
        if not any(change is other for other in undo_failed):
            _enter(change, ledger, gone=True)


def _told(log: Log, left: list[str], undone: int) -> str:
    if not left:
        log.warning("pass rolled back", steps_undone=undone)
        return f"The {undone} steps done before it were undone; the previous state stays in force."
    log.error("pass rolled back only in part", left=left)
    return "Rolled back in part; the next pass will finish the job. Not undone:\n" + "\n".join(
        f"  {line}" for line in left
    )


def apply_plan(plan: Plan, kernel: Kernel, ledger: Ledger, log: Log, applied: Applied | None = None) -> Applied:
    """Runs every step; a change is entered in (or struck from) the ledger once
    all its steps are done. Whatever fails part way (a refused step, a bug of
    ours, an interrupt), the steps done so far are undone in reverse order and
    the ledger is put back (`Applied.roll_back`): a refused step raises
    ApplyError saying what failed and what could not be undone; anything else
    is raised as it is, after the rollback. The ledger is saved whatever
    happens. Returns what was done, for the caller to roll back if verification
    fails; given `applied` (an earlier round of the same pass), the steps join
    it, and a failure undoes both rounds."""
    if applied is None:
        applied = Applied(ledger.snapshot())
    try:
        _record_intent(plan, ledger)
        if any(change.kind == "nat" and change.steps for change in plan.changes):
            kernel.prepare_nat_changes()
        _run_steps(plan, kernel, ledger, log, applied)
    except _StepRefused as error:
        raise ApplyError(f"{error}\n{applied.roll_back(kernel, ledger, log)}") from error.__cause__
    except BaseException as error:
        if not isinstance(error, (NetlabError, OSError)):
            # a bug of ours (or an interrupt) mid-pass: the kernel is put back before it is reported
            log.error("pass failed unexpectedly: rolling it back", error=repr(error))
        applied.roll_back(kernel, ledger, log)
        raise
    finally:
        ledger.save()
    return applied


def _run_steps(plan: Plan, kernel: Kernel, ledger: Ledger, log: Log, applied: Applied) -> None:
    """The plan's steps in phase order, each added to `applied` once done; a
    step refused raises _StepRefused (and a test's injected fault as one)."""
    steps_left = Counter({id(change): len(change.steps) for change in plan.changes})
    spent: dict[int, float] = {id(change): 0.0 for change in plan.changes}
    for change in plan.changes:
        if not change.steps:
            _account(change, ledger, log, 0.0)
    fail_at = _injected_fault()
    pause = _injected_pause()
    for index, (step, changes) in enumerate(plan.batches()):
        if pause is not None and index == pause[0]:
            _pause(pause[1])
        began = time.monotonic()
        try:
            if index == fail_at:
                raise KernelRefused(step.describe, errno.EIO, f"fault injected by {FAULT_VARIABLE} at step {index}")
            step.run(kernel)
        except (KernelRefused, OSError) as error:
            failure = f"{_named(changes)}: could not {step.describe}: {error}"
            if len(changes) == 1 and changes[0].origin:
                failure += f" (declared at {changes[0].origin})"
            raise _StepRefused(failure) from error
        seconds = time.monotonic() - began
        applied.done.append((tuple(changes), step))
        for change in changes:
            spent[id(change)] += seconds / len(changes)
            steps_left[id(change)] -= 1
            if steps_left[id(change)] == 0:
                _account(change, ledger, log, spent[id(change)])


def _named(changes: list[Change]) -> str:
    """The changes of a refused write, as its error names them."""
    if len(changes) <= 3:
        return "; ".join(str(change) for change in changes)
    return f"{changes[0]} and {len(changes) - 1} more"


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
        kept = {k: v for k, v in recorded.items() if k not in change.record_drops}
        ledger.record(change.kind, change.key, cast(Entry, kept))


def _learn(change: Change, ledger: Ledger) -> None:
    """Adds the change's record to the ledger; what the ledger holds already (an
    original value) is kept."""
    assert change.record is not None
    entry = change.record.copy()
    entry.update(ledger.get(change.kind, change.key) or {})
    ledger.record(change.kind, change.key, entry)


def _account(change: Change, ledger: Ledger, log: Log, seconds: float) -> None:
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
    log: Log,
    scope: frozenset[str | None] | None = None,
    hold: Held = frozenset(),
    checking: Checking | None = None,
) -> ApplyResult:
    """One pass: plan, apply, verify (of the namespaces in `scope`, when given;
    the objects in `hold`, which the daemon backs off from, are left alone).
    With `checking`, the declared checks run before a pass that changes
    something and after every pass (their outcomes in the result). Raises
    ConfigError (refused plan) or ApplyError (failed step, rolled back),
    NotVerified among them: the kernel did not show what was applied, and the
    pass was rolled back like a refused step; CheckBroken likewise when the
    pass broke a check."""
    began = time.monotonic()
    work = Pass(desired, kernel, ledger, log, scope, hold)
    plan = work.plan()
    checks = desired.checks if checking is not None else ()
    after: list[Outcome] = []
    if plan:
        before = checking.run(checks) if checking is not None and checks and checking.rollback else []

        def gate() -> None:
            if checking is not None and checks:
                after[:] = checking.run(checks)
                broken = newly_failing(before, after)
                if broken:
                    # once more, the broken ones alone: a neighbour entry or an
                    # address still in duplicate address detection settles
                    again = {o.check.key: o for o in checking.run([o.check for o in broken])}
                    after[:] = [again.get(o.check.key, o) for o in after]
                    broken = newly_failing(before, after)
                if broken:
                    raise CheckBroken(
                        "the pass broke checks that passed before it:\n"
                        + "\n".join(f"  {outcome}" for outcome in broken),
                        tuple(broken),
                    )

        apply_and_verify(plan, work, gate)
        plan = plan.done()
    elif checking is not None and checks:
        after = checking.run(checks)
    return ApplyResult(plan, (time.monotonic() - began) * 1000, tuple(after))


def apply_and_verify(plan: Plan, work: Pass, gate: Callable[[], None] | None = None) -> None:
    """Applies a plan made for `work.desired` and verifies it, then runs the
    `gate` (the declared checks); whatever fails after the steps (a pass that
    does not verify, a read refused or a bug while verifying, a check the pass
    broke) rolls the whole pass back, then is raised: NotVerified, CheckBroken,
    an ApplyError saying what could not be verified, or the error as it is.
    `reconcile` plans first; `netlab destroy` applies the plan the operator was
    shown and agreed to."""
    applied = apply_plan(plan, work.kernel, work.ledger, work.log)
    # the run closures go when the caller lets go of the plan; the undo
    # closures of what was done stay until the pass is verified
    try:
        _verify_or_make_again(work, applied)
        if gate is not None:
            gate()
    except BaseException as error:
        if applied.outcome is not None:
            raise  # a second round that failed, rolled back with the first
        if isinstance(error, NotVerified):
            work.log.error("pass not verified: rolling it back", remaining=[str(change) for change in error.remaining])
        elif isinstance(error, CheckBroken):
            for broken in error.broken:
                work.log.error(
                    "check broken by the pass: rolling it back",
                    check=str(broken.check),
                    declared=str(broken.check.origin),
                    detail=broken.detail,
                )
        else:
            work.log.error("pass could not be verified: rolling it back", error=repr(error))
        try:
            outcome = applied.roll_back(work.kernel, work.ledger, work.log)
        finally:
            work.ledger.save()
        if isinstance(error, NotVerified):
            raise NotVerified(f"{error}\n{outcome}", error.remaining) from None
        if isinstance(error, CheckBroken):
            raise CheckBroken(f"{error}\n{outcome}", error.broken) from None
        if isinstance(error, ApplyError):
            raise ApplyError(f"could not verify the pass: {error}\n{outcome}") from error
        raise


def _verify_or_make_again(work: Pass, applied: Applied) -> None:
    """Someone else may have changed what the pass had just written (an editor
    saving a managed file, a script racing it): the differences are made once
    more, in the same pass. What the kernel does not keep as asked stays
    different (NotVerified)."""
    try:
        verify(work)
    except NotVerified as first:
        remaining = [str(change) for change in first.remaining]
        work.log.info("the kernel changed while the pass ran: making the differences once more", remaining=remaining)
        apply_plan(work.plan(), work.kernel, work.ledger, work.log, applied)
        verify(work)


def verify(work: Pass) -> None:
    """The kernel is right when a fresh plan is empty; else NotVerified, with
    the changes still to make (without their steps). Each write made what it
    touched stale as it went out (`backends.kernel.Touched`), so that is read
    anew; what the pass did not touch is not read again."""
    remaining = work.plan().done()
    if remaining:
        raise NotVerified(
            "the kernel does not show what was applied; still different:\n"
            + "\n".join(f"  {change}" for change in remaining.changes),
            remaining.changes,
        )


def _without(plan: Plan, hold: Held) -> Plan:
    if not hold:
        return plan
    return Plan(tuple(change for change in plan.changes if (change.kind, change.key) not in hold), plan.notes)
