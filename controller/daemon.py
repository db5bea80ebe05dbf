"""The daemon: keeps the kernel equal to the files, continuously. It reconciles when
the config directory changes (after a quiet debounce interval), when the kernel
reports a change in a managed namespace (drift), on a resync timer and on SIGHUP;
it tells systemd how it is doing and writes status.json. Started by `netlab daemon`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.controller import notifying
from netlab.controller.applying import NotVerified, reconcile
from netlab.controller.backends.kernel import Kernel
from netlab.controller.backends.namespaces import NETNS_RUN_DIR
from netlab.controller.backing_off import Backoff, Hold
from netlab.controller.guards import load_desired, locked
from netlab.controller.kinds import dns, hosts
from netlab.controller.kinds.managed_files import etc_path
from netlab.controller.planning import scope_of_edit
from netlab.controller.reporting import FORMAT_VERSION
from netlab.controller.watching import ConfigWatcher, FileWatcher, OpenWrite, writers_in
from netlab.state.errors import ApplyError, ConfigError, NetlabError, Problem
from netlab.state.ledger import Ledger, write_atomically
from netlab.state.loading import list_config_files, load_generation, validate_paths
from netlab.state.model import DesiredState, netns_label

LAST_GOOD_DIR = "last-good"
DEBOUNCE_CAP = 2.0
DRIFT_QUIET = 0.05
# while a writer holds a config file open: how often to look again (its close
# is an event too: this is for writers seen in /proc only)
WRITERS_LOOK_AGAIN = 1.0
# a write inotify saw begin, that no process holds open (all of /proc seen) and
# that made no event for this long: its close was lost
WRITE_LOST_AFTER = 30.0
# passes someone asked for (the files changed, a start, a reload): always reported
ASKED_PASSES = ("start", "config", "reload")
# passes for the generation in force: what they change is drift repaired
REPAIR_PASSES = ("drift", "resync")


@dataclass
class Settings:
    config_dir: Path
    state_dir: Path
    run_dir: Path
    debounce: float = 0.25
    resync_interval: float = 60.0
    allow_empty: bool = False
    allow_untrusted: bool = False


@dataclass
class Generation:
    number: int
    digest: str
    files: tuple[str, ...]
    desired: DesiredState
    source: str  # "config" or "last-good"
    contents: dict[str, bytes] = field(default_factory=dict)  # what was validated, kept as last good


@dataclass
class Health:
    state: str = "starting"  # healthy | degraded (files invalid) | failing (apply failed)
    last_error: dict[str, Any] | None = None
    last_apply: dict[str, Any] | None = None  # the last pass that changed something or was asked for
    last_pass: dict[str, Any] | None = None  # the last pass of any kind
    drift_repairs: int = 0
    rejected: dict[str, Any] | None = None


def snapshot_of(files: list[Path]) -> dict[str, bytes | None]:
    """Each file's bytes (None: unreadable), by path."""
    snapshot: dict[str, bytes | None] = {}
    for path in files:
        try:
            snapshot[str(path)] = path.read_bytes()
        except OSError:
            snapshot[str(path)] = None
    return snapshot


def digest_of(snapshot: dict[str, bytes | None]) -> str:
    hasher = hashlib.sha256()
    for name, data in snapshot.items():
        hasher.update(Path(name).name.encode() + b"\0")
        hasher.update(b"<unreadable>" if data is None else data)
    return hasher.hexdigest()[:12]


