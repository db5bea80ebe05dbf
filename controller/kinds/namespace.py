"""Network namespaces (`ip netns add/del`). Key: the name. netlab removes only the
namespaces its ledger says it created; a declared namespace that exists already
is used as it is and never removed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netlab.controller.backends.kernel import LOOPBACK
from netlab.controller.changes import Action, AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import Decided, PlanContext, Planned, ShowContext, Shown
from netlab.state.ledger import Entry
from netlab.state.model import Origin

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "namespace"


class NamespaceKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        existing = ctx.kernel.namespaces()
        wanted = {ns.name: ns for ns in ctx.desired.namespaces}
        changes: list[Change] = []
        created: set[str] = set()
        removed: set[str] = set()
        for name, ns in wanted.items():
            if name not in existing:
                created.add(name)
                changes.append(_create(name, ns.origin))
            elif ctx.ledger.owns(KIND, (name,)):
                loopback = ctx.kernel.dump(name).link(LOOPBACK)
                if loopback is not None and loopback.state != "up":
                    # a creation cut short before its loopback came up, or drift
                    changes.append(_loopback_up(name, ns.origin))
        for (name,) in ctx.owned_keys(KIND):
            if name not in wanted and name in existing:
                removed.add(name)
                changes.append(_remove(name))
        return Planned(
            tuple(changes), Decided(created_namespaces=frozenset(created), removed_namespaces=frozenset(removed))
        )

    def show(self, view: ShowContext) -> Shown:
        owned = {key[0] for key in view.ledger.keys(KIND)}
        return Shown({"namespaces": [{"name": name, "owned": name in owned} for name in view.namespaces]})


def _change(
    action: Action,
    name: str,
    step: Step,
    origin: Origin | None = None,
    attributes: tuple[AttributeChange, ...] = (),
    note: str = "",
    record: Entry | None = None,
) -> Change:
    return Change(KIND, action, (name,), None, name, attributes, note, origin, (step,), record)


def _create(name: str, origin: Origin) -> Change:
    def run(kernel: Kernel) -> None:
        kernel.create_namespace(name)

    step = Step(
        Phase.CREATE_NAMESPACE, f"create namespace {name}", run, undo=lambda kernel: kernel.remove_namespace(name)
    )
    return _change("+", name, step, origin=origin, record={})


def _loopback_up(name: str, origin: Origin) -> Change:
    def run(kernel: Kernel) -> None:
        kernel.netlink.link_set(name, "lo", state="up")

    def undo(kernel: Kernel) -> None:
        kernel.netlink.link_set(name, "lo", state="down")

    step = Step(Phase.SET_LINK, f"set lo up in {name}", run, undo=undo)
    return _change("~", name, step, attributes=(AttributeChange("lo", "down", "up"),), origin=origin)


def _remove(name: str) -> Change:
    def run(kernel: Kernel) -> None:
        kernel.remove_namespace(name)

    step = Step(Phase.DELETE_NAMESPACE, f"remove namespace {name}", run, irreversible="its contents are gone with it")
    return _change("-", name, step, note="with everything in it")
