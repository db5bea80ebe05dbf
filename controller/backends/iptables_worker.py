"""The process that touches iptables: `python -m netlab.controller.backends.iptables_worker`,
started by `backends.iptables` once per namespace and call, with a JSON request
on stdin and a JSON answer on stdout.

It imports python-iptables first (loading its libraries is most of its start-up,
and opens nothing: it can be started ahead of need and wait for its request),
then enters the network namespace the request names before opening any table, so
every table it opens is that namespace's; it holds the xtables lock (as iptables
does) while it changes a table, and commits each table once. Given no request
(its parent ended without needing it), it does nothing.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypedDict, TypeVar

from netlab.controller.backends.nat_rules import (
    BUILTIN_CHAINS,
    CHAINS,
    JUMP_COMMENT,
    RULE_COMMENT_PREFIX,
    Answer,
    ChainJson,
    Family,
    OpJson,
    Request,
    RuleJson,
    RuleSpec,
    SpecJson,
    TableJson,
)

CLONE_NEWNET = 0x40000000
LOCK_FILE = os.environ.get("XTABLES_LOCKFILE", "/run/xtables.lock")  # iptables' own default and override
LOCK_WAIT = 10.0
PROTOCOL_MATCHES = ("tcp", "udp", "sctp")
# the targets netlab writes, and the one parameter each takes (none: MASQUERADE)
TARGET_PARAMETERS: dict[str, tuple[str, ...]] = {"MASQUERADE": (), "SNAT": ("to-source",), "DNAT": ("to-destination",)}

T = TypeVar("T")


class _Refused(Exception):
    """What iptables refused, inside this process: it leaves as an `Answer`
    that says so, which the parent raises as KernelRefused."""

    def __init__(self, message: str, code: int = errno.EINVAL) -> None:
        super().__init__(message)
        self.code = code


class _Outcome(TypedDict, Generic[T]):
    """What a child of the worker hands back through its pipe."""

    ok: bool
    result: T | None
    error: str
    errno: int


def main() -> int:
    _iptc()
    text = sys.stdin.read()
    if not text.strip():
        return 0
    request: Request = json.loads(text)
    answer: Answer
    try:
        if request["netns"]:
            _enter(request["netns"])
        if request["request"] == "dump":
            answer = {"ok": True, "nat": _dump()}
        else:
            with _xtables_lock():
                _change(request.get("ops", []))
                # the tables as the change left them, read under the same lock:
                # the pass verifies against them without another worker
                answer = {"ok": True, "nat": _dump()}
        print(json.dumps(answer))
        return 0
    except _Refused as error:
        answer = {"ok": False, "error": str(error), "errno": error.code}
        print(json.dumps(answer))
        return 1


def _enter(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise _Refused(f"cannot open {path}: {error.strerror}", error.errno or errno.EIO) from error
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise _Refused(f"cannot enter the network namespace {path}: {os.strerror(code)}", code)
    finally:
        os.close(fd)


@contextmanager
def _xtables_lock() -> Iterator[None]:
    fd = os.open(LOCK_FILE, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as error:
                if time.monotonic() > deadline:
                    raise _Refused(
                        f"another program has held the xtables lock ({LOCK_FILE}) for {LOCK_WAIT:.0f} s", errno.EAGAIN
                    ) from error
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# -- python-iptables -------------------------------------------------------------


def _iptc() -> Any:
    import iptc  # here, not at the top: the parent imports this module's helpers

    # python-iptables looks for a jump's chain in every table of the family, and
    # opening a table creates it: limit that look-up to nat, so that netlab never
    # makes filter, mangle, raw or security tables appear.
    for table_class in (iptc.Table, iptc.Table6):
        table_class.existing_table_names.update({name: name == "nat" for name in table_class.ALL})
    return iptc


def _table(iptc: Any, family: int) -> Any:
    table = iptc.Table6(iptc.Table6.NAT) if family == 6 else iptc.Table(iptc.Table.NAT)
    table.autocommit = False
    table.refresh()
    return table


def _legacy_nat_families(table: str = "nat") -> list[Family]:
    """The families whose legacy `table` exists (reading a missing one would make it)."""
    found: list[Family] = []
    tables: tuple[tuple[Family, str], ...] = ((4, "ip_tables_names"), (6, "ip6_tables_names"))
    for family, names in tables:
        try:
            with open(f"/proc/self/net/{names}", encoding="ascii") as handle:
                if table in handle.read().split():
                    found.append(family)
        except FileNotFoundError:
            continue
    return found


def _forward_policy(iptc: Any, family: Family) -> str | None:
    """The legacy filter table's FORWARD policy (Docker sets DROP), where that
    table exists."""
    if family not in _legacy_nat_families("filter"):
        return None
    table = iptc.Table6(iptc.Table6.FILTER) if family == 6 else iptc.Table(iptc.Table.FILTER)
    table.refresh()
    policy = iptc.Chain(table, "FORWARD").get_policy()
    return str(policy.name) if policy is not None else None


def _in_child(work: Callable[[], T]) -> T:
    """Runs `work` in a forked child and returns its JSON-able result: libxtables
    keeps one address family per process (IPv6 targets are not found once IPv4
    was loaded), so each family gets a process of its own."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child answers through the pipe and never returns
        try:
            os.close(reader)
            outcome: _Outcome[T]
            try:
                outcome = {"ok": True, "result": work(), "error": "", "errno": 0}
            except _Refused as error:
                outcome = {"ok": False, "result": None, "error": str(error), "errno": error.code}
            except Exception as error:  # a bug of ours: told to the caller, not lost with the child
                outcome = {"ok": False, "result": None, "error": f"{type(error).__name__}: {error}", "errno": errno.EIO}
            with os.fdopen(writer, "w") as pipe:
                json.dump(outcome, pipe)
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        raise _Refused(f"the python-iptables process died (wait status {status})", errno.EIO)
    answer: _Outcome[T] = json.loads(text)
    if not answer["ok"]:
        raise _Refused(answer["error"], answer["errno"])
    return answer["result"]  # type: ignore[return-value]  # ok: the work's own result


