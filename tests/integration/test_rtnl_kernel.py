"""The netlink backend against a real kernel in a sandbox, judged by `ip`: what
it writes is what `ip` shows, its route deletion finds routes whatever their
scope, its dumps pass over exactly the routes netlab does not read, and a
refusal names the request and carries the kernel's own words; links decoded from
only the attributes netlab reads are the links a full decode gives; the namespace
listing, kept while /run/netns is unchanged, still shows every namespace added
or removed; the kernel facade never answers from what a write made stale."""

from __future__ import annotations

import json
import sys

import pytest

from tests.sandbox import Sandbox

pytestmark = pytest.mark.kernel

SCRIPT = """
import json, sys
from netlab.controller.backends.netlink import Netlink
from netlab.state.errors import KernelRefused
out = {}
with Netlink() as nl:
    nl.link_add(None, "d0", "veth", peer=(None, "d1"))
    nl.link_set(None, "d0", state="up", mtu=1400)
    nl.addr_add(None, "d0", "10.9.0.1/24")
    nl.addr_add(None, "d0", "fd09::1/64")
    nl.route_replace(None, to="10.8.0.0/16", table=1000, metric=7, via="10.9.0.2", dev=None)
    out["after_writes"] = True
    try:
        nl.link_add(None, "d0", "veth", peer=(None, "d2"))
    except KernelRefused as error:
        out["refusal"] = str(error)
    if sys.argv[1:] == ["delete"]:
        nl.route_del(None, to="10.7.0.0/24", table=1000, metric=0)  # added by `ip`, scope link
        nl.route_del(None, to="10.8.0.0/16", table=1000, metric=7)
    dump = nl.dump(None)
    out["routes"] = sorted(f"{r.to} table {r.table} metric {r.metric} proto {r.proto}" for r in dump.routes if r.family == 4)
    out["links"] = {l.name: [l.state, l.mtu, l.alias] for l in dump.links}
    out["addresses"] = sorted(a.address for a in dump.addresses if a.interface == "d0" and not a.kernel_made)
print(json.dumps(out))
"""


def _run(sandbox: Sandbox, *args: str) -> dict:
    result = sandbox.run(sys.executable, "-c", SCRIPT, *args)
    return json.loads(result.stdout)


def test_writes_show_in_ip_and_a_refusal_names_the_request_and_the_kernels_words(sandbox: Sandbox) -> None:
    seen = _run(sandbox)
    shown = sandbox.run("ip", "link", "show", "d0").stdout
    assert ",UP," in shown.split(">")[0] and "mtu 1400" in shown  # up (its peer is down: no carrier)
    assert "alias netlab" in sandbox.run("ip", "-d", "link", "show", "d1").stdout
    addresses = sandbox.run("ip", "-br", "address", "show", "d0").stdout
    assert "10.9.0.1/24" in addresses and "fd09::1/64" in addresses
    assert (
        "10.8.0.0/16 via 10.9.0.2 dev d0 proto 213 metric 7"
        in sandbox.run("ip", "route", "show", "table", "1000").stdout
    )
    assert seen["links"]["d0"] == ["up", 1400, "netlab"]
    assert seen["addresses"] == ["10.9.0.1/24", "fd09::1/64"]
    assert seen["refusal"].startswith("create veth link host/d0: File exists (errno 17)")


def test_route_deletion_finds_a_route_of_any_scope(sandbox: Sandbox) -> None:
    sandbox.sh("ip link add x0 type dummy 2>/dev/null || ip link add x0 type veth peer name x1; ip link set x0 up")
    sandbox.run("ip", "route", "add", "10.7.0.0/24", "dev", "x0", "table", "1000")  # scope link
    seen = _run(sandbox, "delete")
    assert sandbox.run("ip", "route", "show", "table", "1000").stdout.strip() == ""
    assert not [route for route in seen["routes"] if "table 1000" in route]


