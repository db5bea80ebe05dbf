"""Applying against a kernel of recorded calls: a pass that fails is undone
newest first, whatever the failure (a refusal, a bug of ours), and the ledger
keeps only what the kernel still holds. No root, no kernel."""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog

from netlab.controller import applying
from netlab.controller.applying import apply_plan
from netlab.controller.changes import Change, Phase, Step
from netlab.controller.planning import Plan
from netlab.state.errors import ApplyError, KernelRefused
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState


class RecordingKernel:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare_nat_changes(self) -> None:
        pass


def write(name: str, fails: BaseException | None = None) -> Any:
    def run(kernel: Any) -> None:
        if fails is not None:
            raise fails
        kernel.calls.append(name)

    return run


def creation(name: str, phase: Phase, *, fails: BaseException | None = None, irreversible: str = "") -> Change:
    step = Step(
        phase, f"create {name}", write(f"create {name}", fails), undo=write(f"undo {name}"), irreversible=irreversible
    )
    return Change(kind="address", action="+", key=(None, "br0", name), netns=None, name=name, steps=(step,), record={})


def removal(name: str, phase: Phase) -> Change:
    step = Step(phase, f"delete {name}", write(f"delete {name}"), irreversible="gone with its state")
    return Change(kind="link", action="-", key=(None, name), netns=None, name=name, steps=(step,))


LOG = structlog.get_logger()


def recorded_ahead(tmp_path: Path, name: str) -> Any:
    """A step's run that first checks that the pass's intent is on disk (so that
    the rollback has something to take back), then raises a bug."""

    def run(kernel: Any) -> None:
        assert list(Ledger.load(tmp_path).keys("address")) == [
            (None, "br0", "a"),
            (None, "br0", "b"),
            (None, "br0", name),
        ]
        raise RuntimeError("a bug")

    return run


UNEXPECTED = [RuntimeError("a bug"), TypeError("a bug"), KeyboardInterrupt(), SystemExit(143)]


@pytest.mark.parametrize("raised", UNEXPECTED, ids=lambda error: type(error).__name__)
def test_whatever_a_step_raises_rolls_the_pass_back_and_is_raised(tmp_path: Path, raised: BaseException) -> None:
    """A bug of ours in step 3 (or an interrupt: Ctrl-C, SIGTERM as SystemExit):
    steps 1 and 2 are undone, the intent recorded ahead is gone from the ledger
    on disk, and the error goes on as it was."""
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    plan = Plan(
        (
            creation("a", Phase.ADD_ADDRESS),
            creation("b", Phase.ADD_ADDRESS),
            creation("c", Phase.ADD_ROUTE, fails=raised),
        )
    )
    with pytest.raises(type(raised)) as caught:
        apply_plan(plan, kernel, ledger, LOG)
    assert caught.value is raised
    assert kernel.calls == ["create a", "create b", "undo b", "undo a"]
    assert list(ledger.keys("address")) == []
    assert Ledger.load(tmp_path).count() == 0


def test_the_intent_is_on_disk_while_the_steps_run_and_gone_after_a_bug(tmp_path: Path) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    c = creation("c", Phase.ADD_ROUTE)
    c = replace(c, steps=(replace(c.steps[0], run=recorded_ahead(tmp_path, "c")),))
    plan = Plan((creation("a", Phase.ADD_ADDRESS), creation("b", Phase.ADD_ADDRESS), c))
    with pytest.raises(RuntimeError, match="a bug"):
        apply_plan(plan, kernel, ledger, LOG)
    assert Ledger.load(tmp_path).count() == 0


def test_a_bug_in_an_undo_undoes_the_rest_and_is_raised_with_the_ledger_right(tmp_path: Path) -> None:
    """Step 3 is refused; the undo of step 2 raises a bug: step 1 is undone all
    the same, step 2's change stays netlab's (it is still in the kernel), the
    intent of the others is gone, and the bug is raised."""
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    b = creation("b", Phase.ADD_ADDRESS)
    b = replace(b, steps=(replace(b.steps[0], undo=write("undo b", RuntimeError("a bug in an undo"))),))
    refused = KernelRefused("create c", errno.EEXIST, "File exists")
    plan = Plan((creation("a", Phase.ADD_ADDRESS), b, creation("c", Phase.ADD_ROUTE, fails=refused)))
    with pytest.raises(RuntimeError, match="a bug in an undo"):
        apply_plan(plan, kernel, ledger, LOG)
    assert kernel.calls == ["create a", "create b", "undo a"]
    assert list(Ledger.load(tmp_path).keys("address")) == [(None, "br0", "b")]