def _dump() -> dict[str, TableJson]:
    families = _legacy_nat_families()
    if not families:
        return {}  # no table: nothing of netlab's there, and reading one would create it
    iptc = _iptc()
    return {str(family): _in_child(functools.partial(_dump_family, iptc, family)) for family in families}


def _dump_family(iptc: Any, family: Family) -> TableJson:
    table = _table(iptc, family)
    chains: dict[str, ChainJson] = {}
    rules: list[RuleJson] = []
    for name, builtin in CHAINS.items():
        if not table.is_chain(name):
            continue
        foreign = 0
        for rule in iptc.Chain(table, name).rules:
            comment = _comment(rule)
            if comment is None or not comment.startswith(RULE_COMMENT_PREFIX):
                foreign += 1
                continue
            spec = _parse(rule, family, name, comment)
            rules.append(
                {
                    "chain": name,
                    "comment": comment,
                    "text": _render(rule, family, name),
                    "spec": spec,
                }
            )
        jumps = sum(1 for rule in iptc.Chain(table, builtin).rules if _is_jump(rule, name, JUMP_COMMENT))
        chains[name] = {"foreign": foreign, "jumps": jumps}
    others = 0  # rules of other tools in the built-in chains: whose NAT lives here
    for builtin in BUILTIN_CHAINS:
        for rule in iptc.Chain(table, builtin).rules:
            if not any(_is_jump(rule, name, JUMP_COMMENT) for name in CHAINS):
                others += 1
    return {"chains": chains, "rules": rules, "others": others, "forward_policy": _forward_policy(iptc, family)}


def _change(ops: list[OpJson]) -> None:
    iptc = _iptc()
    for family in sorted({op["family"] for op in ops}):
        _in_child(functools.partial(_change_family, iptc, family, [op for op in ops if op["family"] == family]))


def _change_family(iptc: Any, family: Family, ops: list[OpJson]) -> None:
    table = _table(iptc, family)
    for op in ops:
        chain_name = op["chain"]
        if chain_name not in CHAINS:
            raise _Refused(f"{chain_name} is not one of netlab's chains")
        builtin = iptc.Chain(table, CHAINS[chain_name])
        try:
            if op["action"] == "ensure-chain":
                if not table.is_chain(chain_name):
                    table.create_chain(chain_name)
                jumps = [rule for rule in builtin.rules if _is_jump(rule, chain_name, JUMP_COMMENT)]
                if not jumps:
                    builtin.insert_rule(_jump(iptc, family, chain_name, JUMP_COMMENT), 0)
                for extra in jumps[1:]:
                    builtin.delete_rule(extra)
            elif op["action"] == "remove-chain":
                if not table.is_chain(chain_name) or iptc.Chain(table, chain_name).rules:
                    continue  # gone already, or holds rules: kept
                for rule in builtin.rules:
                    if _is_jump(rule, chain_name, JUMP_COMMENT):
                        builtin.delete_rule(rule)
                table.delete_chain(chain_name)
            elif op["action"] == "add":
                iptc.Chain(table, chain_name).append_rule(_build(iptc, op["spec"]))
            elif op["action"] == "delete":
                if not table.is_chain(chain_name):
                    continue
                chain = iptc.Chain(table, chain_name)
                for rule in chain.rules:
                    # one rule per op: of two identical copies, one is deleted and one kept
                    if _comment(rule) == op["comment"] and _render(rule, family, chain_name) == op["text"]:
                        chain.delete_rule(rule)
                        break
            else:
                raise _Refused(f"unknown operation {op['action']!r}")
        except (iptc.IPTCError, iptc.xtables.XTablesError, ValueError) as error:
            raise _Refused(f"{op['action']} in {chain_name} (IPv{family}): {error}") from error
    try:
        table.commit()
    except iptc.IPTCError as error:
        raise _Refused(f"commit of the IPv{family} nat table: {error}") from error


# -- rules: build from a spec, parse back, render ----------------------------------


