"""The NAT backend: netlab's rules in the legacy iptables `nat` tables (IPv4 and
IPv6), driven by python-iptables in a short-lived worker process per call
(`iptables_worker`), which enters the namespace before it imports iptc and holds
the xtables lock while it commits. Called by the nat kind, through the Kernel.

python-iptables is not thread-safe, caches tables per process and takes no lock:
a process of its own per namespace and call sidesteps all three. This module is
one of the two doors to the firewall; `nftables` is the other.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from netlab.controller.backends import namespaces
from netlab.controller.backends.nat_rules import RULE_COMMENT_PREFIX, Action, Answer, Family, OpJson, Request, RuleSpec
from netlab.state.errors import KernelRefused

WORKER_MODULE = "netlab.controller.backends.iptables_worker"
WORKER_TIMEOUT = 60.0
OWN_TABLE = "netlab"  # the nftables backend's tables, ip and ip6


@dataclass(frozen=True)
class ObservedNatRule:
    """A rule with a `netlab:` comment found in one of netlab's chains. `spec` is
    None when the rule holds something netlab never writes (then it is netlab's
    by its comment but not one netlab would keep)."""

    family: Family
    chain: str
    comment: str
    text: str
    spec: RuleSpec | None

    @property
    def ident(self) -> str:
        return self.comment.removeprefix(RULE_COMMENT_PREFIX)


@dataclass(frozen=True)
class ObservedChain:
    family: Family
    name: str
    foreign_rules: int  # rules without a netlab comment: never touched, and the chain stays
    jumps: int  # netlab's jumps to it from its built-in chain


@dataclass(frozen=True)
class NatTables:
    """What one namespace's nat tables hold of netlab's (legacy iptables, or
    netlab's own nftables tables), and how many rules of other tools the
    legacy tables' built-in chains hold (`others`), and in which families the
    legacy filter table's FORWARD drops by default (`forward_drops`)."""

    chains: tuple[ObservedChain, ...] = ()
    rules: tuple[ObservedNatRule, ...] = ()
    others: int = 0
    forward_drops: tuple[Family, ...] = ()  # the families whose legacy FORWARD policy is DROP

    def chain(self, family: int, name: str) -> ObservedChain | None:
        for chain in self.chains:
            if chain.family == family and chain.name == name:
                return chain
        return None


@dataclass(frozen=True)
class NatOp:
    """One write in a worker's batch.

    ensure-chain: create the chain if missing and leave exactly one netlab jump to
    it, first in its built-in chain. remove-chain: if the chain holds no rule,
    remove netlab's jumps to it and the chain. add: append `spec`. delete: one
    rule of the chain with `comment` that the worker renders as `text` (none
    there: nothing to do)."""

    action: Action
    family: Family
    chain: str
    spec: RuleSpec | None = None
    comment: str | None = None
    text: str | None = None

    def to_json(self) -> OpJson:
        data: OpJson = {"action": self.action, "family": self.family, "chain": self.chain}
        if self.spec is not None:
            data["spec"] = self.spec.to_json()
        if self.comment is not None:
            data["comment"] = self.comment
        if self.text is not None:
            data["text"] = self.text
        return data


def add(spec: RuleSpec) -> NatOp:
    return NatOp("add", spec.family, spec.chain, spec=spec)


def delete(rule: ObservedNatRule) -> NatOp:
    return NatOp("delete", rule.family, rule.chain, comment=rule.comment, text=rule.text)


def ensure_chain(family: Family, chain: str) -> NatOp:
    return NatOp("ensure-chain", family, chain)


def remove_chain(family: Family, chain: str) -> NatOp:
    return NatOp("remove-chain", family, chain)


# -- reads and writes, each one worker call --------------------------------------


def legacy_nat_exists(netns: str | None) -> bool:
    """Whether the legacy nat table exists (for IPv4 or IPv6) in the namespace,
    read from /proc without loading it: python-iptables would create it."""

    def work() -> bool:
        for names in ("ip_tables_names", "ip6_tables_names"):
            try:
                # thread-self: /proc/self/net shows the namespace of the main thread
                with open(f"/proc/thread-self/net/{names}", encoding="ascii") as handle:
                    if "nat" in handle.read().split():
                        return True
            except FileNotFoundError:
                continue
        return False

    return namespaces.run_in(netns, work)


def dump(netns: str | None) -> NatTables:
    return _tables(_call_worker(netns, {"request": "dump", "netns": _mounted(netns)}))


def _tables(answer: Answer) -> NatTables:
    chains: list[ObservedChain] = []
    rules: list[ObservedNatRule] = []
    others = 0
    drops: list[Family] = []
    for family_text, table in answer.get("nat", {}).items():
        others += table.get("others", 0)
        if table.get("forward_policy") == "DROP":
            drops.append(6 if family_text == "6" else 4)
        family: Family = 6 if family_text == "6" else 4
        for name, chain in sorted(table["chains"].items()):
            chains.append(ObservedChain(family, name, chain["foreign"], chain["jumps"]))
        for rule in table["rules"]:
            spec = RuleSpec.from_json(rule["spec"]) if rule["spec"] else None
            rules.append(ObservedNatRule(family, rule["chain"], rule["comment"], rule["text"], spec))
    return NatTables(tuple(chains), tuple(rules), others, tuple(drops))


def change(netns: str | None, ops: list[NatOp]) -> NatTables | None:
    """Runs a batch in one worker: one commit per address family, under the
    xtables lock, and returns the tables as they are after it (None: nothing
    was to be done). Raises KernelRefused with what iptables said."""
    if not ops:
        return None
    return _tables(
        _call_worker(netns, {"request": "change", "netns": _mounted(netns), "ops": [op.to_json() for op in ops]})
    )


# A worker started ahead of need (`warm_up`), waiting for its request.
_spare: subprocess.Popen[str] | None = None


def warm_up() -> None:
    """Starts a worker now, for the next call: its start-up (~0.3 s, mostly
    python-iptables' import) then overlaps with whatever the caller does meanwhile."""
    global _spare
    if _spare is None:
        _spare = _start_worker()


def discard_spare() -> None:
    """Ends a worker started ahead and not needed (it exits on an empty request)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.communicate("", timeout=WORKER_TIMEOUT)


def _start_worker() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def _mounted(netns: str | None) -> str | None:
    return None if netns is None else namespaces.netns_path(netns)


def _call_worker(netns: str | None, request: Request) -> Answer:
    global _spare
    where = "host" if netns is None else netns
    worker, _spare = _spare or _start_worker(), None
    try:
        stdout, stderr = worker.communicate(json.dumps(request), timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        worker.kill()
        worker.communicate()
        raise KernelRefused(f"iptables nat in {where}", errno.ETIMEDOUT, "the worker did not answer in time") from error
    try:
        answer: Answer = json.loads(stdout)
    except json.JSONDecodeError:
        detail = (stderr or stdout).strip().splitlines()
        raise KernelRefused(
            f"iptables nat in {where}", errno.EIO, f"the worker failed: {detail[-1] if detail else worker.returncode}"
        ) from None
    if not answer.get("ok"):
        raise KernelRefused(
            f"iptables nat in {where}", int(answer.get("errno") or errno.EINVAL), str(answer.get("error"))
        )
    return answer
