"""The daemon: keeps the kernel equal to the files, continuously. It reconciles when
the config directory changes (after a quiet debounce interval), when the kernel
reports a change in a managed namespace (drift), on a resync timer and on SIGHUP;
it tells systemd how it is doing and writes status.json. Started by `netlab daemon`.

Its parts, each testable without root: `scheduling` decides what to do next from
the clock, the deadlines and the flags; `generations` reads the files (one
snapshot per generation) and keeps the last good one; `passes` runs a pass and
accounts for it (scope, back-off, health); `health` says how it goes (status.json,
systemd's STATUS=). This module wires them to the real world: signals, inotify,
/proc, the kernel facade, and executes the actions the schedule names.
"""

from __future__ import annotations

import gc
import math
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from netlab.controller import notifying, trying
from netlab.controller.applying import Checking, reconcile
from netlab.controller.backends.kernel import Kernel
from netlab.controller.backends.namespaces import NETNS_RUN_DIR
from netlab.controller.backends.nat_backends import Requested
from netlab.controller.checks import Outcome, run_checks
from netlab.controller.generations import Generations
from netlab.controller.guards import locked
from netlab.controller.health import Health, ReloadJson, StatusFile, StatusJson, now_utc, status_json, status_line
from netlab.controller.passes import DaemonKernel, Passes, Reason, Reconcile
from netlab.controller.scheduling import DRIFT_QUIET, WRITERS_LOOK_AGAIN, Action, Deadlines, Flags, Wait, next_action
from netlab.controller.watching import ConfigWatcher, FileWatcher, OpenWrite, writers_in
from netlab.state.errors import NetlabError
from netlab.state.model import Check

# a write inotify saw begin, that no process holds open (all of /proc seen) and
# that made no event for this long: its close was lost
WRITE_LOST_AFTER = 30.0
# while a `netlab try` waits, how often the daemon looks whether it ended
TRY_LOOK_AGAIN = 0.5


@dataclass
class Settings:
    config_dir: Path
    state_dir: Path
    run_dir: Path
    debounce: float = 0.25
    resync_interval: float = 60.0
    allow_empty: bool = False
    allow_untrusted: bool = False
    nat_backend: Requested = "auto"
    check_interval: float = 30.0  # seconds between runs of the declared checks (0: only after passes)
    rollback_on_check: bool = True


