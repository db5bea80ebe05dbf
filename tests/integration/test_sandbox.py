"""The harness itself: a sandbox is private and leaves nothing behind, and the
witness sees writes (a witness that cannot fail would prove nothing). These run
without netlab."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.sandbox import HOSTS, PRIVATE_DIRS, RESOLV_CONF, Sandbox, can_sandbox, host_footprint, is_background

pytestmark = pytest.mark.kernel


def test_the_sandbox_has_a_network_and_mounts_of_its_own(sandbox: Sandbox) -> None:
    assert os.readlink(f"/proc/{sandbox.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{sandbox.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    links = sandbox.run("ip", "-br", "link").stdout.split("\n")
    assert [line.split()[0] for line in links if line.strip()] == ["lo"]
    assert "UP" in sandbox.run("ip", "link", "show", "lo").stdout
    for path in PRIVATE_DIRS:
        assert sandbox.run("findmnt", "-n", "-o", "FSTYPE", path).stdout.strip() == "tmpfs", path
        assert sandbox.run("ls", "-A", path).stdout == "", f"{path} is not empty in a fresh sandbox"
    assert sandbox.run("cat", "/etc/resolv.conf").stdout == RESOLV_CONF
    assert sandbox.run("cat", "/etc/hosts").stdout == HOSTS


def test_what_happens_inside_stays_inside(sandbox: Sandbox) -> None:
    sandbox.run("ip", "netns", "add", "inside")
    sandbox.run("ip", "link", "add", "inside0", "type", "bridge")
    sandbox.run("mkdir", "-p", "/etc/netns/inside")
    sandbox.write_config("inside.yaml", "version: 1\n")
    sandbox.run("sh", "-c", "echo 'nameserver 192.0.2.99' > /etc/resolv.conf")
    assert sandbox.namespaces() == ["inside"]
    assert sandbox.run("cat", "/etc/netlab.d/inside.yaml").stdout == "version: 1\n"
    assert "inside" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", "inside0"], capture_output=True).returncode != 0
    assert not os.path.exists("/etc/netlab.d/inside.yaml")
    assert not os.path.exists("/etc/netns/inside")
    assert "192.0.2.99" not in open("/etc/resolv.conf").read()


def test_closing_a_sandbox_leaves_nothing_on_the_host() -> None:
    why_not = can_sandbox()
    if why_not is not None:
        pytest.skip(f"sandboxed kernel tests: {why_not}")
    before = host_footprint()
    box = Sandbox()
    box.run("ip", "netns", "add", "leak-me")
    box.run("ip", "link", "add", "leak0", "type", "veth", "peer", "name", "leak1", "netns", "leak-me")
    box.write_config("leak.yaml", "version: 1\n")
    monitor = box.spawn("ip", "monitor", "link")
    box.close()
    assert monitor.poll() is not None, "a background process outlived its sandbox"
    assert not os.path.exists(f"/proc/{box.pid}"), "the holder process outlived its sandbox"
    assert host_footprint() == before


def test_the_witness_sees_writes_in_every_namespace_it_watches(sandbox: Sandbox) -> None:
    sandbox.run("ip", "netns", "add", "red")
    sandbox.run("ip", "link", "add", "br-host", "type", "bridge")
    sandbox.run("ip", "-n", "red", "link", "add", "br-red", "type", "bridge")
    with sandbox.witness("red") as seen:
        sandbox.run("ip", "addr", "add", "10.1.0.1/24", "dev", "br-host")
        sandbox.run("ip", "-n", "red", "link", "set", "br-red", "mtu", "1400")
    assert any(line.startswith("host: ") and "inet 10.1.0.1/24" in line for line in seen), seen
    assert any(line.startswith("host: ") and "local 10.1.0.1 dev br-host" in line for line in seen), seen
    assert any(line.startswith("red: ") and "br-red" in line and "mtu 1400" in line for line in seen), seen
    assert not any(line.startswith("host: ") and "br-red" in line for line in seen), "a namespace's write seen in the host"


def test_the_link_witness_sees_a_link_set_down_and_a_port_leaving_its_bridge(sandbox: Sandbox) -> None:
    sandbox.run("ip", "link", "add", "br0", "type", "bridge")
    sandbox.run("ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
    sandbox.run("ip", "link", "set", "va", "master", "br0")
    for link in ("br0", "va", "vb"):
        sandbox.run("ip", "link", "set", link, "up")
    with sandbox.witness(objects=("link",)) as seen:
        sandbox.run("ip", "link", "set", "vb", "down")
    assert any("vb" in line and "UP" not in line.split(">")[0] for line in seen), seen
    with sandbox.witness(objects=("link",)) as seen:
        sandbox.run("ip", "link", "set", "va", "nomaster")
    assert any(line.startswith("host: ") and " va@" in line and "master" not in line for line in seen), seen


def test_the_witness_sees_nothing_when_nothing_is_written(sandbox: Sandbox) -> None:
    # the background of a fresh lab: a bridge port and a veth in a namespace just
    # came up (IPv6 link-local addresses and their routes appear by themselves)
    sandbox.run("ip", "netns", "add", "red")
    sandbox.run("ip", "link", "add", "br0", "type", "bridge")
    sandbox.run("ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", "red")
    sandbox.run("ip", "link", "set", "va", "master", "br0")
    for link in ("br0", "va"):
        sandbox.run("ip", "link", "set", link, "up")
    sandbox.run("ip", "-n", "red", "link", "set", "vb", "up")
    with sandbox.witness("red") as seen:
        time.sleep(2.5)  # DAD of the link-local addresses finishes in here
    assert seen == []


def test_the_background_filter_keeps_writes_and_drops_the_kernels_own_events() -> None:
    writes = [
        "5: va@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue master br0 state DOWN group default \\    link/ether 12:b6:6d:34:5e:b6",
        "Deleted 5: va@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 12:b6:6d:34:5e:b6",
        "2: br0    inet 192.168.15.5/24 scope global br0\\       valid_lft forever preferred_lft forever",
        "default via 192.168.15.5 dev veth-red proto 213",
    ]
    background = [
        "3: va@br9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master br9 state UP \\    link/ether 12:b6:6d:34:5e:b6",
        "2: br9    inet6 fe80::10b6:6dff:fe34:5eb6/64 scope link \\       valid_lft forever preferred_lft forever",
        "local fe80::10b6:6dff:fe34:5eb6 dev br9 table local proto kernel metric 0 pref medium",
        "multicast ff00::/8 dev va table local proto kernel metric 256 pref medium",
        "7: witness-end: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default",
    ]
    assert [line for line in writes if is_background(line)] == []
    assert [line for line in background if not is_background(line)] == []
