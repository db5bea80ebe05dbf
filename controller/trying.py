"""`netlab try`: a change applied on approval. The files are applied, then kept
only when someone confirms them (`netlab confirm`, or Enter on the try's
terminal) before the timeout; otherwise everything is put back as it was
before the try: namespaces, links, addresses, routes, NAT, sysctls, resolver
files.

A try is crash-safe because it is written down before its first kernel write:
the state directory holds `try/` with its record (who tries, which files, until
when, how far it got), the files from before the try (the last good
generation, or nothing when netlab owned nothing) and the files tried. The
process that tries holds a lock on `try/owner.lock` for as long as it lives,
so anyone can tell a try that waits from one whose process is gone (killed,
the machine rebooted). Putting back is declarative: the files from before are
applied, with the ledger, which removes what the try made and restores what
it changed or removed; so it works the same after a crash, and again after a
crash during it. Who finds a try whose process is gone settles it (`settle`):
the next `netlab apply`, `try` or `destroy`, or the daemon at its start or next
pass. It is rolled back unless it had been confirmed.

Files tried and rolled back are held back (`kept.hold_back`): the daemon does
not apply them again until they change, and the `netlab apply` that rolls a
crashed try back does not apply them either (a second `apply` does, on purpose).
While a try waits, the daemon applies nothing and repairs nothing: it does not
fight the try's state.

Deciding is done under `try/decide.lock`: the try at its deadline and `netlab
confirm` cannot both win. Used by cli.py and daemon.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from netlab.controller import kept
from netlab.controller.applying import ApplyResult, reconcile
from netlab.state.errors import ApplyError
from netlab.state.ledger import Ledger, write_atomically
from netlab.state.loading import load_generation, take_snapshot
from netlab.state.model import DesiredState

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel
    from netlab.controller.logs import Log  # a sibling layer: only its type

TRY_DIR = "try"
RECORD_FILE = "record.json"
OWNER_LOCK = "owner.lock"
DECIDE_LOCK = "decide.lock"
BEFORE_DIR = "before"  # the files from before the try
TRIED_DIR = "tried"  # the files tried, as validated
DEFAULT_TIMEOUT = 120.0
POLL_INTERVAL = 0.1  # how often a waiting try looks for its confirmation

# applying: the change is being made; waiting: for a confirmation, until the
# deadline; confirmed: to be kept; rolling back: not confirmed, being undone
TryState = Literal["applying", "waiting", "confirmed", "rolling back"]


class TryJson(TypedDict):
    """try/record.json, and `waiting_for_try` in status.json (docs/json.md)."""

    pid: int
    state: TryState
    started: str  # UTC
    timeout: float
    deadline: str | None  # UTC, once it waits
    deadline_epoch: float | None
    digest: str  # of the files tried
    config_dir: str
    installs: list[str]  # the files given to `netlab try FILE...`: installed in the config dir once confirmed


@dataclass(frozen=True)
class Found:
    """A try in the state directory, and whether its process still lives."""

    record: TryJson
    alive: bool
    directory: Path

    def __str__(self) -> str:
        record = self.record
        if record["state"] == "waiting" and record["deadline"]:
            return f"a `netlab try` (process {record['pid']}) waits for its confirmation until {record['deadline']}"
        return f"a `netlab try` (process {record['pid']}, begun {record['started']}) is {record['state']}"


class TryWaiting(ApplyError):
    """A try waits for its confirmation: nothing else may change the network meanwhile."""

    def __init__(self, found: Found) -> None:
        super().__init__(
            f"{found}: confirm it with `netlab confirm` (or Enter on its terminal), "
            "or let it time out and roll back, before changing anything else"
        )
        self.found = found


@dataclass(frozen=True)
class Settled:
    """What became of a try whose process was gone."""

    record: TryJson
    outcome: Literal["confirmed", "rolled back"]

    def held_back_again(self, digest: str) -> bool:
        """Whether files of this digest are the ones just rolled back, tried in place."""
        return self.outcome == "rolled back" and not self.record["installs"] and self.record["digest"] == digest

    def __str__(self) -> str:
        pid, started = self.record["pid"], self.record["started"]
        if self.outcome == "confirmed":
            return f"The `netlab try` of process {pid} (begun {started}) had been confirmed: its change stays."
        return (
            f"The `netlab try` of process {pid} (begun {started}) ended without a confirmation "
            "(killed, or the machine restarted): its change was rolled back to the state before it."
        )


def now_utc(epoch: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# -- looking -------------------------------------------------------------------


def look(state_dir: Path) -> Found | None:
    """The try in the state directory, if there is one."""
    directory = state_dir / TRY_DIR
    try:
        text = (directory / RECORD_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = _record(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        # written atomically: only a bug or a hand edit makes this
        raise ApplyError(
            f"the record of a `netlab try` in {directory / RECORD_FILE} cannot be read ({error}): "
            f"if no try is running, remove {directory} and run `netlab apply`"
        ) from None
    return Found(record, _owner_alive(directory), directory)


def _record(document: dict[str, object]) -> TryJson:
    state = document["state"]
    if state not in ("applying", "waiting", "confirmed", "rolling back"):
        raise ValueError(f"unknown state {state!r}")
    epoch = document.get("deadline_epoch")
    installs = document["installs"]
    if not isinstance(installs, list):
        raise ValueError(f"installs is not a list: {installs!r}")
    return TryJson(
        pid=int(str(document["pid"])),
        state=state,
        started=str(document["started"]),
        timeout=float(str(document["timeout"])),
        deadline=str(document["deadline"]) if document.get("deadline") else None,
        deadline_epoch=float(str(epoch)) if epoch is not None else None,
        digest=str(document["digest"]),
        config_dir=str(document["config_dir"]),
        installs=[str(name) for name in installs],
    )


def _owner_alive(directory: Path) -> bool:
    """Whether the try's process holds its lock (the kernel drops a lock with
    its last holder: a kill, a crash or a reboot ends it)."""
    try:
        handle = open(directory / OWNER_LOCK, "a")  # noqa: SIM115 - closed below, lock and all
    except FileNotFoundError:
        return False  # the try ended meanwhile
    with handle:
        try:
            # shared: two lookers at once do not take each other for the owner
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


@contextlib.contextmanager
def _deciding(directory: Path) -> Iterator[None]:
    with open(directory / DECIDE_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_record(directory: Path, record: TryJson) -> None:
    write_atomically(directory / RECORD_FILE, json.dumps(record, indent=2) + "\n")


def _read_record(directory: Path) -> TryJson | None:
    try:
        return _record(json.loads((directory / RECORD_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


# -- the generation before -------------------------------------------------------


def before_files(state_dir: Path, ledger: Ledger) -> dict[str, bytes]:
    """The files that made the network as it is: nothing when netlab owns
    nothing, else the last good generation (kept by every clean apply)."""
    if not ledger.count():
        return {}
    kept_dir = state_dir / kept.LAST_GOOD_DIR
    if not kept_dir.is_dir():
        raise ApplyError(
            "netlab does not know which files made the network as it is (no generation applied "
            f"by this version is kept in {kept_dir}), so a try could not be rolled back: "
            "run `netlab apply` once with the files in force, then `netlab try` the change"
        )
    return kept.contents_of(take_snapshot(kept_dir))


def _load_dir(directory: Path) -> DesiredState:
    return load_generation(directory, strict_modes=False)


def before_state(state_dir: Path, ledger: Ledger) -> DesiredState:
    """The desired state of `before_files`, to compare with the network."""
    if not ledger.count():
        return DesiredState()
    return _load_dir(state_dir / kept.LAST_GOOD_DIR)


# -- the try's own process ---------------------------------------------------------


class Trial:
    """A try in progress, owned by this process: its record, written before the
    first kernel write, and the lock that says the process lives."""

    def __init__(self, directory: Path, record: TryJson, lock: int) -> None:
        self.directory = directory
        self.record = record
        self._lock = lock

    @classmethod
    def begin(
        cls,
        state_dir: Path,
        config_dir: Path,
        digest: str,
        tried: Mapping[str, bytes],
        before: Mapping[str, bytes],
        timeout: float,
        installs: Sequence[str] = (),
    ) -> Trial:
        """Writes the try down (the caller holds the state lock, and no try is
        there): a directory made aside, locked, synced, then renamed into place,
        so that nobody ever sees a try without its files or its owner."""
        directory = state_dir / TRY_DIR
        fresh = state_dir / f".{TRY_DIR}.new"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700, parents=True)
        lock = os.open(fresh / OWNER_LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept.keep_files(fresh / BEFORE_DIR, before)
        kept.keep_files(fresh / TRIED_DIR, tried)
        record = TryJson(
            pid=os.getpid(),
            state="applying",
            started=now_utc(),
            timeout=timeout,
            deadline=None,
            deadline_epoch=None,
            digest=digest,
            config_dir=str(config_dir),
            installs=list(installs),
        )
        _write_record(fresh, record)
        fresh.rename(directory)
        kept.sync_dir(state_dir)
        return cls(directory, record, lock)

    def waiting(self, deadline_epoch: float) -> None:
        """The change is applied: from now on it waits for a confirmation."""
        with _deciding(self.directory):
            self.record = replace_record(
                self.record, state="waiting", deadline=now_utc(deadline_epoch), deadline_epoch=deadline_epoch
            )
            _write_record(self.directory, self.record)

    def decide(self, confirm: bool) -> bool:
        """Confirms (Enter) or gives up (the deadline, a stop); returns whether
        it is confirmed, by this or by `netlab confirm` just before."""
        with _deciding(self.directory):
            record = _read_record(self.directory) or self.record
            if record["state"] != "confirmed":
                record = replace_record(record, state="confirmed" if confirm else "rolling back")
                _write_record(self.directory, record)
            self.record = record
        return record["state"] == "confirmed"

    def roll_back(self, kernel: Kernel, ledger: Ledger, log: Log) -> ApplyResult:
        """Puts back the files from before the try (the caller holds the state lock)."""
        return roll_back(self.directory, kernel, ledger, log)

    def end(self, outcome: Literal["confirmed", "rolled back", "failed"], why: str = "") -> None:
        """The try is over (the caller holds the state lock): a confirmed one
        becomes the last good generation; a rolled back one is held back; one
        whose pass failed (and was undone) leaves no trace."""
        _finish(self.directory.parent, self.directory, self.record, outcome, why)
        os.close(self._lock)


def replace_record(record: TryJson, **fields: object) -> TryJson:
    updated = dict(record)
    updated.update(fields)
    return _record(updated)


def roll_back(directory: Path, kernel: Kernel, ledger: Ledger, log: Log) -> ApplyResult:
    """The network put back as the files from before the try say, with the
    ledger: what the try made goes, what it changed or removed comes back."""
    return reconcile(_load_dir(directory / BEFORE_DIR), kernel, ledger, log)


def _finish(
    state_dir: Path,
    directory: Path,
    record: TryJson,
    outcome: Literal["confirmed", "rolled back", "failed"],
    why: str,
) -> None:
    if outcome == "confirmed":
        tried = kept.contents_of(take_snapshot(directory / TRIED_DIR))
        _install(
            Path(record["config_dir"]),
            {name: (directory / TRIED_DIR / name).read_bytes() for name in record["installs"]},
        )
        kept.keep_last_good(state_dir, tried)
        kept.release_held_back(state_dir)
    elif outcome == "rolled back" and not record["installs"]:
        # tried in place: the config directory holds them still
        kept.hold_back(
            state_dir,
            {"digest": record["digest"], "tried": record["started"], "rolled_back": now_utc(), "why": why},
        )
    gone = state_dir / f".{TRY_DIR}.old"
    shutil.rmtree(gone, ignore_errors=True)
    directory.rename(gone)
    kept.sync_dir(state_dir)
    shutil.rmtree(gone, ignore_errors=True)


def _install(config_dir: Path, files: Mapping[str, bytes]) -> None:
    """The files of a confirmed `netlab try FILE...`, each put in the config
    directory in one rename (a file it replaces keeps its mode), so that the
    daemon, and the next `netlab apply`, find there what was confirmed."""
    for name, data in files.items():
        target = config_dir / name
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        temp = config_dir / f".{name}.netlab-try"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        temp.rename(target)
    if files:
        kept.sync_dir(config_dir)


# -- settling a try whose process is gone -------------------------------------------


def settle(state_dir: Path, kernel: Kernel, log: Log) -> Settled | None:
    """A try whose process is gone, settled (the caller holds the state lock):
    kept when it had been confirmed, else rolled back and its files held back.
    TryWaiting when one waits; None when there is none."""
    found = look(state_dir)
    if found is None:
        return None
    if found.alive:
        raise TryWaiting(found)
    with _deciding(found.directory):
        # read again: `netlab confirm` may have decided since
        record = _read_record(found.directory) or found.record
        if record["state"] != "confirmed" and record["state"] != "rolling back":
            record = replace_record(record, state="rolling back")
            _write_record(found.directory, record)
    if record["state"] == "confirmed":
        _finish(state_dir, found.directory, record, "confirmed", "")
        log.info("a confirmed try's process was gone: its change stays", pid=record["pid"])
        return Settled(record, "confirmed")
    log.info(
        "a try ended without a confirmation (its process is gone): rolling it back",
        pid=record["pid"],
        started=record["started"],
        state=record["state"],
    )
    roll_back(found.directory, kernel, Ledger.load(state_dir), log)
    _finish(state_dir, found.directory, record, "rolled back", "its process ended before a confirmation came")
    return Settled(record, "rolled back")


# -- confirming from another shell ----------------------------------------------------


def confirm(state_dir: Path, clock: Callable[[], float] = time.time) -> str:
    """`netlab confirm`: the try that waits is told to keep its change; a try
    whose process is gone is kept here (before its deadline). Returns what to
    tell the operator; ApplyError when there is nothing to confirm."""
    found = look(state_dir)
    if found is None:
        raise ApplyError("no `netlab try` waits for a confirmation: nothing to confirm")
    with _deciding(found.directory):
        record = _read_record(found.directory)
        if record is None:
            raise ApplyError("the `netlab try` ended meanwhile: nothing to confirm")
        if record["state"] == "applying":
            raise ApplyError(
                f"the `netlab try` of process {record['pid']} is still applying its change: confirm once it waits"
            )
        if record["state"] == "rolling back":
            raise ApplyError(f"too late: the `netlab try` of process {record['pid']} is being rolled back")
        deadline = record["deadline_epoch"]
        if record["state"] == "waiting" and deadline is not None and clock() > deadline:
            raise ApplyError(
                f"too late: the `netlab try` of process {record['pid']} ran out of time at {record['deadline']}, "
                "and is rolled back"
                + ("" if found.alive else " by the next `netlab apply` or daemon start (its process is gone)")
            )
        if record["state"] == "waiting":
            _write_record(found.directory, replace_record(record, state="confirmed"))
    if not found.alive:
        from netlab.controller.guards import locked

        with locked(state_dir):
            if look(state_dir) is not None:
                _finish(state_dir, found.directory, replace_record(record, state="confirmed"), "confirmed", "")
        return f"Confirmed: the change of the `netlab try` of process {record['pid']} stays (its process had ended)."
    # the try's process ends the try itself: wait for it, a little
    waited = time.monotonic() + 10.0
    while found.directory.exists() and time.monotonic() < waited:
        time.sleep(POLL_INTERVAL / 2)
    return f"Confirmed: the change of the `netlab try` of process {record['pid']} stays."


# -- waiting for the confirmation -------------------------------------------------------

# refused: the operator answered no
Ended = Literal["confirmed", "timeout", "stopped", "refused"]


class Signals:
    """What a try hears while it lives, from its first step: a hangup (the SSH
    session died: SIGHUP) is no answer, and does not end it: it goes on, and
    what it prints after goes nowhere; a stop (SIGTERM) ends the wait without a
    confirmation, once the change is applied."""

    def __init__(self) -> None:
        self.hung_up = False
        self.stopped = False

    def install(self) -> Signals:
        signal.signal(signal.SIGHUP, self._on_hangup)
        signal.signal(signal.SIGTERM, self._on_stop)
        # a try sent to the background (`&`, Ctrl-Z then `bg`) that reads its
        # terminal would be stopped, past its deadline: the read fails instead
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        return self

    def _on_hangup(self, signum: int, frame: object) -> None:
        self.hung_up = True
        # the terminal is gone: writes to it would fail (EIO); the rollback's
        # words go nowhere instead
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):
                os.dup2(null, fd)
        os.close(null)

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopped = True


class Waiting:
    """How a try waits: for an answer on stdin (Enter, `y` or `yes` keep the
    change; `n` or `no` put it back at once; on a terminal only what is typed
    once it asks, and only while it is in the foreground), `netlab confirm`
    (the record says confirmed), the deadline, or a stop (SIGTERM, Ctrl-C).
    The end of stdin is no answer; after a hangup stdin is not read."""

    def __init__(self, trial: Trial, stdin: int | None = 0, signals: Signals | None = None) -> None:
        self.trial = trial
        self.stdin = stdin
        self.signals = signals or Signals()
        self._typed = b""
        self._terminal = stdin is not None and _is_terminal(stdin)

    def wait(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> Ended:
        deadline = clock() + timeout
        self.trial.waiting(time.time() + timeout)
        if self._terminal:
            # lines typed ahead (a pasted runbook, Enter pressed twice) answer nothing
            with contextlib.suppress(OSError):
                termios.tcflush(self.stdin, termios.TCIFLUSH)  # type: ignore[arg-type]
        try:
            while True:
                if self.signals.hung_up:
                    self.stdin = None
                if self.signals.stopped:
                    return "confirmed" if self.trial.decide(confirm=False) else "stopped"
                if self._confirmed_elsewhere():
                    return "confirmed"
                left = deadline - clock()
                if left <= 0:
                    return "confirmed" if self.trial.decide(confirm=False) else "timeout"
                answer = self._answer(min(left, POLL_INTERVAL))
                if answer is not None:
                    confirmed = self.trial.decide(confirm=answer)
                    return "confirmed" if confirmed else "refused"
        except KeyboardInterrupt:
            return "confirmed" if self.trial.decide(confirm=False) else "stopped"

    def _confirmed_elsewhere(self) -> bool:
        record = _read_record(self.trial.directory)
        return record is not None and record["state"] == "confirmed"

    def _answer(self, seconds: float) -> bool | None:
        """Waits up to `seconds` for a line on stdin: True to keep, False to put
        back, None for no answer yet. At the end of stdin (or when it cannot be
        read) stdin is no longer watched."""
        stdin = self.stdin
        if stdin is None or (self._terminal and not _in_foreground(stdin)):
            time.sleep(seconds)
            return None
        try:
            poller = select.poll()
            poller.register(stdin, select.POLLIN)
            if not poller.poll(seconds * 1000):
                return None
            data = os.read(stdin, 4096)
        except (OSError, ValueError):
            data = b""
        if not data:
            self.stdin = None  # closed, or a terminal gone
            return None
        self._typed += data
        while b"\n" in self._typed:
            line, self._typed = self._typed.split(b"\n", 1)
            word = line.strip().lower()
            if word in (b"", b"y", b"yes"):
                return True
            if word in (b"n", b"no"):
                return False
            with contextlib.suppress(OSError):
                print("Press Enter (or type yes) to keep the change, no to put it back now.", flush=True)
        return None


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _in_foreground(fd: int) -> bool:
    """Whether this process may read its terminal now (a terminal that is not
    its controlling one has no foreground to be in: it may)."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True
