"""NAT rules (masquerade, snat, dnat port-forwards), on the host and in namespaces.
Key: (netns, the whole rule). Each rule lives in one of netlab's chains
(NETLAB-POSTROUTING, NETLAB-PREROUTING, and NETLAB-OUTPUT for the host's own
connections to a forwarded port), with the comment `netlab:<id>`, the id a hash
of the rule, in the backend the kernel facade chose (`Kernel.nat_choice`):
nftables, where the chains are the base chains of netlab's own tables `ip
netlab` and `ip6 netlab`; or legacy iptables, where they are jumped to from the
nat table's built-in chains by rules commented `netlab`, and rules without
netlab's comments are never touched. Rules of netlab's found in the other
backend are moved: deleted there in the same pass.

The writes of a pass in one namespace go to each backend as one batch (one
nftables transaction; one worker process and one commit per table for
iptables), shared by the changes of that namespace.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netlab.controller.backends import iptables, nftables
from netlab.controller.backends.iptables import NatOp, NatTables, ObservedNatRule
from netlab.controller.backends.nat_backends import BACKENDS, Backend, other_than
from netlab.controller.backends.nat_rules import CHAINS, RULE_COMMENT_PREFIX, Family, RuleSpec
from netlab.controller.backends.nftables import FAMILIES, HookedChain
from netlab.controller.changes import Action, Change, Note, Phase, Step
from netlab.controller.kinds.contract import PlanContext, Planned, ShowContext, Shown
from netlab.state.errors import ApplyError
from netlab.state.ledger import Entry
from netlab.state.model import NatRule, Origin, netns_label

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "nat"
LEGACY_FILTER = "legacy filter"  # a legacy filter table's chain, among nftables' (coexistence_warnings)
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


@dataclass(eq=False)  # each batch is itself: kept in sets, compared by identity
class _Batch:
    """The writes of one pass in one namespace to one backend: run once, by the
    first of its changes' steps to come up, and undone once. `moving`: it
    takes away what the other backend's batch puts in place, so it goes after
    it (a move never leaves a rule out of both)."""

    netns: str | None
    backend: Backend
    ops: list[NatOp] = field(default_factory=list)
    undo_ops: list[NatOp] = field(default_factory=list)
    done: bool = False
    moving: bool = False

    def run(self, kernel: Kernel) -> None:
        if not self.done:
            kernel.change_nat(self.netns, self.ops, self.backend)
            self.done = True

    def undo(self, kernel: Kernel) -> None:
        if self.done:
            kernel.change_nat(self.netns, self.undo_ops, self.backend)
            self.done = False

    @property
    def phase(self) -> Phase:
        adds = any(op.action in ("add", "ensure-chain") for op in self.ops)
        return Phase.ADD_NAT if adds or self.moving else Phase.DELETE_NAT

    def text(self, spec: RuleSpec) -> str:
        """The rule as this backend's dump renders it."""
        return nftables.text_of(spec) if self.backend == "nftables" else spec.text()

    def step(self) -> Step:
        where = "nftables tables" if self.backend == "nftables" else "legacy iptables nat table"
        return Step(self.phase, f"update the {where} of {netns_label(self.netns)}", self.run, undo=self.undo)


