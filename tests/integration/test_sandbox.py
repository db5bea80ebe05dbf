"""The harness itself: a sandbox is private and leaves nothing behind, in both
layouts (the tests' and the benchmark's, with its PID namespace), and the
witness sees writes (a witness that cannot fail would prove nothing). These run
without netlab."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sandbox import BENCHMARK, TESTS, Layout, Sandbox, can_sandbox, host_footprint, is_background

pytestmark = pytest.mark.kernel
LAYOUTS = pytest.mark.parametrize("layout", [TESTS, BENCHMARK], ids=["tests-layout", "benchmark-layout"])


def _skip_unless(layout: Layout) -> None:
    why_not = can_sandbox(layout)
    if why_not is not None:
        pytest.skip(f"sandboxed kernel tests: {why_not}")


def _host_mounts(paths: set[str]) -> list[str]:
    """The host's mounts at these paths (mount point and file system type, from
    this process's mount namespace)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point, fstype = fields[4], fields[fields.index("-") + 1]
        if point in paths:
            found.append(f"{point} {fstype}")
    return sorted(found)


def _nspid(pid: int) -> list[str]:
    """A process's PID in each PID namespace it is in, the host's first."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(line.split()[1:] for line in status if line.startswith("NSpid:"))


def test_the_sandbox_has_a_network_and_mounts_of_its_own(any_sandbox: Sandbox) -> None:
    box, layout = any_sandbox, any_sandbox.layout
    assert os.readlink(f"/proc/{box.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{box.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert box.run("readlink", "/proc/self/ns/net").stdout.strip() == os.readlink(f"/proc/{box.pid}/ns/net")
    links = box.run("ip", "-br", "link").stdout.split("\n")
    assert [line.split()[0] for line in links if line.strip()] == ["lo"]
    assert "UP" in box.run("ip", "link", "show", "lo").stdout
    for path in layout.tmpfs:
        assert box.run("findmnt", "-n", "-o", "FSTYPE", path).stdout.strip() == "tmpfs", path
        made = sorted(Path(inner).name for inner in layout.made if Path(inner).parent == Path(path))
        # /run/mount: util-linux's record of the mounts the setup made (utab)
        listed = [name for name in box.run("ls", "-A", path).stdout.split() if (path, name) != ("/run", "mount")]
        assert listed == made, f"{path} is not as made in a fresh sandbox"
    for path in (*layout.tmpfs, "/etc/resolv.conf", "/etc/hosts"):
        assert box.run("findmnt", "-n", "-o", "PROPAGATION", path).stdout.strip() == "private", path
    assert box.run("cat", "/etc/resolv.conf").stdout == layout.resolv_conf
    assert box.run("cat", "/etc/hosts").stdout == layout.hosts
    if layout.sysfs:  # /sys of its own network namespace
        assert box.run("ls", "/sys/class/net").stdout.split() == ["lo"]


def test_only_the_benchmark_layout_has_a_pid_namespace_whose_pid_1_holds_it(any_sandbox: Sandbox) -> None:
    box = any_sandbox
    own = os.readlink(f"/proc/{box.pid}/ns/pid")
    assert box.run("readlink", "/proc/self/ns/pid").stdout.strip() == own
    if not box.layout.pid:
        assert own == os.readlink("/proc/self/ns/pid")
        assert _nspid(box.pid) == [str(box.pid)]
        return
    assert own != os.readlink("/proc/self/ns/pid")
    assert _nspid(box.pid)[-1] == "1"
    assert box.run("cat", "/proc/1/cmdline").stdout.split("\0")[:2] == ["sleep", "infinity"]
    # /proc inside is the sandbox's own: PID 1, the command and what it started
    inside = [entry for entry in box.run("ls", "/proc").stdout.split() if entry.isdigit()]
    assert "1" in inside and len(inside) <= 3, inside


@LAYOUTS
def test_the_sandbox_mounts_reach_nothing_of_the_host(layout: Layout) -> None:
    _skip_unless(layout)
    watched = {*layout.tmpfs, *layout.made, "/etc/resolv.conf", "/etc/hosts", "/sys", "/proc"}
    before = _host_mounts(watched)
    with Sandbox(layout) as box:
        assert _host_mounts(watched) == before
        box.run("mount", "-t", "tmpfs", "tmpfs", "/etc/netlab.d")  # one more, made inside
        box.run("mount", "--bind", "/etc/hosts", "/etc/resolv.conf")
        assert box.run("cat", "/etc/resolv.conf").stdout == layout.hosts
        assert _host_mounts(watched) == before
    assert _host_mounts(watched) == before


def test_what_happens_inside_stays_inside(any_sandbox: Sandbox) -> None:
    sandbox = any_sandbox
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


def test_a_background_process_gets_the_signals_sent_to_it(any_sandbox: Sandbox) -> None:
    # in a PID namespace nsenter forks the program and passes no signal on
    process = any_sandbox.spawn("sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo up; while :; do sleep 0.05; done")
    assert process.stdout is not None and process.stdout.readline() == "up\n"
    assert process.stop() == "got TERM\n"
    assert process.returncode == 3


@LAYOUTS
def test_closing_a_sandbox_leaves_nothing_on_the_host(layout: Layout) -> None:
    _skip_unless(layout)
    before = host_footprint()
    box = Sandbox(layout)
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
    assert not any(line.startswith("host: ") and "br-red" in line for line in seen), (
        "a namespace's write seen in the host"
    )


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
        # the probe's local route, named after its link was gone (seen in CI)
        "Deleted local 192.0.2.254 dev if4 table local proto kernel scope host src 192.0.2.254 ",
    ]
    assert [line for line in writes if is_background(line)] == []
    assert [line for line in background if not is_background(line)] == []


def test_a_sandbox_with_a_host_name_has_a_uts_namespace_of_its_own() -> None:
    _skip_unless(TESTS)
    before, host = host_footprint(), socket.gethostname()
    with Sandbox(hostname="node7") as named, Sandbox() as plain:
        assert os.readlink(f"/proc/{named.pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
        assert os.readlink(f"/proc/{plain.pid}/ns/uts") == os.readlink("/proc/self/ns/uts")
        assert named.run("hostname").stdout.strip() == "node7"
        # what netlab reads: socket.gethostname() inside
        probe = "import socket; print(socket.gethostname())"
        assert named.run(sys.executable, "-c", probe).stdout.strip() == "node7"
        assert plain.run("hostname").stdout.strip() == host
        assert socket.gethostname() == host
    assert socket.gethostname() == host
    assert host_footprint() == before


def test_a_cable_joins_two_sandboxes_and_never_touches_the_host() -> None:
    _skip_unless(TESTS)
    before = host_footprint()
    with Sandbox() as left, Sandbox() as right, left.witness() as seen_left, right.witness() as seen_right:
        left.cable(right, "to-right", "to-left")
        assert host_footprint() == before, "a cable end appeared on the host"
        for box, name, address in ((left, "to-right", "10.9.0.1/24"), (right, "to-left", "10.9.0.2/24")):
            box.run("ip", "addr", "add", address, "dev", name)
            box.run("ip", "link", "set", name, "up")
        left.ping(None, "10.9.0.2", check=True)
        right.ping(None, "10.9.0.1", check=True)
    assert any("to-right" in line for line in seen_left) and not any("to-left" in line for line in seen_left)
    assert any("to-left" in line for line in seen_right) and not any("to-right" in line for line in seen_right)
    assert host_footprint() == before
