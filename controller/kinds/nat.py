"""NAT rules (masquerade, snat, dnat port-forwards), on the host and in namespaces.
Key: (netns, the whole rule). Each rule lives in one of netlab's chains of the
legacy nat table (NETLAB-POSTROUTING, NETLAB-PREROUTING, and NETLAB-OUTPUT for
the host's own connections to a forwarded port), with the comment
`netlab:<id>`, the id a hash of the rule; the chains are jumped to from the
built-in chains by rules commented `netlab`. Rules without netlab's comments
are never touched.

The writes of a pass in one namespace go to the kernel as one batch (one worker
process, one commit per table), shared by the changes of that namespace.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netlab.controller.backends import iptables
from netlab.controller.backends.iptables import NatOp, NatTables, ObservedNatRule
from netlab.controller.backends.nat_rules import CHAINS, RULE_COMMENT_PREFIX, Family, RuleSpec
from netlab.controller.changes import Action, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext
from netlab.state.ledger import Entry
from netlab.state.model import NatRule, Origin, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "nat"
LOOPBACK = {4: "127.0.0.0/8", 6: "::1/128"}


# -- what a rule becomes in the kernel -------------------------------------------


def rule_id(rule: NatRule) -> str:
    """A short hash of the rule (its key without the namespace: a namespace's
    tables are its own). The same rule always gets the same id."""
    canonical = json.dumps(rule.key[1:], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def rule_family(rule: NatRule) -> Family:
    for text in (rule.source, rule.destination, rule.to_source):
        if text is not None and ":" in text:
            return 6
    if rule.to is not None and (rule.to.startswith("[") or _is_ipv6(rule.to)):
        return 6
    return 4


def rule_specs(rule: NatRule) -> list[RuleSpec]:
    """The kernel rules of one NAT rule: one, or two for a dnat (PREROUTING for
    connections from outside, OUTPUT for the host's own)."""
    family, comment = rule_family(rule), RULE_COMMENT_PREFIX + rule_id(rule)
    if rule.type in ("masquerade", "snat"):
        return [
            RuleSpec(
                family,
                "NETLAB-POSTROUTING",
                comment,
                "MASQUERADE" if rule.type == "masquerade" else "SNAT",
                source=rule.source,
                destination=rule.destination,
                out_interface=rule.out_interface,
                to=rule.to_source,
            )
        ]
    dport = rule.port.replace("-", ":") if rule.port else None
    from_outside = RuleSpec(
        family,
        "NETLAB-PREROUTING",
        comment,
        "DNAT",
        destination=rule.destination,
        in_interface=rule.in_interface,
        protocol=rule.protocol,
        dport=dport,
        to=rule.to,
    )
    # The host's own connections skip PREROUTING. Without a destination, they are
    # forwarded when they go to one of the host's addresses, except loopback:
    # the kernel drops a packet from 127.0.0.1 routed out of the host.
    from_host = RuleSpec(
        family,
        "NETLAB-OUTPUT",
        comment,
        "DNAT",
        destination=rule.destination,
        not_destination=None if rule.destination else LOOPBACK[family],
        protocol=rule.protocol,
        dport=dport,
        dst_local=rule.destination is None,
        to=rule.to,
    )
    return [from_outside, from_host]


def rule_name(rule: NatRule) -> str:
    """How a rule is named in `netlab plan`: its type and what it matches."""
    if rule.type == "dnat":
        words = [f"dnat {rule.protocol}/{rule.port}"]
        if rule.destination:
            words.append(f"to {rule.destination}")
        if rule.in_interface:
            words.append(f"in {rule.in_interface}")
        words.append(f"-> {rule.to}")
    else:
        words = [f"{rule.type} {rule.source}"]
        if rule.destination:
            words.append(f"to {rule.destination}")
        if rule.out_interface:
            words.append(f"out {rule.out_interface}")
        if rule.to_source:
            words.append(f"as {rule.to_source}")
    return " ".join(words)


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


# -- planning --------------------------------------------------------------------


@dataclass
class _Batch:
    """The writes of one pass in one namespace: run once, by the first of its
    changes' steps to come up, and undone once."""

    netns: str | None
    ops: list[NatOp] = field(default_factory=list)
    undo_ops: list[NatOp] = field(default_factory=list)
    done: bool = False

    def run(self, kernel: Kernel) -> None:
        if not self.done:
            kernel.change_nat(self.netns, self.ops)
            self.done = True

    def undo(self, kernel: Kernel) -> None:
        if self.done:
            kernel.change_nat(self.netns, self.undo_ops)
            self.done = False

    @property
    def phase(self) -> Phase:
        adds = any(op.action in ("add", "ensure-chain") for op in self.ops)
        return Phase.ADD_NAT if adds else Phase.DELETE_NAT


@dataclass
class _Planned:
    """A change before its steps are known (they are the namespace's batch)."""

    action: Action
    key: tuple[Any, ...]
    name: str
    note: str = ""
    rule: NatRule | None = None
    writes: bool = True
    record: Entry | None = None


class NatKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> list[Change]:
        wanted: dict[str | None, list[NatRule]] = defaultdict(list)
        for rule in ctx.desired.nat:
            wanted[rule.netns].append(rule)
        recorded: dict[str | None, list[tuple[Any, ...]]] = defaultdict(list)
        for key in ctx.owned_keys(KIND):
            recorded[key[0]].append(key)
        namespaces = set(wanted) | set(recorded) | set(ctx.managed_netns())
        changes: list[Change] = []
        for netns in sorted(namespaces, key=lambda name: (name is not None, name or "")):
            if netns in ctx.removed_namespaces:
                continue  # its tables go with it; the ledger forgets it with the namespace
            changes.extend(self._plan_netns(ctx, netns, wanted[netns], recorded[netns]))
        return changes

    def _plan_netns(
        self, ctx: PlanContext, netns: str | None, wanted: list[NatRule], recorded: list[tuple[Any, ...]]
    ) -> list[Change]:
        fresh = netns is not None and netns in ctx.created_namespaces
        if not fresh and not ctx.kernel.has_netns(netns):
            # a namespace that is gone (and not declared): its rules went with it
            return [
                Change(KIND, "-", key, netns, _recorded_name(ctx, key), note="gone with its namespace")
                for key in recorded
            ]
        observed = NatTables() if fresh else ctx.kernel.nat(netns)
        batch = _Batch(netns)
        planned: list[_Planned] = []
        by_id: dict[str, list[ObservedNatRule]] = defaultdict(list)
        for found in observed.rules:
            by_id[found.ident].append(found)
        expected = {rule_id(rule): rule for rule in wanted}
        final_chains: set[tuple[Family, str]] = set()

        for ident, rule in expected.items():
            specs = rule_specs(rule)
            final_chains.update((spec.family, spec.chain) for spec in specs)
            found = by_id.get(ident, [])
            # one kernel rule per spec is kept; changed rules and extra copies go
            # (by position: two copies of a rule are equal)
            kept: set[int] = set()
            missing: list[RuleSpec] = []
            for spec in specs:
                match = next((i for i, f in enumerate(found) if f.spec == spec and i not in kept), None)
                if match is None:
                    missing.append(spec)
                else:
                    kept.add(match)
            surplus = [f for i, f in enumerate(found) if i not in kept]
            if not missing and not surplus:
                continue
            for stale in surplus:
                _delete(batch, stale)
            for spec in missing:
                _add(batch, spec)
            if not found:
                planned.append(_Planned("+", rule.key, rule_name(rule), rule=rule, record={"id": ident}))
            else:
                what = [f"put back in {spec.chain}" for spec in missing]
                kept_texts = {found[i].text for i in kept}
                what += [
                    f"remove {'an extra' if stale.text in kept_texts else 'a changed'} copy in {stale.chain}"
                    for stale in surplus
                ]
                note = "changed outside netlab: " + ", ".join(what)
                planned.append(_Planned("~", rule.key, rule_name(rule), note, rule=rule, record={"id": ident}))

        recorded_by_id = {(ctx.ledger.get(KIND, key) or {}).get("id") or _id_of_key(key): key for key in recorded}
        for ident, found in by_id.items():
            if ident in expected:
                continue
            for stale in found:
                _delete(batch, stale)
            key = recorded_by_id.get(ident, (netns, "rule", ident))
            name = _recorded_name(ctx, key) if ident in recorded_by_id else f"rule {RULE_COMMENT_PREFIX}{ident}"
            note = "" if ident in recorded_by_id else "; ".join(stale.text for stale in found)
            planned.append(_Planned("-", key, name, note))
        for ident, key in recorded_by_id.items():
            if ident not in expected and ident not in by_id:
                planned.append(_Planned("-", key, _recorded_name(ctx, key), "already gone", writes=False))

        planned.extend(self._plan_chains(netns, observed, final_chains, batch))
        return self._changes(ctx, netns, fresh, planned, batch)

    def _plan_chains(
        self, netns: str | None, observed: NatTables, final: set[tuple[Family, str]], batch: _Batch
    ) -> list[_Planned]:
        """netlab's chains and their jumps: there while a rule needs them, gone
        (with the jump) when the last goes, unless they hold rules of someone else."""
        planned: list[_Planned] = []
        for family, chain in sorted(final):
            found = observed.chain(family, chain)
            name = _chain_name(family, chain)
            if found is None:
                _ensure_chain(batch, family, chain, created=True)
                planned.append(_Planned("+", (netns, "chain", family, chain), name, f"jumped to from {CHAINS[chain]}"))
            elif found.jumps != 1:
                _ensure_chain(batch, family, chain, created=False)
                problem = "missing" if found.jumps == 0 else f"there {found.jumps} times"
                note = f"the jump from {CHAINS[chain]} is {problem}: put right"
                planned.append(_Planned("~", (netns, "chain", family, chain), name, note))
        for found in observed.chains:
            if (found.family, found.name) in final or found.foreign_rules:
                continue
            batch.ops.append(iptables.remove_chain(found.family, found.name))
            batch.undo_ops.append(iptables.ensure_chain(found.family, found.name))
            key = (netns, "chain", found.family, found.name)
            planned.append(_Planned("-", key, _chain_name(found.family, found.name)))
        return planned

    def _changes(
        self, ctx: PlanContext, netns: str | None, fresh: bool, planned: list[_Planned], batch: _Batch
    ) -> list[Change]:
        if not planned:
            return []
        # Chains are made first and removed last; deletions go before additions
        # (an edited rule never stands twice). The undo batch (ensure the removed
        # chains, delete what was added, add what was deleted, remove the chains
        # made) falls in the same order.
        order = {"ensure-chain": 0, "delete": 1, "add": 2, "remove-chain": 3}
        batch.ops.sort(key=lambda op: order[op.action])
        batch.undo_ops.sort(key=lambda op: order[op.action])
        warning = ""
        if not fresh and any(p.action != "-" for p in planned):
            nftables = ctx.kernel.nftables_in_use(netns)
            if nftables:
                warning = (
                    f"this namespace's firewall is in nftables ({', '.join(nftables)}): netlab's rules go to the "
                    "legacy iptables tables, which the kernel runs too; see them with iptables-legacy-save"
                )
        step = Step(batch.phase, f"update the nat table of {netns_label(netns)}", batch.run, undo=batch.undo)
        changes = []
        for item in planned:
            notes = [note for note in (item.note, warning if item.action != "-" else "") if note]
            changes.append(
                Change(
                    kind=KIND,
                    action=item.action,
                    key=item.key,
                    netns=netns,
                    name=item.name,
                    note="; ".join(notes),
                    origin=item.rule.origin if item.rule else None,
                    steps=(step,) if item.writes and batch.ops else (),
                    record=item.record,
                )
            )
        return changes


def _add(batch: _Batch, spec: RuleSpec) -> None:
    batch.ops.append(iptables.add(spec))
    batch.undo_ops.append(NatOp("delete", spec.family, spec.chain, comment=spec.comment, text=spec.text()))


def _delete(batch: _Batch, found: ObservedNatRule) -> None:
    batch.ops.append(iptables.delete(found))
    if found.spec is not None:  # a rule netlab would never write cannot be written back
        batch.undo_ops.append(iptables.add(found.spec))


def _ensure_chain(batch: _Batch, family: Family, chain: str, created: bool) -> None:
    batch.ops.append(iptables.ensure_chain(family, chain))
    if created:
        batch.undo_ops.append(iptables.remove_chain(family, chain))


def _chain_name(family: Family, chain: str) -> str:
    return f"chain {chain}" + (" (IPv6)" if family == 6 else "")


def rule_of_key(key: tuple[Any, ...]) -> NatRule | None:
    """The rule a ledger key stands for (keys are `NatRule.key`)."""
    try:
        netns, type_, source, destination, out_interface, in_interface, to_source, protocol, port, to = key
    except ValueError:
        return None
    return NatRule(
        netns=netns,
        type=type_,
        origin=Origin("(ledger)", 0),
        source=source,
        destination=destination,
        out_interface=out_interface,
        in_interface=in_interface,
        to_source=to_source,
        protocol=protocol,
        port=port,
        to=to,
    )


def _id_of_key(key: tuple[Any, ...]) -> str:
    rule = rule_of_key(key)
    return rule_id(rule) if rule is not None else ""


def _recorded_name(ctx: PlanContext, key: tuple[Any, ...]) -> str:
    rule = rule_of_key(key)
    return rule_name(rule) if rule is not None else " ".join(str(part) for part in key[1:])
