"""Reporting: how plans and live state are shown to people (text) and machines
(JSON). Called by the cli."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netlab.controller.checks import Outcome
from netlab.controller.kinds import REGISTRY
from netlab.controller.kinds.contract import KernelReader, ShowContext
from netlab.controller.planning import Plan
from netlab.state.errors import ConfigError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState

# The version of the JSON documents of `plan --json`, `show --json` and `status
# --json` (docs/json.md). A field added keeps it; a field renamed, removed or
# given another meaning raises it.
FORMAT_VERSION = 1


def plan_text(plan: Plan) -> str:
    notes = [str(note) for note in plan.notes]
    if not plan:
        return "\n".join(["No changes: the kernel matches the files.", *notes]) + "\n"
    counts = plan.counts()
    lines = [str(change) for change in plan.changes]
    lines.append(f"Plan: {counts['+']} to add, {counts['~']} to change, {counts['-']} to remove.")
    return "\n".join(lines + notes) + "\n"


def plan_json(plan: Plan) -> str:
    document = {
        "format_version": FORMAT_VERSION,
        "changes": [change.to_json() for change in plan.changes],
        "summary": plan.counts(),
        "notes": [note.to_json() for note in plan.notes],
    }
    return json.dumps(document, indent=2) + "\n"


def checks_text(outcomes: Sequence[Outcome]) -> str:
    if not outcomes:
        return "No checks declared.\n"
    failed = sum(not outcome.passed for outcome in outcomes)
    summary = f"Checks: {len(outcomes) - failed} passed, {failed} failed."
    return "\n".join([*(str(outcome) for outcome in outcomes), summary]) + "\n"


def checks_json(outcomes: Sequence[Outcome]) -> str:
    failed = sum(not outcome.passed for outcome in outcomes)
    document = {
        "format_version": FORMAT_VERSION,
        "checks": [outcome.to_json() for outcome in outcomes],
        "summary": {"passed": len(outcomes) - failed, "failed": failed},
    }
    return json.dumps(document, indent=2) + "\n"


def plan_error_json(error: Exception, message: str) -> str:
    """What `plan --json` prints when there is no plan (and `show --json`,
    `status --json` when they fail): the error, and for
    invalid files each problem with its place (and `error` says how many)."""
    problems = error.problems if isinstance(error, ConfigError) else ()
    if problems:
        message = message.split("\n", 1)[0].rstrip(":")
    document = {
        "format_version": FORMAT_VERSION,
        "error": message,
        "problems": [
            {"file": p.file, "line": p.line, "column": p.column, "path": p.path, "message": p.message} for p in problems
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def live_state(desired: DesiredState, kernel: KernelReader, ledger: Ledger) -> dict[str, Any]:
    """The namespaces netlab manages as they are now, in the file format, each
    object with `owned: true` where netlab made it: every kind's part (see
    `Kind.show`), in registry order."""
    view = ShowContext.of(desired, kernel, ledger)
    document: dict[str, Any] = {"version": 1}
    in_namespaces: dict[str, dict[str, Any]] = {name: {} for name in view.namespaces}
    for kind in REGISTRY:
        shown = kind.show(view)
        document.update(shown.document)
        for name, fields in shown.namespaces.items():
            in_namespaces[name].update(fields)
    for entry in document.get("namespaces", []):
        entry.update(in_namespaces[entry["name"]])
    return document


def live_state_json(document: dict[str, Any]) -> str:
    """`show --json`: the document of `live_state` and the format's version (the
    YAML leaves that out, as it is not part of a desired-state file)."""
    return json.dumps({"format_version": FORMAT_VERSION, **document}, indent=2) + "\n"


def live_state_yaml(document: dict[str, Any]) -> str:
    """YAML in the file format; `owned` becomes a comment so the text can be
    pasted back into a file."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            owned = value.get("owned")
            result = CommentedMap((k, convert(v)) for k, v in value.items() if k != "owned")
            if owned is not None and result:
                result.yaml_add_eol_comment("owned by netlab" if owned else "not netlab's", next(iter(result)))
            return result
        if isinstance(value, list):
            seq = CommentedSeq(convert(v) for v in value)
            if value and all(not isinstance(v, (dict, list)) for v in value):
                seq.fa.set_flow_style()
            return seq
        return value

    yaml = YAML()
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(convert(document), out)
    return out.getvalue()


