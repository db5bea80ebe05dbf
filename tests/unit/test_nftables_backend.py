"""The nftables NAT backend without a kernel: each rule's expressions and their
way back, the batch a change becomes (one transaction: tables, chains, rules by
handle), which nftables events are about netlab's tables, the choice of
backend, what is said about other tools' firewalls, and the plan of a move
between backends."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from netlab.controller.backends import nftables
from netlab.controller.backends.events import touches_own_tables
from netlab.controller.backends.iptables import (
    NatTables,
    ObservedChain,
    ObservedNatRule,
    add,
    delete,
    ensure_chain,
    remove_chain,
)
from netlab.controller.backends.nat_backends import Facts, choose
from netlab.controller.backends.nftables import HookedChain, expressions, parse, text_of
from netlab.controller.changes import Phase
from netlab.controller.kinds.nat import LEGACY_FILTER, coexistence_warnings, rule_id, rule_specs
from netlab.controller.planning import make_plan
from netlab.state.errors import ApplyError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, NatRule
from tests.unit.test_nat_planning import DNAT, DNAT6, DNAT_RANGE, MASQUERADE, SNAT, SNAT6, NatKernel

RULES = (MASQUERADE, SNAT, DNAT, DNAT_RANGE, SNAT6, DNAT6)


# -- expressions ---------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.type + str(RULES.index(rule)))
def test_every_spec_comes_back_from_its_expressions(rule: NatRule) -> None:
    for spec in rule_specs(rule):
        assert parse(spec.family, spec.chain, spec.comment, expressions(spec)) == spec


def test_expressions_are_what_nftables_lists_back() -> None:
    """The forms `nft -j list table` gives (seen on nftables 1.0.6): a host's
    address plain, a network as a prefix, a port range as a range, a port match
    without its protocol dependency."""
    masquerade, (from_outside, from_host) = rule_specs(MASQUERADE)[0], rule_specs(DNAT_RANGE)
    assert expressions(masquerade) == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "192.168.15.0", "len": 24}}}},
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}},
        {"masquerade": None},
    ]  # fmt: skip
    assert expressions(from_outside) == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.2"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"range": [5000, 5010]}}},
        {"dnat": {"addr": "192.168.15.3"}},
    ]  # fmt: skip
    assert expressions(from_host)[0] == expressions(from_outside)[0]  # a destination: no fib match
    assert expressions(rule_specs(DNAT6)[0])[-1] == {"dnat": {"addr": "2001:db8::2", "port": 8443}}


def test_what_netlab_never_writes_is_not_taken_for_its_rule() -> None:
    spec = rule_specs(MASQUERADE)[0]
    good = expressions(spec)
    counted = [good[0], {"counter": None}, *good[1:]]
    negated = [{"match": {**good[0]["match"], "op": "!="}}, *good[1:]]
    options = [*good[:-1], {"masquerade": {"flags": ["random"]}}]
    accept = [*good, {"accept": None}]
    other_family = [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "fd00::1"}},
        good[-1],
    ]
    for exprs in (counted, negated, options, accept, other_family, [], good[:-1]):
        assert parse(4, spec.chain, spec.comment, exprs) is None, exprs


def test_interface_wildcards_mean_what_they_mean_in_iptables() -> None:
    """iptables' final `+` is nftables' final `*`; a `*` of a name is escaped."""
    for name, value in (("veth+", "veth*"), ("eth0", "eth0"), ("e*t", "e\\*t"), ("e*+", "e\\**")):
        spec = rule_specs(NatRule(None, "masquerade", MASQUERADE.origin, source="10.0.0.0/8", out_interface=name))[0]
        assert expressions(spec)[1]["match"]["right"] == value
        assert parse(4, spec.chain, spec.comment, expressions(spec)) == spec


def test_a_rule_reads_as_nft_prints_it() -> None:
    texts = [text_of(spec).replace(rule_id(DNAT), "ID") for spec in rule_specs(DNAT)]
    assert texts == [
        'prerouting: iifname "eth0" tcp dport 8080 dnat to 192.168.15.2:80 comment "netlab:ID"',
        'output: ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 dnat to 192.168.15.2:80 comment "netlab:ID"',
    ]


# -- a change as one transaction ---------------------------------------------------------


def test_a_first_rule_brings_its_table_and_base_chain() -> None:
    spec = rule_specs(MASQUERADE)[0]
    commands = nftables._commands(
        nftables._Read(NatTables(), {}, set(), set()), [ensure_chain(4, spec.chain), add(spec)]
    )
    assert commands == [
        {"add": {"table": {"family": "ip", "name": "netlab"}}},
        {"add": {"chain": {"family": "ip", "table": "netlab", "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": "netlab", "chain": "postrouting", "expr": expressions(spec), "comment": spec.comment}}},
    ]  # fmt: skip


def test_rules_go_by_handle_and_the_table_with_the_last_chain() -> None:
    spec = rule_specs(MASQUERADE)[0]
    text = text_of(spec)
    found = ObservedNatRule(4, spec.chain, spec.comment, text, spec)
    before = NatTables((ObservedChain(4, spec.chain, 0, 1),), (found, found))
    handles = {(4, spec.chain): [(7, spec.comment, text), (9, spec.comment, text)]}
    # two deletions of one rendering take two copies; a third finds none and is no work
    read = nftables._Read(before, handles, set(), set())
    commands = nftables._commands(read, [delete(found), delete(found), delete(found), remove_chain(4, spec.chain)])
    assert commands == [
        {"delete": {"rule": {"family": "ip", "table": "netlab", "chain": "postrouting", "handle": 7}}},
        {"delete": {"rule": {"family": "ip", "table": "netlab", "chain": "postrouting", "handle": 9}}},
        {"delete": {"chain": {"family": "ip", "table": "netlab", "name": "postrouting"}}},
        {"delete": {"table": {"family": "ip", "name": "netlab"}}},
    ]


def test_a_wrongly_hooked_chain_and_a_dormant_table_are_made_anew() -> None:
    spec = rule_specs(MASQUERADE)[0]
    rehooked = nftables._Read(NatTables((ObservedChain(4, spec.chain, 0, 0),)), {}, {(4, spec.chain)}, set())
    assert nftables._commands(rehooked, [ensure_chain(4, spec.chain)])[:2] == [
        {"delete": {"chain": {"family": "ip", "table": "netlab", "name": "postrouting"}}},
        {"add": {"chain": {"family": "ip", "table": "netlab", "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
    ]  # fmt: skip
    dormant = nftables._Read(NatTables(), {}, set(), {4})
    assert nftables._commands(dormant, [ensure_chain(4, spec.chain)])[:2] == [
        {"delete": {"table": {"family": "ip", "name": "netlab"}}},
        {"add": {"table": {"family": "ip", "name": "netlab"}}},
    ]


class Listing:
    """A libnftables context that lists netlab's tables: `text` as text, `json` as JSON."""

    def __init__(self, text: str, json: str) -> None:
        self.listings = {False: text, True: json}
        self.as_json = True
        self.asked: list[bool] = []

    def set_json_output(self, on: bool) -> None:
        self.as_json = on

    def cmd(self, _: str) -> tuple[int, str, str]:
        self.asked.append(self.as_json)
        return 0, self.listings[self.as_json], ""


