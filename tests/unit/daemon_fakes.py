"""Fakes for the daemon's unit tests (no root, no kernel): a kernel facade with
the `DaemonKernel` methods, a stand-in for `applying.reconcile` that returns or
raises what a test queues, and a log that records what the journal would say."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlab.controller.applying import ApplyResult, Checking, Held
from netlab.controller.changes import Change
from netlab.controller.planning import Plan
from netlab.state.ledger import Ledger
from netlab.state.loading import load_generation
from netlab.state.model import DesiredState

LAB = """version: 1
namespaces: [{name: red}]
interfaces:
  - {name: br0, type: bridge, addresses: [10.5.0.1/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [10.5.0.2/24], peer: {name: veth-red-br, master: br0}}
"""

BLUE = """version: 1
namespaces: [{name: blue}]
interfaces:
  - {name: dummy-blue, type: dummy, netns: blue, addresses: [10.6.0.1/24]}
"""


def desired_of(directory: Path, **files: str) -> DesiredState:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return load_generation(directory, "node-a")


def address(n: int, netns: str | None = None) -> Change:
    return Change("address", "+", (netns, "br0", f"10.7.{n}.1/24"), netns, f"br0 10.7.{n}.1/24")


class FakeKernel:
    """Records what the daemon asks it to forget; `replaced` and `heard` are
    what the test says happened behind netlab's back."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.replaced: list[str] = []
        self.heard: frozenset[str | None] = frozenset()
        self.peers: frozenset[str | None] = frozenset()

    def forget_reads(self) -> None:
        self.calls.append("forget_reads")

    def forget_heard(self) -> None:
        self.calls.append("forget_heard")

    def heard_changing(self) -> frozenset[str | None]:
        return self.heard

    def replaced_namespaces(self) -> list[str]:
        return list(self.replaced)

    def drop_namespaces(self, names: Iterable[str]) -> frozenset[str | None]:
        self.calls.append(f"drop {sorted(names)}")
        self.replaced = []
        return self.peers

    def close(self) -> None:
        self.calls.append("close")


@dataclass(frozen=True)
class Call:
    desired: DesiredState
    scope: frozenset[str | None] | None
    hold: Held


class FakeReconcile:
    """`applying.reconcile` as the daemon sees it: each call is recorded and
    gives the next queued outcome (changes made, or an exception raised);
    nothing to do when none is queued. The changes are recorded in the ledger
    and it is saved, as a real pass does (so a full disk shows there)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.outcomes: list[tuple[Change, ...] | BaseException] = []
        self.checking: list[Checking | None] = []  # what each call was given

    def __call__(
        self,
        desired: DesiredState,
        kernel: FakeKernel,
        ledger: Ledger,
        log: Any,
        scope: frozenset[str | None] | None,
        hold: Held,
        checking: Checking | None = None,
    ) -> ApplyResult:
        self.calls.append(Call(desired, scope, hold))
        self.checking.append(checking)
        outcome = self.outcomes.pop(0) if self.outcomes else ()
        if isinstance(outcome, BaseException):
            raise outcome
        for change in outcome:
            ledger.record(change.kind, change.key)
        ledger.save()
        return ApplyResult(Plan(outcome), 1.0)


class RecordingLog:
    """A structlog logger as the daemon uses it: `bind` and one method per level."""

    def __init__(
        self, events: list[tuple[str, str, dict[str, Any]]] | None = None, bound: dict[str, Any] | None = None
    ) -> None:
        self.events = events if events is not None else []
        self.bound = bound or {}

    def bind(self, **fields: Any) -> RecordingLog:
        return RecordingLog(self.events, {**self.bound, **fields})

    def said(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, said, fields in self.events if said == event]

    def _say(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.events.append((level, event, {**self.bound, **fields}))

    def debug(self, event: str, **fields: Any) -> None:
        self._say("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._say("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._say("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._say("error", event, fields)
