"""The daemon's health and how it is told: the `Health` record every part of the
daemon updates (healthy, degraded, failing, with the last error and the last
passes), the shape of status.json (`StatusJson`, documented in docs/json.md),
the one-line STATUS= text for systemd, and `StatusFile`, which writes status.json
and says so once when it cannot. Used by the daemon's parts (daemon.py,
generations.py, passes.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from netlab.controller.backing_off import HoldJson
from netlab.controller.checks import Outcome
from netlab.controller.reporting import FORMAT_VERSION
from netlab.controller.trying import TryJson
from netlab.controller.watching import OpenWrite
from netlab.state.errors import Problem
from netlab.state.ledger import write_atomically

STATUS_FILE = "status.json"

State = Literal["starting", "healthy", "degraded", "failing"]


class ProblemJson(TypedDict):
    file: str
    line: int
    column: int
    path: str
    message: str


class ErrorJson(TypedDict):
    time: str
    message: str
    problems: list[ProblemJson]


class RejectedJson(TypedDict):
    time: str
    digest: str | None
    problems: list[ProblemJson]


class PassJson(TypedDict):
    time: str
    reason: str
    changes: int
    duration_ms: float
    generation: int


class ReloadJson(TypedDict):
    began: str
    began_monotonic: float
    state: State


class GenerationJson(TypedDict):
    number: int
    digest: str
    source: str
    files: list[str]


class CheckJson(TypedDict):
    check: str
    declared: str
    passed: bool
    since: str  # when it last changed result (or was first run)
    detail: str
    checked: str  # when it last ran


class WriterJson(TypedDict):
    file: str
    pid: int | None


class StatusJson(TypedDict):
    """/run/netlab/status.json: each field is documented in docs/json.md."""

    format_version: int
    daemon: Literal["running", "stopped"]
    pid: int
    state: State
    config_dir: str
    generation: GenerationJson | None
    rejected: RejectedJson | None
    last_apply: PassJson | None
    last_pass: PassJson | None
    last_reload: ReloadJson | None
    last_error: ErrorJson | None
    waiting_for_writers: list[WriterJson]
    backing_off: list[HoldJson]
    drift_repairs: int
    notes: list[dict[str, str]]
    checks: list[CheckJson]
    waiting_for_try: TryJson | None
    objects_owned: int
    updated: str


@dataclass
class Health:
    state: State = "starting"  # healthy | degraded (files invalid) | failing (apply failed)
    last_error: ErrorJson | None = None
    last_apply: PassJson | None = None  # the last pass that changed something or was asked for
    last_pass: PassJson | None = None  # the last pass of any kind
    drift_repairs: int = 0
    rejected: RejectedJson | None = None  # while the files are invalid
    # the last whole pass's notes: the NAT backend and why, warnings
    notes: list[dict[str, str]] = field(default_factory=list)
    # the declared checks' latest outcomes, by the check's key
    checks: dict[tuple[object, ...], CheckJson] = field(default_factory=dict)
    # a `netlab try` waits for its confirmation: the daemon makes no pass meanwhile
    waiting_for_try: TryJson | None = None

    def record_checks(self, outcomes: Iterable[Outcome]) -> list[Outcome]:
        """A run of the checks (all of them); returns those whose result changed
        (or that ran for the first time and fail)."""
        now = now_utc()
        changed: list[Outcome] = []
        found: dict[tuple[object, ...], CheckJson] = {}
        for outcome in outcomes:
            key = outcome.check.key
            known = self.checks.get(key)
            if (known is None and not outcome.passed) or (known is not None and known["passed"] != outcome.passed):
                changed.append(outcome)
            since = known["since"] if known is not None and known["passed"] == outcome.passed else now
            found[key] = {
                "check": str(outcome.check),
                "declared": str(outcome.check.origin),
                "passed": outcome.passed,
                "since": since,
                "detail": outcome.detail,
                "checked": now,
            }
        self.checks = found
        return changed

    def failed(self, message: str, problems: Iterable[Problem] = ()) -> None:
        """A pass failed, or something could not be written: the previous state stays."""
        self.state = "failing"
        self.last_error = {"time": now_utc(), "message": message, "problems": [problem_json(p) for p in problems]}

    def reject(self, message: str, problems: Sequence[Problem], digest: str | None) -> None:
        """The files are invalid: the generation in force stays."""
        found = [problem_json(p) for p in problems]
        self.state = "degraded"
        self.rejected = {"time": now_utc(), "digest": digest, "problems": found}
        self.last_error = {"time": now_utc(), "message": message, "problems": found}


def status_json(
    health: Health,
    *,
    running: bool,
    config_dir: Path,
    generation: GenerationJson | None,
    last_reload: ReloadJson | None,
    writers: Sequence[OpenWrite],
    backing_off: list[HoldJson],
    objects_owned: int,
) -> StatusJson:
    return {
        "format_version": FORMAT_VERSION,
        "daemon": "running" if running else "stopped",
        "pid": os.getpid(),
        "state": health.state,
        "config_dir": str(config_dir),
        "generation": generation,
        "rejected": health.rejected,
        "last_apply": health.last_apply,
        "last_pass": health.last_pass,
        "last_reload": last_reload,
        "last_error": health.last_error,
        "waiting_for_writers": [{"file": writer.path, "pid": writer.pid} for writer in writers],
        "backing_off": backing_off,
        "drift_repairs": health.drift_repairs,
        "notes": health.notes,
        "checks": list(health.checks.values()),
        "waiting_for_try": health.waiting_for_try,
        "objects_owned": objects_owned,
        "updated": now_utc(),
    }


def status_line(status: StatusJson) -> str:
    """systemd's STATUS= (`systemctl status netlab`): the state in one line."""
    generation = status["generation"]
    state = status["state"]
    text = (
        f"{state}; generation {generation['number']} ({generation['digest']})"
        if generation
        else f"{state}; no generation"
    )
    text += f"; {status['objects_owned']} objects owned"
    if status["backing_off"]:
        text += f"; {len(status['backing_off'])} backed off"
    if status["checks"]:
        passing = sum(check["passed"] for check in status["checks"])
        text += f"; checks {passing}/{len(status['checks'])} passing"
    if status["waiting_for_writers"]:
        text += f"; waiting for {len(status['waiting_for_writers'])} file(s) open for writing"
    trial = status.get("waiting_for_try")
    if trial:
        text += f"; a netlab try waits for its confirmation (process {trial['pid']})"
    error = status["last_error"]
    if error and state != "healthy":
        lines = error["message"].splitlines()
        text += f"; last error: {lines[-1] if lines else ''}"
    return text


class StatusFile:
    """status.json in the run directory, written atomically. A full /run does not
    stop the daemon: `write` returns the error (said once in the journal, and
    once more when it is written again)."""

    def __init__(self, run_dir: Path, log: Any) -> None:
        self.path = run_dir / STATUS_FILE
        self.log = log
        self.unwritten = False

    def write(self, status: StatusJson) -> OSError | None:
        try:
            write_atomically(self.path, json.dumps(status, indent=2) + "\n")
        except OSError as error:
            if not self.unwritten:
                self.log.error("could not write status.json: `netlab status` shows an older one", error=str(error))
            self.unwritten = True
            return error
        if self.unwritten:
            self.log.info("status.json is written again")
            self.unwritten = False
        return None


def problem_json(problem: Problem) -> ProblemJson:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": problem.message,
    }


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
