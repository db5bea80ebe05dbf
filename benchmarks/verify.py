"""Checks, inside a sandbox, that the benchmark topology is there and works, by
asking the kernel directly (rtnetlink dumps over raw sockets, no pyroute2: a
judge independent of the tools it judges) and by pinging across it.

usage (inside the sandbox): verify.py N [--edited K] [--nat] [--dns]
Prints one JSON object: {"ok": bool, "problems": [...], "counts": {...}}.
Run by `benchmarks/run` after every apply; stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rtnetlink as nl  # noqa: E402
from topology import GATEWAY, NAMESERVER, SUBNET, Topology, bridge, bridge_address, bridge_of, gateway  # noqa: E402


def observe(sock: socket.socket) -> dict[str, object]:
    """Links {name: (flags, master name)}, IPv4 addresses {name: [a/len]}, main-table
    IPv4 default routes [(gateway, dev)]."""
    links, names, masters = {}, {}, {}
    link_header = struct.pack(nl.IFINFOMSG, socket.AF_UNSPEC, 0, 0, 0, 0)
    for message in nl.dump(sock, nl.RTM_GETLINK, link_header):
        _, _, index, flags, _ = struct.unpack_from(nl.IFINFOMSG, message, 16)
        attrs = nl.attributes(message, 16 + len(link_header), len(message))
        name = attrs[nl.IFLA_IFNAME].rstrip(b"\0").decode()
        names[index] = name
        links[name] = flags
        if nl.IFLA_MASTER in attrs:
            masters[name] = struct.unpack("I", attrs[nl.IFLA_MASTER])[0]
    addresses: dict[str, list[str]] = {}
    for message in nl.dump(sock, nl.RTM_GETADDR, struct.pack(nl.IFADDRMSG, socket.AF_INET, 0, 0, 0, 0)):
        found = nl.ipv4_address(message)
        if found:
            addresses.setdefault(names.get(found[0], "?"), []).append(found[1])
    defaults = []
    for message in nl.dump(sock, nl.RTM_GETROUTE, struct.pack(nl.RTMSG, socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
        route = nl.main_default_route(message)
        if route:
            gateway, oif = route
            defaults.append((gateway, names.get(oif) if oif is not None else None))
    return {
        "links": links,
        "masters": {name: names.get(index) for name, index in masters.items()},
        "addresses": addresses,
        "defaults": defaults,
    }


def _up(flags: int) -> bool:
    return bool(flags & nl.IFF_UP) and bool(flags & nl.IFF_LOWER_UP)


def verify(topology: Topology, edited: bool) -> dict[str, object]:
    n = topology.n
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < 20:
            problems.append(text if len(text) <= 300 else text[:300] + "…")

    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        problem("forwarding is off")
    namespaces = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    if len(namespaces) != n:
        problem(f"{len(namespaces)} namespaces, not {n}")

    with nl.open_socket() as sock:
        root = observe(sock)
    links = root["links"]
    assert isinstance(links, dict)
    bridges = [bridge(k) for k in topology.bridges]
    if len(links) != n + 1 + len(bridges):
        problem(
            f"{len(links)} links in the root namespace, not {n + 1 + len(bridges)} (lo, {', '.join(bridges)}, vh1..vh{n})"
        )
    for k in topology.bridges:
        if not links.get(bridge(k), 0) & nl.IFF_UP:
            problem(f"{bridge(k)} is missing or down")
        if bridge_address(k) not in root["addresses"].get(bridge(k), []):  # type: ignore[attr-defined]
            problem(f"{bridge(k)} lacks {bridge_address(k)}")
    ports_up = sum(
        1
        for i in range(1, n + 1)
        if _up(links.get(f"vh{i}", 0)) and root["masters"].get(f"vh{i}") == bridge(bridge_of(i))  # type: ignore[attr-defined]
    )
    if ports_up != n:
        problem(f"{ports_up} of {n} bridge ports are up in their bridges")

    namespaces_right = 0
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        for i in range(1, n + 1):
            try:
                fd = os.open(f"/run/netns/ns{i}", os.O_RDONLY)
            except FileNotFoundError:
                problem(f"ns{i} is missing")
                continue
            try:
                nl.setns(fd)
                with nl.open_socket() as sock:
                    seen = observe(sock)
            finally:
                os.close(fd)
                nl.setns(own)
            wrong = []
            ns_links = seen["links"]
            assert isinstance(ns_links, dict)
            if sorted(ns_links) != ["eth0", "lo"]:
                wrong.append(f"links {sorted(ns_links)}")
            if not ns_links.get("lo", 0) & nl.IFF_UP:
                wrong.append("lo down")
            if not _up(ns_links.get("eth0", 0)):
                wrong.append("eth0 not up")
            want = topology.address(i, edited)
            if seen["addresses"].get("eth0") != [want]:  # type: ignore[attr-defined]
                wrong.append(f"eth0 has {seen['addresses'].get('eth0')}, not [{want}]")  # type: ignore[attr-defined]
            if seen["defaults"] != [(gateway(i), "eth0")]:
                wrong.append(f"default routes {seen['defaults']}")
            if topology.dns:
                try:
                    text = Path(f"/etc/netns/ns{i}/resolv.conf").read_text()
                except FileNotFoundError:
                    text = ""
                if f"nameserver {NAMESERVER}" not in text.split("\n"):
                    wrong.append("no resolv.conf naming the nameserver")
            if wrong:
                problem(f"ns{i}: {'; '.join(wrong)}")
            else:
                namespaces_right += 1
    finally:
        os.close(own)

    if topology.nat:
        rules = masquerade_rules(SUBNET)
        if len(rules) != 1:
            problem(
                f"{len(rules)} masquerade rules for {SUBNET} in the nat tables (nftables and legacy), not 1: {rules}"
            )

    first, last = topology.address(1, edited).split("/")[0], topology.address(n, edited).split("/")[0]
    pings = [("ns1", last), (f"ns{n}", first), ("ns1", GATEWAY)]
    for source, target in pings:
        ping = subprocess.run(
            ["ip", "netns", "exec", source, "ping", "-q", "-c", "1", "-W", "2", target], capture_output=True
        )
        if ping.returncode != 0:
            problem(f"ping {source} -> {target} failed")
    return {
        "ok": not problems,
        "problems": problems,
        "counts": {
            "namespaces": len(namespaces),
            "root_links": len(links),
            "ports_up": ports_up,
            "namespaces_right": namespaces_right,
        },
    }


def masquerade_rules(subnet: str) -> list[str]:
    """The masquerade rules for `subnet`, wherever a tool put them: nftables
    (netlab's own table, or iptables-nft's `ip nat`) and the legacy nat table
    (read only where it exists: iptables-legacy-save would create it)."""
    listed = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    found = [line.strip() for line in listed.splitlines() if f"ip saddr {subnet}" in line and "masquerade" in line]
    if "nat" in Path("/proc/net/ip_tables_names").read_text().split():
        saved = subprocess.run(["iptables-legacy-save", "-t", "nat"], capture_output=True, text=True).stdout
        found += [
            line
            for line in saved.splitlines()
            if line.startswith("-A") and f"-s {subnet}" in line and "MASQUERADE" in line
        ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?")
    parser.add_argument("--masquerade-rules", action="store_true", help="only list the masquerade rules for the subnet")
    parser.add_argument("--edited", action="store_true", help="expect the edited address in the middle namespace")
    parser.add_argument("--nat", action="store_true")
    parser.add_argument("--dns", action="store_true")
    args = parser.parse_args()
    if args.masquerade_rules:
        print(json.dumps(masquerade_rules(SUBNET)))
        return
    print(json.dumps(verify(Topology(args.n, nat=args.nat, dns=args.dns), args.edited)))


if __name__ == "__main__":
    main()