class Daemon:
    def __init__(self, settings: Settings, log: Any) -> None:
        self.settings = settings
        self.log = log
        self.wake = threading.Event()
        self.stopping = False
        self.reload_requested = False
        # the latest reload pass: when it began (UTC, and CLOCK_MONOTONIC for
        # `netlab reload` to compare with its own clock) and the state it left
        self.last_reload: dict[str, object] | None = None
        self.read_raced = False  # the last read of the files met a write: not taken
        self.drift_seen = threading.Event()
        self.generation: Generation | None = None
        self.health = Health()
        # The kernel facade lives from pass to pass, and listens in what it reads:
        # a pass reads again what was heard changing and trusts the rest.
        self._read_everything = True
        # namespaces deleted by hand, to be planned by the next drift pass alone
        # (`_forget_replaced_namespaces`), and whether a change no namespace's
        # events name (a managed file edited) came since the last pass
        self._repair_scope: frozenset[str | None] | None = None
        self._unplaced_drift = False
        self._ledger: Ledger | None = None  # kept while the file is as it left it
        # the desired state the kernel matched after the last pass that succeeded:
        # an edit's pass plans only the namespaces where the new one differs
        self._converged: DesiredState | None = None
        self.kernel = Kernel(on_event=self._on_kernel_event)
        self.watcher: ConfigWatcher | None = None
        self.file_watcher: FileWatcher | None = None  # the resolver files netlab manages
        # the writers that held config files open at the last look: while there
        # are any, the files are not read; the loop looks again at `_next_look`
        self._held: tuple[OpenWrite, ...] = ()
        self._next_look: float | None = None
        # objects left alone for a while: fought over, or never verified
        self.backoff = Backoff()
        self._keep_pending = False  # the generation read is not kept as the last good one yet
        self._status_unwritten = False

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
            if self._look_for_writers(everything=True):
                # the files may be half written: the kept last good generation
                # is enforced until the writers are done
                self._enforce_last_good()
            else:
                self._read_generation()
            self._reconcile("start")
            _collect_garbage()
            notifying.notify("READY=1", f"STATUS={self.status_line()}")
            self.log.info("daemon ready", status=self.status_line())
            self._loop(watcher)
        finally:
            notifying.notify("STOPPING=1")
            watcher.stop()
            self.file_watcher.stop()
            self.kernel.close()
            self._write_status(running=False)
            self.log.info("daemon stopped: the network stays as it is")
        return 0

    def _loop(self, watcher: ConfigWatcher) -> None:
        interval = notifying.watchdog_interval()
        next_ping = time.monotonic()
        next_resync = time.monotonic() + self.settings.resync_interval
        # A drift pass is due a moment after the first event (more may follow),
        # and when an object's back-off ends (it is tried again); the loop keeps
        # serving the watchdog, signals and the files meanwhile.
        drift_due: float | None = None
        hold_ends: float | None = None
        while not self.stopping:
            now = time.monotonic()
            if interval and now >= next_ping:
                notifying.notify("WATCHDOG=1")
                next_ping = now + interval
            if hold_ends is not None and now >= hold_ends:
                self.drift_seen.set()
            hold_ends = self.backoff.next_end(now)
            if drift_due is None and self.drift_seen.is_set():
                drift_due = now + DRIFT_QUIET
            deadlines = [next_resync] + ([next_ping] if interval else []) + ([drift_due] if drift_due else [])
            deadlines += [t for t in (self._next_look, hold_ends) if t is not None]
            self.wake.wait(max(0.0, min(deadlines) - time.monotonic()))
            self.wake.clear()
            if self.stopping:
                break
            # a reload waits for writers too: it must not read half a file either
            if self.reload_requested and not self._held and not watcher.being_written():
                self.reload_requested = False
                notifying.reloading()
                self.log.info("reload requested (SIGHUP)")
                # `netlab reload` waits for a pass that began after it asked
                began, began_at = time.monotonic(), _now()
                self.backoff.release()  # asked again: everything is tried at once
                self._read_generation(force=True)
                if self.read_raced:
                    # the files changed while being read: read them again, and
                    # only then say how the reload went
                    self.reload_requested = True
                    self.wake.set()
                    continue
                self._reconcile("reload")
                self.last_reload = {"began": began_at, "began_monotonic": began, "state": self.health.state}
                self._publish()
                _collect_garbage()
                notifying.notify("READY=1", f"STATUS={self.status_line()}")
                next_resync = time.monotonic() + self.settings.resync_interval
            elif watcher.touched.is_set() or (self._next_look is not None and time.monotonic() >= self._next_look):
                self._debounce(watcher)
                watcher.follow()
                if self.stopping or self._look_for_writers() or self.reload_requested:
                    # a stop reads nothing more; a writer's close is an event (and
                    # the loop looks again anyway); a reload reads the files itself
                    continue
                if self._read_generation():
                    self._reconcile("config")
            elif drift_due is not None and time.monotonic() >= drift_due:
                drift_due = None
                self._drift_pass()
            elif time.monotonic() >= next_resync:
                # inotify can miss what happened (a queue overflow, a directory
                # replaced under its watch): the files are read again too, and
                # everything is planned from fresh reads even when they changed
                watcher.follow()
                self._read_everything = True
                fresh = not self._look_for_writers(everything=True) and self._read_generation()
                self._reconcile("config" if fresh else "resync")
                _collect_garbage()
                next_resync = time.monotonic() + self.settings.resync_interval
            # What lives on after a pass (the generation, the kernel's dumps, the
            # sockets) is left out of later garbage collections: a full one over
            # that heap took 130-180 ms at 1000 namespaces, mostly in the middle
            # of reading an edit. Cycles among it are collected on the timer above.
            gc.freeze()

    def _debounce(self, watcher: ConfigWatcher) -> None:
        """Waits until the directory has been quiet for the debounce interval since
        its latest event (at most DEBOUNCE_CAP in all), so a file still being
        written is not read. A reload (which reads the files now) or a stop cuts
        it short."""
        began = time.monotonic()
        while True:
            watcher.touched.clear()
            now = time.monotonic()
            quiet_at = min(watcher.last_change + self.settings.debounce, began + DEBOUNCE_CAP)
            if self.reload_requested or self.stopping:
                self.wake.set()  # for the loop, which serves them first
                break
            if now >= quiet_at:
                break
            # woken early by a signal (or any event: the loop looks again)
            self.wake.wait(quiet_at - now)
            self.wake.clear()
        watcher.touched.clear()

    def _drift_pass(self) -> None:
        self.drift_seen.clear()
        self._reconcile("drift")

    # -- generations --------------------------------------------------------------

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
        seen = watcher.being_written()
        found: tuple[OpenWrite, ...] = ()
        if everything or seen or self._held:
            scan = writers_in(str(watcher.config_dir))
            found = scan.writers
            if scan.complete:
                held_open = {writer.path for writer in found}
                lost = watcher.forget_writes({w.path for w in seen} - held_open, WRITE_LOST_AFTER)
                if lost:
                    self.log.warning("a write's end was not heard, and no process holds the file open: reading it", files=lost)
                    seen = watcher.being_written()
        named = {writer.path for writer in found}
        held = tuple(sorted({*found, *(writer for writer in seen if writer.path not in named)}))
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
        self._next_look = time.monotonic() + WRITERS_LOOK_AGAIN if held else None
        if changed:
            self._publish()
        return bool(held)

    def _read_generation(self, force: bool = False) -> bool:
        """Reads the config directory; True when a new valid generation is in force.
        An invalid one leaves the last good one in force (the one kept in the state
        directory when the daemon has just started)."""
        config_dir = self.settings.config_dir
        digest = None
        self.read_raced = False
        try:
            files = list_config_files(config_dir)
            snapshot = snapshot_of(files)
            digest = digest_of(snapshot)
            if not force and self.generation and self.generation.source == "config" and digest == self.generation.digest:
                if self.health.rejected is None:
                    return False
                # a broken edit undone: the files are the generation in force again
                self.health.rejected = None
                self.log.info("the files are back to the generation in force", generation=self.generation.number)
                return True
            if not force and self.health.rejected and self.health.rejected.get("digest") == digest:
                return False  # the same broken files: said already
            desired = load_desired(
                config_dir, self.settings.state_dir, self.settings.allow_empty, self.settings.allow_untrusted
            )
            if snapshot_of(list_config_files(config_dir)) != snapshot:
                # written to while being read: what was validated may not be what
                # is there; the write's own event brings a fresh read
                self.log.info("the files changed while being read: reading them again")
                self.read_raced = True
                return False
        except ConfigError as error:
            self._reject(error, digest)
            if self.generation is None:
                self._enforce_last_good()
            return False
        except Exception as error:  # noqa: BLE001 - no input may end the daemon
            # a bug of netlab's that some input meets (it may raise anything): the
            # generation is rejected like an invalid one, naming the file
            self._reject(self._load_failure(error), digest)
            if self.generation is None:
                self._enforce_last_good()
            return False
        number = 1
        if self.generation is not None:
            same = self.generation.source == "config" and digest == self.generation.digest
            number = self.generation.number if same else self.generation.number + 1
        contents = {name: data for name, data in snapshot.items() if data is not None}
        self.generation = Generation(number, digest, tuple(str(f) for f in files), desired, "config", contents)
        self.health.rejected = None
        self.backoff.release()  # a new generation: what was left alone is tried again
        self._keep_pending = True  # by the first pass that applies it cleanly
        self.log.info("generation accepted", generation=number, digest=digest, files=[f.name for f in files])
        return True

    def _load_failure(self, error: Exception) -> ConfigError:
        """A problem for each file whose loading alone raises what loading the
        directory raised unexpectedly (the directory, when none does alone)."""
        self.log.error("loading the files failed unexpectedly: a bug of netlab's", exc_info=error)
        try:
            files = list_config_files(self.settings.config_dir)
        except ConfigError:
            files = []
        culprits = []
        for path in files:
            try:
                validate_paths([path])
            except Exception:  # noqa: BLE001 - the one that raises is the one to name
                culprits.append(str(path))
        message = (
            f"netlab could not load this ({type(error).__name__}: {error}); this is a bug of netlab's, "
            "please report it. Until a fix, change what this file holds; the last good generation stays in force"
        )
        return ConfigError([Problem(name, 0, 0, "", message) for name in culprits or [str(self.settings.config_dir)]])

    def _reject(self, error: ConfigError, digest: str | None) -> None:
        problems = [_problem_json(p) for p in error.problems]
        self.health.state = "degraded"
        self.health.rejected = {"time": _now(), "digest": digest, "problems": problems}
        self.health.last_error = {"time": _now(), "message": str(error), "problems": problems}
        self.log.error(
            "generation rejected: the last good generation stays in force",
            problems=[str(p) for p in error.problems],
        )
        self._publish()

    def _enforce_last_good(self) -> None:
        kept = self.settings.state_dir / LAST_GOOD_DIR
        if not kept.is_dir():
            self.log.warning("no last good generation kept yet: enforcing nothing until the files are fixed")
            return
        try:
            desired = load_generation(kept)
        except ConfigError as error:
            self.log.error("the kept last good generation does not load", problems=[str(p) for p in error.problems])
            return
        except Exception as error:  # noqa: BLE001 - no input may end the daemon
            self.log.error("the kept last good generation does not load: a bug of netlab's", exc_info=error)
            return
        files = list_config_files(kept)
        self.generation = Generation(0, digest_of(snapshot_of(files)), tuple(str(f) for f in files), desired, "last-good")
        self.log.info("enforcing the last good generation kept in the state directory", digest=self.generation.digest)

    def _keep_as_last_good(self) -> None:
        """After a generation applied cleanly: its files, copied into the state
        directory, are what a restart enforces while the files are broken."""
        generation = self.generation
        if generation is None or generation.source != "config":
            return
        kept = self.settings.state_dir / LAST_GOOD_DIR
        fresh = self.settings.state_dir / f".{LAST_GOOD_DIR}.new"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700)
        for name, data in generation.contents.items():
            # the bytes that were validated, not the file as it may be by now
            (fresh / Path(name).name).write_bytes(data)
        old = self.settings.state_dir / f".{LAST_GOOD_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if kept.exists():
            kept.rename(old)
        fresh.rename(kept)
        shutil.rmtree(old, ignore_errors=True)

    # -- reconciling ----------------------------------------------------------------

    def _reconcile(self, reason: str) -> int:
        """One pass with the generation in force; returns the number of changes."""
        if self.generation is None:
            self._publish()
            return 0
        log = self.log.bind(generation=self.generation.number, reason=reason)
        self._forget_replaced_namespaces()
        began = time.time()
        desired = self.generation.desired
        scope = self._scope_of_pass(reason, desired)
        self._converged = None  # until this pass succeeds
        hold = self.backoff.held(time.monotonic())
        try:
            with locked(self.settings.state_dir):
                ledger = self._current_ledger()
                self._forget_stale_reads(reason)
                result = reconcile(desired, self.kernel, ledger, log, scope, hold)
                self.objects_owned = ledger.count()
        except NotVerified as error:
            # the pass made the differences twice (a change racing it is made
            # good by the second round) and was rolled back: the kernel does not
            # keep these as asked, and rewriting them at every event would never
            # end (each pass's own writes make the next one)
            for held in self.backoff.unverified(error.remaining, time.monotonic()):
                self._say_backing_off(log, held)
            return self._failed(log, error)
        except NetlabError as error:
            return self._failed(log, error)
        except OSError as error:
            # the state directory (the lock, the ledger) cannot be written: a full
            # disk. The pass is failed (what it did was undone or is in the ledger
            # kept in memory); the next one tries again
            return self._failed(log, ApplyError(f"could not complete the pass: {error}"))
        self._converged = desired if not hold else None  # what was held may differ
        now = time.monotonic()
        self.backoff.verified(now)
        changes = len(result.plan.changes)
        self.health.last_pass = {
            "time": _now(),
            "reason": reason,
            "changes": changes,
            "duration_ms": round(result.duration_ms, 1),
            "generation": self.generation.number,
        }
        if changes or reason in ASKED_PASSES:
            # A pass that found nothing to do, after events (often the echo of
            # the previous pass's own writes) or on the timer, applied nothing:
            # it must not hide the edit's pass from `netlab status`.
            self.health.last_apply = self.health.last_pass
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
            if self._keep_pending and self.health.state == "healthy":
                try:
                    self._keep_as_last_good()
                    self._keep_pending = False
                except OSError as error:
                    # the network is as the files say; only a restart with broken
                    # files would miss this generation: say so, try at the next pass
                    self.health.state = "failing"
                    message = f"could not keep the last good generation in {self.settings.state_dir / LAST_GOOD_DIR}: {error}"
                    self.health.last_error = {"time": _now(), "message": message, "problems": []}
                    log.error("could not keep the last good generation: tried again at the next pass", error=str(error))
        self._watch_namespace_directory()
        self._watch_managed_files()
        self._publish()
        self.log.debug("pass done", seconds=round(time.time() - began, 3))
        return changes

    def _say_backing_off(self, log: Any, held: Hold) -> None:
        """Once per step of an object's back-off, in the journal."""
        fields = held.to_json(time.monotonic())
        if held.reason == "fight":
            log.warning("fighting another manager: an object keeps being changed behind netlab's back; leaving it alone for a while", **fields)
        else:
            log.warning("backing off: the kernel does not keep an object as asked; leaving it alone for a while", **fields)

    def _scope_of_pass(self, reason: str, desired: DesiredState) -> frozenset[str | None] | None:
        """What a pass plans: after an edit, only the namespaces where the files
        changed, when the last pass left the kernel matching the generation
        before (drift elsewhere has its own pass, from its events, and the
        periodic resync plans everything). A drift pass after namespaces were
        deleted by hand plans those, the namespaces their links reach, and the
        namespaces heard changing (all that can differ from the files), unless
        something it cannot place changed too (a managed file). Otherwise
        everything (None)."""
        repair, self._repair_scope = self._repair_scope, None
        unplaced, self._unplaced_drift = self._unplaced_drift, False
        if self._converged is None or self._read_everything:
            return None
        if reason == "config":
            return scope_of_edit(self._converged, desired) | (repair or frozenset())
        if reason == "drift" and repair is not None and not unplaced:
            # events come in on another thread: one heard after this look is
            # followed by a pass of its own (it sets `drift_seen` after it is noted)
            return repair | self.kernel.heard_changing()
        return None

    def _current_ledger(self) -> Ledger:
        """The ledger of the last pass, unless its file changed since (a `netlab
        apply` run by hand) or that pass failed: then it is read again."""
        if self._ledger is None or not self._ledger.is_current():
            self._ledger = Ledger.load(self.settings.state_dir)
        return self._ledger

    def _failed(self, log: Any, error: NetlabError) -> int:
        self._ledger = None
        self.health.state = "failing"
        problems = [_problem_json(p) for p in error.problems] if isinstance(error, ConfigError) else []
        self.health.last_error = {"time": _now(), "message": str(error), "problems": problems}
        log.error("reconcile failed: the previous state stays", error=str(error))
        # the next pass reads everything: what failed may have been planned
        # against something that changed without an event (NAT, files)
        self._read_everything = True
        self._publish()
        return 0

    def _forget_stale_reads(self, reason: str) -> None:
        """What the kernel facade remembers from earlier passes is kept where no
        event said it changed. A start, reload or resync (and the pass after a
        failure) reads everything again: the safety net for what makes no event
        (NAT tables, sysctls) and for events the kernel dropped."""
        if self._read_everything or reason in ("start", "reload", "resync"):
            self._read_everything = False
            self.kernel.forget_reads()
        else:
            self.kernel.forget_heard()

    def _forget_replaced_namespaces(self) -> None:
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
        affected = {*replaced, *peers, *self._reached_from(replaced)}
        self._repair_scope = (self._repair_scope or frozenset()) | affected
        self.log.info(
            "namespaces replaced or deleted behind netlab's back: they are read again, and planned with the namespaces their links reach",
            netns=replaced,
            scope=sorted(netns_label(netns) for netns in affected),
        )

    def _reached_from(self, names: list[str]) -> set[str | None]:
        """The namespaces that the desired links of these namespaces reach into,
        or that reach into them: a veth's other end, a parent (in the host)."""
        desired = self.generation.desired if self.generation is not None else None
        reached: set[str | None] = set()
        for link in desired.links if desired is not None else ():
            if link.netns in names:
                if link.peer_name is not None:
                    reached.add(link.peer_netns)
                if link.parent is not None:
                    reached.add(None)
            elif link.peer_name is not None and link.peer_netns in names:
                reached.add(link.netns)
        return reached

    def _watch_namespace_directory(self) -> None:
        """`ip netns del` makes no netlink event in any namespace netlab listens
        to: the directory of namespaces is watched too."""
        if self.watcher is not None:
            self.watcher.watch_entries(NETNS_RUN_DIR, self._on_kernel_event)

    def _watch_managed_files(self) -> None:
        """The resolver files netlab manages make no netlink event: they are
        watched, so that an edit by hand is drift repaired at once (not at the
        next resync). netlab's own writes wake a pass too, which finds nothing
        to do and writes nothing: no loop."""
        if self.file_watcher is None or self._ledger is None:
            return
        paths = {etc_path(key[0], dns.FILE_NAME) for key in self._ledger.keys(dns.KIND)}
        paths |= {etc_path(key[0], hosts.FILE_NAME) for key in self._ledger.keys(hosts.KIND)}
        self.file_watcher.watch(paths)

    def _on_kernel_event(self) -> None:
        self.drift_seen.set()
        self.wake.set()

    def _on_file_event(self) -> None:
        self._unplaced_drift = True
        self._on_kernel_event()

    # -- reporting ------------------------------------------------------------------

    objects_owned = 0

    def status_line(self) -> str:
        generation = self.generation
        text = f"{self.health.state}; generation {generation.number} ({generation.digest})" if generation else f"{self.health.state}; no generation"
        text += f"; {self.objects_owned} objects owned"
        held = self.backoff.holds(time.monotonic())
        if held:
            text += f"; {len(held)} backed off"
        if self._held:
            text += f"; waiting for {len(self._held)} file(s) open for writing"
        if self.health.last_error and self.health.state != "healthy":
            first = self.health.last_error["message"].splitlines()
            text += f"; last error: {first[-1] if first else ''}"
        return text

    def _publish(self) -> None:
        self._write_status(running=True)
        notifying.notify(f"STATUS={self.status_line()}")

    def _write_status(self, running: bool) -> None:
        generation = self.generation
        now = time.monotonic()
        status = {
            "format_version": FORMAT_VERSION,
            "daemon": "running" if running else "stopped",
            "pid": os.getpid(),
            "state": self.health.state,
            "config_dir": str(self.settings.config_dir),
            "generation": None
            if generation is None
            else {"number": generation.number, "digest": generation.digest, "source": generation.source, "files": list(generation.files)},
            "rejected": self.health.rejected,
            "last_apply": self.health.last_apply,
            "last_pass": self.health.last_pass,
            "last_reload": self.last_reload,
            "last_error": self.health.last_error,
            "waiting_for_writers": [{"file": writer.path, "pid": writer.pid} for writer in self._held],
            "backing_off": [held.to_json(now) for held in self.backoff.holds(now)],
            "drift_repairs": self.health.drift_repairs,
            "objects_owned": self.objects_owned,
            "updated": _now(),
        }
        try:
            write_atomically(self.settings.run_dir / "status.json", json.dumps(status, indent=2) + "\n")
        except OSError as error:
            # a full /run: the journal and systemd's STATUS= still say how it goes
            if not self._status_unwritten:
                self.log.error("could not write status.json: `netlab status` shows an older one", error=str(error))
            self._status_unwritten = True
            return
        if self._status_unwritten:
            self.log.info("status.json is written again")
            self._status_unwritten = False

    # -- signals --------------------------------------------------------------------

    def _on_hup(self, signum: int, frame: object) -> None:
        self.reload_requested = True
        self.wake.set()

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True
        self.wake.set()


def _collect_garbage() -> None:
    """A full collection, frozen objects included, then everything left is frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "column": problem.column, "path": problem.path, "message": problem.message}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