TABLE_TEXT = "table ip netlab {\n\tchain postrouting {\n\t}\n}\n"
FLAGGED_TEXT = "table ip netlab { # handle 7\n\tflags dormant\n\n\tchain postrouting {\n\t}\n}\n"
# nftables 1.0.6 prints a table's flags in JSON from freed memory: a name, or no JSON at all
FLAGGED_JSON = '{"nftables": [{"table": {"family": "ip", "name": "netlab", "handle": 1, "flags": "\x01\n\x7f"}}]}'


def test_a_table_with_flags_is_made_anew_without_listing_it_as_json() -> None:
    flagged = Listing(FLAGGED_TEXT, FLAGGED_JSON)
    assert nftables._read(flagged, None).dormant == {4, 6}
    assert flagged.asked == [False, False]  # JSON could abort the process
    # and should the text not show them, flags or garbage in JSON are still seen
    for listing in (FLAGGED_JSON, FLAGGED_JSON.replace("\x01\n\x7f", "netlab")):
        assert nftables._read(Listing(TABLE_TEXT, listing), None).dormant == {4, 6}
    assert nftables._read(Listing(TABLE_TEXT, '{"nftables": []}'), None).dormant == set()


def test_other_things_in_netlabs_table_are_deleted_by_name() -> None:
    found = ObservedNatRule(4, "nft-object:set", "", "set foo", None)
    read = nftables._Read(NatTables((), (found,)), {(4, "nft-object:set"): [(0, "foo", "set foo")]}, set(), set())
    assert nftables._commands(read, [delete(found)]) == [
        {"delete": {"set": {"family": "ip", "table": "netlab", "name": "foo"}}}
    ]


# -- events ------------------------------------------------------------------------------


def _message(msg: int, table: bytes | None, attr_type: int = 1) -> bytes:
    body = struct.pack("BBH", 2, 0, 0)  # nfgenmsg: NFPROTO_IPV4
    if table is not None:
        value = table + b"\0"
        attribute = struct.pack("HH", 4 + len(value), attr_type) + value
        body += attribute + b"\0" * (-len(attribute) % 4)
    return struct.pack("IHHII", 16 + len(body), (10 << 8) | msg, 0, 0, 0) + body


