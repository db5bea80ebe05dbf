"""The command line without root: `netlab status` and its exit codes (a live
daemon, a stopped one, a dead one), `plan --json` on invalid files, `show`'s
sysctl values, and `destroy` refusing to go on without a terminal or --yes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netlab.controller import cli, reporting
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, Origin, Sysctl
from tests.unit.fake_kernels import EmptyKernel

HERE = Origin("/etc/netlab.d/lab.yaml", 3, 1)


@pytest.fixture
def netlab_daemon() -> Iterator[int]:
    """A live process whose command line is `... netlab daemon`, as the real one's is."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "netlab", "daemon"])
    try:
        # between fork and exec the child's command line is still pytest's
        while b"daemon" not in Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0"):
            time.sleep(0.001)
        yield process.pid
    finally:
        process.kill()
        process.wait()


def gone_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: the number names no process (until it is reused, long after)
    return process.pid


def write_status(run_dir: Path, **fields: Any) -> None:
    status = {
        "daemon": "running",
        "state": "healthy",
        "generation": {"number": 3, "digest": "abc123", "source": "config", "files": ["/etc/netlab.d/lab.yaml"]},
        "last_apply": {"time": "2026-01-02T03:04:05Z", "reason": "config", "changes": 2, "duration_ms": 12.0},
        "updated": "2026-01-02T03:04:05Z",
        **fields,
    }
    run_dir.mkdir(exist_ok=True)
    (run_dir / "status.json").write_text(json.dumps(status))


def status(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = cli.main(["status", "--run-dir", str(tmp_path / "run"), *extra])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(("state", "code"), [("healthy", 0), ("degraded", 2), ("failing", 3), ("starting", 4)])
def test_status_of_a_live_daemon_exits_with_its_state(
    state: str, code: int, netlab_daemon: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_status(tmp_path / "run", pid=netlab_daemon, state=state)
    assert status(tmp_path, capsys)[0] == code


def test_a_status_whose_writer_died_is_history_with_its_own_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_status(tmp_path / "run", pid=gone_pid())
    code, text = status(tmp_path, capsys)
    assert code == cli.STATUS_DEAD == 6
    assert text.startswith("daemon: dead\n")
    assert "crashed or was killed; nothing is reconciling" in text
    assert "written 2026-01-02T03:04:05Z and is history" in text
    assert "last state, written 2026-01-02T03:04:05Z: healthy" in text
    assert "the kernel matches the files" not in text


def test_a_pid_that_is_another_program_now_is_a_dead_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_status(tmp_path / "run", pid=os.getpid())  # pytest: alive, but not `netlab daemon`
    code, text = status(tmp_path, capsys)
    assert code == cli.STATUS_DEAD
    assert "is not `netlab daemon` now, but another program" in text


def test_a_stopped_daemon_is_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_status(tmp_path / "run", daemon="stopped", pid=gone_pid())
    code, text = status(tmp_path, capsys)
    assert code == cli.STATUS_NOT_RUNNING == 5
    assert "daemon: stopped" in text and "nothing is reconciling" in text
    assert "state: healthy" not in text and "last state, written 2026-01-02T03:04:05Z: healthy" in text


def test_no_status_is_not_running_and_an_unreadable_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = status(tmp_path, capsys)
    assert (code, text.splitlines()[0]) == (5, "daemon: not running")
    (tmp_path / "run").mkdir()
    (tmp_path / "run/status.json").write_text('{"daemon": "runn')  # torn
    code, text = status(tmp_path, capsys)
    assert (code, text.splitlines()[0]) == (1, "daemon: unknown")


def test_status_json_carries_the_format_version_for_an_older_status_file(
    netlab_daemon: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_status(tmp_path / "run", pid=netlab_daemon)  # written without format_version
    code, out = status(tmp_path, capsys, "--json")
    document = json.loads(out)
    assert code == 0
    assert document["format_version"] == 1 and document["daemon"] == "running" and document["generation"]["number"] == 3
    write_status(tmp_path / "run", pid=gone_pid())
    code, out = status(tmp_path, capsys, "--json")
    assert (code, json.loads(out)["daemon"], json.loads(out)["format_version"]) == (6, "dead", 1)


def test_plan_json_on_invalid_files_prints_each_problem_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "netlab.d"
    config.mkdir()
    (config / "lab.yaml").write_text("version: 1\nnamespaces:\n  - name: red\n  - nmae: blue\n")
    (config / "broken.yaml").write_text("version: 1\ninterfaces: [\n")
    argv = [
        "plan",
        "--json",
        "--config-dir",
        str(config),
        "--state-dir",
        str(tmp_path / "state"),
        "--allow-untrusted-config",
    ]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["format_version"] == 1
    assert document["error"] == f"{len(document['problems'])} problems; nothing was changed"
    places = {(Path(p["file"]).name, p["line"]) for p in document["problems"]}
    assert ("lab.yaml", 4) in places and any(name == "broken.yaml" for name, _ in places)
    assert all(set(p) == {"file", "line", "column", "path", "message"} and p["message"] for p in document["problems"])
    assert "lab.yaml:4:" in captured.err  # and the person reading stderr still gets the text


def test_show_prints_sysctls_as_the_files_write_them(tmp_path: Path) -> None:
    class Kernel(EmptyKernel):
        def sysctl(self, netns: str | None, key: str) -> str | None:
            return {"net.ipv4.ip_forward": "1", "net.ipv4.tcp_rmem": "4096\t131072\t6291456"}.get(key)

    desired = DesiredState(
        sysctls=(
            Sysctl(None, "net.ipv4.ip_forward", "1", HERE),
            Sysctl(None, "net.ipv4.tcp_rmem", "4096 131072 6291456", HERE),
            Sysctl(None, "net.ipv4.conf.later0.forwarding", "1", HERE),  # its link is not there yet
        )
    )
    document = reporting.live_state(desired, Kernel(), Ledger(tmp_path / "ledger.json"))  # type: ignore[arg-type]
    assert document["sysctls"] == {"net.ipv4.ip_forward": 1, "net.ipv4.tcp_rmem": "4096 131072 6291456"}
    assert "net.ipv4.ip_forward: 1\n" in reporting.live_state_yaml(document)
    shown = json.loads(reporting.live_state_json(document))
    assert shown["format_version"] == 1 and shown["sysctls"]["net.ipv4.ip_forward"] == 1
    assert "format_version" not in reporting.live_state_yaml(document)  # the YAML stays a valid file


def test_destroy_without_a_terminal_needs_yes_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import netlab.controller.backends.kernel as kernel_module

    def no_kernel() -> None:
        raise AssertionError("destroy opened the kernel before it had --yes")

    monkeypatch.setattr(kernel_module, "Kernel", no_kernel)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # a pipe: no one to ask
    assert cli.main(["destroy", "--state-dir", str(tmp_path / "state")]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
