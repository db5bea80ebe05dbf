"""The words the NAT backend and its worker process share: netlab's chains, the
comments that mark its rules, `RuleSpec`, one rule as python-iptables sets
it, and the JSON messages between them (`Request`, `Answer`). Standard library
only, so the worker starts fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, NotRequired, TypedDict, cast

# netlab's chains in the nat table, each jumped to from the built-in chain named here
CHAINS: dict[str, str] = {
    "NETLAB-PREROUTING": "PREROUTING",
    "NETLAB-OUTPUT": "OUTPUT",
    "NETLAB-POSTROUTING": "POSTROUTING",
}
# the nat table's built-in chains, where other tools' NAT rules are counted
BUILTIN_CHAINS = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
JUMP_COMMENT = "netlab"
RULE_COMMENT_PREFIX = "netlab:"

Family = Literal[4, 6]
Target = Literal["MASQUERADE", "SNAT", "DNAT"]
Action = Literal["ensure-chain", "remove-chain", "add", "delete"]


class SpecJson(TypedDict):
    """A `RuleSpec` as JSON (`RuleSpec.to_json`)."""

    family: Family
    chain: str
    comment: str
    target: Target
    source: str | None
    destination: str | None
    not_destination: str | None
    in_interface: str | None
    out_interface: str | None
    protocol: str | None
    dport: str | None
    dst_local: bool
    to: str | None


class OpJson(TypedDict):
    """One write of a change request (`iptables.NatOp`)."""

    action: Action
    family: Family
    chain: str
    spec: NotRequired[SpecJson]
    comment: NotRequired[str]
    text: NotRequired[str]


class Request(TypedDict):
    """What the worker reads on stdin: a dump, or a change (then its ops), in the
    namespace mounted at `netns` (None: the worker's own)."""

    request: Literal["dump", "change"]
    netns: str | None
    ops: NotRequired[list[OpJson]]


class ChainJson(TypedDict):
    foreign: int  # rules without a netlab comment
    jumps: int  # netlab's jumps to the chain from its built-in chain


class RuleJson(TypedDict):
    chain: str
    comment: str
    text: str  # as `iptables-save` prints it, near enough
    spec: SpecJson | None  # None: holds something netlab never writes


class TableJson(TypedDict):
    """netlab's chains, by name, and rules in one family's nat table."""

    chains: dict[str, ChainJson]
    rules: list[RuleJson]
    others: int  # rules of other tools in the built-in chains
    forward_policy: str | None  # the legacy filter table's FORWARD policy, where it exists


class Answer(TypedDict):
    """What the worker writes on stdout: the nat tables by family ("4", "6"),
    as they are after the request; or why it failed."""

    ok: bool
    nat: NotRequired[dict[str, TableJson]]
    error: NotRequired[str]
    errno: NotRequired[int]


@dataclass(frozen=True)
class RuleSpec:
    """One rule in one of netlab's chains. Networks are normalised
    (`10.0.0.0/24`), ports as iptables writes them (`80`, `8000:8080`);
    `comment` carries netlab's identity of the rule (`netlab:<id>`)."""

    family: Family
    chain: str
    comment: str
    target: Target
    source: str | None = None
    destination: str | None = None
    not_destination: str | None = None  # `! -d`: the OUTPUT copy of a dnat skips loopback
    in_interface: str | None = None
    out_interface: str | None = None
    protocol: str | None = None
    dport: str | None = None
    dst_local: bool = False  # `-m addrtype --dst-type LOCAL`
    to: str | None = None  # --to-source (SNAT) or --to-destination (DNAT)

    def text(self) -> str:
        """The rule as `iptables-legacy-save` prints it, less the quotes around
        the comment; the worker renders kernel rules the same way."""
        options = (
            ("-s", self.source),
            ("-d", self.destination),
            ("! -d", self.not_destination),
            ("-i", self.in_interface),
            ("-o", self.out_interface),
            ("-p", self.protocol),
        )
        words = [f"-A {self.chain}"] + [f"{flag} {value}" for flag, value in options if value]
        if self.protocol and self.dport:
            words.append(f"-m {self.protocol} --dport {self.dport}")
        if self.dst_local:
            words.append("-m addrtype --dst-type LOCAL")
        words.append(f"-m comment --comment {self.comment}")
        words.append(f"-j {self.target}")
        if self.to:
            words.append(f"--to-source {self.to}" if self.target == "SNAT" else f"--to-destination {self.to}")
        return " ".join(words)

    def to_json(self) -> SpecJson:
        return cast(SpecJson, asdict(self))

    @classmethod
    def from_json(cls, data: SpecJson) -> RuleSpec:
        return cls(**data)
