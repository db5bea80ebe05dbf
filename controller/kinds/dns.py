"""resolv.conf: `dns` at the top level is /etc/resolv.conf, a namespace's `dns` is
/etc/netns/NAME/resolv.conf (which `ip netns exec` bind-mounts over
/etc/resolv.conf). Key: (netns,). netlab writes the whole file, with a header
saying so; the original comes back when `dns` leaves the files. A symlinked
resolv.conf (systemd-resolved, resolvconf) is refused, never written through.
"""

from __future__ import annotations

from typing import Any

from netlab.controller.changes import AttributeChange, Change
from netlab.controller.kinds.contract import PlanContext, Planned, ShowContext, Shown
from netlab.controller.kinds.managed_files import HEADER, ManagedFile, has_header, plan_file
from netlab.state.model import Dns, Origin

KIND = "dns"
FILE_NAME = "resolv.conf"


def render(dns: Dns) -> bytes:
    lines = [f"nameserver {address}" for address in dns.nameservers]
    if dns.search:
        lines.append("search " + " ".join(dns.search))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return HEADER + "".join(line + "\n" for line in lines).encode()


def settings(content: bytes | None) -> dict[str, str | None]:
    """What a resolv.conf says, the way the resolver reads it: every
    `nameserver`, the last `search` (or `domain`), every `options`."""
    found: dict[str, list[str]] = {"nameservers": [], "search": [], "options": []}
    for raw in (content or b"").decode(errors="replace").splitlines():
        words = raw.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            found["nameservers"].append(words[1])
        elif words[0] in ("search", "domain"):
            found["search"] = words[1:]
        elif words[0] == "options":
            found["options"].extend(words[1:])
    return {name: " ".join(values) or None for name, values in found.items()}


def describe(current: bytes | None, desired: bytes | None) -> tuple[AttributeChange, ...]:
    before, after = settings(current), settings(desired)
    return tuple(AttributeChange(name, before[name], after[name]) for name in before if before[name] != after[name])


def rerender(content: bytes) -> bytes:
    """What netlab writes for the settings `content` holds: differs from
    `content` when the file was edited by hand."""
    found = settings(content)
    words = {name: tuple((value or "").split()) for name, value in found.items()}
    return render(Dns(None, words["nameservers"], words["search"], words["options"], Origin("(found)", 0)))


def managed_file(netns: str | None) -> ManagedFile:
    return ManagedFile(KIND, netns, FILE_NAME, "dns" if netns is None else f"namespaces.{netns}.dns")


class DnsKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        wanted = {dns.netns: dns for dns in ctx.desired.dns}
        recorded = {key[0] for key in ctx.owned_keys(KIND)}
        changes: list[Change] = []
        # the host (whose file is managed even when no dns is declared) first,
        # then namespaces by name
        host: set[str | None] = {None} if ctx.in_scope(None) else set()
        for netns in sorted(set(wanted) | recorded | host, key=lambda name: (name is not None, name or "")):
            dns = wanted.get(netns)
            desired = render(dns) if dns else None
            change = plan_file(ctx, managed_file(netns), desired, dns.origin if dns else None, describe, rerender)
            if change is not None:
                changes.append(change)
        return Planned(tuple(changes))

    def show(self, view: ShowContext) -> Shown:
        return Shown.by_netns("dns", {netns: _shown(view, netns) for netns in view.netns_shown})


def _shown(view: ShowContext, netns: str | None) -> dict[str, Any] | None:
    """The resolv.conf netlab wrote there (its header says so), as `dns:`."""
    state = view.kernel.file(managed_file(netns).path)
    if not has_header(state):
        return None
    found = settings(state.content)
    entry: dict[str, Any] = {name: value.split() for name, value in found.items() if value}
    return {**entry, "owned": True} if entry else None