@dataclass
class _Planned:
    """A change before its steps are known (they are the namespace's batches)."""

    action: Action
    key: tuple[Any, ...]
    name: str
    note: str = ""
    rule: NatRule | None = None
    writes: bool = True
    record: Entry | None = None
    record_drops: tuple[str, ...] = ()


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
        return Planned(tuple(changes), notes=_notes(ctx, wanted))

    def show(self, view: ShowContext) -> Shown:
        """The NAT rules, declared or in the ledger, that are in the kernel now (found
        by the id in their comment in netlab's chains, in either backend)."""
        rules = {rule.key: rule for rule in view.desired.nat}
        for key in view.ledger.keys(KIND):
            recorded = rule_of_key(tuple(key))
            if recorded is not None:
                rules.setdefault(recorded.key, recorded)
        live: dict[str | None, set[str]] = {}
        with_rules = {rule.netns for rule in rules.values()}
        for netns in view.netns_shown:
            if netns in with_rules and view.kernel.has_netns(netns):
                live[netns] = {found.ident for found in view.kernel.nat(netns, "nftables").rules}
                if view.kernel.legacy_nat_exists(netns):
                    live[netns] |= {found.ident for found in view.kernel.nat(netns, "iptables").rules}
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
        if not fresh:
            _refuse_unseen_nftables(ctx, netns, recorded)
        target = _target_backend(ctx) if wanted else None
        batches = {backend: _Batch(netns, backend) for backend in BACKENDS}
        observed = {
            backend: NatTables() if fresh else _observed(ctx, netns, backend, bool(wanted or recorded))
            for backend in batches
        }
        by_id: dict[Backend, dict[str, list[ObservedNatRule]]] = {backend: defaultdict(list) for backend in batches}
        for backend, tables in observed.items():
            for rule_found in tables.rules:
                by_id[backend][rule_found.ident].append(rule_found)
        expected = {rule_id(rule): rule for rule in wanted}
        planned: list[_Planned] = []
        if target is not None:
            old = other_than(target)
            for ident, rule in expected.items():
                item = _plan_rule(batches[target], ident, rule, by_id[target].get(ident, []))
                item = _move(batches[old], ident, rule, by_id[old].get(ident, []), item, target)
                if item is not None:
                    planned.append(item)
        planned += self._plan_unexpected(ctx, netns, batches, expected, by_id, recorded)
        final_chains = {(spec.family, spec.chain) for rule in wanted for spec in rule_specs(rule)}
        for backend, batch in batches.items():
            final = final_chains if backend == target else set()
            planned += self._plan_chains(netns, observed[backend], final, batch)
        return self._changes(ctx, netns, fresh, planned, target, batches)

    def _plan_unexpected(
        self,
        ctx: PlanContext,
        netns: str | None,
        batches: dict[Backend, _Batch],
        expected: dict[str, NatRule],
        by_id: dict[Backend, dict[str, list[ObservedNatRule]]],
        recorded: list[tuple[Any, ...]],
    ) -> list[_Planned]:
        """netlab's rules that the files no longer hold, in either backend:
        deleted, or struck from the ledger where they are gone already."""
        planned = []
        recorded_by_id = {(ctx.ledger.get(KIND, key) or {}).get("id") or _id_of_key(key): key for key in recorded}
        found: dict[str, list[ObservedNatRule]] = defaultdict(list)
        for backend, rules in by_id.items():
            for ident, copies in rules.items():
                if ident in expected:
                    continue
                for stale in copies:
                    _delete(batches[backend], stale)
                found[ident] += copies
        for ident, copies in found.items():
            key = recorded_by_id.get(ident, (netns, "rule", ident))
            if ident in recorded_by_id:
                name, note = _recorded_name(key), ""
            else:
                name = f"rule {RULE_COMMENT_PREFIX}{ident}" if ident else "rules not netlab's in its nftables tables"
                note = "; ".join(stale.text for stale in copies)
            planned.append(_Planned("-", key, name, note))
        for ident, key in recorded_by_id.items():
            if ident not in expected and ident not in found:
                planned.append(_Planned("-", key, _recorded_name(key), "already gone", writes=False))
        return planned

    def _plan_chains(
        self, netns: str | None, observed: NatTables, final: set[tuple[Family, str]], batch: _Batch
    ) -> list[_Planned]:
        """netlab's chains and their jumps (in nftables, their hooks): there while
        a rule needs them, gone (with the jump) when the last goes, unless they
        hold rules of someone else (in iptables; nftables' tables are netlab's)."""
        planned: list[_Planned] = []
        for family, chain in sorted(final):
            present = observed.chain(family, chain)
            name, key = _chain_name(batch.backend, family, chain), _chain_key(netns, batch.backend, family, chain)
            hooked = f"hooked at {nftables.BASE_CHAINS[chain][1]}" if batch.backend == "nftables" else ""
            if present is None:
                _ensure_chain(batch, family, chain, created=True)
                planned.append(_Planned("+", key, name, hooked or f"jumped to from {CHAINS[chain]}"))
            elif present.jumps != 1:
                _ensure_chain(batch, family, chain, created=False)
                if batch.backend == "nftables":
                    note = f"not {hooked} with type nat, its priority and policy accept: put right"
                else:
                    problem = "missing" if present.jumps == 0 else f"there {present.jumps} times"
                    note = f"the jump from {CHAINS[chain]} is {problem}: put right"
                planned.append(_Planned("~", key, name, note))
        for unused in observed.chains:
            if (unused.family, unused.name) in final or unused.foreign_rules:
                continue
            batch.ops.append(iptables.remove_chain(unused.family, unused.name))
            batch.undo_ops.append(iptables.ensure_chain(unused.family, unused.name))
            key = _chain_key(netns, batch.backend, unused.family, unused.name)
            planned.append(_Planned("-", key, _chain_name(batch.backend, unused.family, unused.name)))
        return planned

    def _changes(
        self,
        ctx: PlanContext,
        netns: str | None,
        fresh: bool,
        planned: list[_Planned],
        target: Backend | None,
        batches: dict[Backend, _Batch],
    ) -> list[Change]:
        if not planned:
            return []
        # Chains are made first and removed last; deletions go before additions
        # (an edited rule never stands twice). The undo batch (ensure the removed
        # chains, delete what was added, add what was deleted, remove the chains
        # made) falls in the same order.
        order = {"ensure-chain": 0, "delete": 1, "add": 2, "remove-chain": 3}
        for batch in batches.values():
            batch.ops.sort(key=lambda op: order[op.action])
            batch.undo_ops.sort(key=lambda op: order[op.action])
        warning = ""
        if not fresh and target == "iptables" and any(p.action != "-" for p in planned):
            in_use = ctx.kernel.nftables_in_use(netns)
            if in_use:
                warning = (
                    f"this namespace's firewall is in nftables ({', '.join(in_use)}): netlab's rules go to the "
                    "legacy iptables tables, which the kernel runs too; see them with iptables-legacy-save "
                    "(or use --nat-backend nftables)"
                )
        # the target's batch first; the other's, when it takes away what the
        # target puts in place, after it (both in ADD_NAT: in this order)
        ordered = sorted(batches.values(), key=lambda batch: batch.backend != target)
        for batch in ordered:
            batch.moving = batch.backend != target and target is not None and bool(batches[target].ops)
        steps = tuple(batch.step() for batch in ordered if batch.ops)
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
                    steps=steps if item.writes else (),
                    record=item.record,
                    record_drops=item.record_drops,
                )
            )
        return changes


