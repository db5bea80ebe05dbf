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
from netlab.controller.kinds.contract import PlanContext, Planned, ShowContext, Shown
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


# what a rule shows in `netlab show`, after its type and namespace
_SHOWN_FIELDS = ("source", "destination", "out_interface", "in_interface", "to_source", "protocol", "port", "to")


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

    def plan(self, ctx: PlanContext) -> Planned:
        wanted: dict[str | None, list[NatRule]] = defaultdict(list)
        for rule in ctx.desired.nat:
            wanted[rule.netns].append(rule)
        recorded: dict[str | None, list[tuple[Any, ...]]] = defaultdict(list)
        for key in ctx.owned_keys(KIND):
            recorded[key[0]].append(key)
        namespaces = set(wanted) | set(recorded) | set(ctx.managed_netns())
        changes: list[Change] = []
        for netns in sorted(namespaces, key=lambda name: (name is not None, name or "")):
            if netns in ctx.decided.removed_namespaces:
                continue  # its tables go with it; the ledger forgets it with the namespace
            changes.extend(self._plan_netns(ctx, netns, wanted[netns], recorded[netns]))
        return Planned(tuple(changes))

    def show(self, view: ShowContext) -> Shown:
        """The NAT rules, declared or in the ledger, that are in the kernel now (found
        by the id in their comment in netlab's chains)."""
        rules = {rule.key: rule for rule in view.desired.nat}
        for key in view.ledger.keys(KIND):
            recorded = rule_of_key(tuple(key))
            if recorded is not None:
                rules.setdefault(recorded.key, recorded)
        live: dict[str | None, set[str]] = {}
        with_rules = {rule.netns for rule in rules.values()}
        for netns in view.netns_shown:
            if netns in with_rules and view.kernel.has_netns(netns) and view.kernel.legacy_nat_exists(netns):
                live[netns] = {found.ident for found in view.kernel.nat(netns).rules}
        shown = []
        for rule in rules.values():
            if rule_id(rule) not in live.get(rule.netns, set()):
                continue
            entry: dict[str, Any] = {"type": rule.type}
            if rule.netns is not None:
                entry["netns"] = rule.netns
            entry.update((name, getattr(rule, name)) for name in _SHOWN_FIELDS if getattr(rule, name) is not None)
            entry["owned"] = True
            shown.append(entry)
        return Shown({"nat": shown} if shown else {})

    def _plan_netns(
        self, ctx: PlanContext, netns: str | None, wanted: list[NatRule], recorded: list[tuple[Any, ...]]
    ) -> list[Change]:
        fresh = ctx.decided.namespace_is_fresh(netns)
        if not fresh and not ctx.kernel.has_netns(netns):
            # a namespace that is gone (and not declared): its rules went with it
            return [
                Change(KIND, "-", key, netns, _recorded_name(key), note="gone with its namespace") for key in recorded
            ]
        observed = NatTables() if fresh else ctx.kernel.nat(netns)
        batch = _Batch(netns)
        by_id: dict[str, list[ObservedNatRule]] = defaultdict(list)
        for rule_found in observed.rules:
            by_id[rule_found.ident].append(rule_found)
        expected = {rule_id(rule): rule for rule in wanted}
        planned: list[_Planned] = []
        for ident, rule in expected.items():
            item = _plan_rule(batch, ident, rule, by_id.get(ident, []))
            if item is not None:
                planned.append(item)
        planned += self._plan_unexpected(ctx, netns, batch, expected, by_id, recorded)
        final_chains = {(spec.family, spec.chain) for rule in wanted for spec in rule_specs(rule)}
        planned += self._plan_chains(netns, observed, final_chains, batch)
        return self._changes(ctx, netns, fresh, planned, batch)

    def _plan_unexpected(
        self,
        ctx: PlanContext,
        netns: str | None,
        batch: _Batch,
        expected: dict[str, NatRule],
        by_id: dict[str, list[ObservedNatRule]],
        recorded: list[tuple[Any, ...]],
    ) -> list[_Planned]:
        """netlab's rules that the files no longer hold: deleted, or struck from
        the ledger where they are gone already."""
        planned = []
        recorded_by_id = {(ctx.ledger.get(KIND, key) or {}).get("id") or _id_of_key(key): key for key in recorded}
        for ident, copies in by_id.items():
            if ident in expected:
                continue
            for stale in copies:
                _delete(batch, stale)
            key = recorded_by_id.get(ident, (netns, "rule", ident))
            name = _recorded_name(key) if ident in recorded_by_id else f"rule {RULE_COMMENT_PREFIX}{ident}"
            note = "" if ident in recorded_by_id else "; ".join(stale.text for stale in copies)
            planned.append(_Planned("-", key, name, note))
        for ident, key in recorded_by_id.items():
            if ident not in expected and ident not in by_id:
                planned.append(_Planned("-", key, _recorded_name(key), "already gone", writes=False))
        return planned

    def _plan_chains(
        self, netns: str | None, observed: NatTables, final: set[tuple[Family, str]], batch: _Batch
    ) -> list[_Planned]:
        """netlab's chains and their jumps: there while a rule needs them, gone
        (with the jump) when the last goes, unless they hold rules of someone else."""
        planned: list[_Planned] = []
        for family, chain in sorted(final):
            present = observed.chain(family, chain)
            name = _chain_name(family, chain)
            if present is None:
                _ensure_chain(batch, family, chain, created=True)
                planned.append(_Planned("+", (netns, "chain", family, chain), name, f"jumped to from {CHAINS[chain]}"))
            elif present.jumps != 1:
                _ensure_chain(batch, family, chain, created=False)
                problem = "missing" if present.jumps == 0 else f"there {present.jumps} times"
                note = f"the jump from {CHAINS[chain]} is {problem}: put right"
                planned.append(_Planned("~", (netns, "chain", family, chain), name, note))
        for unused in observed.chains:
            if (unused.family, unused.name) in final or unused.foreign_rules:
                continue
            batch.ops.append(iptables.remove_chain(unused.family, unused.name))
            batch.undo_ops.append(iptables.ensure_chain(unused.family, unused.name))
            key = (netns, "chain", unused.family, unused.name)
            planned.append(_Planned("-", key, _chain_name(unused.family, unused.name)))
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


