"""The nftables NAT backend: netlab's rules in tables of its own, `ip netlab`
(IPv4) and `ip6 netlab` (IPv6), written through libnftables' JSON API (the
`nftables` Python binding over the system's libnftables.so.1). Called by the nat
kind, through the Kernel, in place of `iptables` when nftables is the backend.

The tables are netlab's alone: their base chains `postrouting` (type nat, hook
postrouting, priority srcnat), `prerouting` (dstnat) and `output` (the host's
own connections to a forwarded port, priority -100) stand for the legacy
backend's NETLAB-* chains, and whatever else is found in them (a rule without
netlab's comment, a chain netlab never makes) is removed. No other table is
ever listed, changed or flushed: other tools' rules can fail to parse.

A namespace's writes of a pass are one `json_cmd`: one netlink batch, which the
kernel applies whole or not at all. libnftables binds its socket in the
namespace of the thread that makes its context, so every call makes a context
in the namespace thread (~0.4 ms) and drops it there.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from netlab.controller.backends import namespaces
from netlab.controller.backends.iptables import OWN_TABLE, NatOp, NatTables, ObservedChain, ObservedNatRule
from netlab.controller.backends.nat_rules import RULE_COMMENT_PREFIX, Family, RuleSpec, Target
from netlab.state.errors import KernelRefused

TABLE = OWN_TABLE
FAMILIES: dict[Family, str] = {4: "ip", 6: "ip6"}
# netlab's chain (the legacy backend's name) -> its base chain here: name, hook, priority
BASE_CHAINS: dict[str, tuple[str, str, int]] = {
    "NETLAB-POSTROUTING": ("postrouting", "postrouting", 100),  # srcnat
    "NETLAB-PREROUTING": ("prerouting", "prerouting", -100),  # dstnat
    "NETLAB-OUTPUT": ("output", "output", -100),
}
_NETLAB_CHAIN = {nft_name: chain for chain, (nft_name, _, _) in BASE_CHAINS.items()}
_NFT_TARGETS: dict[str, Target] = {"masquerade": "MASQUERADE", "snat": "SNAT", "dnat": "DNAT"}
_ERRNO_WORDS = {
    "No such file or directory": errno.ENOENT,
    "Device or resource busy": errno.EBUSY,
    "File exists": errno.EEXIST,
    "Operation not supported": errno.EOPNOTSUPP,
    "Protocol not supported": errno.EPROTONOSUPPORT,
    "Operation not permitted": errno.EPERM,
    "Invalid argument": errno.EINVAL,
}

T = TypeVar("T")
Command = dict[str, Any]


# -- the library ------------------------------------------------------------------


def unavailable() -> str | None:
    """Why this backend cannot work here (None: it can): the binding or the
    library missing, or a kernel without nf_tables. Asks the kernel for
    netlab's IPv4 table only."""
    try:
        import nftables  # noqa: F401  (the binding: Debian's python3-nftables)
    except ImportError:
        return "the Python binding of libnftables (Debian python3-nftables) is not installed"
    try:
        code, _, error = _run(None, lambda nft: _table_flagged(nft, 4))
    except OSError as problem:
        return f"libnftables cannot be loaded ({problem}); install Debian libnftables1"
    if code != 0 and _errno_of(error) != errno.ENOENT:
        return f"the kernel refuses nftables: {_first_line(error)}"
    return None


def _run(netns: str | None, work: Callable[[Any], T]) -> T:
    """`work(context)` with a libnftables context made in the namespace."""

    def in_namespace() -> T:
        import nftables

        nft = nftables.Nftables()
        nft.set_json_output(True)
        nft.set_handle_output(True)
        return work(nft)

    return namespaces.run_in(netns, in_namespace)


