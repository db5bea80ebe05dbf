"""The daemon's passes: what one pass plans and what the daemon learns from it.
`Passes.run` decides the scope (after an edit, only the namespaces where the
files changed, when the last pass converged; after namespaces were deleted by
hand, those and the namespaces their links reach; else everything), what the
kernel facade forgets before it (everything at a start, reload or resync, and
after a failure; else what was heard changing), and what the outcome means for
the health: drift repaired, objects backed off (fought over, or never verified),
failing. The kernel is anything with the `DaemonKernel` methods: the daemon
passes `backends.kernel.Kernel` and `applying.reconcile`, the unit tests fakes.
Used by daemon.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from netlab.controller import trying
from netlab.controller.applying import ApplyResult, CheckBroken, Checking, Held, NotVerified
from netlab.controller.backing_off import Backoff, Hold
from netlab.controller.checks import Outcome
from netlab.controller.generations import Generation
from netlab.controller.guards import locked
from netlab.controller.health import Health, PassJson, now_utc
from netlab.controller.kinds import dns, hosts
from netlab.controller.kinds.managed_files import etc_path
from netlab.controller.planning import scope_of_edit
from netlab.state.errors import ApplyError, ConfigError, NetlabError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, netns_label

Reason = Literal["start", "config", "reload", "drift", "resync"]
Scope = frozenset[str | None]
# passes someone asked for (the files changed, a start, a reload): always reported
ASKED_PASSES = ("start", "config", "reload")
# passes for the generation in force: what they change is drift repaired
REPAIR_PASSES = ("drift", "resync")
# passes that read everything again: the safety net for what makes no event
# (NAT tables, sysctls) and for events the kernel dropped
FRESH_PASSES = ("start", "reload", "resync")


class DaemonKernel(Protocol):
    """What the daemon asks of the kernel facade between passes (the pass itself
    hands it to `reconcile`, which asks for more: see `Passes`)."""

    def forget_reads(self) -> None: ...
    def forget_heard(self) -> None: ...
    def heard_changing(self) -> frozenset[str | None]: ...
    def replaced_namespaces(self) -> list[str]: ...
    def drop_namespaces(self, names: Iterable[str]) -> frozenset[str | None]: ...
    def close(self) -> None: ...


K = TypeVar("K", bound=DaemonKernel)
# `applying.reconcile`: (desired, kernel, ledger, log, scope, hold, checking)
Reconcile = Callable[[DesiredState, K, Ledger, Any, "Scope | None", Held, "Checking | None"], ApplyResult]


class Passes(Generic[K]):
    """One daemon's passes over one kernel facade, which lives from pass to pass
    and listens in what it reads: a pass reads again what was heard changing
    and trusts the rest."""

    def __init__(
        self,
        kernel: K,
        reconcile: Reconcile[K],
        state_dir: Path,
        health: Health,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kernel = kernel
        self.reconcile = reconcile
        self.state_dir = state_dir
        self.health = health
        self.log = log
        self.clock = clock
        self.backoff = Backoff()  # objects left alone for a while: fought over, or never verified
        self.objects_owned = 0
        self.read_everything = True
        # namespaces deleted by hand, to be planned by the next drift pass alone
        # (`_forget_replaced_namespaces`), and whether a change no namespace's
        # events name (a managed file edited) came since the last pass
        self.repair_scope: Scope | None = None
        self.unplaced_drift = False
        self.ledger: Ledger | None = None  # kept while the file is as it left it
        # the desired state the kernel matched after the last pass that succeeded:
        # an edit's pass plans only the namespaces where the new one differs
        self.converged: DesiredState | None = None
        # the declared checks: run around the passes that change something (None:
        # not at all); only a pass someone asked for (a new generation, a reload,
        # the start) is rolled back for a check it broke, never a drift repair
        self.checking: Checking | None = None
        # the last pass broke a check and was rolled back: the daemon rejects its generation
        self.broken: CheckBroken | None = None
        # the generation of the last pass that succeeded: what a broken one goes back to
        self.clean: Generation | None = None
        # the last pass found a `netlab try` written down: it made no change
        self.try_found: trying.Found | None = None
        # asked under the state lock before each pass: whether the generation in
        # force is stale (files held back were applied on purpose meanwhile);
        # then the pass changes nothing and `reread` says the files are to be read
        self.stale: Callable[[], bool] = lambda: False
        self.reread = False

    def run(self, reason: Reason, generation: Generation) -> bool:
        """One pass with the generation in force; False when it failed (the
        previous state stays, and the health says why)."""
        log = self.log.bind(generation=generation.number, reason=reason)
        desired = generation.desired
        self._forget_replaced_namespaces(desired)
        scope = self._scope_of_pass(reason, desired)
        self.converged = None  # until this pass succeeds
        self.broken = None
        self.try_found = None
        self.reread = False
        hold = self.backoff.held(self.clock())
        # only a new generation, after one applied cleanly, is undone for a check it
        # breaks: a start, a reload of the same files or a repair have none to go back to
        gated = reason in ASKED_PASSES and self.clean is not None and self.clean.digest != generation.digest
        try:
            result = self._reconcile(reason, desired, log, scope, hold, gated)
        except trying.TryWaiting as waiting:
            # a try began while this pass waited for the state lock: nothing was changed
            self.try_found = waiting.found
            self.ledger = None
            self.read_everything = True
            return False
        except _Stale:
            self.reread = True
            self.ledger = None
            self.read_everything = True
            return False
        except CheckBroken as error:
            # the kernel is as before the pass: the generation is rejected (daemon.py)
            self.broken = error
            self.ledger = None
            self.read_everything = True
            # the checks' outcomes stay those before the pass: the kernel is back there
            return False
        except NotVerified as error:
            # the pass made the differences twice (a change racing it is made
            # good by the second round) and was rolled back: the kernel does not
            # keep these as asked, and rewriting them at every event would never
            # end (each pass's own writes make the next one)
            for held in self.backoff.unverified(error.remaining, self.clock()):
                self._say_backing_off(log, held)
            return self._failed(log, error)
        except NetlabError as error:
            return self._failed(log, error)
        except OSError as error:
            # the state directory (the lock, the ledger) cannot be written: a full
            # disk. The pass is failed (what it did was undone or is in the ledger
            # kept in memory); the next one tries again
            return self._failed(log, ApplyError(f"could not complete the pass: {error}"))
        self.clean = generation
        self.converged = desired if not hold else None  # what was held may differ
        self._account(reason, generation.number, result, log, hold)
        if scope is None:
            # what a whole plan says beside its changes (a scoped one sees part)
            self.health.notes = [note.to_json() for note in result.plan.notes]
        return True

    def asked_again(self) -> None:
        """A new generation, a reload: what was left alone is tried again at once."""
        self.backoff.release()

    def _reconcile(
        self, reason: Reason, desired: DesiredState, log: Any, scope: Scope | None, hold: Held, gated: bool = False
    ) -> ApplyResult:
        with locked(self.state_dir):
            found = trying.look(self.state_dir)
            if found is not None:
                raise trying.TryWaiting(found)  # the daemon settles it, or waits for it
            if self.stale():
                raise _Stale
            ledger = self._current_ledger()
            self._forget_stale_reads(reason)
            checking = self.checking
            if checking is not None and not gated:
                checking = Checking(checking.run, rollback=False)  # checks told, nothing undone
            result = self.reconcile(desired, self.kernel, ledger, log, scope, hold, checking)
            self.objects_owned = ledger.count()
        if result.checks:
            self.checks_seen(result.checks, log)
        return result

    def checks_seen(self, outcomes: Iterable[Outcome], log: Any) -> None:
        """The checks' latest outcomes, in the health; one event per check whose result changed."""
        for outcome in self.health.record_checks(outcomes):
            fields = {"check": str(outcome.check), "declared": str(outcome.check.origin), "detail": outcome.detail}
            if outcome.passed:
                log.info("check passing", **fields)
            else:
                log.warning("check failing", **fields)

    def _account(self, reason: Reason, number: int, result: ApplyResult, log: Any, hold: Held) -> None:
        now = self.clock()
        self.backoff.verified(now, hold)
        changes = len(result.plan.changes)
        done: PassJson = {
            "time": now_utc(),
            "reason": reason,
            "changes": changes,
            "duration_ms": round(result.duration_ms, 1),
            "generation": number,
        }
        self.health.last_pass = done
        if changes or reason in ASKED_PASSES:
            # A pass that found nothing to do, after events (often the echo of
            # the previous pass's own writes) or on the timer, applied nothing:
            # it must not hide the edit's pass from `netlab status`.
            self.health.last_apply = done
        if reason in REPAIR_PASSES and changes:
            # the generation in force did not change: whatever the pass did undid
            # something done behind netlab's back (the resync finds what made no event)
            self.health.drift_repairs += changes
            for change in result.plan.changes:
                log.info("drift repaired", change=str(change), kind=change.kind, name=change.name)
            for held in self.backoff.repaired(result.plan.changes, now):
                self._say_backing_off(log, held)
        if self.health.rejected is None:
            # objects the kernel does not keep, left out of this pass: not healthy
            self.health.state = "failing" if self.backoff.unconverged(now) else "healthy"

    def _say_backing_off(self, log: Any, held: Hold) -> None:
        """Once per step of an object's back-off, in the journal."""
        fields = held.to_json(self.clock())
        if held.reason == "fight":
            log.warning(
                "fighting another manager: an object keeps being changed behind netlab's back; leaving it alone for a while",
                **fields,
            )
        else:
            log.warning(
                "backing off: the kernel does not keep an object as asked; leaving it alone for a while", **fields
            )

    def _failed(self, log: Any, error: NetlabError) -> bool:
        self.ledger = None
        self.health.failed(str(error), error.problems if isinstance(error, ConfigError) else ())
        log.error("reconcile failed: the previous state stays", error=str(error))
        # the next pass reads everything: what failed may have been planned
        # against something that changed without an event (NAT, files)
        self.read_everything = True
        return False

    def _scope_of_pass(self, reason: Reason, desired: DesiredState) -> Scope | None:
        """What a pass plans: after an edit, only the namespaces where the files
        changed, when the last pass left the kernel matching the generation
        before (drift elsewhere has its own pass, from its events, and the
        periodic resync plans everything). A drift pass after namespaces were
        deleted by hand plans those, the namespaces their links reach, and the
        namespaces heard changing (all that can differ from the files), unless
        something it cannot place changed too (a managed file). Otherwise
        everything (None)."""
        repair, self.repair_scope = self.repair_scope, None
        unplaced, self.unplaced_drift = self.unplaced_drift, False
        if self.converged is None or self.read_everything:
            return None
        if reason == "config":
            return scope_of_edit(self.converged, desired) | (repair or frozenset())
        if reason == "drift" and repair is not None and not unplaced:
            # events come in on another thread: one heard after this look is
            # followed by a pass of its own (it is noted after it is heard)
            return repair | self.kernel.heard_changing()
        return None

    def _current_ledger(self) -> Ledger:
        """The ledger of the last pass, unless its file changed since (a `netlab
        apply` run by hand) or that pass failed: then it is read again."""
        if self.ledger is None or not self.ledger.is_current():
            self.ledger = Ledger.load(self.state_dir)
        return self.ledger

    def _forget_stale_reads(self, reason: Reason) -> None:
        """What the kernel facade remembers from earlier passes is kept where no
        event said it changed. A start, reload or resync (and the pass after a
        failure) reads everything again."""
        if self.read_everything or reason in FRESH_PASSES:
            self.read_everything = False
            self.kernel.forget_reads()
        else:
            self.kernel.forget_heard()

    def _forget_replaced_namespaces(self, desired: DesiredState) -> None:
        """A namespace deleted by hand lives on in the sockets the daemon holds in
        it (its links too): writes through them would go to a namespace nobody
        can see. Those sockets are dropped, with what was read of it, so that
        the pass rebuilds a new one; the rest of what the kernel facade knows
        is kept (`Kernel.drop_namespaces`). When the last pass left the kernel
        as the files say, the repair plans only the namespace and those its
        links reach into (a veth's other end goes with it): `_scope_of_pass`."""
        replaced = self.kernel.replaced_namespaces()
        if not replaced:
            return
        peers = self.kernel.drop_namespaces(replaced)
        affected = {*replaced, *peers, *reached_from(desired, replaced)}
        self.repair_scope = (self.repair_scope or frozenset()) | affected
        self.log.info(
            "namespaces replaced or deleted behind netlab's back: they are read again, and planned with the namespaces their links reach",
            netns=replaced,
            scope=sorted(netns_label(netns) for netns in affected),
        )

    def managed_files(self) -> set[str]:
        """The resolver files the ledger says netlab wrote (none before a pass
        succeeded): they make no netlink event, and are watched for drift."""
        if self.ledger is None:
            return set()
        paths = {etc_path(key[0], dns.FILE_NAME) for key in self.ledger.keys(dns.KIND)}
        return paths | {etc_path(key[0], hosts.FILE_NAME) for key in self.ledger.keys(hosts.KIND)}


class _Stale(Exception):
    """The generation in force went stale while the pass waited for the lock."""


def reached_from(desired: DesiredState, names: list[str]) -> set[str | None]:
    """The namespaces that the desired links of these namespaces reach into,
    or that reach into them: a veth's other end, a parent (in the host)."""
    reached: set[str | None] = set()
    for link in desired.links:
        if link.netns in names:
            if link.peer_name is not None:
                reached.add(link.peer_netns)
            if link.parent is not None:
                reached.add(None)
        elif link.peer_name is not None and link.peer_netns in names:
            reached.add(link.netns)
    return reached
