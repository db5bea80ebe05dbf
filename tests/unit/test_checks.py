"""Connectivity checks without a kernel: how they are written and refused (file
and line), which outcome breaks a pass (only a check that passed before), the
gate around a pass (rolled back exactly as a refused step, or kept with the
gate off), that checks wait side by side, and the DNS answers they read."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from netlab.controller import applying, checks
from netlab.controller.applying import CheckBroken, Checking
from netlab.controller.changes import Phase
from netlab.controller.checks import Outcome, newly_failing
from netlab.controller.generations import Generation, Generations
from netlab.controller.health import Health
from netlab.controller.passes import Passes
from netlab.controller.planning import Plan
from netlab.controller.scheduling import Action, Deadlines, Flags, Wait, next_action
from netlab.state.ledger import Ledger
from netlab.state.model import Check, DesiredState, Origin
from tests.unit.daemon_fakes import LAB, FakeKernel, FakeReconcile, RecordingLog, desired_of
from tests.unit.test_applying import LOG, RecordingKernel, creation, scripted_plans

CHECKS = """version: 1
namespaces: [{name: red}]
checks:
  - {from: red, ping: 192.168.15.2}
  - {from: red, ping: "2001:db8:0::2", expect: unreachable, timeout: 0.5}
  - {from: host, tcp: "192.168.15.5:80"}
  - {from: red, tcp: "[2001:db8::5]:443"}
  - {from: red, resolve: blue, address: 192.168.15.2}
"""


def test_checks_are_read_with_their_place(load: Callable[[dict[str, str | bytes]], DesiredState]) -> None:
    desired = load({"lab.yaml": CHECKS})
    assert [str(check) for check in desired.checks] == [
        "red ping 192.168.15.2",
        "red ping 2001:db8::2 unreachable",
        "host tcp 192.168.15.5:80",
        "red tcp [2001:db8::5]:443",
        "red resolve blue = 192.168.15.2",
    ]
    assert desired.checks[1].timeout == 0.5 and desired.checks[0].timeout == 1.0
    assert [check.origin.line for check in desired.checks] == [4, 5, 6, 7, 8]
    # checks are not of a namespace: a scoped pass keeps them all
    assert desired.within(frozenset()).checks == desired.checks


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("{from: green, ping: 192.168.15.2}", "checks[0].from: namespace 'green' is not declared"),
        ("{from: red, tcp: 192.168.15.5}", "checks[0].tcp: '192.168.15.5' has no port: write the address and the port"),
        ("{from: red, ping: 192.168.15.2, tcp: '1.2.3.4:5'}", "`ping`, `tcp` are alternatives: write only one"),
        ("{from: red}", "checks[0]: write at least one of `ping` or `tcp` or `resolve`"),
        ("{from: red, ping: 1.2.3.4, address: 1.2.3.4}", "`address` is what a resolved name must be"),
        ("{from: red, ping: 1.2.3.4, expect: maybe}", "'maybe' is not one of: reachable, unreachable"),
        ("{from: red, ping: 1.2.3.4/24}", "has a prefix length, but only an address goes here"),
        (
            "{from: red, ping: 1.2.3.4, timeout: 0}",
            "checks[0].timeout: 0 is out of range: write a number above 0, at most 30",
        ),
        ("{from: red, ping: 1.2.3.4, timeout: 31}", "31 is out of range: write a number above 0, at most 30"),
        ("{ping: 1.2.3.4}", "missing key 'from': write `from:` the namespace the check runs in, or host"),
    ],
)
def test_a_wrong_check_is_named_with_its_line(
    problems: Callable[[dict[str, str | bytes]], list[str]], item: str, message: str
) -> None:
    found = problems({"lab.yaml": f"version: 1\nnamespaces: [{{name: red}}]\nchecks:\n  - {item}\n"})
    assert len(found) == 1 and found[0].startswith("lab.yaml:4:") and message in found[0], found


def test_a_check_declared_twice_is_refused(problems: Callable[[dict[str, str | bytes]], list[str]]) -> None:
    twice = "version: 1\nchecks:\n  - {from: host, ping: 10.0.0.1}\n  - {from: host, ping: 10.0.0.1}\n"
    found = problems({"lab.yaml": twice})
    assert len(found) == 1 and found[0].startswith("lab.yaml:4:") and "host ping 10.0.0.1" in found[0], found


# -- which outcome breaks a pass -----------------------------------------------------------


def check(target: str) -> Check:
    return Check(None, "ping", target, Origin("lab.yaml", 3))


def outcome(target: str, passed: bool) -> Outcome:
    return Outcome(check(target), passed, "answered" if passed else "no answer", 0.0)


def test_only_a_check_that_passed_before_breaks_a_pass() -> None:
    before = [outcome("10.0.0.1", True), outcome("10.0.0.2", False), outcome("10.0.0.3", True)]
    after = [
        outcome("10.0.0.1", False),
        outcome("10.0.0.2", False),
        outcome("10.0.0.3", True),
        outcome("10.0.0.4", False),
    ]
    assert [str(broken.check) for broken in newly_failing(before, after)] == ["host ping 10.0.0.1"]


# -- the gate around a pass -------------------------------------------------------------------


def scripted_checks(*runs: list[Outcome]) -> Callable[[Sequence[Check]], list[Outcome]]:
    answers = iter(runs)
    return lambda _: next(answers)


def test_a_pass_that_breaks_a_check_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    a, b = creation("a", Phase.ADD_ADDRESS), creation("b", Phase.ADD_ADDRESS)
    scripted_plans(monkeypatch, Plan((a, b)), Plan(()))
    # before, after, and once more before rolling back
    run = scripted_checks([outcome("10.0.0.1", True)], [outcome("10.0.0.1", False)], [outcome("10.0.0.1", False)])
    desired = DesiredState(checks=(check("10.0.0.1"),))
    with pytest.raises(CheckBroken, match="host ping 10.0.0.1: no answer") as raised:
        applying.reconcile(desired, kernel, ledger, LOG, checking=Checking(run))  # type: ignore[arg-type]
    assert kernel.calls == ["create a", "create b", "undo b", "undo a"]
    assert "were undone" in str(raised.value) and [o.check for o in raised.value.broken] == [check("10.0.0.1")]
    assert list(ledger.keys("address")) == []


def test_a_check_that_passes_when_tried_again_keeps_the_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    scripted_plans(monkeypatch, Plan((creation("a", Phase.ADD_ADDRESS),)), Plan(()))
    run = scripted_checks([outcome("10.0.0.1", True)], [outcome("10.0.0.1", False)], [outcome("10.0.0.1", True)])
    desired = DesiredState(checks=(check("10.0.0.1"),))
    result = applying.reconcile(desired, kernel, ledger, LOG, checking=Checking(run))  # type: ignore[arg-type]
    assert kernel.calls == ["create a"] and [o.passed for o in result.checks] == [True]


def test_with_the_gate_off_the_pass_stays_and_the_checks_are_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    scripted_plans(monkeypatch, Plan((creation("a", Phase.ADD_ADDRESS),)), Plan(()))
    # no run before the pass: nothing would be rolled back
    run = scripted_checks([outcome("10.0.0.1", False)])
    desired = DesiredState(checks=(check("10.0.0.1"),))
    result = applying.reconcile(desired, kernel, ledger, LOG, checking=Checking(run, rollback=False))  # type: ignore[arg-type]
    assert kernel.calls == ["create a"] and [o.passed for o in result.checks] == [False]


def test_checks_failing_before_and_after_keep_the_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, ledger = RecordingKernel(), Ledger(tmp_path / "ledger.json")
    scripted_plans(monkeypatch, Plan((creation("a", Phase.ADD_ADDRESS),)), Plan(()))
    run = scripted_checks([outcome("10.0.0.1", False)], [outcome("10.0.0.1", False)])
    desired = DesiredState(checks=(check("10.0.0.1"),))
    result = applying.reconcile(desired, kernel, ledger, LOG, checking=Checking(run))  # type: ignore[arg-type]
    assert kernel.calls == ["create a"] and not result.checks[0].passed


def test_checks_wait_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each probe waits for all the others to be waiting too: one after another,
    the barrier would break."""
    many = [check(f"10.0.0.{n}") for n in range(1, 21)]
    barrier = threading.Barrier(len(many), timeout=10)

    def probe(_: Check) -> tuple[bool | None, str]:
        barrier.wait()
        return True, "answered"

    monkeypatch.setitem(checks._PROBES, "ping", probe)
    assert all(result.passed for result in checks.run_checks(many))