def _notes(ctx: PlanContext, wanted: dict[str | None, list[NatRule]]) -> tuple[Note, ...]:
    """Where the files have NAT rules: which backend they go to and why, and
    what in each of their namespaces may defeat them."""
    if not any(wanted.values()):
        return ()
    notes = [Note("nat-backend", f"NAT rules go to {_target_backend(ctx)} ({ctx.kernel.nat_choice().reason})")]
    for netns, rules in sorted(wanted.items(), key=lambda item: (item[0] is not None, item[0] or "")):
        if rules and ctx.kernel.has_netns(netns):
            firewalld = netns is None and ctx.kernel.firewalld_running()
            chains = ctx.kernel.hooked_chains(netns)
            if ctx.kernel.legacy_nat_exists(netns):  # what the legacy tables add (Docker's, with iptables-legacy)
                chains += tuple(
                    HookedChain(FAMILIES[family], "filter", "FORWARD", LEGACY_FILTER, "forward", 0, "drop")
                    for family in ctx.kernel.nat(netns, "iptables").forward_drops
                )
            texts = coexistence_warnings(netns, rules, chains, firewalld)
            notes += [Note("warning", text) for text in texts]
    return tuple(notes)


def coexistence_warnings(
    netns: str | None, rules: list[NatRule], chains: tuple[HookedChain, ...], firewalld: bool
) -> list[str]:
    """What in the namespace may defeat its NAT rules, and what to do: a forward
    hook that drops by default (Docker sets iptables' FORWARD to DROP), NAT
    chains of other tools at netlab's hooks, firewalld; each for the address
    families netlab's rules there use. Nothing of theirs is changed: the
    operator decides."""
    where = netns_label(netns)
    families = {rule_family(rule) for rule in rules}
    networks = {family: sorted(_networks(rules, family)) for family in families}
    warnings = []
    for chain in chains:
        used = [family for family in sorted(families) if chain.family in _NFT_FAMILIES[family]]
        if not used:
            continue
        if chain.hook == "forward" and chain.policy == "drop":
            warnings.append(_forward_drop(where, chain, used[0], networks))
    others = [
        chain
        for chain in chains
        if chain.type == "nat"
        and chain.hook in ("postrouting", "prerouting", "output")
        and any(chain.family in _NFT_FAMILIES[family] for family in families)
    ]
    if others:
        named = ", ".join(f"{chain} (hook {chain.hook}, priority {chain.priority})" for chain in others)
        warnings.append(
            f"{where}: other tools' NAT chains run at netlab's hooks: {named}; a connection is translated by the "
            "first rule that matches it, in priority order (netlab's: srcnat 100, dstnat -100): keep their rules "
            "from matching netlab's networks"
        )
    if firewalld:
        warnings.append(
            f"{where}: firewalld is running and decides what the host forwards: put the links of netlab's NAT'd "
            "networks in a zone that forwards and masquerades (or a policy), with firewall-cmd; netlab does not "
            "change firewalld's rules"
        )
    return warnings