class Daemon:
    def __init__(
        self,
        settings: Settings,
        log: Any,
        kernel: DaemonKernel | None = None,
        reconcile_pass: Reconcile[Any] = reconcile,
    ) -> None:
        """`kernel` and `reconcile_pass`: a fake kernel and pass, for the unit
        tests (by default the real kernel facade and `applying.reconcile`)."""
        self.settings = settings
        self.log = log
        self.wake = threading.Event()
        self.stopping = False
        self.reload_requested = False
        self.drift_heard = threading.Event()
        # the latest reload pass: when it began (UTC, and CLOCK_MONOTONIC for
        # `netlab reload` to compare with its own clock) and the state it left
        self.last_reload: ReloadJson | None = None
        self.health = Health()
        self.generations = Generations(
            settings.config_dir,
            settings.state_dir,
            self.health,
            log,
            allow_empty=settings.allow_empty,
            allow_untrusted=settings.allow_untrusted,
        )
        facade: DaemonKernel = (
            kernel if kernel is not None else Kernel(on_event=self._on_kernel_event, nat_backend=settings.nat_backend)
        )
        self.passes: Passes[Any] = Passes(facade, reconcile_pass, settings.state_dir, self.health, log)
        self.passes.checking = Checking(run=self._run_checks, rollback=settings.rollback_on_check)
        self.passes.stale = self.generations.held_back_released
        self.status_file = StatusFile(settings.run_dir, log)
        self.deadlines = Deadlines(resync=math.inf)
        self.watcher: ConfigWatcher | None = None
        self.file_watcher: FileWatcher | None = None  # the resolver files netlab manages
        # the writers that held config files open at the last look: while there
        # are any, the files are not read (the loop looks again at `look_again`)
        self._held: tuple[OpenWrite, ...] = ()

    # -- the loop -----------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        watcher = self.watcher = ConfigWatcher(self.settings.config_dir, self.wake)
        self.file_watcher = FileWatcher(self._on_file_event)
        try:
            self._start()
            self._loop()
        finally:
            notifying.notify("STOPPING=1")
            watcher.stop()
            self.file_watcher.stop()
            self.passes.kernel.close()
            self.status_file.write(self._status(running=False))
            self.log.info("daemon stopped: the network stays as it is")
        return 0

    def _start(self) -> None:
        if self._look_for_writers(everything=True):
            # the files may be half written: the kept last good generation
            # is enforced until the writers are done
            self.generations.enforce_last_good()
        else:
            self._read_generation()
        self._pass("start")
        _collect_garbage()
        line = status_line(self._status(running=True))
        notifying.notify("READY=1", f"STATUS={line}")
        self.log.info("daemon ready", status=line)

    def _loop(self) -> None:
        """Does what `next_action` says, until a stop. Waiting, it wakes for any
        event, signal or listener (`wake`), and looks again."""
        interval = notifying.watchdog_interval()
        now = time.monotonic()
        self.deadlines = replace(
            self.deadlines,
            ping=now if interval else None,
            resync=now + self.settings.resync_interval,
            checks=self._next_checks(now),
        )
        actions = {
            Action.PING: self._ping,
            Action.RELOAD: self._reload,
            Action.DEBOUNCE: self._debounce,
            Action.DRIFT_HEARD: self._drift_heard,
            Action.READ_FILES: self._read_files,
            Action.DRIFT: self._drift,
            Action.RESYNC: self._resync,
            Action.CHECK: self._check,
        }
        while True:
            now = time.monotonic()
            action = next_action(now, self.deadlines, self._flags(), self.settings.debounce)
            if action is Action.STOP:
                return
            if isinstance(action, Wait):
                self.wake.wait(max(0.0, action.until - now))
                self.wake.clear()
                continue
            actions[action]()
            if self.health.waiting_for_try is not None and self.deadlines.drift is None:
                # the try's end makes no event: a pass looks again soon (and finds
                # nothing to do but look while the try waits)
                self.deadlines = replace(self.deadlines, drift=time.monotonic() + TRY_LOOK_AGAIN)
            # What lives on after a pass (the generation, the kernel's dumps, the
            # sockets) is left out of later garbage collections: a full one over
            # that heap took 130-180 ms at 1000 namespaces, mostly in the middle
            # of reading an edit. Cycles among it are collected on the resync.
            gc.freeze()

    def _flags(self) -> Flags:
        watcher = self.watcher
        return Flags(
            stopping=self.stopping,
            reload_requested=self.reload_requested,
            writers=bool(self._held) or (watcher is not None and bool(watcher.being_written())),
            files_changed=watcher is not None and watcher.touched.is_set(),
            last_change=watcher.last_change if watcher is not None else 0.0,
            drift_heard=self.drift_heard.is_set(),
        )

    # -- the actions ------------------------------------------------------------------

    def _ping(self) -> None:
        notifying.notify("WATCHDOG=1")
        interval = notifying.watchdog_interval()
        self.deadlines = replace(self.deadlines, ping=time.monotonic() + interval if interval else None)

    def _reload(self) -> None:
        self.reload_requested = False
        notifying.reloading()
        self.log.info("reload requested (SIGHUP)")
        # `netlab reload` waits for a pass that began after it asked
        began, began_at = time.monotonic(), now_utc()
        self.passes.asked_again()  # asked again: everything is tried at once
        self._read_generation(force=True)
        self._pass("reload")
        self.last_reload = {"began": began_at, "began_monotonic": began, "state": self.health.state}
        line = self._publish()
        _collect_garbage()
        notifying.notify("READY=1", f"STATUS={line}")
        self.deadlines = replace(self.deadlines, resync=time.monotonic() + self.settings.resync_interval)

    def _debounce(self) -> None:
        """The files changed: they are read once quiet (`next_action` says when)."""
        if self.watcher is not None:
            self.watcher.touched.clear()
        self.deadlines = replace(self.deadlines, debounce_began=time.monotonic())

    def _drift_heard(self) -> None:
        self.deadlines = replace(self.deadlines, drift=time.monotonic() + DRIFT_QUIET)

    def _read_files(self) -> None:
        if self.watcher is not None:
            self.watcher.touched.clear()
            self.watcher.follow()
        self.deadlines = replace(self.deadlines, debounce_began=None)
        if self._look_for_writers() or self.reload_requested:
            # a writer's close is an event (and the loop looks again anyway); a
            # reload reads the files itself
            return
        if self._read_generation():
            self._pass("config")

    def _drift(self) -> None:
        self.drift_heard.clear()
        self.deadlines = replace(self.deadlines, drift=None)
        self._pass("drift")

    def _resync(self) -> None:
        """inotify can miss what happened (a queue overflow, a directory replaced
        under its watch): the files are read again too, and everything is
        planned from fresh reads even when they changed."""
        if self.watcher is not None:
            self.watcher.follow()
        self.passes.read_everything = True
        fresh = not self._look_for_writers(everything=True) and self._read_generation()
        self._pass("config" if fresh else "resync")
        _collect_garbage()
        self.deadlines = replace(self.deadlines, resync=time.monotonic() + self.settings.resync_interval)

    def _check(self) -> None:
        """The declared checks of the generation in force, now: results in the
        health (and an event for each that changed), nothing rolled back."""
        generation = self.generations.current
        if generation is not None and generation.desired.checks:
            self.passes.checks_seen(self._run_checks(generation.desired.checks), self.log.bind(reason="checks"))
            self._publish()
        self.deadlines = replace(self.deadlines, checks=self._next_checks(time.monotonic()))

    def _run_checks(self, checks: Sequence[Check]) -> list[Outcome]:
        """A run of the checks, with the watchdog fed on each side: a pass runs
        them up to three times (before, after, once more), each up to 30 s."""
        if notifying.watchdog_interval():
            notifying.notify("WATCHDOG=1")
        try:
            return run_checks(checks)
        finally:
            if notifying.watchdog_interval():
                notifying.notify("WATCHDOG=1")

    def _next_checks(self, now: float) -> float | None:
        return now + self.settings.check_interval if self.settings.check_interval > 0 else None

    # -- generations and passes -------------------------------------------------------

    def _read_generation(self, force: bool = False) -> bool:
        """Reads the files; True when a pass is due for what they hold."""
        outcome = self.generations.read(force)
        if outcome == "new":
            self.passes.asked_again()  # a new generation: what was left alone is tried again
        elif outcome == "rejected":
            self._publish()
        return outcome in ("new", "restored")

    def _pass(self, reason: Reason) -> None:
        """One pass with the generation in force, then what follows a clean one:
        the last good copy kept, the watches that serve drift renewed."""
        if self._try_in_the_way():
            return
        generation = self.generations.current
        began = time.time()
        if generation is not None and self.passes.run(reason, generation):
            if self.health.state == "healthy":
                self.generations.keep_if_due()
            self._watch_for_drift()
        elif self.passes.try_found is not None:
            self._wait_for_try(self.passes.try_found)
        elif self.passes.reread:
            # files held back were applied on purpose meanwhile: the generation is theirs now
            self._read_generation(force=True)
            self._pass(reason)
            return
        elif self.passes.broken is not None and self.passes.clean is not None:
            self.generations.reject_broken(self.passes.broken, self.passes.clean)
        self.deadlines = replace(self.deadlines, hold_ends=self.passes.backoff.next_end(time.monotonic()))
        self._publish()
        if generation is not None:
            self.log.debug("pass done", seconds=round(time.time() - began, 3))

    def _try_in_the_way(self) -> bool:
        """While a `netlab try` waits for its confirmation the daemon makes no
        pass: it neither applies the files nor repairs the try's state (a try
        that begins while a pass waits for the lock is seen by that pass, under
        the lock: `Passes.run`). A try whose process is gone is settled here
        (rolled back unless confirmed), from fresh reads. Once a try is over,
        or the files held back were applied on purpose (`netlab apply`), the
        files are read again: tried in place and rolled back, they are held
        back, and the generation from before stays in force."""
        state_dir = self.settings.state_dir
        waited = self.health.waiting_for_try is not None
        settled = None
        try:
            if trying.look(state_dir) is not None:
                with locked(state_dir):
                    # what the facade remembers may be from before the try
                    self.passes.kernel.forget_reads()
                    self.passes.ledger = None
                    settled = trying.settle(state_dir, self.passes.kernel, self.log)
        except trying.TryWaiting as waiting:
            self._wait_for_try(waiting.found)
            return True
        except (NetlabError, OSError) as error:
            # a rollback the kernel refused: the try stays written down, and is
            # tried again at the next pass (the resync's, or drift's)
            self.health.waiting_for_try = None
            self.health.failed(f"could not settle a `netlab try` whose process is gone: {error}")
            self.log.error("could not settle a try whose process is gone", error=str(error))
            self._publish()
            return True
        self.health.waiting_for_try = None
        if waited or settled is not None or self.generations.held_back_released():
            if settled is not None:
                self.log.warning("a try whose process was gone is settled", outcome=settled.outcome)
            self.log.info(
                "the netlab try is over: the files are read again", outcome=settled.outcome if settled else None
            )
            # the try wrote the kernel, the ledger and maybe files that make no event
            self.passes.read_everything = True
            self.passes.ledger = None
            self._read_generation(force=True)
        return False

    def _wait_for_try(self, found: trying.Found) -> None:
        if self.health.waiting_for_try is None:
            self.log.warning(
                "a netlab try waits for its confirmation: no pass until it is confirmed or rolled back",
                pid=found.record["pid"],
                until=found.record["deadline"],
            )
        self.health.waiting_for_try = found.record
        self._publish()

    def _watch_for_drift(self) -> None:
        """`ip netns del` makes no netlink event in any namespace netlab listens
        to: the directory of namespaces is watched. Nor do the resolver files
        netlab manages: they are watched, so that an edit by hand is repaired at
        once (not at the next resync). netlab's own writes wake a pass too,
        which finds nothing to do and writes nothing: no loop."""
        if self.watcher is not None:
            self.watcher.watch_entries(NETNS_RUN_DIR, self._on_kernel_event)
        if self.file_watcher is not None:
            self.file_watcher.watch(self.passes.managed_files())

    def _look_for_writers(self, everything: bool = False) -> bool:
        """True while a writer holds a config file open (scp, `rsync --inplace`,
        configuration tools and editors writing in place): what is there may be
        half of it, and is not read. inotify tells of the writes it saw begin
        (a modify not yet followed by its close); /proc is looked at too where
        that is not enough: at the start and on the resync (`everything`: a
        writer that opened a file before the daemon watched it), and while
        waiting (to name the process, and for writers only /proc knows of).
        A save by rename leaves no file open: it never waits, nor scans."""
        watcher = self.watcher
        if watcher is None:
            return False
        held = self._writers(watcher, everything)
        if held and set(held) != set(self._held):
            # once per writer: it may take long (no limit; the loop serves the
            # watchdog, signals and drift meanwhile)
            self.log.info(
                "waiting for writers to close the files before reading them",
                files=[str(writer) for writer in held],
            )
        elif self._held and not held:
            self.log.info("the writers closed the files: reading them")
        changed = held != self._held
        self._held = held
        look_again = time.monotonic() + WRITERS_LOOK_AGAIN if held else None
        self.deadlines = replace(self.deadlines, look_again=look_again)
        if changed:
            self._publish()
        return bool(held)

    def _writers(self, watcher: ConfigWatcher, everything: bool) -> tuple[OpenWrite, ...]:
        """The writers inotify saw begin, and those /proc names when it is looked at."""
        seen = watcher.being_written()
        found: tuple[OpenWrite, ...] = ()
        if everything or seen or self._held:
            scan = writers_in(str(watcher.config_dir))
            found = scan.writers
            if scan.complete:
                held_open = {writer.path for writer in found}
                lost = watcher.forget_writes({w.path for w in seen} - held_open, WRITE_LOST_AFTER)
                if lost:
                    self.log.warning(
                        "a write's end was not heard, and no process holds the file open: reading it", files=lost
                    )
                    seen = watcher.being_written()
        named = {writer.path for writer in found}
        return tuple(sorted({*found, *(writer for writer in seen if writer.path not in named)}))

    # -- reporting ------------------------------------------------------------------

    def _status(self, running: bool) -> StatusJson:
        generation = self.generations.current
        now = time.monotonic()
        return status_json(
            self.health,
            running=running,
            config_dir=self.settings.config_dir,
            generation=generation.to_json() if generation is not None else None,
            last_reload=self.last_reload,
            writers=self._held,
            backing_off=[held.to_json(now) for held in self.passes.backoff.holds(now)],
            objects_owned=self.passes.objects_owned,
        )

    def _publish(self) -> str:
        """Writes status.json and tells systemd; returns the STATUS= line. While
        status.json cannot be written (a full /run), STATUS= says failing, with
        what could not be written, and the journal says it once; the health of
        the network is left as it is (a rejected generation stays `degraded`, a
        failed pass keeps its error), so the first write that succeeds again
        shows it as it is."""
        status = self._status(running=True)
        error = self.status_file.write(status)
        if error is not None:
            message = f"could not write {self.status_file.path}: {error}"
            status = {
                **status,
                "state": "failing",
                "last_error": {"time": status["updated"], "message": message, "problems": []},
            }
        line = status_line(status)
        notifying.notify(f"STATUS={line}")
        return line

    # -- signals and listeners --------------------------------------------------------

    def _on_hup(self, signum: int, frame: object) -> None:
        self.reload_requested = True
        self.wake.set()

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True
        self.wake.set()

    def _on_kernel_event(self) -> None:
        self.drift_heard.set()
        self.wake.set()

    def _on_file_event(self) -> None:
        self.passes.unplaced_drift = True
        self._on_kernel_event()


def _collect_garbage() -> None:
    """A full collection, frozen objects included, then everything left is frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
