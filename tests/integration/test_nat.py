"""NAT against a real kernel in a sandbox, judged by `ping`, a TCP connection and
`iptables-legacy-save`, not by netlab: masquerade and port forwards work,
netlab's rules are exactly what the files say and live in its own chains, a
foreign rule survives everything, and a namespace's NAT stays in its tables; the
host's NAT worker is started before the reads that need it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.sandbox import NETLAB, Sandbox

pytestmark = pytest.mark.kernel

# red is a lab namespace behind the host's bridge; outside is a network beyond the
# host (its veth stands for eth0) that has no route back to the lab's subnet
LAB = """version: 1
namespaces: [{name: red}, {name: outside}]
interfaces:
  - {name: v-net-0, type: bridge, addresses: [192.168.15.5/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [192.168.15.1/24], peer: {name: veth-red-br, master: v-net-0}}
  - {name: veth-out, type: veth, netns: outside, addresses: [10.0.0.3/24], peer: {name: eth-out, addresses: [10.0.0.2/24]}}
routes:
  - {netns: red, to: default, via: 192.168.15.5}
sysctls: {net.ipv4.ip_forward: 1}
"""
MASQUERADE = "nat:\n  - {type: masquerade, source: 192.168.15.0/24, out_interface: eth-out}\n"
PORT_FORWARD = "  - {type: dnat, protocol: tcp, port: 8080, to: '192.168.15.1:8000', in_interface: eth-out}\n"


@pytest.fixture
def box(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    # the xtables lock of netlab and of iptables-legacy inside the sandbox: a
    # file in the sandbox's tmpfs, not /run/xtables.lock of the machine
    monkeypatch.setenv("XTABLES_LOCKFILE", "/run/netlab/xtables.lock")
    yield sandbox


def nat_rules(box: Sandbox, netns: str | None = None, family: int = 4) -> list[str]:
    """The nat table's chains and rules, as iptables-legacy-save prints them."""
    save = "iptables-legacy-save" if family == 4 else "ip6tables-legacy-save"
    argv = [save, "-t", "nat"] if netns is None else ["ip", "netns", "exec", netns, save, "-t", "nat"]
    lines = box.run(*argv).stdout.splitlines()
    return [line for line in lines if line.startswith(("-A", ":NETLAB"))]


def http_get(box: Sandbox, netns: str | None, url: str) -> str | None:
    prefix = [] if netns is None else ["ip", "netns", "exec", netns]
    result = box.run(*prefix, "curl", "-s", "--max-time", "3", url, check=False)
    return result.stdout if result.returncode == 0 else None


def serve(box: Sandbox, netns: str | None, address: str, port: int) -> None:
    """A web server on address:port whose only page names where it runs."""
    prefix = [] if netns is None else ["ip", "netns", "exec", netns]
    where = netns or "host"
    script = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        body = b'served from {where} to ' + self.client_address[0].encode()\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *args): pass\n"
        f"http.server.HTTPServer(({address!r}, {port}), H).serve_forever()\n"
    )
    box.spawn(*prefix, sys.executable, "-c", script)
    assert box.wait_for(
        lambda: box.run(*prefix, "sh", "-c", f"ss -ltn | grep -q '{address}:{port} '", check=False).returncode == 0
    )