def _json_cmd(nft: Any, commands: list[Command]) -> tuple[int, dict[str, Any] | None, str]:
    """Runs JSON commands; the output parsed, or None where it is not JSON.
    (The binding's own `json_cmd` raises there: nftables 1.0.6 prints a
    table's flags from freed memory, which may be any bytes.)"""
    code, text, error = nft.cmd(json.dumps({"nftables": commands}))
    try:
        output = json.loads(text) if text else {}
    except ValueError:
        return code, None, error or ""
    return code, output if isinstance(output, dict) else {}, error or ""


def _table_flagged(nft: Any, family: Family) -> tuple[int, bool, str]:
    """Whether netlab's table has flags, from its listing as text. Never from
    JSON: nftables 1.0.6 prints a table's flags in JSON from freed memory
    (any bytes, and at times a corrupted heap: the process aborts)."""
    nft.set_json_output(False)
    try:
        code, text, error = nft.cmd(f"list table {FAMILIES[family]} {TABLE}")
    finally:
        nft.set_json_output(True)
    # `\tflags ...` at the table's depth (a set's or flowtable's are deeper),
    # after the header `table ip netlab { # handle 7`
    return code, re.search(r"^\tflags ", text or "", re.MULTILINE) is not None, error or ""


def _errno_of(error: str) -> int:
    for words, code in _ERRNO_WORDS.items():
        if words in error:
            return code
    return errno.EINVAL