def test_a_check_that_cannot_run_fails_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe(_: Check) -> tuple[bool | None, str]:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setitem(checks._PROBES, "ping", probe)
    unreachable = Check(None, "ping", "10.0.0.1", Origin("lab.yaml", 3), expect="unreachable")
    (result,) = checks.run_checks([unreachable])
    assert not result.passed and result.detail == "could not run: No such file or directory"
    # a namespace that is not there (yet): said as such, whatever the check
    nowhere = Check("nowhere-netlab-test", "resolve", "localhost", Origin("lab.yaml", 4))
    (result,) = checks.run_checks([nowhere])
    assert not result.passed and result.detail == "namespace nowhere-netlab-test does not exist"

    def bug(_: Check) -> tuple[bool | None, str]:
        raise ValueError("filedescriptor out of range in select()")

    monkeypatch.setitem(checks._PROBES, "ping", bug)
    (result,) = checks.run_checks([unreachable])
    assert not result.passed and result.detail.startswith("could not run (a bug in netlab: ValueError")


# -- what the probes read ----------------------------------------------------------------------


def answer(ident: int, rcode: int, *records: tuple[int, bytes]) -> bytes:
    question = b"\x02db\x03lab\x00" + struct.pack("!HH", 1, 1)
    body = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 60, len(data)) + data for rtype, data in records)
    return struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(records), 0, 0) + question + body