def daemon_status(path: Path) -> dict[str, Any]:
    """status.json as the daemon last wrote it, with whether that daemon still
    runs: `daemon` is "running" only while the process that wrote it is alive
    and is `netlab daemon`; "stopped" when it said it stopped, "dead" when it
    ended without saying so (crashed, killed), "not running" without a status,
    "unknown" when the status cannot be read. Carries `format_version` even when
    an older daemon wrote it."""
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {
            "format_version": FORMAT_VERSION,
            "daemon": "not running",
            "detail": f"{path} does not exist: the daemon has not run since boot",
        }
    except (OSError, ValueError) as error:
        return {"format_version": FORMAT_VERSION, "daemon": "unknown", "detail": f"cannot read {path}: {error}"}
    if not isinstance(status, dict):
        return {"format_version": FORMAT_VERSION, "daemon": "unknown", "detail": f"{path} is not a status document"}
    status = {"format_version": FORMAT_VERSION, **status}
    written = status.get("updated") or "at an unknown time"
    if status.get("daemon") == "running":
        pid = status.get("pid")
        if not isinstance(pid, int) or not is_alive(pid):
            status["daemon"] = "dead"
            status["detail"] = f"the daemon that wrote this status (process {pid}) is gone: it crashed or was killed"
        elif not is_netlab_daemon(pid):
            status["daemon"] = "dead"
            status["detail"] = (
                f"the daemon that wrote this status is gone: process {pid} is not `netlab daemon` now, but another program"
            )
    elif status.get("daemon") == "stopped":
        status["detail"] = "the daemon stopped (systemctl stop netlab, or SIGTERM)"
    if status.get("daemon") in ("dead", "stopped"):
        status["detail"] += (
            f"; nothing is reconciling: what follows was written {written} and is history, not the health of the network now"
        )
    return status


def is_netlab_daemon(pid: int) -> bool:
    """Whether the process runs `netlab daemon` (from its command line; where
    /proc hides it, a live process is taken at its word)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except PermissionError:
        return is_alive(pid)
    except OSError:
        return False
    return b"daemon" in words and any(b"netlab" in word for word in words)


def is_alive(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # 0 and -1 would ask about a process group, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemon_status_text(status: dict[str, Any]) -> str:
    lines = [f"daemon: {status.get('daemon')}"]
    if status.get("detail"):
        lines.append(f"  {status['detail']}")
    if "state" in status:
        if status.get("daemon") == "running":
            health = {
                "healthy": "healthy: the kernel matches the files",
                "degraded": "degraded: the files are invalid, or their change broke a check and was undone; "
                "the last good generation stays in force",
                "failing": "failing: the last apply failed",
                "starting": "starting: the first pass has not finished",
            }
            lines.append(f"state: {health.get(status['state'], status['state'])}")
        else:
            # no process stands behind it: the state is what was true then
            lines.append(f"last state, written {status.get('updated') or 'at an unknown time'}: {status['state']}")
    generation = status.get("generation")
    if generation:
        lines.append(
            f"generation: {generation['number']} ({generation['digest']}, from {generation['source']}), files: {', '.join(Path(f).name for f in generation['files']) or 'none'}"
        )
    last = status.get("last_apply")
    if last:
        lines.append(
            f"last apply: {last['time']} ({last['reason']}), {last['changes']} changes in {last['duration_ms']} ms"
        )
    error = status.get("last_error")
    if error and status.get("state") != "healthy":
        lines.append(f"last error ({error['time']}):")
        lines.extend(f"  {line}" for line in error["message"].splitlines())
    for writer in status.get("waiting_for_writers") or []:
        held = f" (process {writer['pid']})" if writer.get("pid") else ""
        lines.append(f"waiting: {writer['file']}{held} is open for writing; the files are read once it is closed")
    trial = status.get("waiting_for_try")
    if isinstance(trial, dict) and trial.get("process_gone"):
        lines.append(
            f"try: a `netlab try` (process {trial.get('pid')}, begun {trial.get('started')}) ended without finishing: "
            "the next `netlab apply` or daemon start rolls it back"
            ", unless it was confirmed (`netlab confirm` before its deadline keeps it)"
        )
    elif isinstance(trial, dict):
        lines.append(
            f"waiting: a `netlab try` (process {trial.get('pid')}) waits for its confirmation until "
            f"{trial.get('deadline') or 'its change is applied'}"
            + ("; no pass until it is confirmed or rolled back" if status.get("daemon") == "running" else "")
        )
    for held in status.get("backing_off") or []:
        lines.append(
            f"backing off: {held['kind']} {held['netns']}/{held['name']} until {held['until']}: {held['detail']}"
        )
    for note in status.get("notes") or []:
        lines.append(f"{'warning' if note.get('topic') == 'warning' else 'note'}: {note.get('text')}")
    for check in status.get("checks") or []:
        result = "passing" if check.get("passed") else "FAILING"
        lines.append(
            f"check {result} since {check.get('since')}: {check.get('check')}: {check.get('detail')} ({check.get('declared')})"
        )
    if "drift_repairs" in status:
        lines.append(f"drift repairs: {status['drift_repairs']}")
    if "objects_owned" in status:
        lines.append(f"objects owned: {status['objects_owned']}")
    return "\n".join(lines) + "\n"
