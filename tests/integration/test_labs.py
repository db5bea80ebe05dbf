"""The lecture's labs applied to a real kernel in a sandbox, judged by `ip`,
`ping` and `ip monitor`, not by netlab itself."""

from __future__ import annotations

import json
import re
import resource

import pytest

from netlab.state.link_types import LINK_TYPES, kernel_module
from netlab.state.validating import load_schema
from tests.sandbox import NETLAB, Sandbox, one_host_examples

pytestmark = pytest.mark.kernel


# examples/cluster, three hosts' files, is test_cluster.py's
@pytest.mark.parametrize("example", one_host_examples())
def test_every_example_validates_applies_converges_and_is_destroyed_without_a_trace(
    sandbox: Sandbox, example: str
) -> None:
    pristine = sandbox.dump()
    sandbox.copy_example(example)
    assert sandbox.netlab("validate", "/etc/netlab.d").returncode == 0
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 2
    sandbox.netlab("apply")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    assert sandbox.dump() != pristine
    sandbox.netlab("destroy", "--yes")
    assert sandbox.dump() == pristine
    assert "netlab" not in sandbox.nat_text().lower()


def test_two_namespaces_ping_each_other(sandbox: Sandbox) -> None:
    sandbox.copy_example("two-namespaces")
    sandbox.netlab("apply")
    assert sandbox.namespaces() == ["blue", "red"]
    sandbox.ping("red", "192.168.15.2", check=True)
    sandbox.ping("blue", "192.168.15.1", check=True)


