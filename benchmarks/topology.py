"""The benchmark's one topology, written for every tool: a netlab file, an
iproute2 batch, a shell script of `ip` commands and an ifstate file, plus the
edited versions (one address changed). Called by `benchmarks/run`; stdlib only.

A bridge `br0` (10.0.0.1/16) in the root namespace; N namespaces `ns1..nsN`, each
with a veth whose inner end `eth0` is addressed and up and whose outer end `vhI`
is a port of br0; a default route in each via 10.0.0.1; forwarding on; and, when
netlab has the kinds for them, one masquerade rule and a resolv.conf per namespace.
A Linux bridge takes at most 1024 ports (BR_MAX_PORTS): above 1000 namespaces,
each thousand has a bridge of its own, `brK` with 10.K.0.1/16, and the host
routes between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "br0"
BRIDGE_ADDRESS = "10.0.0.1/16"
GATEWAY = "10.0.0.1"
SUBNET = "10.0.0.0/16"
NAMESERVER = "10.0.0.1"
PORTS_PER_BRIDGE = 1000
REMOVAL_WAYS = ("one", "netns", "group")  # the baselines of removing it all (`Topology.remove_sh`)
# the end of a removal: the kernel shows no veth left on the host
UNTIL_GONE = "until [ \"$(ip -o link show | grep -c ' vh')\" = 0 ]; do sleep 0.005; done"


def bridge_of(i: int) -> int:
    """The bridge of ns_i's veth: br0 for ns1..ns1000, br1 for the next thousand..."""
    return (i - 1) // PORTS_PER_BRIDGE


def bridge(k: int) -> str:
    return f"br{k}"


def bridge_address(k: int) -> str:
    return f"10.{k}.0.1/16"


def gateway(i: int) -> str:
    """ns_i's default gateway: its bridge's address."""
    return f"10.{bridge_of(i)}.0.1"


def address(i: int) -> str:
    """ns_i's address: 10.0.0.3, 10.0.0.4, ... (at most 250 per /24, within its
    bridge's /16)."""
    k = bridge_of(i)
    j = i - k * PORTS_PER_BRIDGE
    return f"10.{k}.{j // 250}.{j % 250 + 2}/16"


def edited_address(i: int) -> str:
    return f"10.{bridge_of(i)}.255.3/16"


def _ifstate_veth(indent: str, peer: str, peer_netns: str, master: str | None = None) -> list[str]:
    """The `link:` block of one veth end in an ifstate file, up."""
    lines = ["link:", "  kind: veth", f"  peer: {peer}", f"  peer_netns: {peer_netns}"]
    if master is not None:
        lines.append(f"  master: {master}")
    return [indent + line for line in [*lines, "  state: up"]]