@pytest.mark.parametrize(
    ("data", "about_netlab"),
    [
        (_message(6, b"netlab"), True),  # NFT_MSG_NEWRULE in netlab's table
        (_message(2, b"netlab"), True),  # NFT_MSG_DELTABLE
        (_message(5, b"netlab"), True),  # NFT_MSG_DELCHAIN
        (_message(6, b"nat"), False),  # another tool's rule
        (_message(16, None), False),  # NFT_MSG_NEWGEN: the end of every transaction
        (_message(6, b"nat") + _message(8, b"netlab"), True),  # one of several
        (_message(6, b"netlab")[:-4], True),  # cut short: read again
        (_message(9, b"netlab"), True),  # NFT_MSG_NEWSET: a set someone put in netlab's table
        (_message(6, b"netlab", attr_type=2), True),  # not the table first: read again
    ],
)
def test_only_changes_to_netlabs_tables_wake_the_daemon(data: bytes, about_netlab: bool) -> None:
    assert touches_own_tables(data) is about_netlab


# -- which backend -----------------------------------------------------------------------

DEBIAN = Facts(None, True, "nft", lambda: 0, lambda: ())


@pytest.mark.parametrize(
    ("requested", "facts", "backend", "reason"),
    [
        ("auto", DEBIAN, "nftables", "auto: the host's iptables is iptables-nft"),
        ("auto", Facts(None, True, "nft", lambda: 3, lambda: ()), "iptables", "auto: the host's NAT lives in the legacy iptables tables (3 rules of other tools there)"),
        ("auto", Facts(None, False, "legacy", lambda: 0, lambda: ()), "nftables", "auto: this kernel has no legacy iptables"),
        ("auto", Facts("no binding", True, "nft", lambda: 0, lambda: ()), "iptables", "auto: no binding"),
        ("auto", Facts(None, True, "legacy", lambda: 0, lambda: ("ip filter (2 rules)",)), "nftables", "auto: nftables holds the host's firewall (ip filter (2 rules))"),
        ("auto", Facts(None, True, "legacy", lambda: 0, lambda: ()), "iptables", "auto: the host's iptables is iptables-legacy"),
        ("auto", Facts(None, True, None, lambda: 0, lambda: ()), "nftables", "auto: no iptables command on the host; nftables is the kernel's current firewall"),
        ("auto", Facts("no binding", False, None, lambda: 0, lambda: ()), None, "neither backend can work here: no binding, and this kernel has no legacy iptables (ip_tables)"),
        ("iptables", DEBIAN, "iptables", "asked for with --nat-backend iptables"),
        ("nftables", Facts(None, True, "legacy", lambda: 5, lambda: ()), "nftables", "asked for with --nat-backend nftables"),
        ("nftables", Facts("no binding", True, "nft", lambda: 0, lambda: ()), None, "--nat-backend nftables, but no binding"),
        ("iptables", Facts(None, False, "nft", lambda: 0, lambda: ()), None, "--nat-backend iptables, but this kernel has no legacy iptables (ip_tables)"),
    ],
)  # fmt: skip
def test_the_backend_and_why(requested: Any, facts: Facts, backend: str | None, reason: str) -> None:
    choice = choose(requested, facts)
    assert (choice.backend, choice.reason) == (backend, reason)


# -- what may defeat netlab's NAT ------------------------------------------------------------


def test_a_dropping_forward_hook_other_nat_chains_and_firewalld_are_named() -> None:
    docker = HookedChain("ip", "filter", "FORWARD", "filter", "forward", 0, "drop")
    own_firewall = HookedChain("inet", "fw", "forward", "filter", "forward", 0, "drop")
    accepting = HookedChain("inet", "fw", "input", "filter", "input", 0, "drop")  # input: not on the way
    their_nat = HookedChain("ip", "nat", "POSTROUTING", "nat", "postrouting", 100, "accept")
    warnings = coexistence_warnings(None, [MASQUERADE, DNAT], (docker, own_firewall, accepting, their_nat), True)
    assert len(warnings) == 4
    assert warnings[0].startswith("host: nftables chain ip filter FORWARD (hook forward) drops what no rule accepts")
    assert "Docker sets it so on iptables' FORWARD" in warnings[0]
    assert (
        "`iptables -I FORWARD -s 192.168.15.0/24 -j ACCEPT` and the same with -d (with Docker: -I DOCKER-USER)"
        in warnings[0]
    )
    assert "nft insert rule inet fw forward ip saddr 192.168.15.0/24 accept" in warnings[1]
    assert "ip nat POSTROUTING (hook postrouting, priority 100)" in warnings[2]
    assert warnings[3].startswith("host: firewalld is running")
    assert coexistence_warnings("red", [MASQUERADE], (accepting,), False) == []
    legacy = HookedChain("ip", "filter", "FORWARD", LEGACY_FILTER, "forward", 0, "drop")
    (said,) = coexistence_warnings("red", [MASQUERADE], (legacy,), False)
    assert said.startswith("red: iptables-legacy chain ip filter FORWARD (hook forward) drops what no rule accepts")
    assert "`iptables-legacy -I FORWARD -s 192.168.15.0/24 -j ACCEPT`" in said


