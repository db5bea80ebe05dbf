"""Reporting: how plans and live state are shown to people (text) and machines
(JSON). Called by the cli."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from netlab.controller.backends.netlink import NETLAB_ROUTE_PROTO
from netlab.controller.kinds import dns, hosts
from netlab.controller.kinds.contract import KernelReader
from netlab.controller.kinds.managed_files import etc_path, has_header
from netlab.controller.kinds.nat import rule_id, rule_of_key
from netlab.controller.kinds.route import route_name
from netlab.controller.planning import Plan
from netlab.state.errors import ConfigError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState

# The version of the JSON documents of `plan --json`, `show --json` and `status
# --json` (docs/json.md). A field added keeps it; a field renamed, removed or
# given another meaning raises it.
FORMAT_VERSION = 1


def plan_text(plan: Plan) -> str:
    if not plan:
        return "No changes: the kernel matches the files.\n"
    counts = plan.counts()
    lines = [str(change) for change in plan.changes]
    lines.append(f"Plan: {counts['+']} to add, {counts['~']} to change, {counts['-']} to remove.")
    return "\n".join(lines) + "\n"


def plan_json(plan: Plan) -> str:
    document = {"format_version": FORMAT_VERSION, "changes": [change.to_json() for change in plan.changes], "summary": plan.counts()}
    return json.dumps(document, indent=2) + "\n"


def plan_error_json(error: Exception, message: str) -> str:
    """What `plan --json` prints when there is no plan (and `show --json`,
    `status --json` when they fail): the error, and for
    invalid files each problem with its place (and `error` says how many)."""
    problems = error.problems if isinstance(error, ConfigError) else ()
    if problems:
        message = message.split("\n", 1)[0].rstrip(":")
    document = {
        "format_version": FORMAT_VERSION,
        "error": message,
        "problems": [
            {"file": p.file, "line": p.line, "column": p.column, "path": p.path, "message": p.message} for p in problems
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def live_state(desired: DesiredState, kernel: KernelReader, ledger: Ledger) -> dict[str, Any]:
    """The namespaces netlab manages as they are now, in the file format, each
    object with `owned: true` where netlab made it."""
    declared_links = {link.key: link for link in desired.links}
    owned_namespaces = {key[0] for key in ledger.keys("namespace")}
    names = sorted(({ns.name for ns in desired.namespaces} | owned_namespaces) & kernel.namespaces())
    document: dict[str, Any] = {"version": 1}
    document["namespaces"] = [{"name": name, "owned": name in owned_namespaces} for name in names]
    interfaces = []
    peer_ends: dict[tuple[str | None, str], dict[str, Any]] = {}
    routes = []
    for netns in [None, *names]:
        dump = kernel.dump(netns)
        addresses: dict[str, list[str]] = {}
        for address in dump.addresses:
            if not address.kernel_made and address.interface != "lo":
                addresses.setdefault(address.interface, []).append(address.address)
        for link in dump.links:
            key = (netns, link.name)
            owned = link.marked or ledger.owns("link", key)
            if link.name == "lo" or (netns is None and not owned and key not in declared_links):
                continue
            declared = declared_links.get(key)
            entry: dict[str, Any] = {"name": link.name}
            if netns is not None:
                entry["netns"] = netns
            # what the files did not declare is, in their terms, a device that exists
            entry["type"] = declared.type if declared else "device"
            if declared is not None and declared.parent is not None:
                entry["parent"] = declared.parent
            if declared is not None and declared.vlan_id is not None:
                entry["id"] = declared.vlan_id
            if declared is not None and declared.mode is not None:
                entry["mode"] = declared.mode
            entry.update(state=link.state, mtu=link.mtu, mac=link.mac)
            if link.master:
                entry["master"] = link.master
            if addresses.get(link.name):
                entry["addresses"] = addresses[link.name]
            if declared is not None and declared.peer_name:
                entry["peer"] = {"name": declared.peer_name}
                if declared.peer_netns is not None:
                    entry["peer"]["netns"] = declared.peer_netns
            entry["owned"] = owned
            if entry["type"] == "veth-peer":
                peer_ends[key] = entry  # shown under its veth's `peer`, as it is declared
            else:
                interfaces.append(entry)
        for route in dump.routes:
            if netns is None and route.proto != NETLAB_ROUTE_PROTO:
                continue
            entry = {"to": route_name(route.to, 254, 0).replace("default6", "default")}
            if netns is not None:
                entry["netns"] = netns
            if route.via:
                entry["via"] = route.via
            if route.dev:
                entry["dev"] = route.dev
            if route.metric:
                entry["metric"] = route.metric
            if route.table != 254:
                entry["table"] = route.table
            entry["owned"] = route.proto == NETLAB_ROUTE_PROTO
            routes.append(entry)
    for entry in interfaces:
        peer = entry.get("peer")
        found = peer_ends.pop((peer.get("netns"), peer["name"]), None) if peer else None
        if found is not None:
            peer.update((name, value) for name, value in found.items() if name not in ("name", "netns", "type", "peer", "owned"))
    for found in peer_ends.values():  # its veth end is not where the files put it
        found.pop("peer", None)
        interfaces.append({**found, "type": "device"})
    document["interfaces"] = interfaces
    document["routes"] = routes
    sysctl_keys = sorted({s.ident for s in desired.sysctls} | set(ledger.keys("sysctl")), key=repr)
    host_sysctls = _sysctl_values(kernel, None, [key for netns, key in sysctl_keys if netns is None])
    if host_sysctls:
        document["sysctls"] = host_sysctls
    for entry in document["namespaces"]:
        values = _sysctl_values(kernel, entry["name"], [key for netns, key in sysctl_keys if netns == entry["name"]])
        if values:
            entry["sysctls"] = values
    nat = _nat_rules(desired, kernel, ledger, [None, *names])
    if nat:
        document["nat"] = nat
    for netns, place in [(None, document), *((entry["name"], entry) for entry in document["namespaces"])]:
        resolver = _resolver(kernel, netns)
        if resolver:
            place["dns"] = resolver
        entries = _hosts_entries(kernel, netns)
        if entries:
            place["hosts"] = entries
    return document


def _sysctl_values(kernel: KernelReader, netns: str | None, keys: list[str]) -> dict[str, int | str]:
    """The sysctls as the files write them: a number as a number
    (`net.ipv4.ip_forward: 1`), several values as one string of words. A key
    the kernel does not have (a link's, before the link) is left out."""
    values: dict[str, int | str] = {}
    for key in keys:
        value = kernel.sysctl(netns, key)
        if value is None:
            continue
        words = " ".join(value.split())
        values[key] = int(words) if words.lstrip("-").isdigit() else words
    return values


NAT_FIELDS = ("source", "destination", "out_interface", "in_interface", "to_source", "protocol", "port", "to")


def _nat_rules(desired: DesiredState, kernel: KernelReader, ledger: Ledger, netns_shown: list[str | None]) -> list[dict[str, Any]]:
    """The NAT rules, declared or in the ledger, that are in the kernel now (found
    by the id in their comment in netlab's chains)."""
    rules = {rule.key: rule for rule in desired.nat}
    for key in ledger.keys("nat"):
        rule = rule_of_key(tuple(key))
        if rule is not None:
            rules.setdefault(rule.key, rule)
    live: dict[str | None, set[str]] = {}
    with_rules = {rule.netns for rule in rules.values()}
    for netns in netns_shown:
        if netns in with_rules and kernel.has_netns(netns) and kernel.legacy_nat_exists(netns):
            live[netns] = {found.ident for found in kernel.nat(netns).rules}
    shown = []
    for rule in rules.values():
        if rule_id(rule) not in live.get(rule.netns, set()):
            continue
        entry: dict[str, Any] = {"type": rule.type}
        if rule.netns is not None:
            entry["netns"] = rule.netns
        entry.update((name, getattr(rule, name)) for name in NAT_FIELDS if getattr(rule, name) is not None)
        entry["owned"] = True
        shown.append(entry)
    return shown


def _resolver(kernel: KernelReader, netns: str | None) -> dict[str, Any] | None:
    """The resolv.conf netlab wrote there (its header says so), as `dns:`."""
    state = kernel.file(etc_path(netns, dns.FILE_NAME))
    if not has_header(state):
        return None
    found = dns.settings(state.content)
    entry: dict[str, Any] = {name: value.split() for name, value in found.items() if value}
    return {**entry, "owned": True} if entry else None


def _hosts_entries(kernel: KernelReader, netns: str | None) -> list[dict[str, Any]]:
    """netlab's block of /etc/hosts, or the hosts file it wrote for a namespace
    (without the loopback lines it adds to one), as `hosts:`."""
    state = kernel.file(etc_path(netns, hosts.FILE_NAME))
    if state.content is None:
        return []
    if netns is None:
        try:
            block = hosts.find_block(state.content)
        except hosts.BlockError:
            return []  # markers broken by hand: the next pass says where
        content = state.content[block[0] : block[1]] if block else b""
    else:
        content = state.content if has_header(state) else b""
    loopback = {address: " ".join(names) for address, names in hosts.LOOPBACK}
    return [
        {"address": address, "names": names.split(), "owned": True}
        for address, names in hosts.entries_in(content).items()
        if netns is None or loopback.get(address) != names
    ]


def live_state_json(document: dict[str, Any]) -> str:
    """`show --json`: the document of `live_state` and the format's version (the
    YAML leaves that out, as it is not part of a desired-state file)."""
    return json.dumps({"format_version": FORMAT_VERSION, **document}, indent=2) + "\n"


def live_state_yaml(document: dict[str, Any]) -> str:
    """YAML in the file format; `owned` becomes a comment so the text can be
    pasted back into a file."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            owned = value.get("owned")
            result = CommentedMap((k, convert(v)) for k, v in value.items() if k != "owned")
            if owned is not None and result:
                result.yaml_add_eol_comment("owned by netlab" if owned else "not netlab's", next(iter(result)))
            return result
        if isinstance(value, list):
            seq = CommentedSeq(convert(v) for v in value)
            if value and all(not isinstance(v, (dict, list)) for v in value):
                seq.fa.set_flow_style()
            return seq
        return value

    yaml = YAML()
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(convert(document), out)
    return out.getvalue()


def daemon_status(path: Path) -> dict[str, Any]:
    """status.json as the daemon last wrote it, with whether that daemon still
    runs: `daemon` is "running" only while the process that wrote it is alive
    and is `netlab daemon`; "stopped" when it said it stopped, "dead" when it
    ended without saying so (crashed, killed), "not running" without a status,
    "unknown" when the status cannot be read. Carries `format_version` even when
    an older daemon wrote it."""
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {
            "format_version": FORMAT_VERSION,
            "daemon": "not running",
            "detail": f"{path} does not exist: the daemon has not run since boot",
        }
    except (OSError, ValueError) as error:
        return {"format_version": FORMAT_VERSION, "daemon": "unknown", "detail": f"cannot read {path}: {error}"}
    if not isinstance(status, dict):
        return {"format_version": FORMAT_VERSION, "daemon": "unknown", "detail": f"{path} is not a status document"}
    status = {"format_version": FORMAT_VERSION, **status}
    written = status.get("updated") or "at an unknown time"
    if status.get("daemon") == "running":
        pid = status.get("pid")
        if not isinstance(pid, int) or not is_alive(pid):
            status["daemon"] = "dead"
            status["detail"] = f"the daemon that wrote this status (process {pid}) is gone: it crashed or was killed"
        elif not is_netlab_daemon(pid):
            status["daemon"] = "dead"
            status["detail"] = f"the daemon that wrote this status is gone: process {pid} is not `netlab daemon` now, but another program"
    elif status.get("daemon") == "stopped":
        status["detail"] = "the daemon stopped (systemctl stop netlab, or SIGTERM)"
    if status.get("daemon") in ("dead", "stopped"):
        status["detail"] += f"; nothing is reconciling: what follows was written {written} and is history, not the health of the network now"
    return status


def is_netlab_daemon(pid: int) -> bool:
    """Whether the process runs `netlab daemon` (from its command line; where
    /proc hides it, a live process is taken at its word)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except PermissionError:
        return is_alive(pid)
    except OSError:
        return False
    return b"daemon" in words and any(b"netlab" in word for word in words)


def is_alive(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # 0 and -1 would ask about a process group, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemon_status_text(status: dict[str, Any]) -> str:
    lines = [f"daemon: {status.get('daemon')}"]
    if status.get("detail"):
        lines.append(f"  {status['detail']}")
    if "state" in status:
        if status.get("daemon") == "running":
            health = {
                "healthy": "healthy: the kernel matches the files",
                "degraded": "degraded: the files are invalid; the last good generation stays in force",
                "failing": "failing: the last apply failed",
                "starting": "starting: the first pass has not finished",
            }
            lines.append(f"state: {health.get(status['state'], status['state'])}")
        else:
            # no process stands behind it: the state is what was true then
            lines.append(f"last state, written {status.get('updated') or 'at an unknown time'}: {status['state']}")
    generation = status.get("generation")
    if generation:
        lines.append(f"generation: {generation['number']} ({generation['digest']}, from {generation['source']}), files: {', '.join(Path(f).name for f in generation['files']) or 'none'}")
    last = status.get("last_apply")
    if last:
        lines.append(f"last apply: {last['time']} ({last['reason']}), {last['changes']} changes in {last['duration_ms']} ms")
    error = status.get("last_error")
    if error and status.get("state") != "healthy":
        lines.append(f"last error ({error['time']}):")
        lines.extend(f"  {line}" for line in error["message"].splitlines())
    for writer in status.get("waiting_for_writers") or []:
        held = f" (process {writer['pid']})" if writer.get("pid") else ""
        lines.append(f"waiting: {writer['file']}{held} is open for writing; the files are read once it is closed")
    for held in status.get("backing_off") or []:
        lines.append(f"backing off: {held['kind']} {held['netns']}/{held['name']} until {held['until']}: {held['detail']}")
    if "drift_repairs" in status:
        lines.append(f"drift repairs: {status['drift_repairs']}")
    if "objects_owned" in status:
        lines.append(f"objects owned: {status['objects_owned']}")
    return "\n".join(lines) + "\n"
