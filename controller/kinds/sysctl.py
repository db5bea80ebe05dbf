"""`net.*` sysctls, on the host and per namespace. Key: (netns, key). The value
found before netlab's first write is kept in the ledger and written back when
the sysctl leaves the files: in a namespace netlab creates, the value a new
namespace has; of a link not created yet, its namespace's default for new
links. In a namespace netlab removes, nothing is restored: the namespace goes
with its values."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netlab.controller.backends.sysctls import normalise
from netlab.controller.changes import AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext
from netlab.state.model import Sysctl, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "sysctl"


class SysctlKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> list[Change]:
        wanted = {sysctl.ident: sysctl for sysctl in ctx.desired.sysctls}
        changes: list[Change] = []
        for (netns, key) in ctx.owned_keys(KIND):
            if (netns, key) in wanted or netns in ctx.removed_namespaces:
                continue
            original = (ctx.ledger.get(KIND, (netns, key)) or {}).get("original")
            current = ctx.kernel.sysctl(netns, key)
            changes.append(_restore(netns, key, current, original))
        for ident, sysctl in wanted.items():
            fresh_namespace = sysctl.netns is not None and sysctl.netns in ctx.created_namespaces
            current = None if fresh_namespace else ctx.kernel.sysctl(sysctl.netns, sysctl.key)
            if current is not None and current == normalise(sysctl.value):
                continue
            recorded = ctx.ledger.get(KIND, ident)
            original = recorded.get("original") if recorded else _original(ctx, sysctl, fresh_namespace, current)
            changes.append(_set(sysctl, current, original))
        return changes


def _original(ctx: PlanContext, sysctl: Sysctl, fresh_namespace: bool, current: str | None) -> str | None:
    """What the sysctl is before netlab writes it: now, or once what this pass
    creates is there (a new namespace's value; a new link's, which is its
    namespace's default)."""
    if current is not None:
        return current
    keys = [sysctl.key, *_default_key(sysctl.key)]
    for key in keys:
        value = ctx.kernel.fresh_sysctl(key) if fresh_namespace else ctx.kernel.sysctl(sysctl.netns, key)
        if value is not None:
            return value
    return None


def _default_key(key: str) -> list[str]:
    """For a per-link key (`net.ipv4.conf.IFNAME.forwarding`), the one new links
    take their value from (`net.ipv4.conf.default.forwarding`)."""
    parts = key.split(".")
    if len(parts) >= 5 and parts[2] in ("conf", "neigh") and parts[3] not in ("all", "default"):
        return [".".join([*parts[:3], "default", *parts[4:]])]
    return []


def _set(sysctl: Sysctl, current: str | None, original: str | None) -> Change:
    netns, key, value = sysctl.netns, sysctl.key, normalise(sysctl.value)

    def write(kernel: Kernel) -> None:
        kernel.write_sysctl(netns, key, value)

    return Change(
        kind=KIND,
        action="~",
        key=sysctl.ident,
        netns=netns,
        name=key,
        attributes=(AttributeChange("value", current, value),),
        origin=sysctl.origin,
        steps=(
            Step(
                Phase.SET_SYSCTL,
                f"set {key}={value} in {netns_label(netns)}",
                write,
                undo=None if current is None else (lambda kernel: kernel.write_sysctl(netns, key, current)),
            ),
        ),
        record={"original": original},
    )


def _restore(netns: str | None, key: str, current: str | None, original: str | None) -> Change:
    def write(kernel: Kernel) -> None:
        if original is not None and current is not None:
            kernel.write_sysctl(netns, key, original)

    unchanged = original is None or current is None or current == original
    return Change(
        kind=KIND,
        action="-",
        key=(netns, key),
        netns=netns,
        name=key,
        note="no longer managed" if unchanged else f"value {current} -> {original} (as before netlab)",
        steps=()
        if unchanged
        else (
            Step(
                Phase.RESTORE_SYSCTL,
                f"restore {key}={original} in {netns_label(netns)}",
                write,
                undo=lambda kernel: kernel.write_sysctl(netns, key, current or ""),
            ),
        ),
    )
