"""`netlab try` without root (controller/trying.py): a try is written down before
its first write, a try whose process is gone is told apart from one that waits
by its lock, and is settled (rolled back to the files from before, unless it was
confirmed; files tried in place are held back); `netlab confirm` and the try's
own deadline cannot both win; a line on stdin confirms, its end does not;
`netlab try FILE` reads the given files in place of the config files of their
names. The kernel is left out: the rollback's pass is recorded, not run."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from netlab.controller import kept, trying
from netlab.controller.generations import Generation, Generations
from netlab.controller.health import Health
from netlab.controller.passes import Passes
from netlab.state.errors import ApplyError, ConfigError
from netlab.state.ledger import Ledger
from netlab.state.loading import load_generation, take_snapshot, with_files
from netlab.state.model import DesiredState
from tests.unit.daemon_fakes import BLUE, LAB, FakeKernel, FakeReconcile, RecordingLog

GREEN = LAB.replace("[{name: red}]", "[{name: red}, {name: green}]")


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[DesiredState]:
    """What each rollback applied (the pass itself is left out)."""
    passes: list[DesiredState] = []

    def reconcile(desired: DesiredState, kernel: Any, ledger: Any, log: Any) -> None:
        passes.append(desired)

    monkeypatch.setattr(trying, "reconcile", reconcile)
    return passes


def begin(dirs: tuple[Path, Path], text: str = GREEN, installs: tuple[str, ...] = ()) -> trying.Trial:
    """A try of `text` as lab.yaml, from the generation LAB (kept as the last good one)."""
    config, state = dirs
    kept.keep_last_good(state, {"lab.yaml": LAB.encode()})
    return trying.Trial.begin(
        state, config, "d1gest", {"lab.yaml": text.encode()}, {"lab.yaml": LAB.encode()}, 60.0, installs
    )


def gone(trial: trying.Trial) -> None:
    """As if its process had been killed: the kernel drops the lock with it."""
    os.close(trial._lock)


def abandoned(dirs: tuple[Path, Path]) -> trying.Trial:
    """A try that waited, whose process is gone."""
    trial = begin(dirs)
    trial.waiting(time.time() + 60)
    gone(trial)
    return trial


def names(desired: DesiredState) -> list[str]:
    return sorted(namespace.name for namespace in desired.namespaces)


def test_a_try_is_on_disk_with_its_files_and_its_owner_before_anything_is_applied(dirs: tuple[Path, Path]) -> None:
    trial = begin(dirs)
    found = trying.look(dirs[1])
    assert found is not None and found.alive
    assert found.record["state"] == "applying" and found.record["pid"] == os.getpid()
    assert (found.directory / trying.BEFORE_DIR / "lab.yaml").read_text() == LAB
    assert (found.directory / trying.TRIED_DIR / "lab.yaml").read_text() == GREEN
    gone(trial)
    found = trying.look(dirs[1])
    assert found is not None and not found.alive


def test_a_try_whose_process_is_gone_is_rolled_back_to_the_files_before_it(
    dirs: tuple[Path, Path], applied: list[DesiredState]
) -> None:
    abandoned(dirs)
    log = RecordingLog()
    settled = trying.settle(dirs[1], None, log)  # type: ignore[arg-type]  # the pass is recorded
    assert settled is not None and settled.outcome == "rolled back"
    assert [names(desired) for desired in applied] == [["red"]]
    assert trying.look(dirs[1]) is None
    held = kept.held_back(dirs[1])
    assert held is not None and held["digest"] == "d1gest"
    assert "its process ended before a confirmation came" in held["why"]
    assert trying.settle(dirs[1], None, log) is None  # type: ignore[arg-type]  # settled once


def test_one_whose_process_lives_is_not_touched(dirs: tuple[Path, Path], applied: list[DesiredState]) -> None:
    trial = begin(dirs)
    trial.waiting(time.time() + 60)
    with pytest.raises(trying.TryWaiting, match=r"waits for its confirmation until .*`netlab confirm`"):
        trying.settle(dirs[1], None, RecordingLog())  # type: ignore[arg-type]
    assert applied == [] and trying.look(dirs[1]) is not None


def test_a_confirmed_try_whose_process_is_gone_stays_and_installs_its_files(
    dirs: tuple[Path, Path], applied: list[DesiredState]
) -> None:
    (dirs[0] / "lab.yaml").write_text(LAB)
    os.chmod(dirs[0] / "lab.yaml", 0o640)
    trial = begin(dirs, installs=("lab.yaml",))
    trial.waiting(time.time() + 60)
    assert trial.decide(confirm=True)
    gone(trial)  # killed after the decision, before it ended the try
    settled = trying.settle(dirs[1], None, RecordingLog())  # type: ignore[arg-type]
    assert settled is not None and settled.outcome == "confirmed" and applied == []
    assert (dirs[0] / "lab.yaml").read_text() == GREEN
    assert (dirs[0] / "lab.yaml").stat().st_mode & 0o777 == 0o640  # the file it replaced kept its mode
    assert (dirs[1] / kept.LAST_GOOD_DIR / "lab.yaml").read_text() == GREEN
    assert [p.name for p in dirs[0].iterdir()] == ["lab.yaml"]  # no temp file left


def test_files_given_to_try_and_rolled_back_are_not_held_back(
    dirs: tuple[Path, Path], applied: list[DesiredState]
) -> None:
    """The config dir never held them: it is still the generation before."""
    trial = begin(dirs, installs=("lab.yaml",))
    gone(trial)
    trying.settle(dirs[1], None, RecordingLog())  # type: ignore[arg-type]
    assert kept.held_back(dirs[1]) is None and [names(d) for d in applied] == [["red"]]


def test_confirm_says_why_it_cannot(dirs: tuple[Path, Path]) -> None:
    with pytest.raises(ApplyError, match="no `netlab try` waits for a confirmation"):
        trying.confirm(dirs[1])
    trial = begin(dirs)
    with pytest.raises(ApplyError, match="still applying its change"):
        trying.confirm(dirs[1])
    trial.waiting(time.time() + 60)
    with pytest.raises(ApplyError, match="too late: .* ran out of time"):
        trying.confirm(dirs[1], clock=lambda: time.time() + 61)
    assert not trial.decide(confirm=False)  # the deadline: it rolls back
    with pytest.raises(ApplyError, match="too late: .* is being rolled back"):
        trying.confirm(dirs[1])


def test_confirm_and_the_deadline_cannot_both_win(dirs: tuple[Path, Path]) -> None:
    trial = begin(dirs)
    trial.waiting(time.time() + 60)
    confirming = threading.Thread(target=trying.confirm, args=(dirs[1],))
    confirming.start()
    waited = time.monotonic() + 10
    while trying._read_record(trial.directory)["state"] != "confirmed" and time.monotonic() < waited:  # type: ignore[index]
        time.sleep(0.01)
    # the deadline comes just after: the confirmation stands
    assert trial.decide(confirm=False)
    trial.end("confirmed")
    confirming.join(10)
    assert not confirming.is_alive() and trying.look(dirs[1]) is None
    assert (dirs[1] / kept.LAST_GOOD_DIR / "lab.yaml").read_text() == GREEN


def test_confirm_keeps_a_try_whose_process_is_gone_before_its_deadline(dirs: tuple[Path, Path]) -> None:
    abandoned(dirs)
    assert "its process had ended" in trying.confirm(dirs[1])
    assert trying.look(dirs[1]) is None
    assert (dirs[1] / kept.LAST_GOOD_DIR / "lab.yaml").read_text() == GREEN


def waiting_with(dirs: tuple[Path, Path], written: bytes | None) -> tuple[trying.Waiting, trying.Trial]:
    """A try waiting with a pipe for stdin, `written` into it (None: left open)."""
    trial = begin(dirs)
    reading, writing = os.pipe()
    if written is not None:
        os.write(writing, written)
        os.close(writing)
    return trying.Waiting(trial, stdin=reading), trial


def test_a_line_on_stdin_confirms(dirs: tuple[Path, Path]) -> None:
    waiting, trial = waiting_with(dirs, b"\n")
    assert waiting.wait(30) == "confirmed"
    assert trying._read_record(trial.directory)["state"] == "confirmed"  # type: ignore[index]


def test_the_end_of_stdin_is_no_confirmation(dirs: tuple[Path, Path]) -> None:
    """`netlab try < /dev/null`, or a terminal gone: it waits out its time."""
    waiting, trial = waiting_with(dirs, b"")
    assert waiting.wait(0.3) == "timeout"
    assert trying._read_record(trial.directory)["state"] == "rolling back"  # type: ignore[index]


def test_netlab_confirm_from_another_shell_ends_the_wait(dirs: tuple[Path, Path]) -> None:
    waiting, trial = waiting_with(dirs, None)
    threading.Timer(0.2, trying.confirm, args=(dirs[1],)).start()
    assert waiting.wait(30) == "confirmed"
    trial.end("confirmed")


def test_a_stop_ends_the_wait_without_a_confirmation(dirs: tuple[Path, Path]) -> None:
    waiting, _ = waiting_with(dirs, None)
    waiting.signals.stopped = True  # SIGTERM
    assert waiting.wait(30) == "stopped"


def test_before_the_try_is_nothing_when_netlab_owns_nothing_else_the_last_good_files(dirs: tuple[Path, Path]) -> None:
    config, state = dirs
    ledger = Ledger.load(state)
    assert trying.before_files(state, ledger) == {}
    ledger.record("namespace", ("red",))
    with pytest.raises(ApplyError, match=r"run `netlab apply` once with the files in force, then `netlab try`"):
        trying.before_files(state, ledger)
    kept.keep_last_good(state, {str(config / "lab.yaml"): LAB.encode()})
    assert trying.before_files(state, ledger) == {str(state / kept.LAST_GOOD_DIR / "lab.yaml"): LAB.encode()}
    assert names(trying.before_state(state, ledger)) == ["red"]


def test_files_given_to_try_stand_in_for_those_of_their_names(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    config = dirs[0]
    (config / "lab.yaml").write_text(LAB)
    (config / "blue.yaml").write_text(BLUE.replace("type: dummy", "type: bridge"))
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "lab.yaml").write_text(GREEN)
    (candidate / "extra.yaml").write_text("version: 1\nnamespaces: [{name: orange}]\n")
    snapshot = with_files(take_snapshot(config), config, [candidate / "lab.yaml", candidate / "extra.yaml"])
    desired = load_generation(config, snapshot=snapshot)
    assert names(desired) == ["blue", "green", "orange", "red"]
    assert sorted(Path(name).name for name in kept.contents_of(snapshot)) == ["blue.yaml", "extra.yaml", "lab.yaml"]
    # installed, the config dir would hash the same as what was tried
    (config / "lab.yaml").write_text(GREEN)
    (config / "extra.yaml").write_text("version: 1\nnamespaces: [{name: orange}]\n")
    assert kept.digest_of(take_snapshot(config)) == kept.digest_of(snapshot)


def test_a_given_file_is_named_in_its_problems_and_a_bad_name_refused(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    config = dirs[0]
    broken = tmp_path / "lab.yaml"
    broken.write_text("version: 1\nnamespaces: [{name: red, colour: 1}]\n")
    with pytest.raises(ConfigError) as caught:
        load_generation(config, snapshot=with_files(take_snapshot(config), config, [broken]))
    assert [problem.file for problem in caught.value.problems] == [str(broken)]
    with pytest.raises(ConfigError, match="not a desired-state file's name"):
        with_files(take_snapshot(config), config, [tmp_path / "lab.txt"])
    with pytest.raises(ConfigError, match="given twice"):
        with_files(take_snapshot(config), config, [broken, tmp_path / "again" / "lab.yaml"])


def test_the_daemon_holds_back_files_tried_and_not_confirmed(dirs: tuple[Path, Path]) -> None:
    """Until they change; the generation from before (the last good) is in force."""
    config, state = dirs
    kept.keep_last_good(state, {"lab.yaml": LAB.encode()})
    (config / "lab.yaml").write_text(GREEN)
    digest = kept.digest_of(take_snapshot(config))
    kept.hold_back(state, {"digest": digest, "tried": "then", "rolled_back": "now", "why": "no confirmation came"})
    health = Health()
    generations = Generations(config, state, health, RecordingLog())
    assert generations.read() == "rejected"
    assert health.state == "degraded" and health.rejected is not None
    assert "tried with `netlab try` at then and not confirmed: no confirmation came" in health.last_error["message"]  # type: ignore[index]
    assert generations.current is not None and generations.current.source == "last-good"
    assert generations.read(force=True) == "unchanged"  # a reload: still held back, said once
    (config / "lab.yaml").write_text(LAB.replace("10.5.0.2", "10.5.0.3"))
    assert generations.read() == "new"
    assert kept.held_back(state) is None


def test_a_daemon_pass_that_finds_a_try_under_the_lock_changes_nothing(dirs: tuple[Path, Path]) -> None:
    """A try that began while the pass waited for the state lock is seen there."""
    passes = Passes(FakeKernel(), FakeReconcile(), dirs[1], Health(), RecordingLog())
    desired = DesiredState()
    trial = begin(dirs)
    assert not passes.run("drift", Generation(1, "d", (), desired, "config"))
    assert passes.try_found is not None and passes.try_found.record["pid"] == os.getpid()
    assert isinstance(passes.reconcile, FakeReconcile) and passes.reconcile.calls == []
    trial.end("failed")
    assert passes.run("drift", Generation(1, "d", (), desired, "config")) and passes.try_found is None


def test_two_lookers_do_not_take_each_other_for_the_owner(dirs: tuple[Path, Path]) -> None:
    trial = begin(dirs)
    gone(trial)
    with open(trial.directory / trying.OWNER_LOCK) as other:
        fcntl.flock(other, fcntl.LOCK_SH)  # another process looking at the same moment
        found = trying.look(dirs[1])
        assert found is not None and not found.alive


def test_a_confirmation_written_while_the_try_is_settled_is_what_counts(
    dirs: tuple[Path, Path], applied: list[DesiredState]
) -> None:
    """settle reads the record again under the decide lock: a confirm just before wins."""
    abandoned(dirs)
    found = trying.look(dirs[1])
    assert found is not None
    trying._write_record(found.directory, trying.replace_record(found.record, state="confirmed"))
    settled = trying.settle(dirs[1], None, RecordingLog())  # type: ignore[arg-type]
    assert settled is not None and settled.outcome == "confirmed" and applied == []


def test_no_rolls_back_at_once_and_other_words_are_asked_again(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    waiting, _ = waiting_with(dirs, b"maybe\nno\n")
    assert waiting.wait(30) == "refused"
    assert "Press Enter (or type yes) to keep the change, no to put it back now." in capsys.readouterr().out


def test_on_a_terminal_what_was_typed_before_the_question_answers_nothing(dirs: tuple[Path, Path]) -> None:
    """Enter pressed twice, or a pasted runbook: the lines typed ahead are dropped."""
    trial = begin(dirs)
    controller, terminal = os.openpty()
    os.write(controller, b"\n\n")
    time.sleep(0.1)
    waiting = trying.Waiting(trial, stdin=terminal)
    assert waiting.wait(0.5) == "timeout"
    trial = begin_again(dirs, trial)
    waiting = trying.Waiting(trial, stdin=terminal)
    threading.Timer(0.3, os.write, args=(controller, b"\n")).start()
    assert waiting.wait(30) == "confirmed"  # typed once it asks
    os.close(controller)
    os.close(terminal)


def begin_again(dirs: tuple[Path, Path], trial: trying.Trial) -> trying.Trial:
    trial.end("failed")
    return begin(dirs)


def test_a_symlinked_config_dir_gets_the_given_file_in_place_not_beside(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """git-sync swaps a symlink to the directory: the snapshot names the real one."""
    config = dirs[0]
    (config / "lab.yaml").write_text(LAB)
    link = tmp_path / "current"
    link.symlink_to(config)
    given = tmp_path / "lab.yaml"
    given.write_text(GREEN)
    snapshot = with_files(take_snapshot(link), link, [given])
    assert [path.name for path in snapshot.files] == ["lab.yaml"]
    assert names(load_generation(link, snapshot=snapshot)) == ["green", "red"]
