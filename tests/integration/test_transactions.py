"""Transactional apply and crash safety, proven against a real kernel: a failure
injected at every step of a pass is rolled back to exactly the state before it,
and a netlab killed at random moments converges on the next apply with nothing
leaked and nothing duplicated. Foreign objects survive every trial."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time

import pytest

from tests.sandbox import NETLAB, Sandbox

pytestmark = pytest.mark.kernel

BASE = """version: 1
namespaces: [{name: red}, {name: blue}]
interfaces:
  - {name: br0, type: bridge, addresses: [10.1.0.1/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [10.1.0.2/24], peer: {name: veth-red-br, master: br0}}
  - {name: veth-blue, type: veth, netns: blue, addresses: [10.1.0.3/24], mtu: 1400, peer: {name: veth-blue-br, master: br0}}
routes:
  - {netns: red, to: default, via: 10.1.0.1}
sysctls: {net.ipv4.ip_forward: 0}
"""

# from BASE: adds a namespace with its cable and route, edits an address, an
# MTU, a route and a sysctl: every kind of step that can be undone
NEXT = """version: 1
namespaces: [{name: red}, {name: blue}, {name: green, sysctls: {net.ipv4.ip_forward: 1}}]
interfaces:
  - {name: br0, type: bridge, addresses: [10.1.0.1/24, 10.2.0.1/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [10.1.0.12/24], peer: {name: veth-red-br, master: br0}}
  - {name: veth-blue, type: veth, netns: blue, addresses: [10.1.0.3/24], mtu: 1300, peer: {name: veth-blue-br, master: br0}}
  - {name: veth-green, type: veth, netns: green, addresses: [10.2.0.2/24], peer: {name: veth-green-br, master: br0}}
routes:
  - {netns: red, to: default, via: 10.1.0.1}
  - {netns: blue, to: default, via: 10.1.0.1}
  - {netns: green, to: default, via: 10.2.0.1}
  - {netns: red, to: 10.9.0.0/16, via: 10.1.0.3, metric: 50}
sysctls: {net.ipv4.ip_forward: 1}
"""


def add_foreign_objects(sandbox: Sandbox) -> None:
    sandbox.run("ip", "link", "add", "foreign0", "type", "bridge")
    sandbox.run("ip", "addr", "add", "198.51.100.1/24", "dev", "foreign0")
    sandbox.run("ip", "link", "set", "foreign0", "up")
    sandbox.run("ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.2")


def test_a_failure_at_every_step_is_rolled_back_exactly(sandbox: Sandbox) -> None:
    add_foreign_objects(sandbox)
    sandbox.write_config("lab.yaml", BASE)
    sandbox.netlab("apply")
    before = sandbox.dump()
    sandbox.write_config("lab.yaml", NEXT)
    failures = 0
    for index in range(200):
        result = sandbox.netlab("apply", check=False, env={"NETLAB_TEST_FAIL_STEP": str(index)})
        if result.returncode == 0:
            break  # the pass has fewer steps than `index`: it went through
        failures += 1
        assert f"fault injected by NETLAB_TEST_FAIL_STEP at step {index}" in result.stderr
        assert "were undone" in result.stderr, result.stderr
        assert sandbox.dump() == before, f"step {index} left the kernel changed"
        assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 2
    print(f"faults injected and rolled back: {failures}")
    assert failures >= 15, "the pass was expected to have many steps"
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    sandbox.ping("green", "10.2.0.1", check=True)
    assert "198.51.100.1/24" in sandbox.run("ip", "-br", "addr", "show", "foreign0").stdout


def reference_dump(sandbox: Sandbox) -> str:
    sandbox.netlab("apply")
    dump = sandbox.dump()
    sandbox.netlab("destroy", "--yes")
    return dump


def many_namespaces(count: int) -> str:
    lines = ["version: 1", "namespaces:"] + [f"  - name: ns{i}" for i in range(count)]
    lines += ["interfaces:", "  - {name: br0, type: bridge, addresses: [10.3.0.1/16]}"]
    lines += [
        f"  - {{name: eth{i}, type: veth, netns: ns{i}, addresses: [10.3.{i // 200}.{i % 200 + 2}/16], "
        f"peer: {{name: vh{i}, master: br0}}}}"
        for i in range(count)
    ]
    lines += ["routes:"] + [f"  - {{netns: ns{i}, to: default, via: 10.3.0.1}}" for i in range(count)]
    lines += ["sysctls: {net.ipv4.ip_forward: 1}"]
    return "\n".join(lines) + "\n"


def kill_and_converge(sandbox: Sandbox, trials: int, count: int, seed: int) -> None:
    add_foreign_objects(sandbox)
    sandbox.write_config("lab.yaml", many_namespaces(count))
    began = time.monotonic()
    expected = reference_dump(sandbox)
    full = time.monotonic() - began
    empty = sandbox.dump()
    generator = random.Random(seed)
    for trial in range(trials):
        process = sandbox.spawn(NETLAB, "apply", stdout=subprocess.DEVNULL)
        time.sleep(generator.uniform(0, full))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        sandbox.netlab("apply")
        assert sandbox.dump() == expected, f"trial {trial}: the kernel differs after a kill and a new apply"
        assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
        if trial % 2:
            sandbox.netlab("destroy", "--yes")
            assert sandbox.dump() == empty, f"trial {trial}: destroy left something behind"


def test_a_killed_apply_converges_with_nothing_leaked(sandbox: Sandbox) -> None:
    kill_and_converge(sandbox, trials=6, count=12, seed=7)


@pytest.mark.stress
def test_a_killed_apply_converges_stress(sandbox: Sandbox) -> None:
    kill_and_converge(sandbox, trials=100, count=30, seed=2026)


def test_kernel_refusals_change_nothing(sandbox: Sandbox) -> None:
    add_foreign_objects(sandbox)
    sandbox.write_config("lab.yaml", BASE)
    sandbox.netlab("apply")
    before = sandbox.dump()
    # a name that exists already as someone else's link
    said = sandbox.refused_apply("taken.yaml", "version: 1\ninterfaces:\n  - {name: foreign0, type: bridge}\n")
    assert "taken.yaml:3:" in said and "not created by netlab" in said
    # a host route through a gateway outside every subnet of the host
    said = sandbox.refused_apply("taken.yaml", "version: 1\nroutes:\n  - {to: 10.200.0.0/16, via: 172.31.9.9}\n")
    assert "gateway 172.31.9.9" in said
    # a bridge port in another namespace than its bridge
    said = sandbox.refused_apply(
        "taken.yaml",
        "version: 1\ninterfaces:\n  - {name: veth-x, type: veth, netns: red, master: br0, peer: {name: veth-x-h}}\n",
    )
    assert "taken.yaml:3:" in said
    assert sandbox.dump() == before


def forwarding_everywhere(sandbox: Sandbox) -> str:
    """Every IPv4 forwarding switch of the sandbox's host, as the kernel shows them."""
    return sandbox.sh("grep -r . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/forwarding").stdout


def test_a_pass_that_does_not_verify_is_rolled_back(sandbox: Sandbox) -> None:
    """`net.ipv4.ip_forward` and `net.ipv4.conf.all.forwarding` are one switch in
    the kernel: writing the first changes the second, so a pass asking for both
    values at once can never be verified. It is undone like a refused step."""
    add_foreign_objects(sandbox)
    sandbox.write_config("lab.yaml", BASE)
    sandbox.netlab("apply")
    before, switches = sandbox.dump(), forwarding_everywhere(sandbox)
    unverifiable = (
        BASE.replace("10.1.0.1/24]", "10.1.0.1/24, 10.2.0.1/24]")
        .replace(
            "sysctls: {net.ipv4.ip_forward: 0}", "sysctls: {net.ipv4.ip_forward: 1, net.ipv4.conf.all.forwarding: 0}"
        )
        .replace("routes:\n", "routes:\n  - {netns: blue, to: 10.9.0.0/16, via: 10.1.0.1}\n")
    )
    sandbox.write_config("lab.yaml", unverifiable)
    result = sandbox.netlab("apply", check=False)
    assert result.returncode == 1
    assert "does not show what was applied" in result.stderr
    # the pass made the differences twice; whichever of the two switches it wrote last wins
    assert re.search(r"sysctl host/net\.ipv4\.(ip_forward|conf\.all\.forwarding)", result.stderr), result.stderr
    assert "were undone" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox.dump() == before
    assert forwarding_everywhere(sandbox) == switches
    ledger = sandbox.read("/var/lib/netlab/ledger.json")
    assert "10.2.0.1/24" not in ledger and "10.9.0.0/16" not in ledger


# a veth whose host end has an address, and a host route through a gateway
# behind it that names no `dev`: the kernel finds the route's link itself
PEERED = """version: 1
namespaces: [{name: red}]
interfaces:
  - {name: veth-red, type: veth, netns: red, addresses: [10.7.0.2/24], peer: {name: PEER, addresses: [10.7.0.1/24]}}
routes:
  - {to: 10.8.0.0/24, via: 10.7.0.2}
  - {netns: red, to: default, via: 10.7.0.1}
"""


def test_renaming_a_veth_peer_with_a_route_on_it_converges_in_one_apply(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", PEERED.replace("PEER", "vr-old"))
    sandbox.netlab("apply")
    assert "dev vr-old proto 213" in sandbox.run("ip", "route", "show", "10.8.0.0/24").stdout
    sandbox.write_config("lab.yaml", PEERED.replace("PEER", "vr-new"))
    sandbox.netlab("apply")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    assert "dev vr-new proto 213" in sandbox.run("ip", "route", "show", "10.8.0.0/24").stdout
    sandbox.ping("red", "10.7.0.1", check=True)


def test_a_route_that_appears_between_plan_and_write_is_not_taken_over(sandbox: Sandbox) -> None:
    """Someone adds a route with the key netlab is about to create: the creation
    is refused (it is not replaced, not marked netlab's), the pass is rolled
    back, and the rollback leaves that route alone."""
    add_foreign_objects(sandbox)
    sandbox.write_config("lab.yaml", BASE)
    sandbox.netlab("apply")
    # steps: add the address (0), install the route (1)
    sandbox.write_config(
        "lab.yaml",
        BASE.replace("10.1.0.1/24]", "10.1.0.1/24, 10.2.0.1/24]").replace(
            "routes:\n", "routes:\n  - {to: 10.50.0.0/24, via: 10.1.0.9}\n"
        ),
    )
    pause = "/run/netlab/paused"
    process = sandbox.spawn("env", f"NETLAB_TEST_PAUSE_AT_STEP=1:{pause}", NETLAB, "apply")
    assert sandbox.wait_for(lambda: sandbox.path(pause).exists(), timeout=60), "the pass did not reach its route"
    sandbox.run("ip", "route", "add", "10.50.0.0/24", "via", "10.1.0.2")
    sandbox.path(pause).unlink()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "File exists" in stderr and "were undone" in stderr, stderr
    route = sandbox.run("ip", "route", "show", "10.50.0.0/24").stdout
    assert "via 10.1.0.2 dev br0" in route and "proto 213" not in route, route
    assert "10.2.0.1" not in sandbox.run("ip", "-br", "addr", "show", "br0").stdout
    plan = sandbox.netlab("plan", check=False)
    assert plan.returncode == 1 and "netlab did not install" in plan.stderr, plan.stderr


# br0 with a veth into a namespace; then the veth goes and two addresses come
LEDGER_FIRST = """version: 1
namespaces: [{name: red}]
interfaces:
  - {name: br0, type: bridge, addresses: [10.1.0.1/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [10.1.0.2/24], peer: {name: veth-red-br, master: br0}}
"""
LEDGER_SECOND = """version: 1
namespaces: [{name: red}]
interfaces:
  - {name: br0, type: bridge, addresses: [10.1.0.1/24, 10.9.9.1/24, "2001:db8:9::1/64"]}
"""


def test_a_pass_rolled_back_in_part_claims_nothing_it_did_not_make(sandbox: Sandbox) -> None:
    """The veth's removal cannot be undone, so the pass is rolled back in part;
    the addresses it recorded ahead (one added and undone, one never added)
    must not stay netlab's, or a later pass deletes an admin's address."""
    sandbox.write_config("lab.yaml", LEDGER_FIRST)
    sandbox.netlab("apply")
    sandbox.write_config("lab.yaml", LEDGER_SECOND)
    # steps: delete veth-red, delete veth-red-br, add 10.9.9.1/24, add 2001:db8:9::1/64 (3)
    result = sandbox.netlab("apply", check=False, env={"NETLAB_TEST_FAIL_STEP": "3"})
    assert result.returncode == 1
    assert "could not add 2001:db8:9::1/64" in result.stderr and "Rolled back in part" in result.stderr, result.stderr
    ledger = sandbox.read("/var/lib/netlab/ledger.json")
    assert "10.9.9.1/24" not in ledger and "2001:db8:9::1/64" not in ledger, ledger
    sandbox.write_config("lab.yaml", LEDGER_FIRST)
    sandbox.netlab("apply")
    sandbox.run("ip", "addr", "add", "10.9.9.1/24", "dev", "br0")
    sandbox.netlab("apply")
    assert "10.9.9.1/24" in sandbox.run("ip", "-br", "addr", "show", "br0").stdout


def test_an_address_that_appears_between_plan_and_write_is_not_taken_over(sandbox: Sandbox) -> None:
    """The same for an address: someone else's, with a lifetime of its own,
    added just before netlab adds it. It keeps its lifetime (a replace would
    make it permanent), and the pass that refused to touch it claims nothing."""
    sandbox.write_config("lab.yaml", BASE)
    sandbox.netlab("apply")
    sandbox.write_config("lab.yaml", BASE.replace("10.1.0.1/24]", "10.1.0.1/24, 10.2.0.1/24]"))
    pause = "/run/netlab/paused"
    process = sandbox.spawn("env", f"NETLAB_TEST_PAUSE_AT_STEP=0:{pause}", NETLAB, "apply")
    assert sandbox.wait_for(lambda: sandbox.path(pause).exists(), timeout=60), "the pass did not reach its address"
    sandbox.run("ip", "addr", "add", "10.2.0.1/24", "dev", "br0", "valid_lft", "3000", "preferred_lft", "3000")
    sandbox.path(pause).unlink()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "File exists" in stderr, stderr
    address = sandbox.run("ip", "addr", "show", "dev", "br0", "to", "10.2.0.1/24").stdout
    assert "valid_lft forever" not in address and "valid_lft" in address, address
    assert "10.2.0.1/24" not in sandbox.read("/var/lib/netlab/ledger.json")


def test_renaming_a_veth_end_makes_its_peer_anew_with_all_that_hangs_on_it(sandbox: Sandbox) -> None:
    """The peer keeps its name but is a new link: its address, the route through
    it and its sysctl (which the old peer had) are all set again in one pass."""
    lab = PEERED.replace("PEER", "vr-host").replace("routes:", "sysctls: {net.ipv4.conf.vr-host.proxy_arp: 1}\nroutes:")
    sandbox.write_config("lab.yaml", lab)
    sandbox.netlab("apply")
    sandbox.write_config("lab.yaml", lab.replace("veth-red", "veth-crimson"))
    sandbox.netlab("apply")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    assert sandbox.run("cat", "/proc/sys/net/ipv4/conf/vr-host/proxy_arp").stdout.strip() == "1"
    assert "dev vr-host proto 213" in sandbox.run("ip", "route", "show", "10.8.0.0/24").stdout
    sandbox.ping("red", "10.7.0.1", check=True)