def test_the_dump_reads_the_routes_ip_shows_and_passes_over_the_rest(sandbox: Sandbox) -> None:
    seen = _run(sandbox)
    # every IPv4 unicast route outside the local table that the kernel did not
    # make itself, as `ip` lists them
    shown = json.loads(sandbox.run("ip", "-4", "-j", "route", "show", "table", "all").stdout)
    assert any(r["dst"] == "10.9.0.0/24" and r.get("protocol") == "kernel" for r in shown)  # d0's connected route
    expected = sorted(
        f"{r['dst'] if '/' in r['dst'] or r['dst'] == 'default' else r['dst'] + '/32'} table {r.get('table', 'main')}"
        for r in shown
        if r.get("type", "unicast") == "unicast" and r.get("table") != "local" and r.get("protocol") != "kernel"
    )
    read = sorted(
        route.split(" metric")[0].replace("0.0.0.0/0", "default").replace("table 254", "table main")
        for route in seen["routes"]
    )
    assert read == expected
    assert any(route.startswith("10.8.0.0/16 table 1000") for route in read)


LISTING = """
import json, subprocess, time
from netlab.controller.backends import namespaces
seen = []
for name in ("a", "b", "c", "d"):
    subprocess.run(["ip", "netns", "add", name], check=True)
    seen.append(sorted(namespaces.list_namespaces()))
    if name == "a":
        time.sleep(0.2)  # settled: the next listing may be kept...
        seen.append(sorted(namespaces.list_namespaces()))
subprocess.run(["ip", "netns", "del", "b"], check=True)
seen.append(sorted(namespaces.list_namespaces()))
open("/run/netns/half", "w").close()  # a mount point left by a creation cut short
seen.append(sorted(namespaces.list_namespaces()))
print(json.dumps(seen))
"""


def test_the_namespace_listing_follows_every_addition_and_removal(sandbox: Sandbox) -> None:
    # ...until the directory changes: each listing must show the namespace just added
    seen = json.loads(sandbox.run(sys.executable, "-c", LISTING).stdout)
    assert seen == [
        ["a"],
        ["a"],
        ["a", "b"],
        ["a", "b", "c"],
        ["a", "b", "c", "d"],
        ["a", "c", "d"],
        ["a", "c", "d"],
    ]


NARROWED = """
import json
from dataclasses import asdict
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from netlab.controller.backends import rtnl
from netlab.controller.backends.netlink import RTM_DELLINK, RTM_NEWLINK, LinkMessage, Netlink
with Netlink() as nl:
    narrowed = {ns: nl.dump(ns).links for ns in (None, "n1")}
    index = nl._lookup(None, "p0", fresh=True)
    rtnl.decode_as(ifinfmsg, RTM_NEWLINK, RTM_DELLINK)  # pyroute2's own, every attribute
    whole = {ns: nl.dump(ns).links for ns in (None, "n1")}
    rtnl.decode_as(LinkMessage, RTM_NEWLINK, RTM_DELLINK)
print(json.dumps({
    "same": narrowed == whole,
    "links": [asdict(link) for ns in (None, "n1") for link in narrowed[ns]],
    "index": index,
}))
"""


