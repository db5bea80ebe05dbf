"""examples/cluster on three hosts: three sandboxes with host names of their own
(node1..3) on an underlay switch (a fourth), each running netlab on a clone of
one git repository holding one variant's files. Judged by `ping`, `ip` and
iptables counters in the namespaces, not by netlab."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sandbox import (
    EXAMPLES,
    NETLAB,
    TESTS,
    Sandbox,
    can_sandbox,
    config_files,
    host_footprint,
    one_host_examples,
)

pytestmark = pytest.mark.kernel

VARIANTS = ("routed", "vxlan")
NODES = (1, 2, 3)
SWITCH = "10.0.0.254"  # the underlay's gateway: node N is 10.0.0.1N
OUTSIDE = "203.0.113.1"  # on the switch, which has no route to the pods
GIT = ("git", "-c", "user.name=operator", "-c", "user.email=operator@example.org")


def pod(node: int, which: str = "a") -> tuple[str, str]:
    """A pod's namespace and address: pod-1a is 10.244.1.2, pod-1b 10.244.1.3."""
    return f"pod-{node}{which}", f"10.244.{node}.{2 if which == 'a' else 3}"


@dataclass
class Cluster:
    variant: str
    switch: Sandbox
    nodes: dict[int, Sandbox]
    repository: Path  # the origin each node's /etc/netlab.d is a clone of

    def commit(self, message: str) -> None:
        subprocess.run([*GIT, "-C", str(self.repository), "commit", "-qam", message], check=True)

    def pull_and_apply(self, *nodes: int) -> None:
        """What an operator does on each node (or a timer does): pull, then apply."""
        for n in nodes or NODES:
            self.nodes[n].run("git", "-C", "/etc/netlab.d", "pull", "-q", "--ff-only")
            self.nodes[n].netlab("apply")


def _underlay(switch: Sandbox, nodes: dict[int, Sandbox]) -> None:
    """The machines' own network, which the cluster's files take as given: a
    bridge in the switch with a port cabled to each node's eth0, each node's
    underlay address and default route via the switch, and an outside address on
    the switch's loopback."""
    switch.sh(f"ip link add sw0 type bridge && ip addr add {SWITCH}/24 dev sw0 && ip link set sw0 up")
    switch.run("ip", "addr", "add", f"{OUTSIDE}/32", "dev", "lo")
    for n, node in nodes.items():
        switch.cable(node, f"up{n}", "eth0")
        switch.run("ip", "link", "set", f"up{n}", "master", "sw0", "up")
        node.sh(f"ip addr add 10.0.0.1{n}/24 dev eth0 && ip link set eth0 up && ip route add default via {SWITCH}")


def _repository(where: Path, variant: str) -> Path:
    """A git repository holding the variant's files, as an operator keeps them."""
    where.mkdir()
    for source in config_files(EXAMPLES / "cluster" / variant):
        shutil.copy(source, where / source.name)
    subprocess.run(["git", "init", "-q", str(where)], check=True)
    subprocess.run(["git", "-C", str(where), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(where), "commit", "-qm", f"the {variant} cluster"], check=True)
    return where