# the nftables families whose chains see a rule of each address family
_NFT_FAMILIES: dict[Family, tuple[str, ...]] = {4: ("ip", "inet"), 6: ("ip6", "inet")}


def _networks(rules: list[NatRule], family: Family) -> set[str]:
    """The networks netlab's rules of the family translate: sources, and where
    port forwards go."""
    found = {rule.source for rule in rules if rule.source and rule_family(rule) == family}
    for rule in rules:
        if rule.to and rule_family(rule) == family:
            address = rule.to[1:].split("]")[0] if rule.to.startswith("[") else rule.to.rsplit(":", 1)[0]
            found.add(address if family == 4 or rule.to.startswith("[") else rule.to)
    return found


def _forward_drop(where: str, chain: HookedChain, family: Family, networks: dict[Family, list[str]]) -> str:
    legacy = chain.type == LEGACY_FILTER
    listed = networks.get(family) or ["NETWORK"]
    example = listed[0]
    if legacy or (chain.table == "filter" and chain.name == "FORWARD"):  # iptables' own chain
        tool = ("iptables" if family == 4 else "ip6tables") + ("-legacy" if legacy else "")
        how = f"`{tool} -I FORWARD -s {example} -j ACCEPT` and the same with -d (with Docker: -I DOCKER-USER)"
    else:
        address = "ip" if family == 4 else "ip6"
        how = f"`nft insert rule {chain} {address} saddr {example} accept` and the same with {address} daddr"
    return (
        f"{where}: {'iptables-legacy' if legacy else 'nftables'} chain {chain} (hook forward) drops what no rule "
        f"accepts (policy drop; Docker sets it so on iptables' FORWARD when it starts): traffic forwarded for "
        f"netlab's NAT ({', '.join(listed)}) is dropped there; accept it, for example with {how}"
    )


def _refuse_unseen_nftables(ctx: PlanContext, netns: str | None, recorded: list[tuple[Any, ...]]) -> None:
    """The ledger has rules of this namespace in nftables, which cannot be read
    here now (its library gone): planning on would take them for gone, forget
    them and write copies elsewhere. Raises ApplyError; nothing is changed."""
    in_nftables = [key for key in recorded if (ctx.ledger.get(KIND, key) or {}).get("nftables")]
    why = ctx.kernel.nftables_unavailable() if in_nftables else None
    if why:
        more = f" and {len(in_nftables) - 1} more" if len(in_nftables) > 1 else ""
        raise ApplyError(
            f"netlab's NAT rules in {netns_label(netns)} are in nftables ({_recorded_name(in_nftables[0])}{more}, "
            f"as its ledger says), but {why}: install it again (scripts/setup-env or scripts/install), "
            "or netlab cannot see them to keep or remove them; nothing was changed"
        )


