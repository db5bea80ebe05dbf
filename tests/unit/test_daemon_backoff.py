"""The daemon's back-off, object by object (backing_off.py): a stream of
unrelated repairs never backs off; one object undone again and again, or one
the kernel does not keep, is left alone for doubling intervals while the rest
is not. Times are given, not waited for."""

from __future__ import annotations

from netlab.controller.backing_off import (
    FIGHT_MAX,
    FIGHT_REPAIRS,
    FIGHT_WINDOW,
    UNVERIFIED_FIRST,
    UNVERIFIED_MAX,
    Backoff,
)
from netlab.controller.changes import Change


def address(n: int) -> Change:
    return Change("address", "+", (None, "br0", f"10.7.{n}.1/24"), None, f"br0 10.7.{n}.1/24")


def test_a_stream_of_unrelated_repairs_never_backs_off() -> None:
    # 100 out-of-band changes in 3 minutes, each to another object
    backoff = Backoff()
    for n in range(100):
        now = n * 1.8
        assert backoff.repaired([address(n)], now) == []
        assert backoff.held(now) == frozenset()


def test_one_object_undone_again_and_again_is_held_alone_for_doubling_times() -> None:
    backoff = Backoff()
    fought, other = address(0), address(1)
    now = 0.0
    for _ in range(FIGHT_REPAIRS - 1):
        assert backoff.repaired([fought], now) == []
        now += 0.1
    (hold,) = backoff.repaired([fought, other], now)
    assert (hold.kind, hold.name, hold.reason, hold.delay) == ("address", fought.name, "fight", 1.0)
    assert backoff.held(now) == {("address", fought.key)}  # the other object is repaired as ever
    assert backoff.next_end(now) == now + 1.0
    delays = []
    for _ in range(8):
        now = backoff.next_end(now) or now  # tried again when its hold ends, and undone again
        assert backoff.held(now) == frozenset()
        (hold,) = backoff.repaired([fought], now)
        delays.append(hold.delay)
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, FIGHT_MAX, FIGHT_MAX, FIGHT_MAX]


def test_a_fight_is_forgotten_after_a_quiet_window() -> None:
    backoff = Backoff()
    for n in range(FIGHT_REPAIRS):
        backoff.repaired([address(0)], n * 0.1)
    assert backoff.held(0.5)
    later = 0.4 + FIGHT_WINDOW + 1
    assert backoff.repaired([address(0)], later) == []  # one repair: no fight any more
    assert backoff.held(later) == frozenset()


def test_an_object_the_kernel_does_not_keep_is_held_longer_each_time_until_it_verifies() -> None:
    backoff = Backoff()
    route = Change("route", "+", (None, 254, "2001:db8:5::/64", 0), None, "2001:db8:5::/64")
    assert backoff.unconverged(0.0) == []
    (hold,) = backoff.unverified([route], 0.0)
    assert (hold.reason, hold.delay) == ("unverified", UNVERIFIED_FIRST)
    assert backoff.unconverged(0.0) == [hold]
    backoff.verified(1.0)  # a pass that held it verified the rest: it is not right yet
    assert [held.reason for held in backoff.unconverged(1.0)] == ["unverified"]
    now, delays = 0.0, []
    for _ in range(12):
        now = backoff.next_end(now) or now
        (hold,) = backoff.unverified([route], now)
        delays.append(hold.delay)
    assert delays[:3] == [4.0, 8.0, 16.0] and delays[-1] == UNVERIFIED_MAX
    now = backoff.next_end(now) or now
    # a pass that began while it was held ends after its hold: it was left out, not verified
    backoff.verified(now, frozenset(backoff.held(now - 0.1)))
    (hold,) = backoff.unverified([route], now)
    assert hold.delay == UNVERIFIED_MAX  # the next step, not the first again
    now = backoff.next_end(now) or now
    backoff.verified(now)  # tried again at the end of its hold, and verified
    assert backoff.unconverged(now) == []


def test_a_new_generation_or_a_reload_tries_everything_again_at_the_next_step() -> None:
    backoff = Backoff()
    route = address(3)
    backoff.unverified([route], 0.0)
    backoff.release()
    assert backoff.held(0.0) == frozenset() and backoff.next_end(0.0) is None
    (hold,) = backoff.unverified([route], 0.5)  # still not kept: the next step, not the first
    assert hold.delay == 2 * UNVERIFIED_FIRST


def test_status_names_each_held_object_with_a_wall_clock_end() -> None:
    backoff = Backoff()
    backoff.unverified(
        [Change("sysctl", "~", ("red", "net.ipv4.ping_group_range"), "red", "net.ipv4.ping_group_range")], 10.0
    )
    (entry,) = [hold.to_json(10.0) for hold in backoff.holds(10.0)]
    assert entry["kind"] == "sysctl" and entry["netns"] == "red" and entry["reason"] == "unverified"
    assert entry["delay_s"] == UNVERIFIED_FIRST and entry["until"].endswith("Z") and "kernel" in entry["detail"]
