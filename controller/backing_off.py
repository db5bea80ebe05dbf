"""Backing off, object by object: the daemon's policy for an object it keeps
changing without it staying changed. Two ways to get there: someone (another
manager) undoes the object again and again, or the kernel never shows it as
asked (a failed verification, twice in a row). Either way the daemon leaves that
object alone for a while, doubling each time, while every other object is still
repaired at once. Used by the daemon's passes (passes.py), which hand `held()`
to each pass and tell it what each pass repaired or could not verify."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from netlab.controller.changes import Change
from netlab.state.model import netns_label

ObjectId = tuple[str, tuple[Any, ...]]  # (kind, key), as plans name objects
Reason = Literal["fight", "unverified"]

# another manager: this many repairs of one object within the window is a fight
FIGHT_WINDOW = 30.0
FIGHT_REPAIRS = 5
FIGHT_FIRST = 1.0
FIGHT_MAX = 60.0
# a kernel that does not keep what was asked: each retry rewrites the object
UNVERIFIED_FIRST = 2.0
UNVERIFIED_MAX = 600.0

REASONS = {
    "fight": "repaired again and again: something else keeps changing it",
    "unverified": "the kernel does not show it as applied",
}


class HoldJson(TypedDict):
    """One object backed off, in status.json's `backing_off`."""

    kind: str
    netns: str
    name: str
    reason: Reason
    detail: str
    delay_s: float
    until: str


@dataclass(frozen=True)
class Hold:
    """One object left alone until `until` (time.monotonic())."""

    kind: str
    netns: str | None
    name: str
    reason: Reason
    until: float
    delay: float  # seconds of this step of the back-off

    def to_json(self, now: float) -> HoldJson:
        wall = time.time() + (self.until - now)
        return {
            "kind": self.kind,
            "netns": netns_label(self.netns),
            "name": self.name,
            "reason": self.reason,
            "detail": REASONS[self.reason],
            "delay_s": self.delay,
            "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)),
        }


@dataclass
class _Record:
    repairs: list[float] = field(default_factory=list)  # times, within the window
    last_repair: float = 0.0
    fight_delay: float = 0.0
    unverified_delay: float = 0.0
    hold: Hold | None = None


class Backoff:
    def __init__(self) -> None:
        self._records: dict[ObjectId, _Record] = {}

    def held(self, now: float) -> frozenset[ObjectId]:
        """The objects a pass must leave alone now."""
        return frozenset(ident for ident, record in self._records.items() if record.hold and record.hold.until > now)

    def holds(self, now: float) -> list[Hold]:
        return sorted(
            (record.hold for record in self._records.values() if record.hold and record.hold.until > now),
            key=lambda hold: (hold.until, hold.kind, hold.name),
        )

    def next_end(self, now: float) -> float | None:
        """When the next hold ends (a pass is due then, to try the object again)."""
        ends = [record.hold.until for record in self._records.values() if record.hold and record.hold.until > now]
        return min(ends) if ends else None

    def unconverged(self, now: float) -> list[Hold]:
        """Objects held because the kernel does not keep them: the pass that
        left them out did not make the kernel match the files."""
        return [hold for hold in self.holds(now) if hold.reason == "unverified"]

    def repaired(self, changes: Iterable[Change], now: float) -> list[Hold]:
        """A pass for the generation in force changed these objects: drift
        undone. An object repaired FIGHT_REPAIRS times within FIGHT_WINDOW is
        held, 1 s, then twice as long at each further repair (up to FIGHT_MAX),
        until it stays repaired for a whole window after its hold. Returns the
        new holds."""
        new = []
        for change in changes:
            record = self._records.setdefault(_ident(change), _Record())
            fighting = record.fight_delay > 0 and now - record.last_repair < record.fight_delay + FIGHT_WINDOW
            record.repairs = [t for t in record.repairs if now - t < FIGHT_WINDOW] + [now]
            record.last_repair = now
            if fighting or len(record.repairs) >= FIGHT_REPAIRS:
                record.fight_delay = min(FIGHT_MAX, max(FIGHT_FIRST, record.fight_delay * 2))
                record.hold = _hold(change, "fight", now, record.fight_delay)
                new.append(record.hold)
        self._forget_quiet(now)
        return new

    def unverified(self, changes: Iterable[Change], now: float) -> list[Hold]:
        """These objects still differed after a pass made them twice: each is held
        UNVERIFIED_FIRST, doubling at each further failure (up to
        UNVERIFIED_MAX), until a pass verifies it. Returns the new holds."""
        new = []
        for change in changes:
            record = self._records.setdefault(_ident(change), _Record())
            record.unverified_delay = min(UNVERIFIED_MAX, max(UNVERIFIED_FIRST, record.unverified_delay * 2))
            record.hold = _hold(change, "unverified", now, record.unverified_delay)
            new.append(record.hold)
        return new

    def verified(self, now: float, left_out: frozenset[ObjectId] = frozenset()) -> None:
        """A pass verified everything it did not hold (`left_out`): what failed
        verification before, and was in that pass, is right now. A hold that
        ended while the pass ran was left out of it all the same: not verified."""
        for ident, record in self._records.items():
            if record.unverified_delay and ident not in left_out and not (record.hold and record.hold.until > now):
                record.unverified_delay = 0.0
        self._forget_quiet(now)

    def release(self) -> None:
        """The operator asked again (a new generation, a reload): every object is
        tried at once; how often it failed or was fought is remembered, so the
        next hold, if any, is the next step."""
        for record in self._records.values():
            record.hold = None

    def _forget_quiet(self, now: float) -> None:
        for ident, record in list(self._records.items()):
            record.repairs = [t for t in record.repairs if now - t < FIGHT_WINDOW]
            if now - record.last_repair >= record.fight_delay + FIGHT_WINDOW:
                record.fight_delay = 0.0  # it stayed repaired: the fight is over
            held = record.hold is not None and record.hold.until > now
            if not held:
                record.hold = None
            if not record.repairs and not record.fight_delay and not record.unverified_delay and not held:
                del self._records[ident]


def _ident(change: Change) -> ObjectId:
    return (change.kind, change.key)


def _hold(change: Change, reason: Reason, now: float, delay: float) -> Hold:
    return Hold(change.kind, change.netns, change.name, reason, now + delay, delay)
