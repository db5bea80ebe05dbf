"""`net.*` sysctls, on the host and per namespace. Key: (netns, key). The value
found before netlab's first write is kept in the ledger and written back when
the sysctl leaves the files: in a namespace netlab creates, the value a new
namespace has; of a link not created yet, its namespace's default for new
links. In a namespace netlab removes, nothing is restored: the namespace goes
with its values."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from netlab.controller.backends.sysctls import normalise
from netlab.controller.changes import AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext, Planned, ShowContext, Shown
from netlab.state.model import Sysctl, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "sysctl"

# A number as the kernel's proc handlers parse one (strtoul, base 0): 0x1f is
# hexadecimal, 017 octal, 17 decimal; a minus sign may go first.
_HEXADECIMAL = re.compile(r"-?0[xX][0-9a-fA-F]+")
_OCTAL = re.compile(r"-?0[0-7]+")
_DECIMAL = re.compile(r"-?[1-9][0-9]*|-?0")


def kernel_form(value: str) -> str:
    """A value as the kernel prints it back: words separated by one space, each
    number in decimal without leading zeros ("01" reads back as 1, "010" as 8,
    "0x10" as 16). Compared with what the kernel shows and written so, or a
    value that the kernel keeps in another form is planned again on every pass.
    Anything else (a name such as `cubic`) is kept as it is."""
    words = []
    for word in normalise(value).split(" "):
        if _HEXADECIMAL.fullmatch(word):
            word = str(int(word, 16))
        elif _OCTAL.fullmatch(word):
            word = str(int(word, 8))
        elif _DECIMAL.fullmatch(word):
            word = str(int(word))
        words.append(word)
    return " ".join(words)


class SysctlKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        wanted = {sysctl.ident: sysctl for sysctl in ctx.desired.sysctls}
        changes: list[Change] = []
        for netns, key in ctx.owned_keys(KIND):
            if (netns, key) in wanted or netns in ctx.decided.removed_namespaces:
                continue
            original = (ctx.ledger.get(KIND, (netns, key)) or {}).get("original")
            current = ctx.kernel.sysctl(netns, key)
            changes.append(_restore(netns, key, current, original))
        for ident, sysctl in wanted.items():
            link = link_of(sysctl.key)
            fresh_namespace = ctx.decided.namespace_is_fresh(sysctl.netns)
            fresh_link = link is not None and ctx.decided.link_is_fresh(sysctl.netns, link)
            fresh = fresh_namespace or fresh_link
            # on a link made anew, the value read now is the old link's: the new
            # one starts with the default
            current = None if fresh else ctx.kernel.sysctl(sysctl.netns, sysctl.key)
            if current is not None and current == kernel_form(sysctl.value):
                continue
            recorded = ctx.ledger.get(KIND, ident)
            original = (
                recorded.get("original") if recorded else _original(ctx, sysctl, fresh_namespace, fresh_link, current)
            )
            changes.append(_set(sysctl, current, original))
        return Planned(tuple(changes))

    def show(self, view: ShowContext) -> Shown:
        """The values of the sysctls declared or in the ledger, on the host and in
        the namespaces shown."""
        keys = sorted({s.ident for s in view.desired.sysctls} | set(view.ledger.keys(KIND)), key=repr)
        return Shown.by_netns(
            "sysctls",
            {netns: _values(view, netns, [key for where, key in keys if where == netns]) for netns in view.netns_shown},
        )


def _values(view: ShowContext, netns: str | None, keys: list[str]) -> dict[str, int | str]:
    """The sysctls as the files write them: a number as a number
    (`net.ipv4.ip_forward: 1`), several values as one string of words. A key
    the kernel does not have (a link's, before the link) is left out."""
    values: dict[str, int | str] = {}
    for key in keys:
        value = view.kernel.sysctl(netns, key)
        if value is None:
            continue
        words = " ".join(value.split())
        values[key] = int(words) if words.lstrip("-").isdigit() else words
    return values


def link_of(key: str) -> str | None:
    """The link a per-link sysctl is of (`net.ipv4.conf.veth0.rp_filter`,
    `net.ipv6.neigh.veth0.retrans_time_ms`), or None."""
    parts = key.split(".")
    if len(parts) < 5 or parts[0] != "net" or parts[2] not in ("conf", "neigh"):
        return None
    name = ".".join(parts[3:-1])  # a VLAN's name has a dot: net.ipv4.conf.eth0.10.forwarding
    return None if name in ("all", "default") else name


def _original(
    ctx: PlanContext, sysctl: Sysctl, fresh_namespace: bool, fresh_link: bool, current: str | None
) -> str | None:
    """What the sysctl is before netlab writes it: now, or once what this pass
    creates is there (a new namespace's value; a new link's, which is its
    namespace's default)."""
    if current is not None:
        return current
    # a link made anew takes its namespace's default, not what the old one had
    keys = [*([] if fresh_link else [sysctl.key]), *_default_key(sysctl.key)]
    for key in keys:
        value = ctx.kernel.fresh_sysctl(key) if fresh_namespace else ctx.kernel.sysctl(sysctl.netns, key)
        if value is not None:
            return value
    return None


def _default_key(key: str) -> list[str]:
    """For a per-link key (`net.ipv4.conf.IFNAME.forwarding`), the one new links
    take their value from (`net.ipv4.conf.default.forwarding`)."""
    if link_of(key) is None:
        return []
    parts = key.split(".")
    return [".".join([*parts[:3], "default", parts[-1]])]


def _set(sysctl: Sysctl, current: str | None, original: str | None) -> Change:
    netns, key, value = sysctl.netns, sysctl.key, kernel_form(sysctl.value)

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