def _build(iptc: Any, spec: SpecJson) -> Any:
    rule = iptc.Rule6() if spec["family"] == 6 else iptc.Rule()
    if spec["source"]:
        rule.src = spec["source"]
    if spec["destination"]:
        rule.dst = spec["destination"]
    elif spec["not_destination"]:
        rule.dst = "!" + spec["not_destination"]
    if spec["in_interface"]:
        rule.in_interface = spec["in_interface"]
    if spec["out_interface"]:
        rule.out_interface = spec["out_interface"]
    if spec["protocol"]:
        rule.protocol = spec["protocol"]
        if spec["dport"]:
            rule.create_match(spec["protocol"]).dport = spec["dport"]
    if spec["dst_local"]:
        rule.create_match("addrtype").dst_type = "LOCAL"
    rule.create_match("comment").comment = spec["comment"]
    target = rule.create_target(spec["target"])
    if spec["to"]:
        if spec["target"] == "SNAT":
            target.to_source = spec["to"]
        else:
            target.to_destination = spec["to"]
    return rule


def _jump(iptc: Any, family: int, chain: str, comment: str) -> Any:
    rule = iptc.Rule6() if family == 6 else iptc.Rule()
    rule.create_match("comment").comment = comment
    rule.create_target(chain)
    return rule


def _comment(rule: Any) -> str | None:
    for match in rule.matches:
        if match.name == "comment":
            values = match.get_all_parameters().get("comment", [])
            return " ".join(values).strip('"') if values else ""
    return None


def _is_jump(rule: Any, chain: str, comment: str) -> bool:
    return bool(rule.target is not None and rule.target.name == chain and _comment(rule) == comment)


def _network(text: str | None) -> str | None:
    """`10.0.0.0/255.255.255.0` or `fd00::/64` → `10.0.0.0/24`; any → None."""
    if not text:
        return None
    address, _, mask = text.partition("/")
    if mask and not mask.isdigit():
        bits = int(ipaddress.ip_address(mask))
        width = 128 if ":" in mask else 32
        mask = str(width - (bits ^ ((1 << width) - 1)).bit_length())
    network = ipaddress.ip_network(f"{address}/{mask or ('128' if ':' in address else '32')}", strict=False)
    return None if network.prefixlen == 0 else str(network)


def _parse(rule: Any, family: Family, chain: str, comment: str) -> SpecJson | None:
    """The spec netlab would have written for this rule, or None when the rule
    holds anything netlab never writes."""
    source, destination = rule.src or "", rule.dst or ""
    inn, out = rule.in_interface or "", rule.out_interface or ""
    if source.startswith("!") or inn.startswith("!") or out.startswith("!"):
        return None
    protocol = rule.protocol if rule.protocol not in (None, "", "ip", "all", "0") else None
    dport: str | None = None
    dst_local = False
    for match in rule.matches:
        parameters = match.get_all_parameters()
        if match.name == "comment":
            continue
        if match.name == protocol and match.name in PROTOCOL_MATCHES and set(parameters) <= {"dport"}:
            dport = " ".join(parameters.get("dport", [])) or None
        elif match.name == "addrtype" and parameters == {"dst-type": ["LOCAL"]}:
            dst_local = True
        else:
            return None
    target = rule.target
    if target is None or target.name not in TARGET_PARAMETERS:
        return None
    parameters = target.get_all_parameters()
    if set(parameters) != set(TARGET_PARAMETERS[target.name]):
        return None
    to = " ".join(parameters[TARGET_PARAMETERS[target.name][0]]) if TARGET_PARAMETERS[target.name] else None
    negated = destination.startswith("!")
    return {
        "family": family,
        "chain": chain,
        "comment": comment,
        "target": target.name,
        "source": _network(source),
        "destination": None if negated else _network(destination),
        "not_destination": _network(destination[1:]) if negated else None,
        "in_interface": inn or None,
        "out_interface": out or None,
        "protocol": protocol,
        "dport": dport,
        "dst_local": dst_local,
        "to": to,
    }


def _render(rule: Any, family: Family, chain: str) -> str:
    """The rule as iptables-save prints it, close enough to name it and to tell
    two rules apart; a rule netlab would write renders as `RuleSpec.text()`."""
    comment = _comment(rule) or ""
    spec = _parse(rule, family, chain, comment)
    if spec is not None:
        return RuleSpec.from_json(spec).text()
    words = [f"-A {chain}"]
    for flag, value in (("-s", rule.src), ("-d", rule.dst), ("-i", rule.in_interface), ("-o", rule.out_interface)):
        if value and value not in ("0.0.0.0/0.0.0.0", "::/0"):
            words.append(f"! {flag} {value[1:]}" if value.startswith("!") else f"{flag} {value}")
    if rule.protocol not in (None, "", "ip", "all", "0"):
        words.append(f"-p {rule.protocol}")
    for match in rule.matches:
        words.append(f"-m {match.name}")
        for key, values in sorted(match.get_all_parameters().items()):
            words.append(" ".join([f"--{key}", *values]))
    if rule.target is not None:
        words.append(f"-j {rule.target.name}")
        for key, values in sorted(rule.target.get_all_parameters().items()):
            words.append(" ".join([f"--{key}", *values]))
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
