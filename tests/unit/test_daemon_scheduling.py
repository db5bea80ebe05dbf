"""The daemon's loop decides what to do next from the clock, its deadlines and
its flags alone (scheduling.py): debounce and its cap, a reload that waits for
writers, drift a moment after its first event or when a back-off ends, the
watchdog and the resync. No root, no waiting: the clock is given."""

from __future__ import annotations

from netlab.controller.scheduling import (
    DEBOUNCE_CAP,
    DRIFT_QUIET,
    Action,
    Deadlines,
    Flags,
    Wait,
    next_action,
)

DEBOUNCE = 0.25
QUIET = Deadlines(resync=100.0)


def test_nothing_to_do_waits_for_the_resync_and_then_does_it() -> None:
    assert next_action(10.0, QUIET, Flags(), DEBOUNCE) == Wait(100.0)
    assert next_action(100.0, QUIET, Flags(), DEBOUNCE) is Action.RESYNC


def test_a_stop_comes_before_everything() -> None:
    flags = Flags(stopping=True, reload_requested=True, files_changed=True, drift_heard=True)
    assert next_action(200.0, Deadlines(resync=0.0, ping=0.0), flags, DEBOUNCE) is Action.STOP


def test_the_watchdog_is_pinged_when_due_whatever_else_is_pending() -> None:
    deadlines = Deadlines(resync=100.0, ping=15.0, debounce_began=13.9)
    flags = Flags(files_changed=True, last_change=14.9)
    assert next_action(14.0, deadlines, flags, DEBOUNCE) == Wait(min(15.0, 14.9 + DEBOUNCE))
    assert next_action(15.0, deadlines, flags, DEBOUNCE) is Action.PING


def test_a_change_of_the_files_is_read_once_quiet_for_the_debounce_interval() -> None:
    assert next_action(10.0, QUIET, Flags(files_changed=True, last_change=10.0), DEBOUNCE) is Action.DEBOUNCE
    debouncing = Deadlines(resync=100.0, debounce_began=10.0)
    # more events came: the quiet interval counts from the latest
    flags = Flags(files_changed=True, last_change=10.2)
    assert next_action(10.3, debouncing, flags, DEBOUNCE) == Wait(10.2 + DEBOUNCE)
    assert next_action(10.2 + DEBOUNCE, debouncing, flags, DEBOUNCE) is Action.READ_FILES


def test_a_stream_of_writes_is_read_at_the_cap_after_the_first() -> None:
    debouncing = Deadlines(resync=100.0, debounce_began=10.0)
    never_quiet = Flags(files_changed=True, last_change=10.0 + DEBOUNCE_CAP - 0.01)
    assert next_action(11.0, debouncing, never_quiet, DEBOUNCE) == Wait(10.0 + DEBOUNCE_CAP)
    assert next_action(10.0 + DEBOUNCE_CAP, debouncing, never_quiet, DEBOUNCE) is Action.READ_FILES


def test_a_reload_waits_for_the_writers_and_the_files_are_looked_at_again_meanwhile() -> None:
    waiting = Deadlines(resync=100.0, look_again=11.0)
    flags = Flags(reload_requested=True, writers=True)
    assert next_action(10.0, waiting, flags, DEBOUNCE) == Wait(11.0)
    assert next_action(11.0, waiting, flags, DEBOUNCE) is Action.READ_FILES
    # the writers closed the files: the reload goes first, before the files' own read
    closed = Flags(reload_requested=True, files_changed=True)
    assert next_action(11.5, Deadlines(resync=100.0, debounce_began=11.2), closed, DEBOUNCE) is Action.RELOAD


def test_a_writers_look_again_does_not_cut_a_debounce_short() -> None:
    """A copy of several files in place (`scp a b`, `rsync --inplace`) closes one
    file and opens the next: the once-a-second look at writers, due in that gap,
    must wait for the quiet interval like any read of the files."""
    deadlines = Deadlines(resync=100.0, debounce_began=10.9, look_again=11.0)
    flags = Flags(files_changed=True, last_change=10.95)
    assert next_action(11.0, deadlines, flags, DEBOUNCE) == Wait(10.95 + DEBOUNCE)
    assert next_action(10.95 + DEBOUNCE, deadlines, flags, DEBOUNCE) is Action.READ_FILES


def test_drift_is_served_a_moment_after_its_first_event() -> None:
    assert next_action(10.0, QUIET, Flags(drift_heard=True), DEBOUNCE) is Action.DRIFT_HEARD
    due = Deadlines(resync=100.0, drift=10.0 + DRIFT_QUIET)
    assert next_action(10.01, due, Flags(drift_heard=True), DEBOUNCE) == Wait(10.0 + DRIFT_QUIET)
    assert next_action(10.0 + DRIFT_QUIET, due, Flags(drift_heard=True), DEBOUNCE) is Action.DRIFT


def test_drift_and_the_resync_wait_while_the_files_are_debounced() -> None:
    deadlines = Deadlines(resync=10.0, drift=10.0, debounce_began=10.0)
    flags = Flags(files_changed=True, last_change=10.0, drift_heard=True)
    assert next_action(10.1, deadlines, flags, DEBOUNCE) == Wait(10.0 + DEBOUNCE)
    assert next_action(10.0 + DEBOUNCE, deadlines, flags, DEBOUNCE) is Action.READ_FILES
    read = Deadlines(resync=10.0, drift=10.0)  # the files' pass done
    assert next_action(10.4, read, Flags(drift_heard=True), DEBOUNCE) is Action.DRIFT


def test_the_end_of_a_back_off_makes_a_drift_pass_due() -> None:
    holding = Deadlines(resync=100.0, hold_ends=42.0)
    assert next_action(30.0, holding, Flags(), DEBOUNCE) == Wait(42.0)
    assert next_action(42.0, holding, Flags(), DEBOUNCE) is Action.DRIFT