def test_warnings_follow_the_address_family_of_the_rules() -> None:
    ipv4_nat = HookedChain("ip", "nat", "POSTROUTING", "nat", "postrouting", 100, "accept")
    ipv6_drop = HookedChain("ip6", "fw", "fwd", "filter", "forward", 0, "drop")
    assert coexistence_warnings(None, [SNAT6, DNAT6], (ipv4_nat,), False) == []  # an IPv4 chain: not in their way
    (said,) = coexistence_warnings(None, [SNAT6, DNAT6], (ipv6_drop,), False)
    assert "(2001:db8::2, fd00:15::/64)" in said
    assert "`nft insert rule ip6 fw fwd ip6 saddr 2001:db8::2 accept` and the same with ip6 daddr" in said


# -- planning a move ---------------------------------------------------------------------------


def test_a_rule_in_the_other_backend_is_moved_in_one_pass(tmp_path: Path) -> None:
    spec = rule_specs(MASQUERADE)[0]
    legacy = NatTables(
        (ObservedChain(4, spec.chain, 0, 1),), (ObservedNatRule(4, spec.chain, spec.comment, spec.text(), spec),)
    )
    kernel = NatKernel(tables={None: legacy}, nat_backend="nftables")
    plan = make_plan(DesiredState(nat=(MASQUERADE,)), kernel, Ledger(tmp_path / "ledger.json"))
    assert [str(change) for change in plan.changes] == [
        "~ nat host/masquerade 192.168.15.0/24 out eth0: moved from iptables to nftables",
        "+ nat host/chain postrouting of table ip netlab: hooked at postrouting",
        "- nat host/chain NETLAB-POSTROUTING",
    ]
    moved = plan.changes[0]
    assert moved.record == {"id": rule_id(MASQUERADE), "nftables": True} and moved.record_drops == ("iptables",)
    # the new backend's batch first, then the old one's, both where additions go
    assert [step.describe for step in moved.steps] == [
        "update the nftables tables of host",
        "update the legacy iptables nat table of host",
    ]
    assert {step.phase for step in moved.steps} == {Phase.ADD_NAT}
    for _change, step in plan.steps():
        step.run(kernel)  # type: ignore[arg-type]
    assert kernel.batch_backends == ["nftables", "iptables"]
    assert [op.action for op in kernel.batches[0][1]] == ["ensure-chain", "add"]
    assert [op.action for op in kernel.batches[1][1]] == ["delete", "remove-chain"]
    assert [str(note) for note in plan.notes] == ["Note: NAT rules go to nftables (a unit test's kernel)"]


def test_what_others_put_in_netlabs_nftables_table_goes(tmp_path: Path) -> None:
    spec = rule_specs(MASQUERADE)[0]
    text = text_of(spec)
    theirs = ObservedNatRule(4, spec.chain, "", '[{"counter":null}]', None)
    tables = NatTables(
        (ObservedChain(4, spec.chain, 0, 1), ObservedChain(4, "nft:extra", 0, 0)),
        (ObservedNatRule(4, spec.chain, spec.comment, text, spec), theirs),
    )
    kernel = NatKernel(nft_tables={None: tables}, nat_backend="nftables")
    plan = make_plan(DesiredState(nat=(MASQUERADE,)), kernel, Ledger(tmp_path / "ledger.json"))
    assert [str(change) for change in plan.changes] == [
        """- nat host/rules not netlab's in its nftables tables: [{"counter":null}]""",
        "- nat host/chain extra of table ip netlab",
    ]


def test_rules_the_ledger_has_in_nftables_are_not_forgotten_when_it_cannot_be_read(tmp_path: Path) -> None:
    class NoNftables(NatKernel):
        def nftables_unavailable(self) -> str | None:
            return "the Python binding of libnftables (Debian python3-nftables) is not installed"

    ledger = Ledger(tmp_path / "ledger.json")
    ledger.record("nat", MASQUERADE.key, {"id": rule_id(MASQUERADE), "nftables": True})
    with pytest.raises(ApplyError, match="netlab's NAT rules in host are in nftables .* nothing was changed"):
        make_plan(DesiredState(), NoNftables(), ledger)
