"""Declared connectivity checks against the real kernel, in a sandbox: what they
find agrees with `ping`, a real TCP listener and a real nameserver in another
namespace; a change that breaks a check that passed is rolled back (the dump
equals the dump before, and `ping` still gets through); a check failing before
and after does not undo anything; `--no-rollback-on-check` keeps the change."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest

from tests.integration.test_daemon import Daemon, make_srv, start, status
from tests.sandbox import Sandbox, wait

pytestmark = pytest.mark.kernel
__all__ = ["start"]  # the daemon's fixture, from test_daemon

LAB = """version: 1
namespaces:
  - name: red
    dns: {nameservers: [192.168.15.2]}
  - name: blue
interfaces:
  - {name: v-net-0, type: bridge, addresses: [192.168.15.5/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [192.168.15.1/24], peer: {name: veth-red-br, master: v-net-0}}
  - {name: veth-blue, type: veth, netns: blue, addresses: [192.168.15.2/24], peer: {name: veth-blue-br, master: v-net-0}}
routes:
  - {netns: red, to: default, via: 192.168.15.5}
hosts: [{address: 192.168.15.2, names: [blue]}]
checks:
  - {from: red, ping: 192.168.15.2}
  - {from: red, ping: 10.99.0.2, expect: unreachable}
  - {from: host, ping: 192.168.15.1}
  - {from: red, tcp: "192.168.15.2:8000"}
  - {from: blue, tcp: "192.168.15.1:8000", expect: unreachable}
  - {from: blue, resolve: blue, address: 192.168.15.2}
  - {from: red, resolve: db.lab.internal, address: 192.168.15.77}
  - {from: red, resolve: nowhere.lab.internal, expect: unreachable}
"""
LINE_OF_RED_PING = LAB.splitlines().index("  - {from: red, ping: 192.168.15.2}") + 1

# A nameserver that knows one name (db.lab.internal A 192.168.15.77) and says
# NXDOMAIN to everything else: enough to prove the check asks the namespace's own one.
NAMESERVER = r"""
import socket, struct
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 53))
while True:
    query, peer = sock.recvfrom(512)
    ident, = struct.unpack("!H", query[:2])
    at = 12
    labels = []
    while query[at]:
        labels.append(query[at + 1 : at + 1 + query[at]].decode())
        at += query[at] + 1
    qtype, = struct.unpack("!H", query[at + 1 : at + 3])
    question = query[12 : at + 5]
    known = ".".join(labels) == "db.lab.internal" and qtype == 1
    header = struct.pack("!HHHHHH", ident, 0x8180 if known else 0x8183, 1, 1 if known else 0, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("192.168.15.77") if known else b""
    sock.sendto(header + question + answer, peer)
"""
LISTENER = "import socket; s = socket.create_server(('0.0.0.0', 8000)); [s.accept()[0].close() for _ in iter(int, 1)]"


def _serve(sandbox: Sandbox) -> None:
    """blue answers TCP on 8000 and DNS on 53, as real processes of its own."""
    sandbox.spawn("ip", "netns", "exec", "blue", sys.executable, "-c", LISTENER)
    sandbox.spawn("ip", "netns", "exec", "blue", sys.executable, "-c", NAMESERVER)
    ready = "ss -Hltn 'sport = :8000' | grep -q . && ss -Hlun 'sport = :53' | grep -q ."
    assert wait(lambda: sandbox.run("ip", "netns", "exec", "blue", "sh", "-c", ready, check=False).returncode == 0, 10)


def _checks(sandbox: Sandbox) -> dict[str, dict[str, object]]:
    result = sandbox.netlab("check", "--json", check=False)
    return {check["check"]: check for check in json.loads(result.stdout)["checks"]}


def test_checks_find_what_the_network_does(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply", check=False)  # blue's servers come once blue exists
    _serve(sandbox)
    applied = sandbox.netlab("apply")
    assert "Checks: 8 passed, 0 failed." in applied.stdout, applied.stdout
    found = _checks(sandbox)
    assert all(check["passed"] for check in found.values()), found
    assert found["red resolve db.lab.internal = 192.168.15.77"]["detail"] == (
        "resolves to 192.168.15.77 (nameserver 192.168.15.2)"
    )
    assert found["blue resolve blue = 192.168.15.2"]["detail"] == "resolves to 192.168.15.2 (the hosts file)"
    # the witnesses agree: ping gets through, and fails where the check expects it to
    assert sandbox.ping("red", "192.168.15.2") and not sandbox.ping("red", "10.99.0.2")
    # a check that fails: named with its file and line, exit 1
    sandbox.run("ip", "-n", "blue", "link", "set", "veth-blue", "down")
    failed = sandbox.netlab("check", check=False)
    assert failed.returncode == 1
    assert f"FAIL  red ping 192.168.15.2: no answer in 1 s  (/etc/netlab.d/lab.yaml:{LINE_OF_RED_PING}:5)" in (
        failed.stdout
    ), failed.stdout
    assert "FAIL  red tcp 192.168.15.2:8000" in failed.stdout
    assert "pass  red ping 10.99.0.2 unreachable" in failed.stdout
    document = json.loads(sandbox.netlab("check", "--json", check=False).stdout)
    assert document["summary"]["failed"] >= 2 and document["format_version"] == 1


def test_an_edit_that_breaks_a_check_is_rolled_back(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply", check=False)
    _serve(sandbox)
    sandbox.netlab("apply")
    before = sandbox.dump()
    # blue moves to another address: red's ping of 192.168.15.2 breaks
    sandbox.write_config("lab.yaml", LAB.replace("addresses: [192.168.15.2/24]", "addresses: [192.168.15.12/24]"))
    refused = sandbox.netlab("apply", check=False)
    assert refused.returncode == 1
    assert "the pass broke checks that passed before it" in refused.stderr, refused.stderr
    assert f"red ping 192.168.15.2: no answer in 1 s  (/etc/netlab.d/lab.yaml:{LINE_OF_RED_PING}:5)" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert sandbox.dump() == before
    assert sandbox.ping("red", "192.168.15.2")
    assert "- address blue/veth-blue 192.168.15.2/24" in sandbox.netlab("plan").stdout  # the edit is still to do


def test_a_check_failing_before_and_after_does_not_undo_the_change(sandbox: Sandbox) -> None:
    failing = LAB + "  - {from: red, ping: 192.168.15.99}\n"
    sandbox.write_config("lab.yaml", failing)
    sandbox.netlab("apply", check=False)
    _serve(sandbox)
    assert sandbox.netlab("apply", check=False).returncode == 1  # the check fails: apply says so
    sandbox.write_config(
        "lab.yaml", failing.replace("addresses: [192.168.15.5/24]", "addresses: [192.168.15.5/24, 10.5.0.1/24]")
    )
    kept = sandbox.netlab("apply", check=False)
    assert kept.returncode == 1, kept.stdout + kept.stderr
    assert "Applied and verified" in kept.stdout and "FAIL  red ping 192.168.15.99" in kept.stdout
    assert "10.5.0.1/24" in sandbox.run("ip", "-br", "addr", "show", "v-net-0").stdout


def test_no_rollback_on_check_keeps_the_breaking_change(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply", check=False)
    _serve(sandbox)
    sandbox.netlab("apply")
    sandbox.write_config("lab.yaml", LAB.replace("addresses: [192.168.15.2/24]", "addresses: [192.168.15.12/24]"))
    kept = sandbox.netlab("apply", "--no-rollback-on-check", check=False)
    assert kept.returncode == 1 and "FAIL  red ping 192.168.15.2" in kept.stdout, kept.stdout + kept.stderr
    assert "192.168.15.12/24" in sandbox.run("ip", "-n", "blue", "-br", "addr").stdout


# -- under the daemon ------------------------------------------------------------------------

DAEMON_LAB = LAB.split("checks:\n")[0] + (
    "checks:\n  - {from: red, ping: 192.168.15.2}\n  - {from: red, ping: 10.99.0.2, expect: unreachable}\n"
)


def test_the_daemon_rejects_a_revision_that_breaks_a_check(sandbox: Sandbox, start: Callable[..., Daemon]) -> None:
    """git-sync style: the directory is a symlink swapped to the next revision."""
    make_srv(sandbox)
    for rev, text in {
        "rev1": DAEMON_LAB,
        "rev2": DAEMON_LAB.replace("addresses: [192.168.15.2/24]", "addresses: [192.168.15.12/24]"),
    }.items():
        sandbox.path(f"/srv/repo/{rev}").mkdir(parents=True)
        sandbox.path(f"/srv/repo/{rev}/lab.yaml").write_text(text)
    sandbox.sh("ln -s rev1 /srv/repo/current")
    daemon = start("--config-dir", "/srv/repo/current", "--check-interval", "0.5")
    assert wait(lambda: [c["passed"] for c in status(sandbox)["checks"]] == [True, True], 5), status(sandbox)  # type: ignore[union-attr, index]
    before = sandbox.dump()

    def swap(rev: str) -> None:
        sandbox.sh(f"cd /srv/repo && ln -s {rev} next && mv -T next current")

    swap("rev2")
    assert wait(lambda: status(sandbox).get("state") == "degraded", 10), status(sandbox)
    problems = status(sandbox)["rejected"]["problems"]  # type: ignore[index]
    line = DAEMON_LAB.splitlines().index("  - {from: red, ping: 192.168.15.2}") + 1
    assert [(p["file"], p["line"]) for p in problems] == [("/srv/repo/rev2/lab.yaml", line)], problems
    assert "the change broke this check (red ping 192.168.15.2" in problems[0]["message"]
    assert sandbox.dump() == before and sandbox.ping("red", "192.168.15.2")
    (rejected,) = [e for e in daemon.events() if str(e.get("event")).startswith("generation rejected: it broke checks")]
    assert rejected["checks"] == ["red ping 192.168.15.2"], rejected
    # the rejected revision is not tried again: drift is repaired for the one in force
    sandbox.run("ip", "-n", "blue", "addr", "del", "192.168.15.2/24", "dev", "veth-blue")
    assert wait(lambda: sandbox.dump() == before, 5), sandbox.dump()
    assert "192.168.15.12/24" not in sandbox.run("ip", "-n", "blue", "-br", "addr").stdout
    swap("rev1")
    assert wait(lambda: status(sandbox).get("state") == "healthy", 10), status(sandbox)
    assert "check passing since " in sandbox.netlab("status", check=False).stdout
    # the periodic run, and one event per check that changes result
    checked = status(sandbox)["checks"][0]["checked"]  # type: ignore[index]
    assert wait(lambda: status(sandbox)["checks"][0]["checked"] != checked, 5)  # type: ignore[index]
    # the host takes 10.99.0.2 on a link of its own (none of netlab's business): red reaches it
    sandbox.sh("ip link add x99 type veth peer name x99p && ip addr add 10.99.0.2/32 dev x99 && ip link set x99 up")
    # (red's ping of blue may have failed for a moment too, while its address was deleted above)
    isolation = "red ping 10.99.0.2 unreachable"

    def isolation_failing() -> list[dict[str, object]]:
        return [e for e in daemon.named("check failing") if e["check"] == isolation]

    assert wait(isolation_failing, 5), daemon.log.read_text()[-2000:]
    assert len(isolation_failing()) == 1