@pytest.fixture(params=VARIANTS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The three nodes and their switch, each node's /etc/netlab.d a clone of
    the repository, nothing applied yet; then the check that none of the four
    sandboxes left anything on the machine itself."""
    why_not = can_sandbox(TESTS) or (None if shutil.which("git") else "needs git")
    if why_not is not None:
        pytest.skip(f"sandboxed kernel tests: {why_not}")
    repository = _repository(tmp_path / "repository", request.param)
    before = host_footprint()
    with ExitStack() as boxes:
        switch = boxes.enter_context(Sandbox())
        nodes = {n: boxes.enter_context(Sandbox(hostname=f"node{n}")) for n in NODES}
        _underlay(switch, nodes)
        for node in nodes.values():
            node.run("git", "clone", "-q", str(repository), "/etc/netlab.d")
        yield Cluster(request.param, switch, nodes, repository)
    after = host_footprint()
    assert after == before, f"the cluster leaked onto the host: before {before}, after {after}"


def _echo_requests(box: Sandbox, netns: str | None, sources: list[str]) -> dict[str, int]:
    """Counting rules (accept, as the chain does anyway) for echo requests from
    each source, in the INPUT chain of a namespace; returns how to read them."""
    ns = [] if netns is None else ["ip", "netns", "exec", netns]
    for source in sources:
        box.run(*ns, "iptables-legacy", "-A", "INPUT", "-p", "icmp", "--icmp-type", "8", "-s", source, "-j", "ACCEPT")
    return _counts(box, netns, sources)


def _counts(box: Sandbox, netns: str | None, sources: list[str]) -> dict[str, int]:
    ns = [] if netns is None else ["ip", "netns", "exec", netns]
    saved = box.run(*ns, "iptables-legacy-save", "-c", "-t", "filter").stdout.splitlines()
    counts = {}
    for source in sources:
        (line,) = [line for line in saved if f"-A INPUT -s {source}/32 -p icmp" in line]
        counts[source] = int(line[1 : line.index(":")])
    return counts


def _node_is_as_its_files_say(cluster: Cluster, n: int) -> None:
    """Node n holds its own pods, bridge and routes (and none of the others')."""
    node = cluster.nodes[n]
    assert node.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    assert node.namespaces() == [f"pod-{n}a", f"pod-{n}b"]
    bridge = json.loads(node.run("ip", "-j", "addr", "show", "v-net-0").stdout)[0]
    assert [a["local"] for a in bridge["addr_info"] if a["family"] == "inet"] == [f"10.244.{n}.1"]
    ports = json.loads(node.run("ip", "-j", "link", "show", "master", "v-net-0").stdout)
    assert sorted(link["ifname"] for link in ports) == [f"veth-{n}a", f"veth-{n}b"]
    assert node.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    routes = json.loads(node.run("ip", "-j", "route", "show", "proto", "213").stdout)
    via = {"routed": "10.0.0.1{}", "vxlan": "10.245.0.{}"}[cluster.variant]
    others = sorted((f"10.244.{m}.0/24", via.format(m)) for m in NODES if m != n)
    assert sorted((route["dst"], route["gateway"]) for route in routes) == others


def test_pods_reach_the_pods_of_every_node_and_the_outside_through_their_own(cluster: Cluster) -> None:
    cluster.pull_and_apply()
    for n, node in cluster.nodes.items():
        assert node.run("hostname").stdout.strip() == f"node{n}"
        _node_is_as_its_files_say(cluster, n)
    node1, node3 = cluster.nodes[1], cluster.nodes[3]
    # what pod-3a sees as the source of pod-1a's ping: over the overlay, the pod's
    # own address; routed, node1's, as the masquerade (which has no destination
    # exclusion) rewrites everything from the pods that leaves by eth0
    seen = _echo_requests(node3, "pod-3a", ["10.244.1.2", "10.0.0.11"])
    node1.ping("pod-1a", "10.244.3.2", check=True)
    expected = {"routed": "10.0.0.11", "vxlan": "10.244.1.2"}[cluster.variant]
    assert _counts(node3, "pod-3a", list(seen)) == {**seen, expected: seen[expected] + 1}
    for n, node in cluster.nodes.items():
        for source in "ab":
            for m in NODES:
                for target in "ab":
                    node.ping(pod(n, source)[0], pod(m, target)[1], check=True)
    # the switch has no route back to the pods: a pod's ping comes back only
    # because its node put its own address on it
    assert "10.244." not in cluster.switch.run("ip", "route").stdout
    assert cluster.switch.run("ip", "route", "get", "10.244.1.2", check=False).returncode != 0
    sources = [f"10.0.0.1{n}" for n in NODES] + [pod(n)[1] for n in NODES]
    before = _echo_requests(cluster.switch, None, sources)
    for n, node in cluster.nodes.items():
        node.ping(pod(n)[0], OUTSIDE, check=True)
    after = _counts(cluster.switch, None, sources)
    assert {source: after[source] - before[source] for source in sources} == {
        source: 1 if source.startswith("10.0.0.") else 0 for source in sources
    }


def test_without_the_masquerade_a_pod_does_not_reach_the_outside(cluster: Cluster) -> None:
    cluster.pull_and_apply(1)  # the outside is one hop from node1: the others need not be there
    node1 = cluster.nodes[1]
    node1.ping("pod-1a", OUTSIDE, check=True)
    shared = cluster.repository / "cluster.yaml"
    text = shared.read_text()
    rule = "  - {type: masquerade, source: 10.244.0.0/16, out_interface: eth0}\n"
    assert rule in text
    shared.write_text(text.replace(rule, "").replace("nat:\n", ""))
    cluster.commit("no masquerade")
    cluster.pull_and_apply(1)
    assert not node1.ping("pod-1a", OUTSIDE)
    node1.ping(None, SWITCH, check=True)  # the node itself still reaches the switch
    shared.write_text(text)
    cluster.commit("the masquerade again")
    cluster.pull_and_apply(1)
    node1.ping("pod-1a", OUTSIDE, check=True)


def _links(node: Sandbox, n: int) -> dict[str, int]:
    """The ifindex of every link of a node and of its pods (their eth0s)."""
    links = {}
    for which in "ab":
        netns = pod(n, which)[0]
        (inside,) = json.loads(node.run("ip", "-n", netns, "-j", "link", "show", "eth0").stdout)
        links[f"{netns}/eth0"] = inside["ifindex"]
    for link in json.loads(node.run("ip", "-j", "link").stdout):
        links[link["ifname"]] = link["ifindex"]
    return links


def test_removing_node3s_file_removes_only_node3s_pods_and_destroy_undoes_the_rest(cluster: Cluster) -> None:
    pristine = {n: node.dump() for n, node in cluster.nodes.items()}
    cluster.pull_and_apply()
    node3 = cluster.nodes[3]
    kept = {n: _links(cluster.nodes[n], n) for n in (1, 2)}
    subprocess.run(["git", "-C", str(cluster.repository), "rm", "-q", "node3.yaml"], check=True)
    cluster.commit("node3 leaves the cluster")
    for n in (1, 2):
        node = cluster.nodes[n]
        with node.witness(pod(n, "a")[0], pod(n, "b")[0]) as seen:
            cluster.pull_and_apply(n)
        assert not node.path("/etc/netlab.d/node3.yaml").exists()
        assert seen == [], f"node{n} changed: {seen}"
        assert _links(node, n) == kept[n]
    cluster.pull_and_apply(3)
    assert node3.namespaces() == []
    assert sorted(link["ifname"] for link in json.loads(node3.run("ip", "-j", "link").stdout)) == ["eth0", "lo"]
    assert node3.run("ip", "route", "show", "proto", "213").stdout == ""
    cluster.nodes[1].ping("pod-1a", "10.244.2.3", check=True)
    cluster.nodes[2].ping("pod-2b", "10.244.1.2", check=True)
    assert not cluster.nodes[1].ping("pod-1a", "10.244.3.2")
    for n, node in cluster.nodes.items():
        node.netlab("destroy", "--yes")
        assert node.dump() == pristine[n], f"node{n}"
        assert "netlab" not in node.nat_text().lower()


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_files_are_valid_as_each_node_and_any_other_host_loads_them(variant: str) -> None:
    # files only, no kernel: what `netlab validate --hostname` is for, run anywhere
    hosts = [f"node{n}" for n in NODES] + ["node1.cluster.example.org", "builder"]
    argv = [NETLAB, "validate", *(f"--hostname={host}" for host in hosts), str(EXAMPLES / "cluster" / variant)]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"valid: {EXAMPLES / 'cluster' / variant} (for hosts {', '.join(hosts)})"


def test_every_variant_of_the_example_is_tested_here_and_every_other_example_as_one_hosts() -> None:
    # test_labs and test_try take the one-host examples: together they leave none out
    variants = sorted(path.name for path in (EXAMPLES / "cluster").iterdir() if path.is_dir())
    assert variants == sorted(VARIANTS)
    assert all(config_files(EXAMPLES / "cluster" / variant) for variant in VARIANTS)
    examples = sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir())
    assert sorted([*one_host_examples(), "cluster"]) == examples