def test_masquerade_lets_the_lab_reach_a_network_with_no_route_back(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    assert not box.ping("red", "10.0.0.3"), "outside must not answer the lab without NAT"
    box.write_config("lab.yaml", LAB + MASQUERADE)
    plan = box.netlab("plan").stdout
    assert "+ nat host/masquerade 192.168.15.0/24 out eth-out" in plan
    box.netlab("apply")
    box.ping("red", "10.0.0.3", check=True)
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    assert not box.ping("red", "10.0.0.3"), "the ping must stop with the rule"
    assert nat_rules(box) == []


def test_a_port_forward_reaches_a_listener_in_a_namespace(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.netlab("apply")
    serve(box, "red", "192.168.15.1", 8000)
    # from the outside network to the host's address on eth-out: the client is
    # seen as itself (no masquerade on the way in)
    assert http_get(box, "outside", "http://10.0.0.2:8080/") == "served from red to 10.0.0.3"
    # the host's own connections to the forwarded port go through NETLAB-OUTPUT
    assert http_get(box, None, "http://10.0.0.2:8080/") == "served from red to 10.0.0.2"
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    assert http_get(box, "outside", "http://10.0.0.2:8080/") is None


def test_the_tables_hold_exactly_netlabs_rules_and_a_foreign_rule_survives(box: Sandbox) -> None:
    foreign = "-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE"
    box.run("iptables-legacy", "-w", "-t", "nat", *foreign.split())
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.netlab("apply")
    rules = nat_rules(box)
    netlab_ids = {line.split('"netlab:')[1].split('"')[0] for line in rules if '"netlab:' in line}
    assert len(netlab_ids) == 2
    masquerade_id, forward_id = (
        next(i for i in netlab_ids if any(i in line and "MASQUERADE" in line for line in rules)),
        next(i for i in netlab_ids if any(i in line and "DNAT" in line for line in rules)),
    )
    assert sorted(rules) == sorted(
        [
            ":NETLAB-OUTPUT - [0:0]",
            ":NETLAB-POSTROUTING - [0:0]",
            ":NETLAB-PREROUTING - [0:0]",
            "-A PREROUTING -m comment --comment netlab -j NETLAB-PREROUTING",
            "-A OUTPUT -m comment --comment netlab -j NETLAB-OUTPUT",
            "-A POSTROUTING -m comment --comment netlab -j NETLAB-POSTROUTING",
            foreign,
            f'-A NETLAB-POSTROUTING -s 192.168.15.0/24 -o eth-out -m comment --comment "netlab:{masquerade_id}" -j MASQUERADE',
            f'-A NETLAB-PREROUTING -i eth-out -p tcp -m tcp --dport 8080 -m comment --comment "netlab:{forward_id}" '
            "-j DNAT --to-destination 192.168.15.1:8000",
            f"-A NETLAB-OUTPUT ! -d 127.0.0.0/8 -p tcp -m tcp --dport 8080 -m addrtype --dst-type LOCAL -m comment "
            f'--comment "netlab:{forward_id}" -j DNAT --to-destination 192.168.15.1:8000',
        ]
    )
    # netlab's jumps come first in the built-in chains, before the foreign rule
    assert rules.index("-A POSTROUTING -m comment --comment netlab -j NETLAB-POSTROUTING") < rules.index(foreign)
    assert "No changes" in box.netlab("apply").stdout

    # an edit changes that one rule, in place of the old one; the rest stays
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD.replace("8080", "9090"))
    plan = box.netlab("plan").stdout
    assert "- nat host/dnat tcp/8080 in eth-out -> 192.168.15.1:8000" in plan
    assert "+ nat host/dnat tcp/9090 in eth-out -> 192.168.15.1:8000" in plan
    assert "masquerade" not in plan and "chain" not in plan
    box.netlab("apply")
    edited = nat_rules(box)
    assert foreign in edited
    assert [line for line in edited if masquerade_id in line] == [line for line in rules if masquerade_id in line]
    assert not any(forward_id in line for line in edited)
    assert sum("--dport 9090" in line for line in edited) == 2

    box.netlab("destroy", "--yes")
    assert nat_rules(box) == [foreign]


def test_a_flushed_chain_and_a_lost_jump_are_put_back(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    applied = nat_rules(box)
    box.run("iptables-legacy", "-w", "-t", "nat", "-F", "NETLAB-POSTROUTING")
    box.run(
        "iptables-legacy",
        "-w",
        "-t",
        "nat",
        "-D",
        "POSTROUTING",
        "-m",
        "comment",
        "--comment",
        "netlab",
        "-j",
        "NETLAB-POSTROUTING",
    )
    plan = box.netlab("plan").stdout
    assert "+ nat host/masquerade 192.168.15.0/24 out eth-out" in plan
    assert "~ nat host/chain NETLAB-POSTROUTING: the jump from POSTROUTING is missing" in plan
    box.netlab("apply")
    assert nat_rules(box) == applied
    box.ping("red", "10.0.0.3", check=True)
    # a copy of netlab's rule, made by hand: one of the two goes
    (rule,) = [line for line in applied if line.startswith("-A NETLAB-POSTROUTING")]
    box.run("iptables-legacy", "-w", "-t", "nat", *rule.replace('"', "").split())
    assert "changed outside netlab: remove an extra copy in NETLAB-POSTROUTING" in box.netlab("plan").stdout
    box.netlab("apply")
    assert nat_rules(box) == applied


def test_nat_in_a_namespace_works_there_and_shows_only_there(box: Sandbox) -> None:
    # red's own connections to 192.0.2.80:80 (an address nobody has) are
    # forwarded by red's NAT to a server on the host
    box.write_config(
        "lab.yaml",
        LAB
        + "nat:\n  - {netns: red, type: dnat, protocol: tcp, port: 80, destination: 192.0.2.80, to: '192.168.15.5:8000'}\n",
    )
    box.netlab("apply")
    serve(box, None, "192.168.15.5", 8000)
    assert http_get(box, "red", "http://192.0.2.80/") == "served from host to 192.168.15.1"
    assert any("192.0.2.80/32" in line for line in nat_rules(box, "red"))
    assert nat_rules(box) == [] and nat_rules(box, "outside") == []
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    assert nat_rules(box, "red") == []
    assert http_get(box, "red", "http://192.0.2.80/") is None


def test_ipv6_rules_go_to_the_ip6_tables(box: Sandbox) -> None:
    box.write_config(
        "lab.yaml",
        LAB + "nat:\n  - {type: snat, source: 'fd00:15::/64', to_source: 'fd00:99::1', out_interface: eth-out}\n",
    )
    box.netlab("apply")
    rules = nat_rules(box, family=6)
    assert any(
        line.startswith("-A NETLAB-POSTROUTING -s fd00:15::/64 -o eth-out") and "--to-source fd00:99::1" in line
        for line in rules
    )
    assert nat_rules(box) == []
    assert "No changes" in box.netlab("apply").stdout
    box.netlab("destroy", "--yes")
    assert nat_rules(box, family=6) == []


def test_a_host_whose_firewall_is_in_nftables_is_told_so(box: Sandbox) -> None:
    box.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", "-s", "10.98.0.0/16", "-j", "MASQUERADE")
    box.write_config("lab.yaml", LAB + MASQUERADE)
    plan = box.netlab("plan").stdout
    assert "firewall is in nftables (ip nat (1 rule))" in plan
    assert "iptables-legacy-save" in plan
    box.netlab("apply")
    box.ping("red", "10.0.0.3", check=True)  # both stacks run: the legacy rule works
    assert "10.98.0.0/16" in box.run("iptables-nft-save", "-t", "nat").stdout  # and theirs is untouched


def witness(box: Sandbox) -> dict[str, object]:
    """What netlab's NAT and files kinds write, as others see it."""
    namespaces = box.namespaces()
    state: dict[str, object] = {"namespaces": namespaces, "host": nat_rules(box), "host6": nat_rules(box, family=6)}
    for netns in namespaces:
        state[netns] = nat_rules(box, netns)
    for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/netns/red/resolv.conf", "/etc/netns/red/hosts"):
        state[path] = box.read(path) if box.path(path).exists() else None
    return state


def test_a_failure_at_every_step_of_nat_and_files_is_rolled_back(box: Sandbox) -> None:
    first = LAB + MASQUERADE + "dns: {nameservers: [192.0.2.1]}\nhosts: [{address: 192.168.15.1, names: [red]}]\n"
    box.write_config("lab.yaml", first)
    box.netlab("apply")
    before = witness(box)
    # edits the masquerade, adds a port forward, an IPv6 rule, NAT in red, and
    # changes every kind of file
    following = (
        LAB.replace(
            "namespaces: [{name: red}, {name: outside}]",
            "namespaces:\n  - name: outside\n  - name: red\n"
            "    dns: {nameservers: [192.168.15.5]}\n    hosts: [{address: 192.168.15.5, names: [gateway]}]",
        )
        + "nat:\n  - {type: masquerade, source: 192.168.15.0/24}\n"
        + PORT_FORWARD
        + "  - {type: masquerade, source: 'fd00:15::/64'}\n  - {netns: red, type: masquerade, source: 10.9.0.0/16}\n"
        + "dns: {nameservers: [192.0.2.2], search: [lab.internal]}\nhosts: [{address: 192.168.15.1, names: [red, r]}]\n"
    )
    box.write_config("lab.yaml", following)
    failures = 0
    for index in range(50):
        result = box.netlab("apply", check=False, env={"NETLAB_TEST_FAIL_STEP": str(index)})
        if result.returncode == 0:
            break
        failures += 1
        assert "were undone" in result.stderr, result.stderr
        assert witness(box) == before, f"step {index} left something changed"
    print(f"faults injected and rolled back: {failures}")
    assert failures >= 8
    assert box.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    after = witness(box)
    assert any("fd00:15::/64" in line for line in after["host6"])  # type: ignore[union-attr]
    assert any("10.9.0.0/16" in line for line in after["red"])  # type: ignore[union-attr]
    box.netlab("destroy", "--yes")
    assert nat_rules(box) == [] and nat_rules(box, family=6) == []


def test_bad_nat_input_changes_nothing(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    before = nat_rules(box)
    for bad in (
        "  - {type: dnat, protocol: tcp, port: '192.168.1.1', to: '192.168.15.1:80'}\n",
        "  - {type: dnat, protocol: tcp, port: 0, to: '192.168.15.1:80'}\n",
        "  - {type: dnat, protocol: tcp, port: 65536, to: '192.168.15.1:80'}\n",
        "  - {type: dnat, protocol: icmp, port: 80, to: '192.168.15.1'}\n",
        "  - {type: snat, source: 192.168.15.0/24, to_source: eth-out}\n",
    ):
        box.write_config("lab.yaml", LAB + MASQUERADE + bad)
        result = box.netlab("apply", check=False)
        assert result.returncode == 1
        assert "lab.yaml:" in result.stderr and "nat[1]" in result.stderr, result.stderr
        assert nat_rules(box) == before


def test_the_daemon_puts_a_flushed_chain_back_on_its_resync(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.spawn(NETLAB, "daemon", "--resync-interval", "1", "--log-format", "json", stdout=subprocess.DEVNULL)
    assert box.wait_for(lambda: any("MASQUERADE" in line for line in nat_rules(box)), timeout=30)
    applied = nat_rules(box)
    box.run("iptables-legacy", "-w", "-t", "nat", "-F", "NETLAB-POSTROUTING")
    assert box.wait_for(lambda: nat_rules(box) == applied, timeout=15), "the daemon did not repair the flushed chain"
    box.ping("red", "10.0.0.3", check=True)


WARM = """
import json
from netlab.controller.backends import iptables
from netlab.controller.backends.kernel import Kernel
with Kernel() as kernel:
    kernel.read_ahead([None])
    before = iptables._spare is not None  # started before the read of the host's tables
    chains = [chain.name for chain in kernel.nat(None).chains]
    print(json.dumps({"started": before, "taken": iptables._spare is None, "chains": sorted(chains)}))
"""


def test_the_hosts_nat_worker_starts_before_the_reads_that_need_it(box: Sandbox) -> None:
    # no legacy nat table yet: reading one would create it, so no worker either
    seen = json.loads(box.run(sys.executable, "-c", WARM).stdout)
    assert not seen["started"] and seen["chains"] == []
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    seen = json.loads(box.run(sys.executable, "-c", WARM).stdout)
    assert seen["started"] and seen["taken"]
    assert "NETLAB-POSTROUTING" in seen["chains"]