def test_dns_answers_are_read_for_their_addresses() -> None:
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    cname = b"\x03www\xc0\x0c"
    packet = answer(7, 0, (5, cname), (1, socket.inet_aton("192.0.2.7")), (28, v6))
    assert checks._answers(packet) == {"192.0.2.7", "2001:db8::7"}
    assert checks._answers(answer(7, 3, (1, socket.inet_aton("192.0.2.7")))) == set()  # NXDOMAIN
    assert checks._answers(packet[:-5]) == set()  # cut short: nothing, not a crash
    assert checks._question(9, "db.lab", 28)[12:] == b"\x02db\x03lab\x00\x00\x1c\x00\x01"


def test_the_hosts_file_is_read_as_the_resolver_reads_it(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n192.168.15.2 blue blue.lab # blue\n# 10.0.0.1 blue\nfe80::1%eth0 Blue\n")
    assert checks._in_hosts(str(hosts), "blue") == {"192.168.15.2", "fe80::1"}
    assert checks._in_hosts(str(hosts), "red") == set()


def test_an_echo_reply_is_told_from_other_icmp() -> None:
    ident = 4242
    reply = struct.pack("!BBHHH", 0, 0, 0, ident, 1)
    ip_header = bytes([0x45]) + bytes(19)
    assert checks._echo_answer(False, ip_header + reply, ident) == "reply"
    assert checks._echo_answer(False, ip_header + struct.pack("!BBHHH", 0, 0, 0, ident + 1, 1), ident) is None
    ours = ip_header + checks._echo_request(False, ident, 1)
    unreachable = ip_header + struct.pack("!BBHI", 3, 1, 0, 0) + ours
    assert checks._echo_answer(False, unreachable, ident) == "host unreachable, says the network"
    assert checks._checksum(checks._echo_request(False, ident, 1)) == 0


# -- under the daemon ----------------------------------------------------------------------------


def test_only_a_new_generation_is_rolled_back_for_a_check(tmp_path: Path) -> None:
    """A start has no clean generation to go back to, a reload of the same files
    and a repair put back what is in force: only checks told, nothing undone."""
    passes = Passes(FakeKernel(), FakeReconcile(), tmp_path / "state", Health(), RecordingLog())
    passes.checking = Checking(run=lambda _: [], rollback=True)
    desired = desired_of(tmp_path / "lab", **{"lab.yaml": LAB})
    runs = [("start", "d1"), ("drift", "d1"), ("resync", "d1"), ("reload", "d1"), ("config", "d2"), ("reload", "d3")]
    for reason, digest in runs:
        assert passes.run(reason, Generation(1, digest, desired.files, desired, "config"))  # type: ignore[arg-type]
    reconcile = passes.reconcile
    assert isinstance(reconcile, FakeReconcile)
    assert [c.rollback if c else None for c in reconcile.checking] == [False, False, False, False, True, True]


def test_a_broken_check_rejects_the_generation_and_the_one_before_is_in_force(tmp_path: Path) -> None:
    health, log = Health(), RecordingLog()
    passes = Passes(FakeKernel(), FakeReconcile(), tmp_path / "state", health, log)
    generations = Generations(tmp_path / "conf", tmp_path / "state", health, log)
    good, bad = Generation(1, "good", (), DesiredState(), "config"), Generation(2, "bad", (), DesiredState(), "config")
    passes.clean, generations.current = good, bad
    broken = outcome("10.0.0.1", False)
    assert isinstance(passes.reconcile, FakeReconcile)
    passes.reconcile.outcomes.append(CheckBroken("the pass broke checks", (broken,)))
    assert not passes.run("config", bad)
    assert passes.broken is not None
    generations.reject_broken(passes.broken, good)
    assert generations.current is good and health.state == "degraded"
    assert health.rejected is not None and health.rejected["digest"] == "bad"
    (problem,) = health.rejected["problems"]
    assert (problem["file"], problem["line"]) == ("lab.yaml", 3)
    assert "the change broke this check (host ping 10.0.0.1: no answer)" in problem["message"]


def test_each_check_that_changes_result_is_told_once() -> None:
    health = Health()
    assert health.record_checks([outcome("10.0.0.1", True), outcome("10.0.0.2", False)]) == [
        outcome("10.0.0.2", False)
    ]  # a first run: the failing ones
    since = health.checks[check("10.0.0.1").key]["since"]
    assert health.record_checks([outcome("10.0.0.1", True), outcome("10.0.0.2", False)]) == []
    assert health.checks[check("10.0.0.1").key]["since"] == since
    assert health.record_checks([outcome("10.0.0.1", False)]) == [outcome("10.0.0.1", False)]
    assert list(health.checks) == [check("10.0.0.1").key]  # a check no longer declared goes


def test_the_periodic_checks_come_last_and_only_when_due() -> None:
    deadlines = Deadlines(resync=100.0, checks=50.0)
    assert next_action(10.0, deadlines, Flags(), 0.25) == Wait(50.0)
    assert next_action(50.0, deadlines, Flags(), 0.25) is Action.CHECK
    assert next_action(100.0, deadlines, Flags(), 0.25) is Action.RESYNC
    assert next_action(60.0, Deadlines(resync=100.0), Flags(), 0.25) == Wait(100.0)  # off
