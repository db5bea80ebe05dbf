"""Links against a real kernel in a sandbox, judged by `ip` and `ping`: a new
namespace's loopback, a lost mark put back, a macvlan's mode changed in place
and its parent (or passthru) by replacing it, a missing parent refused, and a `device` (and a
namespace's sysctl) given back what it had before netlab."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sandbox import Sandbox

pytestmark = pytest.mark.kernel


def _link(sandbox: Sandbox, name: str, netns: str | None = None, details: bool = False) -> dict[str, Any]:
    ns = [] if netns is None else ["-n", netns]
    argv = ["ip", *ns, *(["-d"] if details else []), "-j", "link", "show", name]
    (link,) = json.loads(sandbox.run(*argv).stdout)
    return link


LOOPBACK = """version: 1
namespaces: [{name: red}, {name: blue}]
interfaces:
  - {name: lo, type: device, netns: red, addresses: [10.255.0.1/32]}
"""


def test_lo_of_a_namespace_netlab_creates_carries_its_address_from_an_empty_kernel(sandbox: Sandbox) -> None:
    sandbox.write_config("lo.yaml", LOOPBACK)
    sandbox.netlab("apply")
    shown = sandbox.run("ip", "-n", "red", "addr", "show", "lo").stdout
    assert "UP" in shown.split(">")[0] and "inet 10.255.0.1/32" in shown
    sandbox.ping("red", "10.255.0.1", check=True)
    # every namespace netlab creates has its loopback up, declared or not
    assert "UP" in _link(sandbox, "lo", "blue")["flags"]
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    # after a destroy (or a reboot: /run/netns empty) the same files apply again
    sandbox.netlab("destroy", "--yes")
    assert sandbox.namespaces() == []
    sandbox.netlab("apply")
    sandbox.ping("red", "10.255.0.1", check=True)


def test_a_link_whose_mark_was_taken_away_gets_it_back(sandbox: Sandbox) -> None:
    sandbox.write_config(
        "lab.yaml",
        "version: 1\nnamespaces: [{name: red}]\ninterfaces:\n"
        "  - {name: veth-red, type: veth, netns: red, peer: {name: veth-red-br}}\n",
    )
    sandbox.netlab("apply")
    sandbox.run("ip", "link", "set", "veth-red-br", "alias", "")
    assert "ifalias" not in _link(sandbox, "veth-red-br")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 2
    sandbox.netlab("apply")
    assert _link(sandbox, "veth-red-br")["ifalias"] == "netlab"
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def _macvlan_lab(mode: str, parent: str) -> str:
    return f"""version: 1
namespaces: [{{name: red}}]
interfaces:
  - {{name: br0, type: bridge}}
  - {{name: br1, type: bridge}}
  - {{name: mv0, type: macvlan, parent: {parent}, mode: {mode}, netns: red, addresses: [10.9.0.2/24]}}
routes:
  - {{netns: red, to: 10.99.0.0/16, via: 10.9.0.1}}