def test_what_fails_before_the_first_step_takes_the_intent_back(tmp_path: Path) -> None:
    """The NAT worker failing to start, after the intent was saved: nothing was
    written, and the ledger is as before the pass."""

    class NoNat(RecordingKernel):
        def prepare_nat_changes(self) -> None:
            raise KernelRefused("start the iptables worker", errno.EIO, "it died")

    kernel, ledger = NoNat(), Ledger(tmp_path / "ledger.json")
    rule = replace(creation("a", Phase.ADD_ADDRESS), kind="nat")
    with pytest.raises(KernelRefused, match="it died"):
        apply_plan(Plan((rule,)), kernel, ledger, LOG)
    assert kernel.calls == []
    assert Ledger.load(tmp_path).count() == 0


def test_a_failed_pass_forgets_what_it_recorded_ahead_even_when_part_stays(tmp_path: Path) -> None:
    """The removal of a link cannot be undone, so the pass is rolled back only in
    part: the link stays forgotten, but the addresses recorded ahead (one added
    and undone, one never added) are not netlab's."""
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    ledger.record("link", (None, "veth0"), {"type": "veth"})
    ledger.record("address", (None, "br0", "10.1.0.1/24"))
    refused = KernelRefused("add ff02::5/64", errno.EINVAL, "Invalid argument")
    plan = Plan(
        (
            removal("veth0", Phase.DELETE_LINK),
            creation("10.9.9.1/24", Phase.ADD_ADDRESS),
            creation("ff02::5/64", Phase.ADD_ADDRESS, fails=refused),
        )
    )
    with pytest.raises(ApplyError, match="Rolled back in part") as failed:
        apply_plan(plan, kernel, ledger, LOG)
    assert "delete veth0: cannot be undone" in str(failed.value)
    assert kernel.calls == ["delete veth0", "create 10.9.9.1/24", "undo 10.9.9.1/24"]
    saved = Ledger.load(tmp_path)
    assert list(saved.keys("address")) == [(None, "br0", "10.1.0.1/24")]
    assert list(saved.keys("link")) == []


def test_a_creation_whose_undo_fails_stays_netlabs(tmp_path: Path) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    stuck = Change(
        kind="address",
        action="+",
        key=(None, "br0", "10.9.9.1/24"),
        netns=None,
        name="10.9.9.1/24",
        steps=(
            Step(
                Phase.ADD_ADDRESS,
                "create 10.9.9.1/24",
                write("create 10.9.9.1/24"),
                undo=write("undo", KernelRefused("remove", errno.EBUSY, "busy")),
            ),
        ),
        record={},
    )
    plan = Plan((stuck, creation("x", Phase.ADD_ROUTE, fails=KernelRefused("x", errno.EEXIST, "File exists"))))
    with pytest.raises(ApplyError, match="undo failed"):
        apply_plan(plan, kernel, ledger, LOG)
    assert list(Ledger.load(tmp_path).keys("address")) == [(None, "br0", "10.9.9.1/24")]


def test_a_link_deleted_to_be_made_anew_and_then_undone_is_no_longer_netlabs(tmp_path: Path) -> None:
    """A replaced link: its deletion cannot be undone, its new link was; the
    name is free in the kernel, so the ledger must not claim it (a link an admin
    makes there later is not netlab's)."""
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    ledger.record("link", (None, "br0"), {"type": "bridge"})
    ledger.record("address", (None, "br0", "10.1.0.1/24"))
    replaced = Change(
        kind="link",
        action="~",
        key=(None, "br0"),
        netns=None,
        name="br0",
        steps=(
            Step(Phase.DELETE_LINK, "delete br0", write("delete br0"), irreversible="gone with its state"),
            Step(Phase.CREATE_LINK, "create br0", write("create br0"), undo=write("undo br0")),
        ),
        record={"type": "bridge"},
    )
    plan = Plan((replaced, creation("x", Phase.ADD_ROUTE, fails=KernelRefused("x", errno.EEXIST, "File exists"))))
    with pytest.raises(ApplyError, match="Rolled back in part"):
        apply_plan(plan, kernel, ledger, LOG)
    assert kernel.calls == ["delete br0", "create br0", "undo br0"]
    saved = Ledger.load(tmp_path)
    assert saved.count() == 0, saved.to_json()