def test_bridge_lab_every_namespace_reaches_every_other_and_the_host(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 2
    sandbox.netlab("apply")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    addresses = {"red": "192.168.15.1", "blue": "192.168.15.2", "orange": "192.168.15.3"}
    for source in addresses:
        sandbox.ping(source, "192.168.15.5", check=True)
        for target, address in addresses.items():
            if target != source:
                sandbox.ping(source, address, check=True)
    ports = sandbox.run("ip", "-br", "link", "show", "master", "v-net-0").stdout
    assert {line.split("@")[0] for line in ports.split()} >= {"veth-red-br", "veth-blue-br", "veth-orange-br"}
    assert "default via 192.168.15.5" in sandbox.run("ip", "-n", "red", "route").stdout
    assert "proto 213" in sandbox.run("ip", "-n", "red", "route").stdout
    assert "alias netlab" in sandbox.run("ip", "-d", "link", "show", "v-net-0").stdout


def test_routing_lab_a_reaches_c_only_through_forwarding_in_b(sandbox: Sandbox) -> None:
    sandbox.copy_example("routing")
    sandbox.netlab("apply")
    forwarding = {
        ns: sandbox.run("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
        for ns in "abc"
    }
    assert forwarding == {"a": "0", "b": "1", "c": "0"}
    sandbox.ping("a", "10.0.2.1", check=True)
    # the same lab with forwarding off in b: a no longer reaches c
    sandbox.run("ip", "netns", "exec", "b", "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
    assert not sandbox.ping("a", "10.0.2.1")
    sandbox.netlab("apply")  # puts forwarding back: drift repaired by a pass
    sandbox.ping("a", "10.0.2.1", check=True)


def test_a_second_apply_writes_nothing_to_the_kernel(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    sandbox.netlab("apply")
    with sandbox.witness("red", "blue", "orange") as seen:
        result = sandbox.netlab("apply")
    assert "No changes" in result.stdout
    assert seen == []


def test_editing_one_address_changes_only_that_address(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    sandbox.netlab("apply")
    index_before = sandbox.run("ip", "-n", "red", "-o", "link", "show", "veth-red").stdout.split(":")[0]
    # the host's check of red's address moves with it (else the edit breaks it, and is undone)
    text = sandbox.read("/etc/netlab.d/lab.yaml").replace("192.168.15.1/24", "192.168.15.11/24")
    text = text.replace("{from: host, ping: 192.168.15.1}", "{from: host, ping: 192.168.15.11}")
    sandbox.write_config("lab.yaml", text)
    plan = sandbox.netlab("plan").stdout
    assert "- address red/veth-red 192.168.15.1/24" in plan
    assert "+ address red/veth-red 192.168.15.11/24" in plan
    assert "link" not in plan
    with sandbox.witness("red", "blue", "orange", objects=("link",)) as seen:
        sandbox.netlab("apply")
    assert seen == []  # no link deleted, created or set down
    addresses = sandbox.run("ip", "-n", "red", "-br", "addr", "show", "veth-red").stdout
    assert "192.168.15.11/24" in addresses and "192.168.15.1/24" not in addresses
    assert sandbox.run("ip", "-n", "red", "-o", "link", "show", "veth-red").stdout.split(":")[0] == index_before
    sandbox.ping("red", "192.168.15.5", check=True)  # its default route survived the edit


def _same_subnet_lab(ns2_addresses: str) -> str:
    """The benchmark's shape at N = 3: a bridge on the host and three namespaces,
    each with an `eth0` in the bridge's /16."""
    return f"""version: 1
namespaces: [{{name: ns1}}, {{name: ns2}}, {{name: ns3}}]
interfaces:
  - {{name: br0, type: bridge, addresses: [10.0.0.1/16]}}
  - {{name: eth0, type: veth, netns: ns1, addresses: [10.0.0.2/16], peer: {{name: vh1, master: br0}}}}
  - {{name: eth0, type: veth, netns: ns2, addresses: [{ns2_addresses}], peer: {{name: vh2, master: br0}}}}
  - {{name: eth0, type: veth, netns: ns3, addresses: [10.0.0.4/16], peer: {{name: vh3, master: br0}}}}
"""


def _ipv4_on_eth0(sandbox: Sandbox, netns: str) -> dict[str, bool]:
    """eth0's IPv4 addresses in `netns`, as `ip` shows them: address -> secondary."""
    lines = sandbox.run("ip", "-n", netns, "-o", "-4", "addr", "show", "dev", "eth0").stdout.splitlines()
    return {line.split()[3]: " secondary " in f"{line} " for line in lines if " inet " in line}


def test_editing_a_primary_address_leaves_other_namespaces_eth0_addresses_where_they_are(sandbox: Sandbox) -> None:
    # Regression: the secondaries to put back after removing a primary were
    # matched by link name and subnet, not namespace, so ns1's and ns3's eth0
    # addresses were copied onto ns2's eth0.
    sandbox.write_config("lab.yaml", _same_subnet_lab("10.0.0.3/16"))
    sandbox.netlab("apply")
    sandbox.write_config("lab.yaml", _same_subnet_lab("10.0.255.3/16"))
    with sandbox.witness("ns1", "ns3", objects=("address",)) as seen:
        sandbox.netlab("apply")
    assert seen == []  # nothing written to the host's or the other namespaces' addresses
    assert _ipv4_on_eth0(sandbox, "ns2") == {"10.0.255.3/16": False}
    assert _ipv4_on_eth0(sandbox, "ns1") == {"10.0.0.2/16": False}
    assert _ipv4_on_eth0(sandbox, "ns3") == {"10.0.0.4/16": False}
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def test_editing_a_primary_address_puts_back_its_secondary_and_only_that(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", _same_subnet_lab("10.0.0.3/16, 10.0.0.103/16"))
    sandbox.netlab("apply")
    # the kernel default, which a host's sysctl.d may have changed: removing the
    # primary then removes the secondary of its subnet too
    sandbox.run(
        "ip",
        "netns",
        "exec",
        "ns2",
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv4/conf/all/promote_secondaries; echo 0 > /proc/sys/net/ipv4/conf/eth0/promote_secondaries",
    )
    assert _ipv4_on_eth0(sandbox, "ns2") == {"10.0.0.3/16": False, "10.0.0.103/16": True}
    sandbox.write_config("lab.yaml", _same_subnet_lab("10.0.255.3/16, 10.0.0.103/16"))
    sandbox.netlab("apply")
    assert set(_ipv4_on_eth0(sandbox, "ns2")) == {"10.0.255.3/16", "10.0.0.103/16"}
    assert _ipv4_on_eth0(sandbox, "ns1") == {"10.0.0.2/16": False}
    assert _ipv4_on_eth0(sandbox, "ns3") == {"10.0.0.4/16": False}
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    sandbox.ping("ns2", "10.0.0.2", check=True)


GREEN = """version: 1
namespaces: [{name: green}]
interfaces:
  - {name: veth-green, type: veth, netns: green, addresses: [10.7.0.1/24], peer: {name: veth-green-h, addresses: [10.7.0.2/24]}}
"""


def test_removing_objects_and_files_prunes_them(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    sandbox.write_config("green.yaml", GREEN)
    sandbox.netlab("apply")
    assert sandbox.namespaces() == ["blue", "green", "orange", "red"]
    text = sandbox.read("/etc/netlab.d/lab.yaml")
    text = text.replace("  - name: orange\n", "")
    text = text.replace(
        "  - name: veth-orange\n    type: veth\n    netns: orange\n    addresses: [192.168.15.3/24]\n"
        "    peer: {name: veth-orange-br, master: v-net-0}\n",
        "",
    )
    text = text.replace("  - {netns: orange, to: default, via: 192.168.15.5}\n", "")
    text = text.replace("  - {from: orange, ping: 192.168.15.5}  # orange reaches its gateway\n", "")
    assert "orange" not in text.split("#")[-1]
    sandbox.write_config("lab.yaml", text)
    sandbox.netlab("apply")
    assert "orange" not in sandbox.namespaces()
    assert "veth-orange-br" not in sandbox.run("ip", "-br", "link").stdout
    sandbox.ping("red", "192.168.15.2", check=True)
    sandbox.remove_config("green.yaml")
    sandbox.netlab("apply")
    assert sandbox.namespaces() == ["blue", "red"]
    assert "veth-green-h" not in sandbox.run("ip", "-br", "link").stdout
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0


def test_foreign_objects_survive_apply_and_destroy(sandbox: Sandbox) -> None:
    sandbox.run("ip", "link", "add", "foreign0", "type", "bridge")
    sandbox.run("ip", "addr", "add", "198.51.100.1/24", "dev", "foreign0")
    sandbox.run("ip", "link", "set", "foreign0", "up")
    sandbox.run("ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.2")
    sandbox.run("ip", "netns", "add", "theirs")

    def foreign() -> tuple[str, str, str, list[str]]:
        return (
            sandbox.run("ip", "-br", "link", "show", "foreign0").stdout.split()[0],
            sandbox.run("ip", "-br", "addr", "show", "foreign0").stdout.split()[2],
            sandbox.run("ip", "route", "show", "203.0.113.0/24").stdout.strip(),
            [ns for ns in sandbox.namespaces() if ns == "theirs"],
        )

    before = foreign()
    kernel_before = sandbox.dump()
    sandbox.copy_example("bridge")
    sandbox.netlab("apply")
    assert foreign() == before
    result = sandbox.netlab("destroy", "--yes")
    assert "Removed" in result.stdout
    assert foreign() == before
    assert sandbox.namespaces() == ["theirs"]
    assert "v-net-0" not in sandbox.run("ip", "-br", "link").stdout
    assert "alias netlab" not in sandbox.run("ip", "-d", "link").stdout
    assert "proto 213" not in sandbox.run("ip", "route", "show", "table", "all").stdout
    assert sandbox.dump() == kernel_before  # nothing of netlab's left, nothing else touched


def test_a_bad_file_changes_nothing_and_says_where(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    sandbox.netlab("apply")
    before = sandbox.dump()
    said = sandbox.refused_apply(
        "broken.yaml", "version: 1\ninterfaces:\n  - name: x0\n    type: bridge\n    addresses: [192.168.15.300/24]\n"
    )
    assert "broken.yaml:5:" in said and "192.168.15.300/24" in said
    assert sandbox.dump() == before
    said = sandbox.refused_apply("broken.yaml", "version: 1\nnamespaces: [\n")
    assert re.search(r"broken\.yaml:\d+:\d+: ", said), said
    assert sandbox.dump() == before
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 1


def test_validate_reports_every_problem_as_file_line_col_path_message(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    assert sandbox.netlab("validate").returncode == 0
    sandbox.write_config(
        "broken.yaml",
        "version: 1\ninterfaces:\n  - name: x0\n    type: bridge\n    addresses: [10.0.0.1/33]\n"
        "  - name: a-name-far-too-long\n    type: bridge\n",
    )
    result = sandbox.netlab("validate", "/etc/netlab.d", check=False)
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if "broken.yaml" in line]
    assert len(problems) == 2, result.stderr
    assert re.match(r"\S*broken\.yaml:5:\d+: interfaces\[0\]\.addresses\[0\]: .*10\.0\.0\.1/33", problems[0]), problems
    assert re.match(r"\S*broken\.yaml:6:\d+: interfaces\[1\]\.name: .*a-name-far-too-long", problems[1]), problems
    assert sandbox.namespaces() == []


def test_a_missing_or_empty_config_dir_deletes_nothing(sandbox: Sandbox) -> None:
    sandbox.copy_example("two-namespaces")
    sandbox.netlab("apply")
    before = sandbox.dump()
    result = sandbox.netlab("apply", "--config-dir", "/etc/netlab.d/nowhere", check=False)
    assert result.returncode == 1 and "does not exist" in result.stderr
    sandbox.remove_config("lab.yaml")
    result = sandbox.netlab("apply", check=False)
    assert result.returncode == 1 and "--allow-empty" in result.stderr
    assert sandbox.dump() == before
    sandbox.netlab("apply", "--allow-empty")
    assert sandbox.namespaces() == []


def test_forwarding_gets_its_original_value_back(sandbox: Sandbox) -> None:
    sandbox.write_config("fw.yaml", "version: 1\nsysctls: {net.ipv4.ip_forward: 1}\n")
    original = sandbox.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
    sandbox.netlab("apply")
    assert sandbox.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    sandbox.write_config("fw.yaml", "version: 1\n")
    sandbox.netlab("apply")
    assert sandbox.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == original


def test_show_prints_the_live_state_with_ownership(sandbox: Sandbox) -> None:
    sandbox.copy_example("bridge")
    sandbox.netlab("apply")
    document = json.loads(sandbox.netlab("show", "--json").stdout)
    names = {(i.get("netns"), i["name"]): i for i in document["interfaces"]}
    assert names[(None, "v-net-0")]["owned"] is True
    assert names[(None, "v-net-0")]["addresses"] == ["192.168.15.5/24"]
    assert names[("red", "veth-red")]["addresses"] == ["192.168.15.1/24"]
    assert {ns["name"] for ns in document["namespaces"]} == {"red", "blue", "orange"}
    assert any(r["netns"] == "red" and r["via"] == "192.168.15.5" for r in document["routes"])
    # each veth once, its other end under `peer` as the files declare it (in the host: no netns)
    assert names[("red", "veth-red")]["peer"] == {
        "name": "veth-red-br",
        "state": "up",
        "mtu": 1500,
        "mac": names[("red", "veth-red")]["peer"]["mac"],
        "master": "v-net-0",
    }
    assert (None, "veth-red-br") not in names and all(i["type"] != "veth-peer" for i in document["interfaces"])
    text = sandbox.netlab("show").stdout
    assert "owned by netlab" in text and "v-net-0" in text
    # what show prints is a valid file: it can be pasted back
    sandbox.path("/run/netlab/shown.yaml").write_text(text)
    result = sandbox.netlab("validate", "/run/netlab/shown.yaml", check=False)
    assert result.returncode == 0, result.stderr + text


def test_plan_json_lists_changes(sandbox: Sandbox) -> None:
    sandbox.copy_example("two-namespaces")
    plan = json.loads(sandbox.netlab("plan", "--json").stdout)
    kinds = {(c["action"], c["kind"], c["netns"], c["name"]) for c in plan["changes"]}
    assert ("+", "namespace", "host", "red") in kinds
    assert ("+", "link", "red", "veth-red") in kinds
    text = sandbox.netlab("plan").stdout.splitlines()
    assert "+ namespace red" in text
    assert any(line.startswith("+ link red/veth-red") for line in text), text
    assert sandbox.namespaces() == []  # plan changed nothing


def test_a_failed_pass_is_rolled_back(sandbox: Sandbox) -> None:
    sandbox.write_config(
        "lab.yaml",
        "version: 1\nnamespaces: [{name: red}]\ninterfaces:\n"
        "  - {name: br0, type: bridge, addresses: [10.0.0.1/24]}\n"
        "sysctls: {net.ipv4.conf.nosuchlink.forwarding: 1}\n",
    )
    before = sandbox.dump()
    result = sandbox.netlab("apply", check=False)
    assert result.returncode == 1
    assert "nosuchlink" in result.stderr and "undone" in result.stderr
    assert sandbox.dump() == before


# every type netlab creates whose driver a kernel may lack (tests/distro_kernel
# creates them on one that has them): written with what its schema part requires
_DRIVER_TYPES = sorted(name for name, t in LINK_TYPES.items() if name not in ("veth", "veth-peer", "bridge", "device"))


def _a_link_of(name: str) -> str:
    part = load_schema()["$defs"][f"{name}Link"]
    keys: dict[str, object] = {"name": "x0", "type": name}
    for key in part.get("required", []):
        schema = part["properties"][key]
        keys[key] = "br0" if key == "parent" else (schema.get("enum") or [schema.get("minimum", 1)])[0]
    return "{" + ", ".join(f"{key}: {value}" for key, value in keys.items()) + "}"


@pytest.mark.parametrize("name", _DRIVER_TYPES)
def test_a_link_type_the_kernel_lacks_is_refused_clearly(sandbox: Sandbox, name: str) -> None:
    kind = LINK_TYPES[name].kind
    before = sandbox.dump()
    sandbox.write_config(
        "d.yaml", f"version: 1\ninterfaces:\n  - {{name: br0, type: bridge}}\n  - {_a_link_of(name)}\n"
    )
    result = sandbox.netlab("apply", check=False)
    if result.returncode == 0:
        pytest.skip(f"this kernel has the {kind} driver: nothing to refuse")
    said = result.stderr
    assert result.returncode == 1 and "Traceback" not in said, said
    assert f"no `{kind}` driver" in said and f"modprobe {kernel_module(kind)}`" in said, said
    assert "/etc/netlab.d/d.yaml:4" in said, said
    assert sandbox.dump() == before, "a refused pass changed the kernel"


def test_show_of_links_with_parents_and_foreign_links_is_a_valid_file(sandbox: Sandbox) -> None:
    sandbox.write_config(
        "lab.yaml",
        """version: 1
namespaces: [{name: red}]
interfaces:
  - {name: br0, type: bridge}
  - {name: mv0, type: macvlan, parent: br0, mode: bridge, netns: red, addresses: [10.9.0.2/24]}
""",
    )
    sandbox.netlab("apply")
    sandbox.run(
        "ip", "-n", "red", "link", "add", "vx0", "type", "vxlan", "id", "5", "dstport", "4789"
    )  # someone else's
    document = json.loads(sandbox.netlab("show", "--json").stdout)
    names = {(i.get("netns"), i["name"]): i for i in document["interfaces"]}
    assert {key: names[("red", "mv0")][key] for key in ("type", "parent", "mode", "addresses")} == {
        "type": "macvlan",
        "parent": "br0",
        "mode": "bridge",
        "addresses": ["10.9.0.2/24"],
    }
    assert names[("red", "vx0")]["type"] == "device" and names[("red", "vx0")]["owned"] is False
    sandbox.path("/run/netlab/shown.yaml").write_text(text := sandbox.netlab("show").stdout)
    result = sandbox.netlab("validate", "/run/netlab/shown.yaml", check=False)
    assert result.returncode == 0, result.stderr + text


def test_more_namespaces_than_a_service_s_soft_file_limit_apply_with_nat_and_go_again(sandbox: Sandbox) -> None:
    """1100 namespaces are 1100 netlink sockets: under systemd's default soft
    limit of 1024 open files, and with libnftables' select() refusing a
    descriptor of 1024 or more (glibc ends the process), netlab must raise its
    limit and keep its sockets out of libnftables' way. Judged by `ip`, `nft`
    and `iptables` (the host's NAT backend, whichever auto chose)."""
    count = 1100
    namespaces = "".join(f"  - name: n{i}\n" for i in range(count))
    sandbox.write_config(
        "many.yaml", f"version: 1\nnamespaces:\n{namespaces}nat:\n  - {{type: masquerade, source: 10.77.0.0/16}}\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard >= 2 * count, "the test needs a hard limit of open files above 2200"
    limited = ["prlimit", f"--nofile=1024:{hard}", NETLAB]
    result = sandbox.run(*limited, "apply", check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(sandbox.namespaces()) == count
    rules = sandbox.run("nft", "list", "ruleset").stdout + sandbox.run("iptables-save", check=False).stdout
    assert "10.77.0.0/16" in rules
    assert sandbox.run(*limited, "plan", "--detailed-exitcode", check=False, timeout=600).returncode == 0
    result = sandbox.run(*limited, "destroy", "--yes", check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sandbox.namespaces() == []
