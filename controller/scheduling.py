"""When the daemon does what: `next_action` is a pure function of the clock, the
deadlines the loop keeps (`Deadlines`) and what the signal handlers, watchers
and listeners raised (`Flags`). It returns the one thing to do now, or how long
to wait; the loop in daemon.py does it and asks again. The order is the
priority: a stop, the watchdog, a reload (once no writer holds a config file
open), the files (once quiet for the debounce interval, at most DEBOUNCE_CAP
after the first event), drift (DRIFT_QUIET after the first event, or when an
object's back-off ends), the periodic resync, the periodic checks."""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEBOUNCE_CAP = 2.0
DRIFT_QUIET = 0.05
# while a writer holds a config file open: how often to look again (its close
# is an event too: this is for writers seen in /proc only)
WRITERS_LOOK_AGAIN = 1.0


class Action(enum.Enum):
    STOP = "stop"
    PING = "ping"  # the systemd watchdog
    RELOAD = "reload"  # SIGHUP: read the files now, whatever they are
    DEBOUNCE = "debounce"  # the files changed: their quiet interval begins now
    DRIFT_HEARD = "drift heard"  # the kernel changed: a drift pass is due in DRIFT_QUIET
    READ_FILES = "read files"  # quiet for long enough, or writers to look at again
    DRIFT = "drift"
    RESYNC = "resync"
    CHECK = "check"  # the declared checks, run periodically


@dataclass(frozen=True)
class Wait:
    until: float  # time.monotonic(); an event, a signal or a thread wakes it sooner


@dataclass(frozen=True)
class Deadlines:
    """What the loop has set, in time.monotonic() seconds (None: not set)."""

    resync: float
    ping: float | None = None  # None: no watchdog
    debounce_began: float | None = None  # the files changed, not read since
    drift: float | None = None  # a drift pass is due
    look_again: float | None = None  # writers hold config files open
    hold_ends: float | None = None  # an object's back-off (tried again then)
    checks: float | None = None  # the periodic run of the declared checks (None: off)


@dataclass(frozen=True)
class Flags:
    """What was raised since the loop last looked, by signals and other threads."""

    stopping: bool = False
    reload_requested: bool = False
    writers: bool = False  # a writer holds a config file open (inotify or /proc)
    files_changed: bool = False  # an event in the config directory
    last_change: float = 0.0  # the latest one
    drift_heard: bool = False  # a kernel event (or a managed file's) not yet served by a pass


def next_action(now: float, deadlines: Deadlines, flags: Flags, debounce: float) -> Action | Wait:
    """The one thing the daemon does at `now`, or until when it waits. While the
    files are being debounced, drift and the resync wait: the files' pass comes
    first (its reads serve them too)."""
    if flags.stopping:
        return Action.STOP
    if deadlines.ping is not None and now >= deadlines.ping:
        return Action.PING
    if flags.reload_requested and not flags.writers:
        return Action.RELOAD  # a reload waits for writers too: it must not read half a file
    if flags.files_changed and deadlines.debounce_began is None:
        return Action.DEBOUNCE
    if flags.drift_heard and deadlines.drift is None:
        return Action.DRIFT_HEARD
    files_due = _files_due(deadlines, flags, debounce)
    if files_due is not None and now >= files_due:
        return Action.READ_FILES
    later = [deadlines.ping, files_due]
    if deadlines.debounce_began is None:
        drift_due = _drift_due(deadlines)
        if drift_due is not None and now >= drift_due:
            return Action.DRIFT
        if now >= deadlines.resync:
            return Action.RESYNC
        if deadlines.checks is not None and now >= deadlines.checks:
            return Action.CHECK
        later += [drift_due, deadlines.resync, deadlines.checks]
    return Wait(min(t for t in later if t is not None))


def _files_due(deadlines: Deadlines, flags: Flags, debounce: float) -> float | None:
    """When the files are read: quiet for the debounce interval since the latest
    event (at most DEBOUNCE_CAP after the first), so that a file still being
    written is not read; or, outside a debounce, when writers are to be looked at
    again. A writer's look-again never cuts a debounce short: a copy of several
    files in place closes one and opens the next, and a look in that gap would
    read half of the new set."""
    if deadlines.debounce_began is not None:
        return min(flags.last_change + debounce, deadlines.debounce_began + DEBOUNCE_CAP)
    return deadlines.look_again


def _drift_due(deadlines: Deadlines) -> float | None:
    """A moment after the first event (more may follow: `Action.DRIFT_HEARD` set
    it), or when an object's back-off ends (it is tried again)."""
    found = [t for t in (deadlines.drift, deadlines.hold_ends) if t is not None]
    return min(found) if found else None