def _plan_rule(batch: _Batch, ident: str, rule: NatRule, found: list[ObservedNatRule]) -> _Planned | None:
    """A declared rule against the kernel rules with its id: one kernel rule per
    spec is kept; changed rules and extra copies go (by position: two copies of
    a rule are equal), missing ones are added. None: it is as it should be."""
    specs = rule_specs(rule)
    kept: set[int] = set()
    missing: list[RuleSpec] = []
    for spec in specs:
        match = next((i for i, copy in enumerate(found) if copy.spec == spec and i not in kept), None)
        if match is None:
            missing.append(spec)
        else:
            kept.add(match)
    surplus = [copy for i, copy in enumerate(found) if i not in kept]
    if not missing and not surplus:
        return None
    for stale in surplus:
        _delete(batch, stale)
    for spec in missing:
        _add(batch, spec)
    if not found:
        return _Planned("+", rule.key, rule_name(rule), rule=rule, record={"id": ident})
    what = [f"put back in {spec.chain}" for spec in missing]
    kept_texts = {found[i].text for i in kept}
    what += [
        f"remove {'an extra' if stale.text in kept_texts else 'a changed'} copy in {stale.chain}" for stale in surplus
    ]
    note = "changed outside netlab: " + ", ".join(what)
    return _Planned("~", rule.key, rule_name(rule), note, rule=rule, record={"id": ident})


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


def _recorded_name(key: tuple[Any, ...]) -> str:
    rule = rule_of_key(key)
    return rule_name(rule) if rule is not None else " ".join(str(part) for part in key[1:])
