"""What every command makes of an error, without root: invalid files and a
kernel (or system) that refuses are a message and exit 1, never a traceback;
`--json` prints them as a JSON document too; only a bug of ours shows its
traceback, with a line asking to report it. The kernel, the daemon and the
signal are fakes here."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

import netlab.controller.backends.kernel as kernel_module
import netlab.controller.daemon as daemon_module
import netlab.state.loading as loading
from netlab.controller import cli, reporting, trying
from netlab.state.errors import ApplyError, ConfigError, KernelRefused, Problem
from netlab.state.ledger import LEDGER_FILE, Ledger
from netlab.state.loading import Snapshot
from netlab.state.model import DesiredState
from tests.unit.fake_kernels import EmptyKernel

REFUSED = KernelRefused("read netns red", errno.ENOENT, "No such file or directory")
INVALID = ConfigError([Problem("/etc/netlab.d/lab.yaml", 4, 3, "namespaces[1]", "'nmae' is not allowed")])


def raising(error: BaseException) -> Callable[..., NoReturn]:
    def fail(*args: object, **kwargs: object) -> NoReturn:
        raise error

    return fail


class VanishingKernel(EmptyKernel):
    """A kernel in which `red` is listed, but gone by the time it is read."""

    def __init__(self, **options: object) -> None:  # Kernel's (nat_backend)
        super().__init__({"red"})

    def __enter__(self) -> VanishingKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def dump(self, netns: str | None) -> Any:
        if netns == "red":
            raise REFUSED
        return super().dump(netns)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The common options of a command, with files that load as nothing and a
    ledger in which netlab owns `red`; the kernel is a VanishingKernel."""
    monkeypatch.setattr(cli, "_load_snapshot", lambda args, given=(): (Snapshot((), (), ()), DesiredState()))
    monkeypatch.setattr(kernel_module, "Kernel", VanishingKernel)
    ledger = Ledger.load(tmp_path / "state")
    ledger.record("namespace", ("red",))
    ledger.save()
    return ["--config-dir", str(tmp_path / "netlab.d"), "--state-dir", str(tmp_path / "state")]


def command_line(command: str, dirs: list[str], tmp_path: Path, *extra: str) -> list[str]:
    """The command with the common options, its own (BREAKS) and a run dir where it takes one."""
    run_dir = ["--run-dir", str(tmp_path / "run")] if command in ("status", "reload", "daemon") else []
    return [command, *dirs, *BREAKS[command][0], *run_dir, *extra]