@dataclass(frozen=True)
class Topology:
    n: int
    nat: bool  # one masquerade rule: the host's `iptables` (iptables-nft on Debian 12); netlab's own choice
    dns: bool  # /etc/netns/nsI/resolv.conf

    @property
    def edited(self) -> int:
        """The namespace whose address the one-change measure edits: the middle one."""
        return (self.n + 1) // 2

    def address(self, i: int, edited: bool = False) -> str:
        return edited_address(i) if edited and i == self.edited else address(i)

    @property
    def bridges(self) -> range:
        return range(bridge_of(self.n) + 1)

    # -- netlab --------------------------------------------------------------------

    def netlab_yaml(self, edited: bool = False) -> str:
        lines = ["# netlab benchmark topology, written by benchmarks/topology.py", "version: 1", "namespaces:"]
        for i in range(1, self.n + 1):
            lines.append(f"  - name: ns{i}")
            if self.dns:
                lines.append(f"    dns: {{nameservers: [{NAMESERVER}]}}")
        lines.append("interfaces:")
        for k in self.bridges:
            lines.append(f"  - {{name: {bridge(k)}, type: bridge, addresses: [{bridge_address(k)}]}}")
        for i in range(1, self.n + 1):
            lines.append(
                f"  - {{name: eth0, type: veth, netns: ns{i}, addresses: [{self.address(i, edited)}], "
                f"peer: {{name: vh{i}, master: {bridge(bridge_of(i))}}}}}"
            )
        lines.append("routes:")
        for i in range(1, self.n + 1):
            lines.append(f"  - {{netns: ns{i}, to: default, via: {gateway(i)}}}")
        lines.append("sysctls: {net.ipv4.ip_forward: 1}")
        if self.nat:
            lines.append("nat:")
            lines.append(f"  - {{type: masquerade, source: {SUBNET}}}")
        return "\n".join(lines) + "\n"

    # -- iproute2 batch: the floor ---------------------------------------------------

    def root_batch(self) -> str:
        lines = [f"netns add ns{i}" for i in range(1, self.n + 1)]
        for k in self.bridges:
            lines.append(f"link add {bridge(k)} up type bridge")
            lines.append(f"addr add {bridge_address(k)} dev {bridge(k)}")
        # the peer is created directly in its namespace; it is set up from inside
        # (`peer ... netns nsI up` is refused by the kernel: ENOTCONN)
        lines += [
            f"link add vh{i} master {bridge(bridge_of(i))} up type veth peer name eth0 netns ns{i}"
            for i in range(1, self.n + 1)
        ]
        return "\n".join(lines) + "\n"

    def ns_batch(self, i: int) -> str:
        return f"link set lo up\nlink set eth0 up\naddr add {address(i)} dev eth0\nroute add default via {gateway(i)}\n"

    def batch_sh(self) -> str:
        """One `ip -batch` for the root and one `ip -n nsI -batch` per namespace (a
        batch file has no per-line namespace); the rest with shell builtins."""
        lines = ["#!/bin/bash", "set -e", 'cd "$(dirname "$0")"', "ip -batch root.batch"]
        lines.append(f"for i in $(seq 1 {self.n}); do ip -n ns$i -batch ns/ns$i.batch; done")
        lines.append("echo 1 > /proc/sys/net/ipv4/ip_forward")
        if self.nat:
            lines.append(f"iptables -w -t nat -A POSTROUTING -s {SUBNET} -j MASQUERADE")
        if self.dns:
            lines.append(f"mkdir -p /etc/netns/ns{{1..{self.n}}}")
            lines.append(
                f"for i in $(seq 1 {self.n}); do printf 'nameserver {NAMESERVER}\\n' > /etc/netns/ns$i/resolv.conf; done"
            )
        return "\n".join(lines) + "\n"

    # -- a shell script, one `ip` process per command, as a lecture types it ----------

    def shell_sh(self) -> str:
        lines = ["#!/bin/bash", "set -e"]
        for k in self.bridges:
            lines += [
                f"ip link add {bridge(k)} type bridge",
                f"ip addr add {bridge_address(k)} dev {bridge(k)}",
                f"ip link set {bridge(k)} up",
            ]
        lines.append("sysctl -q -w net.ipv4.ip_forward=1")
        if self.nat:
            lines.append(f"iptables -w -t nat -A POSTROUTING -s {SUBNET} -j MASQUERADE")
        for i in range(1, self.n + 1):
            lines += [
                f"ip netns add ns{i}",
                f"ip link add vh{i} type veth peer name eth0",
                f"ip link set eth0 netns ns{i}",
                f"ip link set vh{i} master {bridge(bridge_of(i))}",
                f"ip link set vh{i} up",
                f"ip -n ns{i} link set lo up",
                f"ip -n ns{i} addr add {address(i)} dev eth0",
                f"ip -n ns{i} link set eth0 up",
                f"ip -n ns{i} route add default via {gateway(i)}",
            ]
            if self.dns:
                lines += [
                    f"mkdir -p /etc/netns/ns{i}",
                    f"echo 'nameserver {NAMESERVER}' > /etc/netns/ns{i}/resolv.conf",
                ]
        return "\n".join(lines) + "\n"

    # -- removing it all again: the baselines of `netlab destroy` and of a prune ------

    def remove_sh(self, way: str) -> str:
        """Removes what batch.sh built (the links, the namespaces, the masquerade
        rule, the resolv.conf files), `way`: "one" one `ip` command per object,
        as a lecture types it; "netns" the namespaces in one `ip -batch` (their
        veths go with them), then the bridge; "group" the host's links put in
        an interface group by one `ip -batch` and deleted by `ip link del
        group`, then the namespaces in one `ip -batch`. Each ends when the
        kernel shows the host's links gone: a namespace is torn down after
        `ip netns del` returns, and its veth's host end with it."""
        lines = ["#!/bin/bash", "set -e", 'cd "$(dirname "$0")"']
        namespaces = f"$(seq 1 {self.n})"
        if way == "one":
            lines.append(f"for i in {namespaces}; do ip link del vh$i; done")
            lines.append(f"for i in {namespaces}; do ip netns del ns$i; done")
            lines += [f"ip link del {bridge(k)}" for k in self.bridges]
        elif way == "netns":
            lines.append(f'for i in {namespaces}; do echo "netns del ns$i"; done | ip -batch -')
            lines += [f"ip link del {bridge(k)}" for k in self.bridges]
        elif way == "group":
            bridges = "; ".join(f"echo 'link set {bridge(k)} group 77'" for k in self.bridges)
            lines.append(f'(for i in {namespaces}; do echo "link set vh$i group 77"; done; {bridges}) | ip -batch -')
            lines.append("ip link del group 77")
            lines.append(f'for i in {namespaces}; do echo "netns del ns$i"; done | ip -batch -')
        else:
            raise ValueError(way)
        if self.nat:
            lines.append(f"iptables -w -t nat -D POSTROUTING -s {SUBNET} -j MASQUERADE")
        if self.dns:
            lines.append(
                f"rm -r /etc/netns/ns{{1..{self.n}}}"
                if way != "one"
                else f"for i in {namespaces}; do rm -r /etc/netns/ns$i; done"
            )
        lines.append(UNTIL_GONE)
        return "\n".join(lines) + "\n"

    # -- ifstate 2.x: links, addresses, routes, forwarding (no NAT, no resolv.conf) ----

    def ifstate_yaml(self, edited: bool = False) -> str:
        lines = [
            "# ifstate benchmark topology, written by benchmarks/topology.py",
            "sysctl_conf: |",
            "  net.ipv4.ip_forward = 1",
            "interfaces:",
        ]
        for k in self.bridges:
            lines += [
                f"  {bridge(k)}:",
                "    addresses:",
                f"      - {bridge_address(k)}",
                "    link:",
                "      kind: bridge",
                "      state: up",
            ]
        for i in range(1, self.n + 1):
            lines += [f"  vh{i}:", *_ifstate_veth("    ", "eth0", f"ns{i}", master=bridge(bridge_of(i)))]
        lines.append("namespaces:")
        for i in range(1, self.n + 1):
            lines += [
                f"  ns{i}:",
                "    interfaces:",
                "      eth0:",
                "        addresses:",
                f"          - {self.address(i, edited)}",
                *_ifstate_veth("        ", f"vh{i}", "null"),
                "    routing:",
                "      routes:",
                "        - to: 0.0.0.0/0",
                f"          via: {gateway(i)}",
            ]
        return "\n".join(lines) + "\n"

    # -- all of it ---------------------------------------------------------------------

    def write(self, directory: Path) -> None:
        """Writes every form into `directory` (made if missing)."""
        (directory / "ns").mkdir(parents=True, exist_ok=True)
        (directory / "netlab").mkdir(exist_ok=True)
        (directory / "netlab-edited").mkdir(exist_ok=True)
        files = {
            "netlab/topology.yaml": self.netlab_yaml(),
            "netlab-edited/topology.yaml": self.netlab_yaml(edited=True),
            "root.batch": self.root_batch(),
            "batch.sh": self.batch_sh(),
            "shell.sh": self.shell_sh(),
            **{f"remove-{way}.sh": self.remove_sh(way) for way in REMOVAL_WAYS},
            "ifstate.yaml": self.ifstate_yaml(),
            "ifstate-edited.yaml": self.ifstate_yaml(edited=True),
        }
        for i in range(1, self.n + 1):
            files[f"ns/ns{i}.batch"] = self.ns_batch(i)
        for name, text in files.items():
            (directory / name).write_text(text)
        for script in ("batch.sh", "shell.sh", *(f"remove-{way}.sh" for way in REMOVAL_WAYS)):
            os.chmod(directory / script, 0o755)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write the benchmark topology for N namespaces")
    parser.add_argument("n", type=int)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--no-nat", action="store_true")
    parser.add_argument("--no-dns", action="store_true")
    args = parser.parse_args()
    Topology(args.n, nat=not args.no_nat, dns=not args.no_dns).write(args.directory)