def test_links_decoded_narrowly_read_as_pyroute2_decodes_them_whole(sandbox: Sandbox) -> None:
    # the attributes cut out before decoding are none that netlab reads: every
    # field of every record is what pyroute2's full decode gives
    sandbox.sh(
        """
        ip netns add n1
        ip link add br0 type bridge
        ip link add p0 mtu 1400 address 02:00:00:00:00:07 type veth peer name e0 netns n1
        ip link set p0 master br0 alias netlab up
        ip -n n1 link set e0 up
        ip link add q0 type veth peer name q1
        ip link add m0 link q0 type macvlan mode private
        ip link add m1 link br0 netns n1 type macvlan mode vepa
        ip link add vx0 type vxlan id 5 dstport 4789
        """
    )
    seen = json.loads(sandbox.run(sys.executable, "-c", NARROWED).stdout)
    assert seen["same"]
    links = {(link["netns"], link["name"]): link for link in seen["links"]}
    port = links[(None, "p0")]
    assert (port["kind"], port["master"], port["alias"], port["mtu"], port["mac"]) == (
        "veth",
        "br0",
        "netlab",
        1400,
        "02:00:00:00:00:07",
    )
    assert links[("n1", "e0")]["link_netnsid"] is not None and links[("n1", "e0")]["state"] == "up"
    assert links[(None, "br0")]["kind"] == "bridge"
    assert seen["index"] == port["index"]
    # the creation attributes of the types in the table, and the parent's index
    # (in the host's namespace, for a link in another one)
    macvlan = links[(None, "m0")]
    assert (macvlan["data"], macvlan["link_index"], macvlan["link_netnsid"]) == (
        [["IFLA_MACVLAN_MODE", "private"]],
        links[(None, "q0")]["index"],
        None,
    )
    moved = links[("n1", "m1")]
    assert (moved["data"], moved["link_index"]) == ([["IFLA_MACVLAN_MODE", "vepa"]], links[(None, "br0")]["index"])
    assert moved["link_netnsid"] is not None
    # a vxlan's attributes, with its underlay's index (none here), and a bridge's options
    vxlan = dict(links[(None, "vx0")]["data"])
    assert vxlan == {
        "IFLA_VXLAN_ID": 5,
        "IFLA_VXLAN_LOCAL": None,
        "IFLA_VXLAN_GROUP": None,
        "IFLA_VXLAN_PORT": 4789,
        "IFLA_VXLAN_LEARNING": 1,
        "IFLA_VXLAN_LINK": None,
    }
    bridge = dict(links[(None, "br0")]["data"])
    assert bridge == {"IFLA_BR_STP_STATE": 0, "IFLA_BR_VLAN_FILTERING": 0, "IFLA_BR_FORWARD_DELAY": 1500}


FACADE = """
import json
from netlab.controller.backends.kernel import Kernel
seen = {}
with Kernel() as kernel:
    def look(step):
        host = kernel.dump(None)
        seen[step] = {
            "links": sorted(link.name for link in host.links),
            "addresses": sorted(a.address for a in host.addresses if a.interface == "s0"),
            "routes": sorted(r.to for r in host.routes if r.table == 254),
            "forwarding": kernel.sysctl(None, "net.ipv4.ip_forward"),
            "namespaces": sorted(kernel.namespaces()),
            "z": sorted(link.name for link in kernel.dump("z").links),
        }
    look("before")
    kernel.netlink.link_add(None, "s0", "veth", peer=(None, "s1"))
    kernel.netlink.link_set(None, "s0", state="up")
    look("link")
    kernel.netlink.addr_add(None, "s0", "10.5.0.1/24")
    look("address")
    kernel.netlink.route_add(None, to="10.6.0.0/24", table=254, metric=5, via="10.5.0.2", dev="s0")
    look("route")
    kernel.write_sysctl(None, "net.ipv4.ip_forward", "1")
    look("sysctl")
    kernel.create_namespace("z")
    look("namespace")
    kernel.netlink.link_del(None, "s1")
    look("deletion")
print(json.dumps(seen))
"""


def test_the_facade_never_answers_from_what_a_write_made_stale(sandbox: Sandbox) -> None:
    # each read is taken before and after a write of each kind, through one
    # kernel facade: the second shows the write
    seen = json.loads(sandbox.run(sys.executable, "-c", FACADE).stdout)
    assert seen["before"] == {
        "links": ["lo"],
        "addresses": [],
        "routes": [],
        "forwarding": "0",
        "namespaces": [],
        "z": [],
    }
    assert seen["link"]["links"] == ["lo", "s0", "s1"]
    assert seen["address"]["addresses"] == ["10.5.0.1/24"]
    assert seen["route"]["routes"] == ["10.6.0.0/24"]
    assert seen["sysctl"]["forwarding"] == "1"
    assert seen["namespace"]["namespaces"] == ["z"] and seen["namespace"]["z"] == ["lo"]
    assert seen["deletion"]["links"] == ["lo"]  # the peer went with it