"""


def _macvlan(sandbox: Sandbox) -> tuple[str, str, int]:
    """mv0's mode, parent's name (through its index in the host) and index."""
    link = _link(sandbox, "mv0", "red", details=True)
    host = {entry["ifindex"]: entry["ifname"] for entry in json.loads(sandbox.run("ip", "-j", "link").stdout)}
    return link["linkinfo"]["info_data"]["mode"], host[link["link_index"]], link["ifindex"]


def test_a_macvlans_mode_changes_in_place_and_passthru_or_another_parent_replaces_it(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", _macvlan_lab("bridge", "br0"))
    sandbox.netlab("apply")
    mode, parent, first = _macvlan(sandbox)
    assert (mode, parent) == ("bridge", "br0")

    def carried() -> None:  # what hangs on it
        assert "10.9.0.2/24" in sandbox.run("ip", "-n", "red", "-br", "addr", "show", "mv0").stdout
        assert "10.99.0.0/16 via 10.9.0.1" in sandbox.run("ip", "-n", "red", "route").stdout

    # a mode the driver changes on the live link: the same link, nothing else touched
    sandbox.write_config("lab.yaml", _macvlan_lab("private", "br0"))
    assert "~ link red/mv0: mode bridge -> private\n" in sandbox.netlab("plan").stdout
    with sandbox.witness("red", objects=("address", "route")) as seen:
        sandbox.netlab("apply")
    assert seen == []
    assert _macvlan(sandbox) == ("private", "br0", first)
    carried()
    # into passthru the kernel takes no macvlan: replaced, with what hung on it
    sandbox.write_config("lab.yaml", _macvlan_lab("passthru", "br0"))
    assert "~ link red/mv0: replace: mode private -> passthru" in sandbox.netlab("plan").stdout
    sandbox.netlab("apply")
    mode, parent, second = _macvlan(sandbox)
    assert (mode, parent) == ("passthru", "br0") and second != first
    carried()
    sandbox.write_config("lab.yaml", _macvlan_lab("passthru", "br1"))
    assert "~ link red/mv0: replace: parent br0 -> br1" in sandbox.netlab("plan").stdout
    sandbox.netlab("apply")
    assert _macvlan(sandbox)[:2] == ("passthru", "br1")
    carried()
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def test_a_macvlan_made_by_hand_with_another_mode_is_not_taken_over(sandbox: Sandbox) -> None:
    sandbox.run("ip", "link", "add", "br0", "type", "bridge")
    sandbox.run("ip", "link", "add", "mv0", "link", "br0", "type", "macvlan", "mode", "vepa")
    sandbox.write_config(
        "lab.yaml", "version: 1\ninterfaces:\n  - {name: mv0, type: macvlan, parent: br0, mode: bridge}\n"
    )
    result = sandbox.netlab("apply", check=False)
    assert result.returncode == 1
    assert _link(sandbox, "mv0", details=True)["linkinfo"]["info_data"]["mode"] == "vepa"


def test_a_missing_parent_is_refused_with_file_and_line_and_nothing_changes(sandbox: Sandbox) -> None:
    before = sandbox.dump()
    sandbox.write_config(
        "lab.yaml",
        "version: 1\nnamespaces: [{name: red}]\ninterfaces:\n"
        "  - {name: br0, type: bridge}\n"
        "  - {name: mv0, type: macvlan, parent: eth9, netns: red}\n",
    )
    result = sandbox.netlab("apply", check=False)
    assert result.returncode == 1
    assert "lab.yaml:5:" in result.stderr and "parent host/eth9" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox.dump() == before


def _device_lab(mac: str) -> str:
    return f"version: 1\ninterfaces:\n  - {{name: eth1, type: device, mtu: 1400, mac: '{mac}', state: up}}\n"


@pytest.mark.parametrize("how", ["dropped from the files", "destroy"])
def test_a_device_gets_back_its_mtu_mac_and_state(sandbox: Sandbox, how: str) -> None:
    sandbox.run("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-peer")
    before = _link(sandbox, "eth1")
    assert "UP" not in before["flags"]
    sandbox.write_config("lab.yaml", _device_lab("02:00:00:00:14:00"))
    sandbox.netlab("apply")
    changed = _link(sandbox, "eth1")
    assert (changed["mtu"], changed["address"], "UP" in changed["flags"]) == (1400, "02:00:00:00:14:00", True)
    if how == "destroy":
        sandbox.netlab("destroy", "--yes")
    else:
        sandbox.write_config("lab.yaml", "version: 1\nnamespaces: [{name: red}]\n")
        sandbox.netlab("apply")
    after = _link(sandbox, "eth1")
    assert (after["mtu"], after["address"], "UP" in after["flags"]) == (before["mtu"], before["address"], False)
    assert "ifalias" not in after  # never netlab's
    if how == "destroy":  # the files still declare it: nothing else is left to give back
        assert "eth1" not in sandbox.netlab("destroy", "--yes").stdout
    else:
        assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def test_a_sysctl_of_a_namespace_netlab_created_goes_back_to_a_fresh_namespaces_value(sandbox: Sandbox) -> None:
    def forwarding() -> str:
        return sandbox.run("ip", "netns", "exec", "red", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()

    sandbox.run("ip", "netns", "add", "probe")
    fresh = sandbox.run("ip", "netns", "exec", "probe", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
    sandbox.run("ip", "netns", "del", "probe")
    wanted = "0" if fresh == "1" else "1"
    sandbox.write_config(
        "ns.yaml", f"version: 1\nnamespaces:\n  - {{name: red, sysctls: {{net.ipv4.ip_forward: {wanted}}}}}\n"
    )
    sandbox.netlab("apply")
    assert forwarding() == wanted
    sandbox.write_config("ns.yaml", "version: 1\nnamespaces:\n  - {name: red}\n")
    sandbox.netlab("apply")
    assert forwarding() == fresh
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def test_the_loopback_example_routers_reach_each_others_router_id(sandbox: Sandbox) -> None:
    sandbox.copy_example("loopback")
    sandbox.netlab("apply")
    sandbox.ping("r1", "10.255.0.2", check=True)
    sandbox.ping("r2", "10.255.0.1", check=True)
    assert "inet 10.255.0.2/32" in sandbox.run("ip", "-n", "r2", "addr", "show", "lo").stdout


def test_a_device_attribute_dropped_from_the_files_is_given_back_and_the_rest_stays(sandbox: Sandbox) -> None:
    sandbox.run("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-peer")
    before = _link(sandbox, "eth1")
    sandbox.write_config("lab.yaml", _device_lab("02:00:00:00:14:00"))
    sandbox.netlab("apply")
    sandbox.write_config("lab.yaml", "version: 1\ninterfaces:\n  - {name: eth1, type: device, mtu: 1400, state: up}\n")
    sandbox.netlab("apply")
    after = _link(sandbox, "eth1")
    assert (after["mtu"], after["address"], "UP" in after["flags"]) == (1400, before["address"], True)
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    sandbox.netlab("destroy", "--yes")
    assert _link(sandbox, "eth1")["mtu"] == before["mtu"]


def test_links_leaving_the_files_go_in_one_group_deletion_and_foreign_links_stay(sandbox: Sandbox) -> None:
    """The links of a namespace that leave the files are deleted at once, by a
    group of their own (`Netlink.links_del`); links netlab does not own stay,
    in whatever group they were, and so does the one kept."""
    ports = "".join(f"  - {{name: vh{i}, type: veth, peer: {{name: vp{i}}}, master: br0}}\n" for i in range(6))
    sandbox.write_config("lab.yaml", f"version: 1\ninterfaces:\n  - {{name: br0, type: bridge}}\n{ports}")
    sandbox.netlab("apply")
    sandbox.run("ip", "link", "add", "mine0", "type", "bridge")
    sandbox.run("ip", "link", "add", "mine7", "group", "7", "type", "bridge")
    sandbox.write_config("lab.yaml", "version: 1\ninterfaces:\n  - {name: vh0, type: veth, peer: {name: vp0}}\n")
    result = sandbox.netlab("apply")
    assert "11 to remove" in result.stdout  # br0, and both ends of five veths
    links = {link["ifname"]: link for link in json.loads(sandbox.run("ip", "-j", "link", "show").stdout)}
    assert sorted(links) == ["lo", "mine0", "mine7", "vh0", "vp0"]
    assert links["mine7"]["group"] == "7" and links["mine0"]["group"] == "default"
    assert links["vh0"]["group"] == "default" and "master" not in links["vh0"]
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