def _first_line(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    text = lines[0] if lines else "no reason given"
    return re.sub(r"^internal:0:0-0: ", "", text)


def _where(netns: str | None) -> str:
    return "nftables nat in " + ("host" if netns is None else netns)


# -- reading ----------------------------------------------------------------------


def _list_table(family: Family) -> Command:
    return {"list": {"table": {"family": FAMILIES[family], "name": TABLE}}}


def dump(netns: str | None) -> NatTables:
    return _run(netns, lambda nft: _read(nft, netns).tables)


# what netlab's table may hold besides chains and rules: removed, by name
OBJECT_KINDS = (
    "set",
    "map",
    "element",
    "flowtable",
    "counter",
    "quota",
    "ct helper",
    "limit",
    "ct timeout",
    "ct expectation",
    "synproxy",
    "secmark",
)
OBJECT_PREFIX = "nft-object:"  # the "chain" of an object in `NatTables` (`ObservedNatRule`)
FOREIGN_PREFIX = "nft:"  # a chain netlab never makes, by its nftables name: never one of netlab's


@dataclass
class _Read:
    """What netlab's tables hold: as the planner sees them (`tables`), each
    chain's rules as (handle, comment, text) for deleting by handle, the chains
    hooked otherwise than netlab hooks them (made anew), and the families whose
    table someone gave flags, dormant among them (made anew, whole)."""

    tables: NatTables
    handles: dict[tuple[Family, str], list[tuple[int, str, str]]]
    rehook: set[tuple[Family, str]]
    dormant: set[Family]


def _read(nft: Any, netns: str | None) -> _Read:
    chains: list[ObservedChain] = []
    rules: list[ObservedNatRule] = []
    handles: dict[tuple[Family, str], list[tuple[int, str, str]]] = {}
    rehook: set[tuple[Family, str]] = set()
    dormant: set[Family] = set()
    for family in (4, 6):
        code, flagged, error = _table_flagged(nft, family)
        output: dict[str, Any] | None = {}
        if code == 0 and not flagged:
            code, output, error = _json_cmd(nft, [_list_table(family)])
        if code != 0:
            if _errno_of(error) == errno.ENOENT:
                continue  # no table: nothing of netlab's in this family
            raise KernelRefused(
                _where(netns), _errno_of(error), f"cannot list table {FAMILIES[family]} {TABLE}: {_first_line(error)}"
            )
        items = [] if output is None else output.get("nftables", [])
        if flagged or output is None or any("flags" in item["table"] for item in items if "table" in item):
            # flags netlab never sets: `dormant` switches the table off. The
            # table is made anew, with all of netlab's rules, as if none were there
            dormant.add(family)
            continue
        broken: set[str] = set()
        for item in items:
            if "chain" in item:
                chain, hooked = _observed_chain(family, item["chain"])
                chains.append(chain)
                if hooked == "rehook":
                    broken.add(chain.name)
                    rehook.add((family, chain.name))
            elif "rule" in item:
                rule = item["rule"]
                chain_name = _chain_name(str(rule.get("chain")))
                if chain_name in broken:
                    continue  # goes with its chain, and is written anew
                comment = rule.get("comment") or ""
                if not comment.startswith(RULE_COMMENT_PREFIX):
                    comment = ""  # not netlab's: in netlab's own table, removed
                spec = parse(family, chain_name, comment, rule.get("expr", [])) if comment else None
                text = text_of(spec) if spec is not None else _raw_text(rule)
                rules.append(ObservedNatRule(family, chain_name, comment, text, spec))
                handles.setdefault((family, chain_name), []).append((int(rule["handle"]), comment, text))
            else:
                for kind in OBJECT_KINDS:
                    if kind in item and isinstance(item[kind], dict) and "name" in item[kind]:
                        name = str(item[kind]["name"])
                        chain_name = f"{OBJECT_PREFIX}{kind}"
                        rules.append(ObservedNatRule(family, chain_name, "", f"{kind} {name}", None))
                        handles.setdefault((family, chain_name), []).append((0, name, f"{kind} {name}"))
    return _Read(NatTables(tuple(chains), tuple(rules)), handles, rehook, dormant)


def _chain_name(nft_name: str) -> str:
    """netlab's name of a chain of its table: NETLAB-POSTROUTING for
    `postrouting`; another chain by its nftables name, marked (`nft:extra`)
    so that no name someone picks is taken for one of netlab's."""
    return _NETLAB_CHAIN.get(nft_name, FOREIGN_PREFIX + nft_name)


def nft_chain_name(chain: str) -> str:
    """The nftables name of a chain of netlab's table (`_chain_name` undone)."""
    return BASE_CHAINS[chain][0] if chain in BASE_CHAINS else chain.removeprefix(FOREIGN_PREFIX)


def _observed_chain(family: Family, chain: dict[str, Any]) -> tuple[ObservedChain, str]:
    """A chain of netlab's table, and how it is hooked: "right" (type nat, its
    hook and priority, policy accept: `jumps` 1), "policy" (only the policy
    differs: put right in place) or "rehook" (another type, hook or priority,
    which the kernel cannot change: deleted and made anew) (`jumps` 0 for both)."""
    name = _chain_name(str(chain.get("name", "")))
    if name not in BASE_CHAINS:
        return ObservedChain(family, name, foreign_rules=0, jumps=0), "foreign"
    _, hook, priority = BASE_CHAINS[name]
    if (chain.get("type"), chain.get("hook"), chain.get("prio")) != ("nat", hook, priority):
        return ObservedChain(family, name, foreign_rules=0, jumps=0), "rehook"
    right = chain.get("policy") == "accept"
    return ObservedChain(family, name, foreign_rules=0, jumps=int(right)), "right" if right else "policy"


def _raw_text(rule: dict[str, Any]) -> str:
    comment = f" comment {json.dumps(rule['comment'])}" if rule.get("comment") else ""
    return json.dumps(rule.get("expr", []), separators=(",", ":"), sort_keys=True) + comment


# -- rules as nftables expressions -------------------------------------------------


def _match(left: dict[str, Any], right: Any, op: str = "==") -> Command:
    return {"match": {"op": op, "left": left, "right": right}}


def _address(family: Family, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": FAMILIES[family], "field": field}}


def _network_value(network: str) -> Any:
    """A network as nftables writes it back: a host's address plain, else a prefix."""
    parsed = ipaddress.ip_network(network, strict=False)
    if parsed.prefixlen == parsed.max_prefixlen:
        return str(parsed.network_address)
    return {"prefix": {"addr": str(parsed.network_address), "len": parsed.prefixlen}}


def _port_value(dport: str) -> Any:
    first, _, last = dport.partition(":")
    return {"range": [int(first), int(last)]} if last else int(first)


def _interface_value(name: str) -> str:
    """An interface as iptables reads it (a final `+` matches every name that
    begins so; anything else as written), in nftables' words (a final `*`
    for that; a `*` of the name itself escaped)."""
    escaped = name.replace("*", "\\*")
    return escaped[:-1] + "*" if escaped.endswith("+") else escaped


def _interface_name(value: str) -> str:
    """`_interface_value` undone."""
    if value.endswith("*") and not value.endswith("\\*"):
        value = value[:-1] + "+"
    return value.replace("\\*", "*")


def _split_target(to: str) -> tuple[str, int | None]:
    """`10.0.0.2:80`, `10.0.0.2`, `[2001:db8::2]:80`, `2001:db8::2` -> address, port."""
    if to.startswith("["):
        address, _, port = to[1:].partition("]:")
        return address, int(port) if port else None
    if to.count(":") == 1:
        address, _, port = to.partition(":")
        return address, int(port)
    return to, None


def expressions(spec: RuleSpec) -> list[Command]:
    """The rule's expressions, in the order nftables lists them back."""
    family = spec.family
    exprs: list[Command] = []
    if spec.source:
        exprs.append(_match(_address(family, "saddr"), _network_value(spec.source)))
    if spec.destination:
        exprs.append(_match(_address(family, "daddr"), _network_value(spec.destination)))
    if spec.not_destination:
        exprs.append(_match(_address(family, "daddr"), _network_value(spec.not_destination), "!="))
    if spec.in_interface:
        exprs.append(_match({"meta": {"key": "iifname"}}, _interface_value(spec.in_interface)))
    if spec.out_interface:
        exprs.append(_match({"meta": {"key": "oifname"}}, _interface_value(spec.out_interface)))
    if spec.dst_local:
        exprs.append(_match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"))
    if spec.protocol and spec.dport:
        exprs.append(_match({"payload": {"protocol": spec.protocol, "field": "dport"}}, _port_value(spec.dport)))
    elif spec.protocol:
        exprs.append(_match({"meta": {"key": "l4proto"}}, spec.protocol))
    if spec.target == "MASQUERADE":
        exprs.append({"masquerade": None})
    elif spec.target == "SNAT":
        exprs.append({"snat": {"addr": spec.to}})
    else:
        address, port = _split_target(spec.to or "")
        exprs.append({"dnat": {"addr": address} | ({"port": port} if port is not None else {})})
    return exprs


def parse(family: Family, chain: str, comment: str, exprs: list[Command]) -> RuleSpec | None:
    """The spec netlab would have written for these expressions, or None when
    they hold anything netlab never writes. Written back from the spec, they
    are the same expressions (`expressions`): that is the test."""
    fields: dict[str, Any] = {}
    target: Target | None = None
    to: str | None = None
    for expr in exprs:
        if target is not None:
            return None  # nothing comes after the verdict
        if "match" in expr:
            if not _parse_match(family, expr["match"], fields):
                return None
            continue
        (name, value), *more = expr.items() if isinstance(expr, dict) and expr else ((None, None),)
        if more or name not in _NFT_TARGETS:
            return None
        target = _NFT_TARGETS[name]
        to = _parse_to(family, name, value)
        if name != "masquerade" and to is None:
            return None
    if target is None:
        return None
    try:
        spec = RuleSpec(family, chain, comment, target, to=to, **fields)
    except TypeError:
        return None
    return spec if expressions(spec) == exprs else None


def _parse_match(family: Family, match: dict[str, Any], fields: dict[str, Any]) -> bool:
    left, right, op = match.get("left"), match.get("right"), match.get("op")
    if not isinstance(left, dict):
        return False
    payload, meta, fib = left.get("payload"), left.get("meta"), left.get("fib")
    if isinstance(payload, dict) and payload.get("protocol") == FAMILIES[family]:
        network = _parse_network(family, right)
        field = {("saddr", "=="): "source", ("daddr", "=="): "destination", ("daddr", "!="): "not_destination"}.get(
            (str(payload.get("field")), str(op))
        )
        if network is None or field is None or field in fields:
            return False
        fields[field] = network
        return True
    if op != "==":
        return False
    if (
        isinstance(payload, dict)
        and payload.get("field") == "dport"
        and payload.get("protocol") in ("tcp", "udp", "sctp")
    ):
        port = _parse_port(right)
        if port is None or "protocol" in fields:
            return False
        fields["protocol"], fields["dport"] = payload["protocol"], port
        return True
    if isinstance(meta, dict) and isinstance(right, str):
        field = {"iifname": "in_interface", "oifname": "out_interface", "l4proto": "protocol"}.get(str(meta.get("key")))
        if field is None or field in fields:
            return False
        fields[field] = right if field == "protocol" else _interface_name(right)
        return True
    if fib == {"result": "type", "flags": ["daddr"]} and right == "local":
        fields["dst_local"] = True
        return True
    return False


def _parse_network(family: Family, value: Any) -> str | None:
    try:
        if isinstance(value, str):
            network = ipaddress.ip_network(value)
        elif isinstance(value, dict) and isinstance(value.get("prefix"), dict):
            prefix = value["prefix"]
            network = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}")
        else:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return str(network) if network.version == family else None


def _parse_port(value: Any) -> str | None:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("range"), list) and len(value["range"]) == 2:
        first, last = value["range"]
        if isinstance(first, int) and isinstance(last, int):
            return f"{first}:{last}"
    return None


def _parse_to(family: Family, name: str, value: Any) -> str | None:
    if name == "masquerade":
        return None if value is None else "?"  # options netlab never writes
    if not isinstance(value, dict) or set(value) - {"addr", "port"} or not isinstance(value.get("addr"), str):
        return None
    address: str = value["addr"]
    port = value.get("port")
    if port is None:
        return address
    if name == "snat" or not isinstance(port, int):
        return None
    return f"[{address}]:{port}" if family == 6 else f"{address}:{port}"


def text_of(spec: RuleSpec) -> str:
    """The rule as `nft list table` prints it (its chain first), to name it and
    to tell two rules apart."""
    family = FAMILIES[spec.family]
    words = [f"{nft_chain_name(spec.chain)}:"]
    options = (
        (f"{family} saddr", spec.source),
        (f"{family} daddr", spec.destination),
        (f"{family} daddr !=", spec.not_destination),
        ("iifname", spec.in_interface and f'"{_interface_value(spec.in_interface)}"'),
        ("oifname", spec.out_interface and f'"{_interface_value(spec.out_interface)}"'),
    )
    words += [f"{key} {value}" for key, value in options if value]
    if spec.dst_local:
        words.append("fib daddr type local")
    if spec.protocol and spec.dport:
        words.append(f"{spec.protocol} dport {spec.dport.replace(':', '-')}")
    elif spec.protocol:
        words.append(f"meta l4proto {spec.protocol}")
    words.append({"MASQUERADE": "masquerade", "SNAT": f"snat to {spec.to}", "DNAT": f"dnat to {spec.to}"}[spec.target])
    words.append(f"comment {json.dumps(spec.comment)}")
    return " ".join(words)


# -- writing ----------------------------------------------------------------------


def change(netns: str | None, ops: list[NatOp]) -> None:
    """Runs a batch as one nftables transaction. Rules are deleted by their
    handle, read just before; a rule to delete that is gone already is no
    work. Raises KernelRefused with what nftables said; then nothing changed."""
    if not ops:
        return

    def work(nft: Any) -> None:
        commands = _commands(_read(nft, netns), ops)
        if commands:
            code, _, error = _json_cmd(nft, commands)
            if code != 0:
                raise KernelRefused(_where(netns), _errno_of(error), _first_line(error))

    _run(netns, work)


def _commands(before: _Read, ops: list[NatOp]) -> list[Command]:
    chains: dict[Family, set[str]] = {4: set(), 6: set()}
    for chain in before.tables.chains:
        chains[chain.family].add(chain.name)
    tables = {family for family, names in chains.items() if names} | before.dormant
    taken: set[tuple[Family, str, int]] = set()
    commands: list[Command] = []
    for remade in sorted(before.dormant):
        # made anew: its chains come back with the ensure-chain ops (the planner saw none)
        commands.append({"delete": {"table": {"family": FAMILIES[remade], "name": TABLE}}})
        tables.discard(remade)
    for op in ops:
        family = FAMILIES[op.family]
        nft_chain = nft_chain_name(op.chain)
        where = {"family": family, "table": TABLE}
        if op.action == "ensure-chain":
            if op.family not in tables:
                commands.append({"add": {"table": {"family": family, "name": TABLE}}})
                tables.add(op.family)
            if (op.family, op.chain) in before.rehook:
                # another type, hook or priority: the kernel changes none in place
                commands.append({"delete": {"chain": where | {"name": nft_chain}}})
            made: Command = where | {"name": nft_chain}
            if op.chain in BASE_CHAINS:
                _, hook, priority = BASE_CHAINS[op.chain]
                made |= {"type": "nat", "hook": hook, "prio": priority, "policy": "accept"}
            commands.append({"add": {"chain": made}})
            chains[op.family].add(op.chain)
        elif op.action == "add" and op.spec is not None:
            rule = where | {"chain": nft_chain, "expr": expressions(op.spec), "comment": op.spec.comment}
            commands.append({"add": {"rule": rule}})
        elif op.action == "delete":
            for handle, comment, text in before.handles.get((op.family, op.chain), []):
                if (op.family, op.chain, handle) in taken or text != op.text:
                    continue
                if op.chain.startswith(OBJECT_PREFIX):  # an object: by its name (`comment` carries it)
                    taken.add((op.family, op.chain, handle))
                    kind = op.chain.removeprefix(OBJECT_PREFIX)
                    commands.append({"delete": {kind: where | {"name": comment}}})
                    break
                if comment == (op.comment or ""):
                    taken.add((op.family, op.chain, handle))
                    commands.append({"delete": {"rule": where | {"chain": nft_chain, "handle": handle}}})
                    break
        elif op.action == "remove-chain" and op.chain in chains[op.family]:
            commands.append({"delete": {"chain": where | {"name": nft_chain}}})
            chains[op.family].discard(op.chain)
            if not chains[op.family]:  # the table goes with netlab's last chain in it
                commands.append({"delete": {"table": {"family": family, "name": TABLE}}})
                tables.discard(op.family)
    return commands


# -- other tools' chains, for what may defeat netlab's NAT -------------------------


@dataclass(frozen=True)
class HookedChain:
    """A base chain of another tool's table, as `list chains` gives it (no rules)."""

    family: str
    table: str
    name: str
    type: str
    hook: str
    priority: int
    policy: str

    def __str__(self) -> str:
        return f"{self.family} {self.table} {self.name}"


def hooked_chains_of_others(netns: str | None) -> tuple[HookedChain, ...]:
    """The base chains of every table but netlab's: their hooks and policies,
    listed without their rules (nothing of theirs is parsed). Empty where
    nftables cannot be used."""

    def work(nft: Any) -> tuple[HookedChain, ...]:
        code, output, _ = _json_cmd(nft, [{"list": {"chains": {}}}])
        if code != 0 or output is None:
            return ()
        found = []
        for item in output.get("nftables", []):
            chain = item.get("chain")
            if not chain or "hook" not in chain:
                continue
            if chain.get("table") == TABLE and chain.get("family") in FAMILIES.values():
                continue  # netlab's own (another tool's `inet netlab` is theirs)
            found.append(
                HookedChain(
                    str(chain.get("family")),
                    str(chain.get("table")),
                    str(chain.get("name")),
                    str(chain.get("type")),
                    str(chain.get("hook")),
                    int(chain.get("prio") or 0),
                    str(chain.get("policy", "accept")),
                )
            )
        return tuple(found)

    return _run(netns, work)