def _target_backend(ctx: PlanContext) -> Backend:
    """The backend declared rules go to; raises ApplyError when none can work."""
    choice = ctx.kernel.nat_choice()
    if choice.backend is None:
        raise ApplyError(f"NAT rules cannot be written: {choice.reason}")
    backend: Backend = choice.backend
    return backend


def _observed(ctx: PlanContext, netns: str | None, backend: Backend, has_nat: bool) -> NatTables:
    """What the backend holds of netlab's in the namespace. netlab's nftables
    tables are read where the files or the ledger have NAT rules (a read costs
    ~1 ms a namespace); the legacy ones wherever a legacy nat table exists."""
    if backend == "nftables" and not has_nat:
        return NatTables()
    return ctx.kernel.nat(netns, backend)


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
    record = _record(ident, batch.backend)
    if not found:
        return _Planned("+", rule.key, rule_name(rule), rule=rule, record=record)
    what = [f"put back in {spec.chain}" for spec in missing]
    kept_texts = {found[i].text for i in kept}
    what += [
        f"remove {'an extra' if stale.text in kept_texts else 'a changed'} copy in {stale.chain}" for stale in surplus
    ]
    note = "changed outside netlab: " + ", ".join(what)
    return _Planned("~", rule.key, rule_name(rule), note, rule=rule, record=record)


def _move(
    batch: _Batch, ident: str, rule: NatRule, copies: list[ObservedNatRule], item: _Planned | None, target: Backend
) -> _Planned | None:
    """A declared rule's copies in the other backend: deleted, after the rule is
    in place in `target`; the ledger then forgets the old backend."""
    if not copies:
        return item
    for stale in copies:
        _delete(batch, stale)
    record = _record(ident, target)
    if item is None:
        note = f"a copy in {batch.backend} removed (the rule is in {target})"
        return _Planned("~", rule.key, rule_name(rule), note, rule=rule, record=record, record_drops=(batch.backend,))
    moved = f"moved from {batch.backend} to {target}"
    item.action, item.note = "~", "; ".join(note for note in (moved, item.note) if note)
    item.record, item.record_drops = record, (batch.backend,)
    return item


def _record(ident: str, backend: Backend) -> Entry:
    """The ledger's entry of a rule: its id, and the backend it is in."""
    return {"id": ident, "nftables": True} if backend == "nftables" else {"id": ident, "iptables": True}


def _add(batch: _Batch, spec: RuleSpec) -> None:
    batch.ops.append(iptables.add(spec))
    batch.undo_ops.append(NatOp("delete", spec.family, spec.chain, comment=spec.comment, text=batch.text(spec)))


def _delete(batch: _Batch, found: ObservedNatRule) -> None:
    batch.ops.append(iptables.delete(found))
    if found.spec is not None:  # a rule netlab would never write cannot be written back
        batch.undo_ops.append(iptables.add(found.spec))


def _ensure_chain(batch: _Batch, family: Family, chain: str, created: bool) -> None:
    batch.ops.append(iptables.ensure_chain(family, chain))
    if created:
        batch.undo_ops.append(iptables.remove_chain(family, chain))


def _chain_name(backend: Backend, family: Family, chain: str) -> str:
    if backend == "nftables":
        return f"chain {nftables.nft_chain_name(chain)} of table {nftables.FAMILIES[family]} netlab"
    return f"chain {chain}" + (" (IPv6)" if family == 6 else "")


def _chain_key(netns: str | None, backend: Backend, family: Family, chain: str) -> tuple[Any, ...]:
    return (netns, "chain", family, chain) + (("nftables",) if backend == "nftables" else ())


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