def ran(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_says_what_the_kernel_refused_without_a_traceback(
    dirs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ran(capsys, ["show", *dirs])
    assert (code, out) == (1, "")
    assert err == f"netlab: {REFUSED}\n"


def test_show_json_prints_the_refusal_as_a_json_document(dirs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ran(capsys, ["show", "--json", *dirs])
    assert code == 1
    assert json.loads(out) == {"format_version": 1, "error": str(REFUSED), "problems": []}
    assert "Traceback" not in err and str(REFUSED) in err


def test_a_torn_ledger_is_a_problem_to_fix_not_a_traceback(
    dirs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state" / LEDGER_FILE).write_text('{"version": 1, "obj')
    code, out, err = ran(capsys, ["show", "--json", *dirs])
    assert code == 1 and "Traceback" not in err
    document = json.loads(out)
    assert document["error"] == "1 problem; nothing was changed"
    assert document["problems"][0]["file"] == str(tmp_path / "state" / LEDGER_FILE)
    assert "not a ledger netlab can read" in document["problems"][0]["message"]


# each command, and where its failure is made: (argv after the command, what to break)
BREAKS: dict[str, tuple[list[str], Callable[[pytest.MonkeyPatch, BaseException], None]]] = {
    "validate": ([], lambda mp, error: mp.setattr(loading, "validate_paths", raising(error))),
    "plan": ([], lambda mp, error: mp.setattr(VanishingKernel, "namespaces", raising(error))),
    "apply": ([], lambda mp, error: mp.setattr(VanishingKernel, "namespaces", raising(error))),
    "show": ([], lambda mp, error: mp.setattr(VanishingKernel, "namespaces", raising(error))),
    "try": (["--timeout", "1"], lambda mp, error: mp.setattr(VanishingKernel, "namespaces", raising(error))),
    "confirm": ([], lambda mp, error: mp.setattr(trying, "look", raising(error))),
    "destroy": (["--yes"], lambda mp, error: mp.setattr(VanishingKernel, "namespaces", raising(error))),
    "status": ([], lambda mp, error: mp.setattr(reporting, "daemon_status", raising(error))),
    # above any pid_max: were the fake not in place, no process could get the signal
    "reload": (["--pid", str(2**30)], lambda mp, error: mp.setattr(os, "kill", raising(error))),
    "daemon": ([], lambda mp, error: mp.setattr(daemon_module.Daemon, "run", raising(error))),
}
ERRORS = {
    "invalid files": INVALID,
    "a refused read": REFUSED,
    "a failed pass": ApplyError(
        "+ link host/br0: could not create br0: File exists\nThe 2 steps done before it were undone."
    ),
    "no permission": PermissionError(errno.EACCES, "Permission denied", "/var/lib/netlab/.ledger.json.tmp"),
    "a full disk": OSError(errno.ENOSPC, "No space left on device", "/var/lib/netlab/ledger.json"),
}


@pytest.fixture
def no_daemon_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Daemon(...)` makes nothing (its kernel, its watchers) for these tests."""
    monkeypatch.setattr(daemon_module.Daemon, "__init__", lambda self, settings, log: None)


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
@pytest.mark.parametrize("command", BREAKS)
@pytest.mark.usefixtures("no_daemon_start")
def test_no_command_shows_a_traceback_for_invalid_files_or_a_refusal(
    command: str,
    error: Exception,
    dirs: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    BREAKS[command][1](monkeypatch, error)
    code, _, err = ran(capsys, command_line(command, dirs, tmp_path))
    assert code == cli.EXIT_ERROR
    assert "Traceback" not in err and cli.REPORT_A_BUG not in err
    if isinstance(error, ConfigError):
        assert err == f"netlab: 1 problem; nothing was changed:\n{INVALID.problems[0]}\n"
    elif isinstance(error, OSError):  # what planning reads is said as a refused read (an ApplyError)
        assert err.startswith("netlab: ") and f"{error.strerror}: {error.filename}" in err.replace("'", "")
    else:  # planning says it was reading when the kernel refused
        assert err in (f"netlab: {error}\n", f"netlab: could not read the kernel's state: {error}\n")


@pytest.mark.parametrize("command", ["plan", "show", "status"])
def test_json_commands_print_each_error_as_a_document(
    command: str, dirs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    BREAKS[command][1](monkeypatch, REFUSED)
    code, out, err = ran(capsys, command_line(command, dirs, tmp_path, "--json"))
    assert code == 1 and str(REFUSED) in err
    assert json.loads(out) == {"format_version": 1, "error": err.removeprefix("netlab: ").rstrip("\n"), "problems": []}


@pytest.mark.parametrize("command", BREAKS)
@pytest.mark.usefixtures("no_daemon_start")
def test_a_bug_of_ours_shows_its_traceback_and_asks_for_a_report(
    command: str, dirs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    BREAKS[command][1](monkeypatch, TypeError("an argument of ours was wrong"))
    code, _, err = ran(capsys, command_line(command, dirs, tmp_path))
    assert code == cli.EXIT_ERROR
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith(f"netlab: {cli.REPORT_A_BUG} (TypeError: an argument of ours was wrong)\n")


def test_ctrl_c_ends_a_command_with_130_and_no_traceback(
    dirs: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(VanishingKernel, "namespaces", raising(KeyboardInterrupt()))
    code, _, err = ran(capsys, ["apply", *dirs])
    assert (code, err) == (130, "netlab: interrupted\n")


def test_the_daemon_settings_are_its_options_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETLAB_ALLOW_UNTRUSTED_CONFIG", raising=False)
    argv = ["daemon", "--config-dir", "/c", "--state-dir", "/s", "--run-dir", "/r", "--debounce", "0.5"]
    argv += ["--resync-interval", "7", "--allow-empty", "--allow-untrusted-config"]
    settings = cli.daemon_settings(cli.build_parser().parse_args(argv))
    assert settings == daemon_module.Settings(Path("/c"), Path("/s"), Path("/r"), 0.5, 7.0, True, True)
    assert cli.daemon_settings(cli.build_parser().parse_args(["daemon"])).allow_untrusted is False
