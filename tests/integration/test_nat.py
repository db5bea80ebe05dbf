"""NAT against a real kernel in a sandbox, on both backends (nftables and
legacy iptables), judged by `ping`, TCP connections, `nft -j list table` and
`iptables-legacy-save`, not by netlab: masquerade, snat and port forwards
(ranges too, and from the host itself) work, netlab's rules are exactly what
the files say and live in its own chains or tables, other tools' rules survive
everything, a namespace's NAT stays in its tables, a failure at any step is
undone, a switch of backend moves the rules, and the daemon repairs drift (in
nftables from its events, in legacy iptables on its resync)."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
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
BACKENDS = ("nftables", "iptables")


def with_backend(sandbox: Sandbox, backend: str) -> Sandbox:
    """netlab in the sandbox writes NAT to `backend` (`NETLAB_NAT_BACKEND`, as
    `--nat-backend` and the unit's environment do)."""
    sandbox.layout = dataclasses.replace(sandbox.layout, env={**sandbox.layout.env, "NETLAB_NAT_BACKEND": backend})
    return sandbox


@pytest.fixture(params=BACKENDS)
def box(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """The sandbox, with netlab's NAT in each backend in turn. The xtables lock
    of netlab and of iptables-legacy is in the sandbox's tmpfs (the layout's)."""
    yield with_backend(sandbox, request.param)


@pytest.fixture
def legacy_box(sandbox: Sandbox) -> Iterator[Sandbox]:
    yield with_backend(sandbox, "iptables")


@pytest.fixture
def nft_box(sandbox: Sandbox) -> Iterator[Sandbox]:
    yield with_backend(sandbox, "nftables")


def backend_of(box: Sandbox) -> str:
    return box.layout.env["NETLAB_NAT_BACKEND"]


def _inside(netns: str | None, *argv: str) -> list[str]:
    return list(argv) if netns is None else ["ip", "netns", "exec", netns, *argv]


def nat_rules(box: Sandbox, netns: str | None = None, family: int = 4) -> list[str]:
    """The legacy nat table's chains and rules, as iptables-legacy-save prints them."""
    save = "iptables-legacy-save" if family == 4 else "ip6tables-legacy-save"
    lines = box.run(*_inside(netns, save, "-t", "nat")).stdout.splitlines()
    return [line for line in lines if line.startswith(("-A", ":NETLAB"))]


def nft_table(box: Sandbox, netns: str | None = None, family: int = 4) -> list[dict[str, object]] | None:
    """netlab's nftables table of the family, as `nft -j list table` gives it
    (its table, chain and rule objects); None: there is no such table."""
    result = box.run(
        *_inside(netns, "nft", "-j", "list", "table", "ip" if family == 4 else "ip6", "netlab"), check=False
    )
    if result.returncode != 0:
        assert "No such file or directory" in result.stderr, result.stderr
        return None
    return [item for item in json.loads(result.stdout)["nftables"] if "metainfo" not in item]


def nft_rules(box: Sandbox, netns: str | None = None, family: int = 4) -> list[str]:
    """netlab's nftables table of the family as `nft list table` prints it, a
    line each (chain headers and hooks, rules), or [] when there is none."""
    result = box.run(*_inside(netns, "nft", "list", "table", "ip" if family == 4 else "ip6", "netlab"), check=False)
    if result.returncode != 0:
        return []
    lines = [line.strip() for line in result.stdout.splitlines()]
    return [line for line in lines if line and line != "}" and not line.startswith("table ")]


def rules(box: Sandbox, netns: str | None = None, family: int = 4) -> list[str]:
    """netlab's rules and chains in the backend the box writes to, as that
    backend's own tool prints them."""
    if backend_of(box) == "nftables":
        return nft_rules(box, netns, family)
    return nat_rules(box, netns, family)


def nothing_of_netlabs(box: Sandbox, netns: str | None = None) -> bool:
    """Neither backend holds anything of netlab's there."""
    return all(not nat_rules(box, netns, family) and not nft_rules(box, netns, family) for family in (4, 6))


def http_get(box: Sandbox, netns: str | None, url: str) -> str | None:
    result = box.run(*_inside(netns, "curl", "-s", "--max-time", "3", url), check=False)
    return result.stdout if result.returncode == 0 else None


def serve(box: Sandbox, netns: str | None, address: str, port: int) -> None:
    """A web server on address:port whose only page names where it runs."""
    prefix = _inside(netns)
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


# -- on both backends ------------------------------------------------------------


def test_masquerade_lets_the_lab_reach_a_network_with_no_route_back(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    assert not box.ping("red", "10.0.0.3"), "outside must not answer the lab without NAT"
    box.write_config("lab.yaml", LAB + MASQUERADE)
    plan = box.netlab("plan").stdout
    assert "+ nat host/masquerade 192.168.15.0/24 out eth-out" in plan
    assert f"Note: NAT rules go to {backend_of(box)} (asked for with --nat-backend {backend_of(box)})" in plan
    box.netlab("apply")
    box.ping("red", "10.0.0.3", check=True)
    assert any("192.168.15.0/24" in line for line in rules(box))
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    assert not box.ping("red", "10.0.0.3"), "the ping must stop with the rule"
    assert nothing_of_netlabs(box)


def test_snat_rewrites_the_source_to_the_address_it_names(box: Sandbox) -> None:
    box.write_config(
        "lab.yaml",
        LAB + "nat:\n  - {type: snat, source: 192.168.15.0/24, to_source: 10.0.0.2, out_interface: eth-out}\n",
    )
    box.netlab("apply")
    serve(box, "outside", "10.0.0.3", 8000)
    assert http_get(box, "red", "http://10.0.0.3:8000/") == "served from outside to 10.0.0.2"


def test_a_port_forward_reaches_a_listener_in_a_namespace(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.netlab("apply")
    serve(box, "red", "192.168.15.1", 8000)
    # from the outside network to the host's address on eth-out: the client is
    # seen as itself (no masquerade on the way in)
    assert http_get(box, "outside", "http://10.0.0.2:8080/") == "served from red to 10.0.0.3"
    # the host's own connections to the forwarded port go through netlab's output chain
    assert http_get(box, None, "http://10.0.0.2:8080/") == "served from red to 10.0.0.2"
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    assert http_get(box, "outside", "http://10.0.0.2:8080/") is None


def test_a_port_range_is_forwarded_whole_and_only_it(box: Sandbox) -> None:
    box.write_config(
        "lab.yaml",
        LAB
        + "nat:\n  - {type: dnat, protocol: tcp, port: 9000-9010, to: '192.168.15.1:8000', in_interface: eth-out}\n",
    )
    box.netlab("apply")
    serve(box, "red", "192.168.15.1", 8000)
    for port in (9000, 9005, 9010):
        assert http_get(box, "outside", f"http://10.0.0.2:{port}/") == "served from red to 10.0.0.3", port
    assert http_get(box, "outside", "http://10.0.0.2:9011/") is None
    assert "No changes" in box.netlab("apply").stdout


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
    assert any("192.0.2.80" in line for line in rules(box, "red"))
    assert nothing_of_netlabs(box) and nothing_of_netlabs(box, "outside")
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    assert nothing_of_netlabs(box, "red")
    assert http_get(box, "red", "http://192.0.2.80/") is None


def test_ipv6_rules_go_to_the_ipv6_tables(box: Sandbox) -> None:
    box.write_config(
        "lab.yaml",
        LAB + "nat:\n  - {type: snat, source: 'fd00:15::/64', to_source: 'fd00:99::1', out_interface: eth-out}\n",
    )
    box.netlab("apply")
    found = rules(box, family=6)
    if backend_of(box) == "nftables":
        assert 'ip6 saddr fd00:15::/64 oifname "eth-out" snat to fd00:99::1' in " ".join(found)
    else:
        assert any(
            line.startswith("-A NETLAB-POSTROUTING -s fd00:15::/64 -o eth-out") and "--to-source fd00:99::1" in line
            for line in found
        )
    assert rules(box) == []
    assert "No changes" in box.netlab("apply").stdout
    box.netlab("destroy", "--yes")
    assert nothing_of_netlabs(box)


def witness(box: Sandbox) -> dict[str, object]:
    """What netlab's NAT and files kinds write, as others see it, in both backends."""
    namespaces = box.namespaces()
    state: dict[str, object] = {"namespaces": namespaces}
    for netns in (None, *namespaces):
        for family in (4, 6):
            state[f"{netns} legacy {family}"] = nat_rules(box, netns, family)
            state[f"{netns} nftables {family}"] = nft_rules(box, netns, family)
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
    # every write of the pass failed once: the host's NAT batch, red's, and the
    # four files (a batch is one write for all its rules)
    assert failures >= 6
    assert box.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    assert any("fd00:15::/64" in line for line in rules(box, family=6))
    assert any("10.9.0.0/16" in line for line in rules(box, "red"))
    box.netlab("destroy", "--yes")
    assert nothing_of_netlabs(box)


def test_bad_nat_input_changes_nothing(box: Sandbox) -> None:
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    before = rules(box)
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
        assert rules(box) == before


def test_a_switch_of_backend_moves_the_rules_in_one_pass(box: Sandbox) -> None:
    """From the box's backend to the other and back: each pass leaves netlab's
    rules in one backend only, and they keep working; destroy, told either
    backend, removes them from where they are."""
    first = backend_of(box)
    other = "iptables" if first == "nftables" else "nftables"
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.netlab("apply")
    serve(box, "red", "192.168.15.1", 8000)
    for backend, old in ((other, first), (first, other)):
        plan = box.netlab("plan", "--nat-backend", backend).stdout
        assert f"~ nat host/masquerade 192.168.15.0/24 out eth-out: moved from {old} to {backend}" in plan
        assert f"~ nat host/dnat tcp/8080 in eth-out -> 192.168.15.1:8000: moved from {old} to {backend}" in plan
        box.netlab("apply", "--nat-backend", backend)
        now_in = nft_rules(box) if backend == "nftables" else nat_rules(box)
        left_in = nat_rules(box) if backend == "nftables" else nft_rules(box)
        assert sum("netlab:" in line for line in now_in) == 3 and left_in == [], (now_in, left_in)
        box.ping("red", "10.0.0.3", check=True)
        assert http_get(box, "outside", "http://10.0.0.2:8080/") == "served from red to 10.0.0.3"
        assert "No changes" in box.netlab("apply", "--nat-backend", backend).stdout
        entries = json.loads(box.read("/var/lib/netlab/ledger.json"))["objects"]["nat"]
        assert all(entry["data"].get(backend) is True and old not in entry["data"] for entry in entries), entries
    box.netlab("destroy", "--yes", "--nat-backend", other)
    assert nothing_of_netlabs(box)


# -- nftables ------------------------------------------------------------------------


def test_nftables_tables_hold_exactly_netlabs_chains_and_rules(nft_box: Sandbox) -> None:
    box = nft_box
    box.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE")
    theirs = box.run("nft", "list", "table", "ip", "nat").stdout
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.netlab("apply")
    table = nft_table(box)
    assert table is not None
    chains = {item["chain"]["name"]: item["chain"] for item in table if "chain" in item}  # type: ignore[index]
    assert {name: (c["type"], c["hook"], c["prio"], c["policy"]) for name, c in chains.items()} == {
        "postrouting": ("nat", "postrouting", 100, "accept"),
        "prerouting": ("nat", "prerouting", -100, "accept"),
        "output": ("nat", "output", -100, "accept"),
    }
    found = [item["rule"] for item in table if "rule" in item]
    assert sorted((rule["chain"], rule["comment"].startswith("netlab:")) for rule in found) == [  # type: ignore[index]
        ("output", True),
        ("postrouting", True),
        ("prerouting", True),
    ]
    assert nft_table(box, family=6) is None  # no IPv6 rule: no IPv6 table
    text = " | ".join(nft_rules(box))
    assert 'ip saddr 192.168.15.0/24 oifname "eth-out" masquerade' in text
    assert 'iifname "eth-out" tcp dport 8080 dnat to 192.168.15.1:8000' in text
    assert "ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 dnat to 192.168.15.1:8000" in text
    assert nat_rules(box) == []  # nothing in the legacy tables
    assert box.run("nft", "list", "table", "ip", "nat").stdout == theirs  # iptables-nft's table untouched
    assert "No changes" in box.netlab("apply").stdout
    # an edit changes that one rule, in one transaction
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD.replace("8080", "9090"))
    plan = box.netlab("plan").stdout
    changes = [line for line in plan.splitlines() if line.startswith(("+", "~", "-"))]
    assert sorted(changes) == [
        "+ nat host/dnat tcp/9090 in eth-out -> 192.168.15.1:8000",
        "- nat host/dnat tcp/8080 in eth-out -> 192.168.15.1:8000",
    ], plan
    box.netlab("apply")
    assert sum("dport 9090" in line for line in nft_rules(box)) == 2
    assert not any("dport 8080" in line for line in nft_rules(box))
    box.netlab("destroy", "--yes")
    assert nft_table(box) is None
    assert box.run("nft", "list", "table", "ip", "nat").stdout == theirs


def test_what_others_put_in_netlabs_nftables_table_is_taken_out(nft_box: Sandbox) -> None:
    box = nft_box
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    applied = nft_rules(box)
    box.run("nft", "add", "rule", "ip", "netlab", "postrouting", "ip", "saddr", "10.77.0.0/16", "masquerade")
    box.run("nft", "add", "chain", "ip", "netlab", "extra")
    plan = box.netlab("plan").stdout
    assert "- nat host/rules not netlab's in its nftables tables: " in plan, plan
    assert "- nat host/chain extra of table ip netlab" in plan
    box.netlab("apply")
    assert nft_rules(box) == applied
    # a copy of netlab's own rule: one of the two goes
    (rule,) = [line for line in applied if "netlab:" in line]
    box.run("nft", f"add rule ip netlab postrouting {rule}")
    assert "changed outside netlab: remove an extra copy in NETLAB-POSTROUTING" in box.netlab("plan").stdout
    box.netlab("apply")
    assert nft_rules(box) == applied
    # a set, a chain named like netlab's own, a chain hooked elsewhere, a dormant table
    box.run("nft", "add set ip netlab foo { type ipv4_addr; }")
    box.run("nft", "add chain ip netlab NETLAB-POSTROUTING")
    box.netlab("apply")
    assert nft_rules(box) == applied
    box.run("nft", "delete chain ip netlab postrouting")
    box.run("nft", "add chain ip netlab postrouting { type nat hook postrouting priority 0; }")
    assert "~ nat host/chain postrouting of table ip netlab: not hooked at postrouting" in box.netlab("plan").stdout
    box.netlab("apply")
    assert nft_rules(box) == applied
    box.run("nft", "add table ip netlab { flags dormant; }")
    assert "+ nat host/masquerade 192.168.15.0/24 out eth-out" in box.netlab("plan").stdout
    box.netlab("apply")
    assert nft_rules(box) == applied and "dormant" not in box.run("nft", "list", "table", "ip", "netlab").stdout
    box.ping("red", "10.0.0.3", check=True)


def test_a_large_nat_apply_killed_midway_leaves_all_or_nothing(nft_box: Sandbox) -> None:
    """1000 port forwards are one nftables transaction: a `kill -9` at any
    moment leaves none or all of them, and the next apply converges."""
    box = nft_box
    box.write_config("lab.yaml", LAB)
    box.netlab("apply")
    forwards = "".join(
        f"  - {{type: dnat, protocol: tcp, port: {20000 + i}, to: '192.168.15.1:8000', in_interface: eth-out}}\n"
        for i in range(1000)
    )
    box.write_config("lab.yaml", LAB + "nat:\n" + forwards)
    counts = []
    for delay in (0.3, 0.6, 0.9, 1.2):
        process = box.spawn(NETLAB, "apply", stdout=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        count = sum("netlab:" in line for line in nft_rules(box))
        counts.append(count)
        assert count in (0, 2000), f"killed after {delay} s: {count} kernel rules"
        box.netlab("apply")
        assert sum("netlab:" in line for line in nft_rules(box)) == 2000
        assert box.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
        box.write_config("lab.yaml", LAB)
        box.netlab("apply")
        assert nft_table(box) is None
        box.write_config("lab.yaml", LAB + "nat:\n" + forwards)
    print(f"kernel rules found after kill -9: {counts}")


def test_what_defeats_nat_on_the_host_is_named_with_what_to_do(nft_box: Sandbox) -> None:
    box = nft_box
    box.run("iptables-nft", "-P", "FORWARD", "DROP")  # as Docker does when it starts
    box.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "-j", "MASQUERADE")
    box.write_config("lab.yaml", LAB + MASQUERADE)
    for command in ("plan", "apply"):
        out = box.netlab(command).stdout
        assert "Warning: host: nftables chain ip filter FORWARD (hook forward) drops what no rule accepts" in out
        assert (
            "`iptables -I FORWARD -s 192.168.15.0/24 -j ACCEPT` and the same with -d (with Docker: -I DOCKER-USER)"
            in out
        )
        assert (
            "other tools' NAT chains run at netlab's hooks: ip nat POSTROUTING (hook postrouting, priority 100)" in out
        )
    assert not box.ping("red", "10.0.0.3"), "the FORWARD policy drops it, as the warning says"
    box.run("iptables-nft", "-I", "FORWARD", "-s", "192.168.15.0/24", "-j", "ACCEPT")
    box.run("iptables-nft", "-I", "FORWARD", "-d", "192.168.15.0/24", "-j", "ACCEPT")
    box.ping("red", "10.0.0.3", check=True)
    assert ":FORWARD DROP" in box.run("iptables-nft-save", "-t", "filter").stdout  # theirs, unchanged


def test_auto_follows_the_hosts_iptables_and_where_its_nat_lives(sandbox: Sandbox) -> None:
    """`iptables` on the PATH made each kind in turn (a link to xtables-nft-multi
    or xtables-legacy-multi, as Debian's alternatives make it), then another
    tool's legacy NAT."""
    box = with_backend(sandbox, "auto")
    box.write_config("lab.yaml", LAB + MASQUERADE)
    for kind, backend in (("nft", "nftables"), ("legacy", "iptables")):
        box.run("mkdir", "-p", f"/run/netlab/{kind}")
        box.run("ln", "-sf", f"/usr/sbin/xtables-{kind}-multi", f"/run/netlab/{kind}/iptables")
        path = f"/run/netlab/{kind}:{box.layout.env['PATH']}"
        plan = box.netlab("plan", env={"PATH": path}).stdout
        assert f"Note: NAT rules go to {backend} (auto: the host's iptables is iptables-{kind})" in plan, plan
    # another tool's NAT in the legacy tables: netlab's goes beside it
    box.run("iptables-legacy", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE")
    plan = box.netlab("plan").stdout
    assert "Note: NAT rules go to iptables (auto: the host's NAT lives in the legacy iptables tables (1 rule" in plan
    box.netlab("apply")
    assert any("192.168.15.0/24" in line for line in nat_rules(box)) and nft_rules(box) == []


def test_the_daemon_repairs_nftables_drift_from_its_events(nft_box: Sandbox) -> None:
    """With the resync an hour away, only nftables' events can tell the daemon:
    a deleted rule, a flushed chain, a deleted chain, a deleted table, a rule
    added into netlab's chain are each put right (the time each took printed)."""
    box = nft_box
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.spawn(NETLAB, "daemon", "--resync-interval", "3600", "--log-format", "json", stdout=subprocess.DEVNULL)
    assert box.wait_for(lambda: sum("netlab:" in line for line in nft_rules(box)) == 3, timeout=30)
    assert box.wait_for(lambda: box.path("/run/netlab/status.json").exists(), timeout=10)
    status = box.netlab("status").stdout
    assert "note: NAT rules go to nftables (asked for with --nat-backend nftables)" in status, status
    applied = sorted(nft_rules(box))  # a chain put back comes last
    handle = next(
        item["rule"]["handle"]  # type: ignore[index]
        for item in nft_table(box) or []
        if "rule" in item and item["rule"]["chain"] == "postrouting"  # type: ignore[index]
    )
    drifts = {
        "a deleted rule": f"nft delete rule ip netlab postrouting handle {handle}",
        "a flushed chain": "nft flush chain ip netlab prerouting",
        "a deleted chain": "nft flush chain ip netlab output; nft delete chain ip netlab output",
        "a deleted table": "nft delete table ip netlab",
        "a rule added": "nft add rule ip netlab postrouting ip saddr 10.77.0.0/16 masquerade",
    }

    def repairs() -> int:
        return int(json.loads(box.read("/run/netlab/status.json"))["drift_repairs"])

    took = {}
    for what, command in drifts.items():
        before = repairs()
        began = time.monotonic()
        box.run("sh", "-c", command)  # (the repair can come before a look at it: the count says it came)
        assert box.wait_for(
            lambda: sorted(nft_rules(box)) == applied and repairs() > before,  # noqa: B023
            timeout=10,
            interval=0.01,
        ), f"{what} stayed"
        took[what] = round(time.monotonic() - began, 3)
    print(f"nftables drift repaired after (s): {took}")
    box.ping("red", "10.0.0.3", check=True)


# -- legacy iptables -----------------------------------------------------------------


def test_the_legacy_tables_hold_exactly_netlabs_rules_and_a_foreign_rule_survives(legacy_box: Sandbox) -> None:
    box = legacy_box
    foreign = "-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE"
    box.run("iptables-legacy", "-w", "-t", "nat", *foreign.split())
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD)
    box.netlab("apply")
    found = nat_rules(box)
    netlab_ids = {line.split('"netlab:')[1].split('"')[0] for line in found if '"netlab:' in line}
    assert len(netlab_ids) == 2
    masquerade_id, forward_id = (
        next(i for i in netlab_ids if any(i in line and "MASQUERADE" in line for line in found)),
        next(i for i in netlab_ids if any(i in line and "DNAT" in line for line in found)),
    )
    assert sorted(found) == sorted(
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
    assert found.index("-A POSTROUTING -m comment --comment netlab -j NETLAB-POSTROUTING") < found.index(foreign)
    assert "No changes" in box.netlab("apply").stdout
    assert nft_table(box) is None  # nothing in nftables

    # an edit changes that one rule, in place of the old one; the rest stays
    box.write_config("lab.yaml", LAB + MASQUERADE + PORT_FORWARD.replace("8080", "9090"))
    plan = box.netlab("plan").stdout
    assert "- nat host/dnat tcp/8080 in eth-out -> 192.168.15.1:8000" in plan
    assert "+ nat host/dnat tcp/9090 in eth-out -> 192.168.15.1:8000" in plan
    assert "masquerade" not in plan and "chain" not in plan
    box.netlab("apply")
    edited = nat_rules(box)
    assert foreign in edited
    assert [line for line in edited if masquerade_id in line] == [line for line in found if masquerade_id in line]
    assert not any(forward_id in line for line in edited)
    assert sum("--dport 9090" in line for line in edited) == 2

    box.netlab("destroy", "--yes")
    assert nat_rules(box) == [foreign]


def test_a_flushed_chain_and_a_lost_jump_are_put_back(legacy_box: Sandbox) -> None:
    box = legacy_box
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    applied = nat_rules(box)
    box.run("iptables-legacy", "-w", "-t", "nat", "-F", "NETLAB-POSTROUTING")
    box.run(
        "iptables-legacy", "-w", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "netlab",
        "-j", "NETLAB-POSTROUTING",
    )  # fmt: skip
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


def test_a_host_whose_firewall_is_in_nftables_is_told_so(legacy_box: Sandbox) -> None:
    box = legacy_box
    box.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", "-s", "10.98.0.0/16", "-j", "MASQUERADE")
    box.write_config("lab.yaml", LAB + MASQUERADE)
    plan = box.netlab("plan").stdout
    assert "firewall is in nftables (ip nat (" in plan
    assert "iptables-legacy-save" in plan
    box.netlab("apply")
    box.ping("red", "10.0.0.3", check=True)  # both stacks run: the legacy rule works
    assert "10.98.0.0/16" in box.run("iptables-nft-save", "-t", "nat").stdout  # and theirs is untouched


def test_a_dropping_legacy_forward_chain_is_named(legacy_box: Sandbox) -> None:
    """Docker on iptables-legacy sets the legacy FORWARD policy to DROP; netlab
    sees it once the legacy nat table exists (its first apply makes it)."""
    box = legacy_box
    box.run("iptables-legacy", "-w", "-P", "FORWARD", "DROP")
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    plan = box.netlab("plan").stdout
    assert "Warning: host: iptables-legacy chain ip filter FORWARD (hook forward) drops what no rule accepts" in plan
    assert not box.ping("red", "10.0.0.3")
    assert ":FORWARD DROP" in box.run("iptables-legacy-save", "-t", "filter").stdout


def test_the_daemon_puts_a_flushed_legacy_chain_back_on_its_resync(legacy_box: Sandbox) -> None:
    box = legacy_box
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


def test_the_hosts_nat_worker_starts_before_the_reads_that_need_it(legacy_box: Sandbox) -> None:
    box = legacy_box
    # no legacy nat table yet: reading one would create it, so no worker either
    seen = json.loads(box.run(sys.executable, "-c", WARM).stdout)
    assert not seen["started"] and seen["chains"] == []
    box.write_config("lab.yaml", LAB + MASQUERADE)
    box.netlab("apply")
    seen = json.loads(box.run(sys.executable, "-c", WARM).stdout)
    assert seen["started"] and seen["taken"]
    assert "NETLAB-POSTROUTING" in seen["chains"]
