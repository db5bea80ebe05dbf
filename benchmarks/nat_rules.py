"""The NAT benchmark: RULES port forwards across NAMESPACES namespaces (each
namespace's own NAT), applied cold and again (the no-op) by netlab with each NAT
backend, and by `nft -f` of the same rules, one file per namespace: the floor.
The namespaces are made before the clock starts, so every figure is the NAT's
alone. Each run in a fresh sandbox, judged by `nft` and `iptables-legacy-save`
(every namespace holds exactly its rules, in the backend measured, and nothing
in the other). Called by `benchmarks/run --tools nat`; stdlib only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from measuring import CONFIG, Tools
from sandbox import Sandbox, sandbox

NAMESPACES = 100
RULES = 1000  # in all: RULES // NAMESPACES in each namespace
FIRST_PORT = 20000
TARGET = "10.1.0.2"
BACKENDS = ("nftables", "iptables")


def per_namespace(rules: int = RULES, namespaces: int = NAMESPACES) -> int:
    return rules // namespaces


def namespaces_yaml(namespaces: int = NAMESPACES) -> str:
    lines = ["version: 1", "namespaces:"] + [f"  - name: ns{i}" for i in range(1, namespaces + 1)]
    return "\n".join(lines) + "\n"


def netlab_yaml(rules: int = RULES, namespaces: int = NAMESPACES) -> str:
    """The namespaces and, in each, its share of the port forwards."""
    lines = [namespaces_yaml(namespaces).rstrip("\n"), "nat:"]
    for i in range(1, namespaces + 1):
        for r in range(per_namespace(rules, namespaces)):
            lines.append(f"  - {{netns: ns{i}, type: dnat, protocol: tcp, port: {FIRST_PORT + r}, to: '{TARGET}:80'}}")
    return "\n".join(lines) + "\n"


def nft_file(rules: int = RULES, namespaces: int = NAMESPACES) -> str:
    """One namespace's rules as `nft -f` takes them: netlab's layout (a dnat is a
    prerouting rule and the host's own output copy), written by hand."""
    prerouting, output = [], []
    for r in range(per_namespace(rules, namespaces)):
        port = FIRST_PORT + r
        prerouting.append(f"    tcp dport {port} dnat to {TARGET}:80")
        output.append(f"    ip daddr != 127.0.0.0/8 fib daddr type local tcp dport {port} dnat to {TARGET}:80")
    return "\n".join(
        [
            "table ip netlab {",
            "  chain prerouting {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *prerouting,
            "  }",
            "  chain output {",
            "    type nat hook output priority -100; policy accept;",
            *output,
            "  }",
            "}",
            "",
        ]
    )


def write(workdir: Path, rules: int = RULES, namespaces: int = NAMESPACES) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "namespaces.yaml").write_text(namespaces_yaml(namespaces))
    (workdir / "nat.yaml").write_text(netlab_yaml(rules, namespaces))
    (workdir / "ns.nft").write_text(nft_file(rules, namespaces))
    batch = "\n".join(f"netns add ns{i}" for i in range(1, namespaces + 1)) + "\n"
    (workdir / "namespaces.batch").write_text(batch)
    script = "\n".join(
        [
            "#!/bin/sh",
            "set -e",
            f"for i in $(seq 1 {namespaces}); do",
            f'  ip netns exec "ns$i" nft -f {workdir / "ns.nft"}',
            "done",
            "",
        ]
    )
    (workdir / "nft-f.sh").write_text(script)
    (workdir / "nft-f.sh").chmod(0o755)


def verify(box: Sandbox, backend: str, rules: int = RULES, namespaces: int = NAMESPACES) -> dict[str, Any]:
    """Every namespace holds its share of the rules (two kernel rules per port
    forward) in `backend`, and none in the other."""
    problems: list[str] = []
    want = 2 * per_namespace(rules, namespaces)
    right = 0
    for i in range(1, namespaces + 1):
        inside = ["ip", "netns", "exec", f"ns{i}"]
        nft = box.run(*inside, "nft", "list", "table", "ip", "netlab", check=False).stdout
        in_nft = len(re.findall(r"dnat to ", nft))
        names = box.run(*inside, "cat", "/proc/net/ip_tables_names", check=False).stdout.split()
        legacy = box.run(*inside, "iptables-legacy-save", "-t", "nat").stdout if "nat" in names else ""
        in_legacy = len(re.findall(r"^-A NETLAB-\w+ .*-j DNAT", legacy, re.M))
        found = (in_nft, in_legacy) if backend != "iptables" else (in_legacy, in_nft)
        if found != (want, 0):
            problems.append(f"ns{i}: {found[0]} rules in {backend}, {found[1]} in the other, not {want} and 0")
        else:
            right += 1
    return {"ok": not problems, "problems": problems[:5], "namespaces_right": right}


def run(tool: str, tools: Tools, workdir: Path, rules: int = RULES, namespaces: int = NAMESPACES) -> dict[str, Any]:
    """One run of `tool` ("nftables", "iptables": netlab with that backend;
    "nft-f": the floor) in a fresh sandbox."""
    record: dict[str, Any] = {}
    with sandbox() as box:
        if tool == "nft-f":
            box.run("ip", "-batch", str(workdir / "namespaces.batch"))
            seconds, result = box.timed(str(workdir / "nft-f.sh"), check=False)
            record["cold_s"] = seconds
            if result.returncode != 0:
                record["error"] = result.stderr.strip()[-1000:]
            record["verify"] = verify(box, "nftables", rules, namespaces)
            return record
        env = {**box.layout.env, "NETLAB_NAT_BACKEND": tool}
        box.write(CONFIG, (workdir / "namespaces.yaml").read_text())
        box.run(tools.netlab, "apply", env=env, timeout=600)  # the namespaces, before the clock
        box.write(CONFIG, (workdir / "nat.yaml").read_text())
        seconds, result = box.timed(tools.netlab, "apply", check=False, env=env)
        record["cold_s"] = seconds
        if result.returncode != 0:
            record["error"] = result.stderr.strip()[-1000:]
            return record
        record["verify"] = verify(box, tool, rules, namespaces)
        seconds, result = box.timed(tools.netlab, "apply", check=False, env=env)
        record["noop_apply_s"] = seconds
        record["noop_said"] = result.stdout.strip().splitlines()[:1]
        seconds, result = box.timed(tools.netlab, "plan", "--detailed-exitcode", check=False, env=env)
        record["noop_plan_s"] = seconds
        record["noop_plan_exit"] = result.returncode
    return record
