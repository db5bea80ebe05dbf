"""The iptables worker's reading of kernel rules, without python-iptables: rules
stand in as the plain objects python-iptables returns (src/dst with masks,
matches and a target with their parameters). The round trip against the real
python-iptables runs in tests/integration/test_nat.py."""

from __future__ import annotations

import fcntl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netlab.controller.backends import iptables_worker as worker
from netlab.controller.backends.nat_rules import RuleSpec
from netlab.controller.kinds.nat import rule_specs
from netlab.state.model import NatRule, Origin


@dataclass
class Module:
    name: str
    parameters: dict[str, list[str]] = field(default_factory=dict)

    def get_all_parameters(self) -> dict[str, list[str]]:
        return self.parameters


@dataclass
class Rule:
    src: str = "0.0.0.0/0.0.0.0"
    dst: str = "0.0.0.0/0.0.0.0"
    in_interface: str | None = None
    out_interface: str | None = None
    protocol: str = "ip"
    matches: list[Module] = field(default_factory=list)
    target: Module | None = None


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("0.0.0.0/0.0.0.0", None),
        ("::/0", None),
        ("192.168.15.0/255.255.255.0", "192.168.15.0/24"),
        ("10.0.0.2/255.255.255.255", "10.0.0.2/32"),
        ("fd00::/64", "fd00::/64"),
        ("fd00::/ffff:ffff:ffff:ffff::", "fd00::/64"),
        ("2001:db8::1/128", "2001:db8::1/128"),
    ],
)
def test_addresses_come_back_normalised(text: str, normal: str | None) -> None:
    assert worker._network(text) == normal


def test_a_rule_netlab_wrote_parses_back_to_its_spec() -> None:
    rule = Rule(
        dst="!127.0.0.0/255.0.0.0",
        protocol="tcp",
        matches=[
            Module("tcp", {"dport": ["8000:8080"]}),
            Module("addrtype", {"dst-type": ["LOCAL"]}),
            Module("comment", {"comment": ["netlab:abc"]}),
        ],
        target=Module("DNAT", {"to-destination": ["192.168.15.2:80"]}),
    )
    spec = RuleSpec(
        4,
        "NETLAB-OUTPUT",
        "netlab:abc",
        "DNAT",
        not_destination="127.0.0.0/8",
        protocol="tcp",
        dport="8000:8080",
        dst_local=True,
        to="192.168.15.2:80",
    )
    assert worker._parse(rule, 4, "NETLAB-OUTPUT", "netlab:abc") == spec.to_json()
    assert worker._render(rule, 4, "NETLAB-OUTPUT") == spec.text()


def test_every_spec_netlab_writes_parses_back() -> None:
    here = Origin("f", 1)
    rules = [
        NatRule(None, "masquerade", here, source="192.168.15.0/24", destination="10.0.0.0/8", out_interface="eth0"),
        NatRule(None, "snat", here, source="10.1.0.0/16", to_source="10.0.0.2"),
        NatRule(
            None,
            "dnat",
            here,
            protocol="sctp",
            port="5000-5010",
            destination="10.0.0.2/32",
            in_interface="eth0",
            to="192.168.15.3",
        ),
    ]
    for spec in (spec for rule in rules for spec in rule_specs(rule)):
        rule = Rule(
            src=spec.source or "0.0.0.0/0.0.0.0",
            dst=spec.destination or (f"!{spec.not_destination}" if spec.not_destination else "0.0.0.0/0.0.0.0"),
            in_interface=spec.in_interface,
            out_interface=spec.out_interface,
            protocol=spec.protocol or "ip",
            matches=([Module(spec.protocol, {"dport": [spec.dport]})] if spec.protocol and spec.dport else [])
            + ([Module("addrtype", {"dst-type": ["LOCAL"]})] if spec.dst_local else [])
            + [Module("comment", {"comment": [spec.comment]})],
            target=Module(
                spec.target,
                {"to-source": [spec.to]} if spec.target == "SNAT" else {"to-destination": [spec.to]} if spec.to else {},
            ),
        )
        assert RuleSpec.from_json(worker._parse(rule, 4, spec.chain, spec.comment) or {}) == spec


def test_anything_netlab_never_writes_is_not_taken_for_its_rule() -> None:
    base = dict(src="10.0.0.0/255.0.0.0", matches=[Module("comment", {"comment": ["netlab:abc"]})])
    extra_match = Rule(**base, target=Module("MASQUERADE"))  # type: ignore[arg-type]
    extra_match.matches = [Module("mark", {"mark": ["0x1"]}), *extra_match.matches]
    assert worker._parse(extra_match, 4, "NETLAB-POSTROUTING", "netlab:abc") is None
    assert worker._render(extra_match, 4, "NETLAB-POSTROUTING") == (
        "-A NETLAB-POSTROUTING -s 10.0.0.0/255.0.0.0 -m mark --mark 0x1 -m comment --comment netlab:abc -j MASQUERADE"
    )
    random_ports = Rule(**base, target=Module("MASQUERADE", {"random": []}))  # type: ignore[arg-type]
    assert worker._parse(random_ports, 4, "NETLAB-POSTROUTING", "netlab:abc") is None
    inverted_source = Rule(src="!10.0.0.0/255.0.0.0", matches=base["matches"], target=Module("MASQUERADE"))  # type: ignore[arg-type]
    assert worker._parse(inverted_source, 4, "NETLAB-POSTROUTING", "netlab:abc") is None


def test_jumps_are_known_by_their_comment_and_target() -> None:
    jump = Rule(matches=[Module("comment", {"comment": ["netlab"]})], target=Module("NETLAB-POSTROUTING"))
    assert worker._is_jump(jump, "NETLAB-POSTROUTING", "netlab")
    theirs = Rule(target=Module("NETLAB-POSTROUTING"))
    assert not worker._is_jump(theirs, "NETLAB-POSTROUTING", "netlab")


def test_the_xtables_lock_is_waited_for_then_given_up_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "xtables.lock"
    monkeypatch.setattr(worker, "LOCK_FILE", str(lock))
    monkeypatch.setattr(worker, "LOCK_WAIT", 0.3)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another iptables holds it
        with pytest.raises(worker._Refused, match="held the xtables lock"), worker._xtables_lock():
            pass
        releaser = threading.Timer(0.1, fcntl.flock, (held, fcntl.LOCK_UN))
        releaser.start()
        began = time.monotonic()
        with worker._xtables_lock():
            assert time.monotonic() - began >= 0.05  # waited for the release, then went on
        releaser.join()
