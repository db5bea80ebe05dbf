"""NAT rules without a kernel: what each rule becomes in iptables, its id, and
the plan against fake nat tables (additions, drift, stale rules, chains and
their jumps, the one batch per namespace and its undo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netlab.controller.backends.iptables import NatOp, NatTables, ObservedChain, ObservedNatRule
from netlab.controller.backends.nat_backends import Backend
from netlab.controller.backends.nat_rules import RuleSpec
from netlab.controller.changes import Phase
from netlab.controller.kinds.nat import rule_family, rule_id, rule_name, rule_specs
from netlab.controller.planning import make_plan
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, Namespace, NatRule, Origin
from tests.unit.fake_kernels import EmptyKernel

HERE = Origin("/etc/netlab.d/nat.yaml", 7, 5)
MASQUERADE = NatRule(None, "masquerade", HERE, source="192.168.15.0/24", out_interface="eth0")
SNAT = NatRule(None, "snat", HERE, source="10.1.0.0/16", destination="10.9.0.0/16", to_source="10.0.0.2")
DNAT = NatRule(None, "dnat", HERE, protocol="tcp", port="8080", to="192.168.15.2:80", in_interface="eth0")
DNAT_RANGE = NatRule(None, "dnat", HERE, protocol="udp", port="5000-5010", destination="10.0.0.2/32", to="192.168.15.3")
SNAT6 = NatRule(None, "snat", HERE, source="fd00:15::/64", to_source="2001:db8::1")
DNAT6 = NatRule(None, "dnat", HERE, protocol="tcp", port="443", to="[2001:db8::2]:8443")


# -- rule specs ----------------------------------------------------------------------


def test_each_rule_type_becomes_the_iptables_rule_it_says() -> None:
    def texts(rule: NatRule) -> list[str]:
        return [spec.text().replace(rule_id(rule), "ID") for spec in rule_specs(rule)]

    assert texts(MASQUERADE) == [
        "-A NETLAB-POSTROUTING -s 192.168.15.0/24 -o eth0 -m comment --comment netlab:ID -j MASQUERADE"
    ]
    assert texts(SNAT) == [
        "-A NETLAB-POSTROUTING -s 10.1.0.0/16 -d 10.9.0.0/16 -m comment --comment netlab:ID -j SNAT --to-source 10.0.0.2"
    ]
    assert texts(DNAT) == [
        "-A NETLAB-PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -m comment --comment netlab:ID "
        "-j DNAT --to-destination 192.168.15.2:80",
        "-A NETLAB-OUTPUT ! -d 127.0.0.0/8 -p tcp -m tcp --dport 8080 -m addrtype --dst-type LOCAL "
        "-m comment --comment netlab:ID -j DNAT --to-destination 192.168.15.2:80",
    ]
    # a destination replaces "any local address" in the host's copy; ranges use a colon
    assert texts(DNAT_RANGE) == [
        "-A NETLAB-PREROUTING -d 10.0.0.2/32 -p udp -m udp --dport 5000:5010 -m comment --comment netlab:ID "
        "-j DNAT --to-destination 192.168.15.3",
        "-A NETLAB-OUTPUT -d 10.0.0.2/32 -p udp -m udp --dport 5000:5010 -m comment --comment netlab:ID "
        "-j DNAT --to-destination 192.168.15.3",
    ]
    assert texts(DNAT6)[1].startswith("-A NETLAB-OUTPUT ! -d ::1/128 -p tcp")


def test_the_family_follows_the_addresses() -> None:
    assert [rule_family(rule) for rule in (MASQUERADE, SNAT, DNAT, DNAT_RANGE, SNAT6, DNAT6)] == [4, 4, 4, 4, 6, 6]
    assert rule_family(NatRule(None, "dnat", HERE, protocol="tcp", port="80", to="2001:db8::2")) == 6
    assert {spec.family for spec in rule_specs(DNAT6)} == {6}


def test_ids_are_stable_short_and_tell_rules_apart() -> None:
    assert rule_id(MASQUERADE) == rule_id(
        NatRule(None, "masquerade", Origin("other.yaml", 1), source="192.168.15.0/24", out_interface="eth0")
    )
    ids = {rule_id(rule) for rule in (MASQUERADE, SNAT, DNAT, DNAT_RANGE, SNAT6, DNAT6)}
    assert len(ids) == 6 and all(len(ident) == 12 for ident in ids)
    assert rule_id(DNAT) != rule_id(
        NatRule(None, "dnat", HERE, protocol="tcp", port="8081", to="192.168.15.2:80", in_interface="eth0")
    )
    # the same rule in another namespace: another key, the same id (tables are per namespace)
    assert rule_id(NatRule("red", "masquerade", HERE, source="192.168.15.0/24", out_interface="eth0")) == rule_id(
        MASQUERADE
    )


def test_rule_names_read_like_the_file() -> None:
    assert rule_name(MASQUERADE) == "masquerade 192.168.15.0/24 out eth0"
    assert rule_name(SNAT) == "snat 10.1.0.0/16 to 10.9.0.0/16 as 10.0.0.2"
    assert rule_name(DNAT) == "dnat tcp/8080 in eth0 -> 192.168.15.2:80"


def test_a_spec_survives_the_trip_to_the_worker_and_back() -> None:
    for rule in (MASQUERADE, SNAT, DNAT, DNAT6):
        for spec in rule_specs(rule):
            assert RuleSpec.from_json(spec.to_json()) == spec


# -- planning against fake tables ---------------------------------------------------


@dataclass
class NatKernel(EmptyKernel):
    """A kernel with nat tables (legacy `tables`, netlab's nftables `nft_tables`)
    and nothing else; records the batches it is given, and to which backend."""

    tables: dict[str | None, NatTables] = field(default_factory=dict)
    nft_tables: dict[str | None, NatTables] = field(default_factory=dict)
    nft: dict[str | None, tuple[str, ...]] = field(default_factory=dict)
    batches: list[tuple[str | None, list[NatOp]]] = field(default_factory=list)
    batch_backends: list[Backend] = field(default_factory=list)
    reads: list[str | None] = field(default_factory=list)

    def legacy_nat_exists(self, netns: str | None) -> bool:
        return netns in self.tables

    def nat(self, netns: str | None, backend: Backend = "iptables") -> NatTables:
        # as the Kernel does: a worker reads only a legacy table that exists
        tables = self.nft_tables if backend == "nftables" else self.tables
        if netns not in tables:
            return NatTables()
        self.reads.append(netns)
        return tables[netns]

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]:
        return self.nft.get(netns, ())

    def change_nat(self, netns: str | None, ops: list[NatOp], backend: Backend = "iptables") -> None:
        self.batches.append((netns, ops))
        self.batch_backends.append(backend)


def observed(
    *rules: NatRule, netns: str | None = None, jumps: int = 1, extra: tuple[ObservedNatRule, ...] = ()
) -> NatTables:
    """The tables as netlab leaves them after applying `rules`."""
    found = [
        ObservedNatRule(spec.family, spec.chain, spec.comment, spec.text(), spec)
        for rule in rules
        for spec in rule_specs(rule)
    ] + list(extra)
    chains = sorted({(rule.family, rule.chain) for rule in found})
    return NatTables(tuple(ObservedChain(family, chain, 0, jumps) for family, chain in chains), tuple(found))


def plan_lines(desired: DesiredState, kernel: NatKernel, ledger: Ledger) -> list[str]:
    return [str(change) for change in make_plan(desired, kernel, ledger).changes]


def test_rules_and_their_chains_are_added_in_one_batch(tmp_path: Path) -> None:
    kernel = NatKernel()
    plan = make_plan(DesiredState(nat=(MASQUERADE, DNAT)), kernel, Ledger(tmp_path / "ledger.json"))
    assert [str(change) for change in plan.changes] == [
        "+ nat host/masquerade 192.168.15.0/24 out eth0",
        "+ nat host/dnat tcp/8080 in eth0 -> 192.168.15.2:80",
        "+ nat host/chain NETLAB-OUTPUT: jumped to from OUTPUT",
        "+ nat host/chain NETLAB-POSTROUTING: jumped to from POSTROUTING",
        "+ nat host/chain NETLAB-PREROUTING: jumped to from PREROUTING",
    ]
    assert kernel.reads == []  # no legacy nat table: nothing read, none created
    assert plan.changes[0].record == {"id": rule_id(MASQUERADE), "iptables": True}
    steps = plan.steps()
    assert {step.phase for _, step in steps} == {Phase.ADD_NAT}
    for _, step in steps:
        step.run(kernel)  # type: ignore[arg-type]
    assert len(kernel.batches) == 1  # every change's step is the one batch, run once
    netns, ops = kernel.batches[0]
    assert netns is None
    assert [op.action for op in ops] == ["ensure-chain"] * 3 + ["add"] * 3
    for _, step in reversed(steps):
        assert step.undo is not None
        step.undo(kernel)  # type: ignore[arg-type]
    assert len(kernel.batches) == 2
    _, undo = kernel.batches[1]
    assert [op.action for op in undo] == ["delete"] * 3 + ["remove-chain"] * 3
    assert {op.text for op in undo if op.action == "delete"} == {
        s.text() for r in (MASQUERADE, DNAT) for s in rule_specs(r)
    }


def test_matching_tables_plan_nothing(tmp_path: Path) -> None:
    kernel = NatKernel(tables={None: observed(MASQUERADE, DNAT, SNAT6)})
    assert plan_lines(DesiredState(nat=(MASQUERADE, DNAT, SNAT6)), kernel, Ledger(tmp_path / "l.json")) == []


def test_an_edited_rule_is_one_removal_and_one_addition_in_one_commit(tmp_path: Path) -> None:
    book = Ledger(tmp_path / "l.json")
    book.record("nat", DNAT.key, {"id": rule_id(DNAT)})
    edited = NatRule(None, "dnat", HERE, protocol="tcp", port="9090", to="192.168.15.2:80", in_interface="eth0")
    kernel = NatKernel(tables={None: observed(MASQUERADE, DNAT)})
    plan = make_plan(DesiredState(nat=(MASQUERADE, edited)), kernel, book)
    assert [str(c) for c in plan.changes] == [
        "+ nat host/dnat tcp/9090 in eth0 -> 192.168.15.2:80",
        "- nat host/dnat tcp/8080 in eth0 -> 192.168.15.2:80",
    ]
    plan.steps()[0][1].run(kernel)  # type: ignore[arg-type]
    ((_, ops),) = kernel.batches
    assert [op.action for op in ops] == ["delete", "delete", "add", "add"]  # no chain touched


def test_a_flushed_chain_is_filled_again_and_a_lost_jump_put_back(tmp_path: Path) -> None:
    flushed = NatTables((ObservedChain(4, "NETLAB-POSTROUTING", 0, 0),), ())
    kernel = NatKernel(tables={None: flushed})
    assert plan_lines(DesiredState(nat=(MASQUERADE,)), kernel, Ledger(tmp_path / "l.json")) == [
        "+ nat host/masquerade 192.168.15.0/24 out eth0",
        "~ nat host/chain NETLAB-POSTROUTING: the jump from POSTROUTING is missing: put right",
    ]
    doubled = observed(MASQUERADE, jumps=2)
    assert plan_lines(
        DesiredState(nat=(MASQUERADE,)), NatKernel(tables={None: doubled}), Ledger(tmp_path / "l.json")
    ) == [
        "~ nat host/chain NETLAB-POSTROUTING: the jump from POSTROUTING is there 2 times: put right",
    ]


def test_a_rule_changed_behind_netlabs_back_is_replaced(tmp_path: Path) -> None:
    spec = rule_specs(MASQUERADE)[0]
    tampered = ObservedNatRule(4, spec.chain, spec.comment, spec.text().replace("eth0", "eth1"), None)
    kernel = NatKernel(tables={None: NatTables((ObservedChain(4, spec.chain, 0, 1),), (tampered,))})
    plan = make_plan(DesiredState(nat=(MASQUERADE,)), kernel, Ledger(tmp_path / "l.json"))
    assert [str(c) for c in plan.changes] == [
        "~ nat host/masquerade 192.168.15.0/24 out eth0: changed outside netlab: put back in NETLAB-POSTROUTING, "
        "remove a changed copy in NETLAB-POSTROUTING"
    ]
    plan.steps()[0][1].run(kernel)  # type: ignore[arg-type]
    ((_, ops),) = kernel.batches
    assert [(op.action, op.text) for op in ops] == [("delete", tampered.text), ("add", None)]


def test_an_extra_copy_of_a_rule_goes_and_one_stays(tmp_path: Path) -> None:
    tables = observed(MASQUERADE)
    kernel = NatKernel(tables={None: NatTables(tables.chains, tables.rules * 2)})
    plan = make_plan(DesiredState(nat=(MASQUERADE,)), kernel, Ledger(tmp_path / "l.json"))
    assert [str(c) for c in plan.changes] == [
        "~ nat host/masquerade 192.168.15.0/24 out eth0: changed outside netlab: remove an extra copy in NETLAB-POSTROUTING"
    ]
    plan.steps()[0][1].run(kernel)  # type: ignore[arg-type]
    ((_, ops),) = kernel.batches
    assert [op.action for op in ops] == ["delete"]  # one op deletes one of the two


def test_removal_takes_netlabs_rules_and_empty_chains_only(tmp_path: Path) -> None:
    book = Ledger(tmp_path / "l.json")
    book.record("nat", MASQUERADE.key, {"id": rule_id(MASQUERADE)})
    tables = observed(MASQUERADE, DNAT)
    # someone put a rule of their own into NETLAB-PREROUTING: that chain stays
    tables = NatTables(
        tuple(ObservedChain(c.family, c.name, 1 if c.name == "NETLAB-PREROUTING" else 0, 1) for c in tables.chains),
        tables.rules,
    )
    kernel = NatKernel(tables={None: tables})
    plan = make_plan(DesiredState(files=("x.yaml",)), kernel, book)
    lines = [str(c) for c in plan.changes]
    assert lines[0] == "- nat host/masquerade 192.168.15.0/24 out eth0"
    # the dnat is netlab's by its comment though the ledger lost it: named by its id, shown as in the kernel
    assert lines[1].startswith(f"- nat host/rule netlab:{rule_id(DNAT)}: -A NETLAB-PREROUTING -i eth0")
    assert lines[2:] == ["- nat host/chain NETLAB-OUTPUT", "- nat host/chain NETLAB-POSTROUTING"]
    assert {step.phase for _, step in plan.steps()} == {Phase.DELETE_NAT}
    plan.steps()[0][1].run(kernel)  # type: ignore[arg-type]
    ((_, ops),) = kernel.batches
    assert [op.action for op in ops] == ["delete"] * 3 + ["remove-chain"] * 2


def test_nat_in_a_namespace_reads_and_writes_that_namespace(tmp_path: Path) -> None:
    rule = NatRule("red", "masquerade", HERE, source="10.1.0.0/24")
    kernel = NatKernel(names={"red"}, tables={"red": NatTables()})
    desired = DesiredState(namespaces=(Namespace("red", HERE),), nat=(rule,))
    plan = make_plan(desired, kernel, Ledger(tmp_path / "l.json"))
    assert [str(c) for c in plan.changes] == [
        "+ nat red/masquerade 10.1.0.0/24",
        "+ nat red/chain NETLAB-POSTROUTING: jumped to from POSTROUTING",
    ]
    assert set(kernel.reads) == {"red"}  # (the Kernel keeps what it read: one worker)
    plan.steps()[0][1].run(kernel)  # type: ignore[arg-type]
    assert [netns for netns, _ in kernel.batches] == ["red"]


def test_a_namespace_created_in_the_pass_is_not_read(tmp_path: Path) -> None:
    rule = NatRule("red", "masquerade", HERE, source="10.1.0.0/24")
    kernel = NatKernel()
    desired = DesiredState(namespaces=(Namespace("red", HERE),), nat=(rule,))
    plan = make_plan(desired, kernel, Ledger(tmp_path / "l.json"))
    assert "+ nat red/masquerade 10.1.0.0/24" in [str(c) for c in plan.changes]
    assert kernel.reads == []
    phases = [step.phase for _, step in plan.steps()]
    assert phases.index(Phase.CREATE_NAMESPACE) < phases.index(Phase.ADD_NAT)


def test_rules_of_a_removed_or_vanished_namespace(tmp_path: Path) -> None:
    book = Ledger(tmp_path / "l.json")
    rule = NatRule("red", "masquerade", HERE, source="10.1.0.0/24")
    book.record("namespace", ("red",))
    book.record("nat", rule.key, {"id": rule_id(rule)})
    kernel = NatKernel(names={"red"}, tables={"red": observed(rule)})
    # netlab removes red: its tables go with it, no NAT write
    plan = make_plan(DesiredState(files=("x",)), kernel, book)
    assert [str(c) for c in plan.changes] == ["- namespace red: with everything in it"]
    # red vanished by someone else's hand: the ledger forgets its rules
    plan = make_plan(DesiredState(files=("x",)), NatKernel(), book)
    assert "- nat red/masquerade 10.1.0.0/24: gone with its namespace" in [str(c) for c in plan.changes]
    assert all(not c.steps for c in plan.changes if c.kind == "nat")


def test_a_firewall_in_nftables_is_named_on_the_changes(tmp_path: Path) -> None:
    kernel = NatKernel(tables={None: NatTables()}, nft={None: ("ip filter (12 rules)", "ip nat (1 rule)")})
    lines = plan_lines(DesiredState(nat=(MASQUERADE,)), kernel, Ledger(tmp_path / "l.json"))
    assert "firewall is in nftables (ip filter (12 rules), ip nat (1 rule))" in lines[0]
    assert "iptables-legacy-save" in lines[0]
    quiet = NatKernel(tables={None: NatTables()})
    assert "nftables" not in plan_lines(DesiredState(nat=(MASQUERADE,)), quiet, Ledger(tmp_path / "l.json"))[0]


@pytest.mark.parametrize("rule", [MASQUERADE, SNAT, DNAT, DNAT_RANGE, SNAT6, DNAT6])
def test_every_rule_type_converges(rule: NatRule, tmp_path: Path) -> None:
    kernel = NatKernel(tables={None: observed(rule)})
    assert plan_lines(DesiredState(nat=(rule,)), kernel, Ledger(tmp_path / "l.json")) == []
