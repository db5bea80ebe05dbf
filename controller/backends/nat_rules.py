"""The words the NAT backend and its worker process share: netlab's chains, the
comments that mark its rules, and `RuleSpec`, one rule as python-iptables sets
it. Standard library only, so the worker starts fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

# netlab's chains in the nat table, each jumped to from the built-in chain named here
CHAINS: dict[str, str] = {
    "NETLAB-PREROUTING": "PREROUTING",
    "NETLAB-OUTPUT": "OUTPUT",
    "NETLAB-POSTROUTING": "POSTROUTING",
}
JUMP_COMMENT = "netlab"
RULE_COMMENT_PREFIX = "netlab:"

Family = Literal[4, 6]
Target = Literal["MASQUERADE", "SNAT", "DNAT"]


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
