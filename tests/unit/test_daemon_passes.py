"""The daemon's pass policy (passes.py), over a fake kernel and a fake reconcile:
an edit's pass plans only what changed, a start, reload, resync or the pass after
a failure reads everything again, a namespace deleted by hand is repaired with
the namespaces its links reach, a pass the kernel does not verify backs the
objects off, a fought object is left alone, and the health says how it went
(a full disk for the ledger included). No root needed."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from netlab.controller.applying import NotVerified
from netlab.controller.backing_off import FIGHT_REPAIRS, UNVERIFIED_FIRST
from netlab.controller.generations import Generation
from netlab.controller.health import Health
from netlab.controller.passes import Passes
from netlab.controller.planning import scope_of_edit
from netlab.state import ledger as ledger_module
from netlab.state.errors import ApplyError
from netlab.state.model import DesiredState
from tests.unit.daemon_fakes import BLUE, LAB, FakeKernel, FakeReconcile, RecordingLog, address, desired_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def passes(tmp_path: Path, clock: Clock) -> Passes[FakeKernel]:
    return Passes(FakeKernel(), FakeReconcile(), tmp_path / "state", Health(), RecordingLog(), clock)


def fake(passes: Passes[FakeKernel]) -> FakeReconcile:
    assert isinstance(passes.reconcile, FakeReconcile)
    return passes.reconcile


def generation(desired: DesiredState, number: int = 1) -> Generation:
    return Generation(number, f"digest{number}", desired.files, desired, "config")


@pytest.fixture
def lab(tmp_path: Path) -> DesiredState:
    return desired_of(tmp_path / "lab", **{"lab.yaml": LAB})


@pytest.fixture
def lab_and_blue(tmp_path: Path) -> DesiredState:
    return desired_of(tmp_path / "both", **{"lab.yaml": LAB, "blue.yaml": BLUE})


def test_an_edit_plans_only_the_namespaces_it_changed(
    passes: Passes[FakeKernel], lab: DesiredState, lab_and_blue: DesiredState
) -> None:
    assert passes.run("start", generation(lab))
    assert passes.run("config", generation(lab_and_blue, 2))
    start, edit = fake(passes).calls
    assert start.scope is None  # a start plans everything, from fresh reads
    assert edit.scope == scope_of_edit(lab, lab_and_blue) == {"blue"}
    assert passes.kernel.calls == ["forget_reads", "forget_heard"]
    assert passes.health.state == "healthy"


@pytest.mark.parametrize("reason", ["start", "reload", "resync"])
def test_a_start_reload_or_resync_reads_and_plans_everything(
    passes: Passes[FakeKernel], lab: DesiredState, reason: str
) -> None:
    passes.run("start", generation(lab))
    passes.kernel.calls.clear()
    passes.run(reason, generation(lab))  # type: ignore[arg-type]
    assert passes.kernel.calls == ["forget_reads"]
    assert fake(passes).calls[-1].scope is None


def test_after_a_failed_pass_the_next_reads_everything_and_the_health_recovers(
    passes: Passes[FakeKernel], lab: DesiredState, lab_and_blue: DesiredState
) -> None:
    passes.run("start", generation(lab))
    fake(passes).outcomes.append(ApplyError("step refused: the kernel said no"))
    assert not passes.run("config", generation(lab_and_blue, 2))
    health = passes.health
    assert health.state == "failing" and health.last_error is not None
    assert health.last_error["message"] == "step refused: the kernel said no"
    assert passes.log.said("reconcile failed: the previous state stays")
    passes.kernel.calls.clear()
    assert passes.run("config", generation(lab_and_blue, 2))
    assert passes.kernel.calls == ["forget_reads"]  # not only what was heard changing
    assert fake(passes).calls[-1].scope is None  # nor only the edit's namespaces
    assert health.state == "healthy"


def test_a_pass_the_kernel_does_not_verify_backs_its_objects_off(
    passes: Passes[FakeKernel], lab: DesiredState, clock: Clock
) -> None:
    passes.run("start", generation(lab))
    stubborn = address(1)
    fake(passes).outcomes.append(NotVerified("still differs after two rounds", (stubborn,)))
    assert not passes.run("drift", generation(lab))
    assert passes.health.state == "failing"
    assert passes.backoff.held(clock.now) == {("address", stubborn.key)}
    assert passes.log.said("backing off: the kernel does not keep an object as asked; leaving it alone for a while")
    # the next pass leaves it out, and is not healthy while it is held
    clock.now += 1
    assert passes.run("drift", generation(lab))
    assert fake(passes).calls[-1].hold == {("address", stubborn.key)}
    assert passes.health.state == "failing"
    # tried again when its hold ends, and verified
    clock.now += UNVERIFIED_FIRST
    assert passes.run("drift", generation(lab))
    assert fake(passes).calls[-1].hold == frozenset()
    assert passes.health.state == "healthy"


def test_an_object_repaired_again_and_again_is_fought_over_and_counted(
    passes: Passes[FakeKernel], lab: DesiredState, clock: Clock
) -> None:
    passes.run("start", generation(lab))
    fought = address(2)
    for _ in range(FIGHT_REPAIRS):
        clock.now += 0.5
        fake(passes).outcomes.append((fought,))
        assert passes.run("drift", generation(lab))
    assert passes.health.drift_repairs == FIGHT_REPAIRS
    assert len(passes.log.said("drift repaired")) == FIGHT_REPAIRS
    (said,) = passes.log.said(
        "fighting another manager: an object keeps being changed behind netlab's back; leaving it alone for a while"
    )
    assert said["name"] == fought.name and said["reason"] == "fight"
    clock.now += 0.1
    passes.run("drift", generation(lab))
    assert fake(passes).calls[-1].hold == {("address", fought.key)}
    assert passes.health.state == "healthy"  # a fight is not the kernel failing
    # a new generation or a reload tries it again at once
    passes.asked_again()
    passes.run("reload", generation(lab))
    assert fake(passes).calls[-1].hold == frozenset()


def test_a_pass_that_changes_nothing_does_not_hide_the_last_apply(
    passes: Passes[FakeKernel], lab: DesiredState
) -> None:
    fake(passes).outcomes.append((address(3),))
    passes.run("config", generation(lab))
    applied = passes.health.last_apply
    assert applied is not None and applied["changes"] == 1 and applied["reason"] == "config"
    passes.run("drift", generation(lab))  # the echo of its own writes: nothing to do
    assert passes.health.last_apply == applied
    assert passes.health.last_pass is not None and passes.health.last_pass["reason"] == "drift"
    assert passes.health.drift_repairs == 0  # an edit's changes are no repairs


def test_a_namespace_deleted_by_hand_is_repaired_with_the_namespaces_its_links_reach(
    passes: Passes[FakeKernel], lab_and_blue: DesiredState
) -> None:
    passes.run("start", generation(lab_and_blue))
    passes.kernel.replaced = ["red"]
    passes.kernel.heard = frozenset({"red"})
    passes.run("drift", generation(lab_and_blue))
    assert "drop ['red']" in passes.kernel.calls
    # red's veth has its peer in the host: both, not blue
    assert fake(passes).calls[-1].scope == frozenset({"red", None})
    (said,) = passes.log.said(
        "namespaces replaced or deleted behind netlab's back: they are read again, and planned with the namespaces their links reach"
    )
    assert said["netns"] == ["red"] and said["scope"] == ["host", "red"]
    passes.run("drift", generation(lab_and_blue))  # repaired: the next drift pass plans everything again
    assert fake(passes).calls[-1].scope is None


def test_a_namespace_deleted_with_a_managed_file_edited_plans_everything(
    passes: Passes[FakeKernel], lab_and_blue: DesiredState
) -> None:
    passes.run("start", generation(lab_and_blue))
    passes.kernel.replaced = ["red"]
    passes.unplaced_drift = True  # a resolver file changed too: no namespace's events name it
    passes.run("drift", generation(lab_and_blue))
    assert fake(passes).calls[-1].scope is None


def test_a_full_disk_for_the_ledger_fails_the_pass_and_the_next_one_recovers(
    passes: Passes[FakeKernel], lab: DesiredState, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes.run("start", generation(lab))
    real = ledger_module.write_atomically

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ledger_module, "write_atomically", full)
    fake(passes).outcomes.append((address(4),))
    assert not passes.run("config", generation(lab, 2))  # the pass is failed, the process lives
    health = passes.health
    assert health.state == "failing" and health.last_error is not None
    assert health.last_error["message"].startswith("could not complete the pass: ")
    assert "No space left on device" in health.last_error["message"]
    assert passes.ledger is None  # read again from the file by the next pass
    monkeypatch.setattr(ledger_module, "write_atomically", real)
    fake(passes).outcomes.append((address(4),))
    assert passes.run("config", generation(lab, 2))
    assert health.state == "healthy"
    assert passes.objects_owned == 1
    assert fake(passes).calls[-1].scope is None  # after the failure: everything