def scripted_plans(monkeypatch: pytest.MonkeyPatch, *plans: Plan) -> None:
    """`make_plan` answers with these plans in turn: the pass's, then each verification's and round's."""
    answers = iter(plans)
    monkeypatch.setattr(applying, "make_plan", lambda *args, **kwargs: next(answers))


def test_a_change_made_meanwhile_is_made_good_in_the_same_pass_not_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone edits what the pass has just written (a managed file saved by an
    editor): verification finds it different, the pass makes it once more and
    verifies; nothing of the pass is undone."""
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    a, b = creation("a", Phase.ADD_ADDRESS), creation("b", Phase.ADD_ADDRESS)
    scripted_plans(monkeypatch, Plan((a, b)), Plan((b,)), Plan((b,)), Plan(()))
    applying.reconcile(DesiredState(), kernel, ledger, LOG)  # type: ignore[arg-type]
    assert kernel.calls == ["create a", "create b", "create b"]


def test_what_stays_different_after_the_second_round_rolls_both_rounds_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    a, b = creation("a", Phase.ADD_ADDRESS), creation("b", Phase.ADD_ADDRESS)
    scripted_plans(monkeypatch, Plan((a, b)), Plan((b,)), Plan((b,)), Plan((b,)))
    with pytest.raises(applying.NotVerified) as raised:
        applying.reconcile(DesiredState(), kernel, ledger, LOG)  # type: ignore[arg-type]
    assert [change.name for change in raised.value.remaining] == ["b"]
    assert kernel.calls == ["create a", "create b", "create b", "undo b", "undo b", "undo a"]
    assert list(ledger.keys("address")) == []


def failing_plan(error: BaseException) -> Any:
    def make_plan(*args: object, **kwargs: object) -> Plan:
        raise error

    return make_plan


@pytest.mark.parametrize(
    "raised",
    [RuntimeError("a bug while verifying"), KernelRefused("read netns red", errno.ENOENT, "No such file or directory")],
    ids=["a bug", "a refused read"],
)
def test_verification_that_raises_rolls_the_pass_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: BaseException
) -> None:
    """Every step done, but planning again to verify raises: the whole pass is
    undone and the ledger is as before it; a refusal says it could not verify
    and what was undone, a bug is raised as it is."""
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    a, b = creation("a", Phase.ADD_ADDRESS), creation("b", Phase.ADD_ADDRESS)
    answers = iter([lambda *args, **kwargs: Plan((a, b)), failing_plan(raised)])
    monkeypatch.setattr(applying, "make_plan", lambda *args, **kwargs: next(answers)(*args, **kwargs))
    expected: type[BaseException] = ApplyError if isinstance(raised, KernelRefused) else type(raised)
    with pytest.raises(expected) as caught:
        applying.reconcile(DesiredState(), kernel, ledger, LOG)  # type: ignore[arg-type]
    if isinstance(raised, KernelRefused):
        assert str(caught.value).startswith(
            f"could not verify the pass: {raised}\nThe 2 steps done before it were undone"
        )
        assert caught.value.__cause__ is raised
    else:
        assert caught.value is raised
    assert kernel.calls == ["create a", "create b", "undo b", "undo a"]
    assert Ledger.load(tmp_path).count() == 0


def test_a_second_round_that_fails_is_rolled_back_once_with_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    a, b = creation("a", Phase.ADD_ADDRESS), creation("b", Phase.ADD_ADDRESS)
    c = creation("c", Phase.ADD_ROUTE, fails=KernelRefused("create c", errno.EEXIST, "File exists"))
    scripted_plans(monkeypatch, Plan((a, b)), Plan((c,)), Plan((c,)))
    with pytest.raises(ApplyError, match="could not create c") as caught:
        applying.reconcile(DesiredState(), kernel, ledger, LOG, frozenset({None}), hold=frozenset())  # type: ignore[arg-type]
    assert not isinstance(caught.value, applying.NotVerified)
    assert kernel.calls == ["create a", "create b", "undo b", "undo a"]
    assert Ledger.load(tmp_path).count() == 0
