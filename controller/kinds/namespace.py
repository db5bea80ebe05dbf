"""Network namespaces (`ip netns add/del`). Key: the name. netlab removes only the
namespaces its ledger says it created; a declared namespace that exists already
is used as it is and never removed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netlab.controller.backends.kernel import LOOPBACK
from netlab.controller.changes import AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext
from netlab.state.model import Origin

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "namespace"


class NamespaceKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> list[Change]:
        existing = ctx.kernel.namespaces()
        wanted = {ns.name: ns for ns in ctx.desired.namespaces}
        changes: list[Change] = []
        for name, ns in wanted.items():
            if name not in existing:
                ctx.created_namespaces.add(name)
                changes.append(_create(name, ns.origin))
            elif ctx.ledger.owns(KIND, (name,)):
                loopback = ctx.kernel.dump(name).link(LOOPBACK)
                if loopback is not None and loopback.state != "up":
                    # a creation cut short before its loopback came up, or drift
                    changes.append(_loopback_up(name, ns.origin))
        for (name,) in ctx.owned_keys(KIND):
            if name not in wanted and name in existing:
                ctx.removed_namespaces.add(name)
                changes.append(_remove(name))
        return changes


def _create(name: str, origin: Origin) -> Change:
    def run(kernel: Kernel) -> None:
        kernel.create_namespace(name)

    return Change(
        kind=KIND,
        action="+",
        key=(name,),
        netns=None,
        name=name,
        origin=origin,
        steps=(Step(Phase.CREATE_NAMESPACE, f"create namespace {name}", run, undo=lambda kernel: kernel.remove_namespace(name)),),
        record={},
    )


def _loopback_up(name: str, origin: Origin) -> Change:
    def run(kernel: Kernel) -> None:
        kernel.netlink.link_set(name, "lo", state="up")

    return Change(
        kind=KIND,
        action="~",
        key=(name,),
        netns=None,
        name=name,
        attributes=(AttributeChange("lo", "down", "up"),),
        origin=origin,
        steps=(
            Step(
                Phase.SET_LINK,
                f"set lo up in {name}",
                run,
                undo=lambda kernel: kernel.netlink.link_set(name, "lo", state="down"),
            ),
        ),
    )


def _remove(name: str) -> Change:
    def run(kernel: Kernel) -> None:
        kernel.remove_namespace(name)

    return Change(
        kind=KIND,
        action="-",
        key=(name,),
        netns=None,
        name=name,
        note="with everything in it",
        steps=(
            Step(Phase.DELETE_NAMESPACE, f"remove namespace {name}", run, irreversible="its contents are gone with it"),
        ),
    )
