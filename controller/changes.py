"""What a plan is made of: `Change` (one object to add, remove or change, as the
operator sees it in `netlab plan`) and `Step` (one kernel write, ordered by phase
across all changes). Produced by the kinds, ordered by planning, run by applying.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal

from netlab.state.ledger import Entry
from netlab.state.model import Origin, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

Action = Literal["+", "-", "~"]
UNSCOPED_KINDS = frozenset({"namespace"})


class Phase(IntEnum):
    """The order of kernel writes in a pass: removals first, innermost objects
    first; then additions from namespaces outward to routes."""

    DELETE_NAT = 5
    DELETE_ROUTE = 10
    DELETE_ADDRESS = 20
    RESTORE_SYSCTL = 25
    DELETE_LINK = 30
    DELETE_NAMESPACE = 40
    CREATE_NAMESPACE = 50
    CREATE_LINK = 60
    SET_LINK = 70
    SET_SYSCTL = 75
    ADD_ADDRESS = 80
    LINK_UP = 90
    ADD_ROUTE = 100
    ADD_NAT = 110
    WRITE_FILES = 120


@dataclass(frozen=True, slots=True)
class AttributeChange:
    name: str
    current: Any
    desired: Any

    def __str__(self) -> str:
        return f"{self.name} {_show(self.current)} -> {_show(self.desired)}"


@dataclass(frozen=True, slots=True)
class Step:
    """One kernel write. `run` gets the kernel facade of the pass; `undo` puts
    back what `run` changed, for a pass that fails later on. A step that cannot
    be undone (a deleted link is gone with its state) says why in `irreversible`."""

    phase: Phase
    describe: str
    run: Callable[[Kernel], None] = field(compare=False, repr=False)
    undo: Callable[[Kernel], None] | None = field(default=None, compare=False, repr=False)
    irreversible: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """Something a plan says beside its changes: which NAT backend is in use and
    why (topic "nat-backend"), or what on the host may defeat what netlab
    does (topic "warning")."""

    topic: str
    text: str

    def __str__(self) -> str:
        return f"{'Warning' if self.topic == 'warning' else 'Note'}: {self.text}"

    def to_json(self) -> dict[str, str]:
        return {"topic": self.topic, "text": self.text}


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    action: Action
    key: tuple[Any, ...]
    netns: str | None
    name: str
    attributes: tuple[AttributeChange, ...] = ()
    note: str = ""
    origin: Origin | None = None
    steps: tuple[Step, ...] = field(default=(), compare=False, repr=False)
    # what the ledger learns once every step of this change is done (added to
    # an entry it has: what it knows already is kept), and the keys of that
    # entry it then forgets (a device's original value, given back)
    record: Entry | None = field(default=None, compare=False)
    record_drops: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        # A namespace is not inside a namespace: `+ namespace red`, not `host/red`.
        if self.kind in UNSCOPED_KINDS:
            return self.name
        return f"{netns_label(self.netns)}/{self.name}"

    def __str__(self) -> str:
        text = f"{self.action} {self.kind} {self.label}"
        details = [str(attribute) for attribute in self.attributes]
        if self.note:
            details.append(self.note)
        if details:
            text += ": " + ", ".join(details)
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "netns": netns_label(self.netns),
            "name": self.name,
            "attributes": [{"name": a.name, "current": a.current, "desired": a.desired} for a in self.attributes],
            "note": self.note,
            "origin": str(self.origin) if self.origin else None,
        }


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)
