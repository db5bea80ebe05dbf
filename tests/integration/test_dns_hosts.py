"""resolv.conf and hosts files against real files in a sandbox (where /etc/resolv.conf
and /etc/hosts are bind mounts, as in containers), judged by `cat`, `getent` and
`ip netns exec`, not by netlab."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.sandbox import HOSTS, NETLAB, RESOLV_CONF, Sandbox

pytestmark = pytest.mark.kernel

HEADER = "# Managed by netlab: edits are overwritten; change the files in /etc/netlab.d\n"

LAB = """version: 1
namespaces:
  - name: red
    dns: {nameservers: [192.168.15.5], search: [lab.internal], options: [ndots:2]}
    hosts: [{address: 192.168.15.2, names: [blue, blue.lab.internal]}]
  - name: blue
dns: {nameservers: [192.0.2.1, 192.0.2.2], search: [mycompany.com]}
hosts: [{address: 192.168.1.11, names: [db, db.mycompany.com]}]
"""


def test_namespace_files_are_what_the_namespace_sees(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply")
    resolv = sandbox.run("ip", "netns", "exec", "red", "cat", "/etc/resolv.conf").stdout
    assert resolv == HEADER + "nameserver 192.168.15.5\nsearch lab.internal\noptions ndots:2\n"
    assert sandbox.run("ip", "netns", "exec", "red", "getent", "hosts", "blue").stdout.split() == [
        "192.168.15.2",
        "blue",
        "blue.lab.internal",
    ]
    # the namespace's hosts file replaces /etc/hosts there: localhost still resolves
    assert sandbox.run("ip", "netns", "exec", "red", "getent", "hosts", "127.0.0.1").stdout.split() == [
        "127.0.0.1",
        "localhost",
    ]
    # blue declares nothing: it sees the host's files
    assert sandbox.run("ip", "netns", "exec", "blue", "getent", "hosts", "db").stdout.split()[0] == "192.168.1.11"
    assert "No changes" in sandbox.netlab("apply").stdout


def test_host_files_and_foreign_lines(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    plan = sandbox.netlab("plan").stdout
    assert (
        "+ dns host/resolv.conf: nameservers 192.0.2.53 -> 192.0.2.1 192.0.2.2, search (none) -> mycompany.com" in plan
    )
    assert "the original is kept in /var/lib/netlab/originals/etc/resolv.conf" in plan
    assert "+ hosts host/hosts: 192.168.1.11 (none) -> db db.mycompany.com" in plan
    sandbox.netlab("apply")
    assert (
        sandbox.read("/etc/resolv.conf")
        == HEADER + "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch mycompany.com\n"
    )
    assert sandbox.run("getent", "hosts", "db.mycompany.com").stdout.split()[0] == "192.168.1.11"
    assert sandbox.run("getent", "hosts", "foreign-host").stdout.split()[0] == "192.0.2.10"
    hosts = sandbox.read("/etc/hosts")
    assert hosts.startswith(HOSTS)  # every foreign line byte for byte, the block after them
    assert hosts[len(HOSTS) :] == "# BEGIN netlab\n" + HEADER + "192.168.1.11\tdb db.mycompany.com\n# END netlab\n"

    # another tool adds a line after netlab's block; an edit of the files changes only the block
    with open(sandbox.path("/etc/hosts"), "a") as handle:
        handle.write("198.51.100.7 added-later\n")
    sandbox.write_config(
        "lab.yaml", LAB.replace("192.168.1.11, names: [db, db.mycompany.com]", "192.168.1.12, names: [db]")
    )
    sandbox.netlab("apply")
    assert sandbox.read("/etc/hosts") == (
        HOSTS + "# BEGIN netlab\n" + HEADER + "192.168.1.12\tdb\n# END netlab\n198.51.100.7 added-later\n"
    )

    sandbox.netlab("destroy", "--yes")
    assert sandbox.read("/etc/resolv.conf") == RESOLV_CONF  # byte for byte
    assert sandbox.read("/etc/hosts") == HOSTS + "198.51.100.7 added-later\n"
    assert not sandbox.path("/etc/netns/red").exists()
    assert not sandbox.path("/var/lib/netlab/originals/etc/resolv.conf").exists()


def test_removing_dns_from_the_files_restores_the_original(sandbox: Sandbox) -> None:
    original = "# dhcp wrote this\nnameserver 192.0.2.53\noptions edns0\n"
    sandbox.path("/etc/resolv.conf").write_text(original)
    os.chmod(sandbox.path("/etc/resolv.conf"), 0o644)
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply")
    assert sandbox.path("/etc/netns/red/resolv.conf").exists()
    sandbox.write_config(
        "lab.yaml", LAB.replace("dns: {nameservers: [192.0.2.1, 192.0.2.2], search: [mycompany.com]}\n", "")
    )
    plan = sandbox.netlab("plan").stdout
    assert "- dns host/resolv.conf: the original goes back" in plan
    sandbox.netlab("apply")
    assert sandbox.read("/etc/resolv.conf") == original
    assert os.stat(sandbox.path("/etc/resolv.conf")).st_mode & 0o777 == 0o644
    assert sandbox.path("/etc/netns/red/resolv.conf").exists()  # red's dns is still declared


def test_a_hand_edit_is_drift_and_is_put_back(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply")
    written = {
        path: sandbox.read(path)
        for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/netns/red/resolv.conf", "/etc/netns/red/hosts")
    }
    sandbox.path("/etc/netns/red/resolv.conf").write_text(
        written["/etc/netns/red/resolv.conf"] + "nameserver 203.0.113.9\n"
    )
    sandbox.path("/etc/hosts").write_text(written["/etc/hosts"].replace("192.168.1.11\t", "10.6.6.6\t"))
    sandbox.path("/etc/resolv.conf").write_text("nameserver 203.0.113.9\n")  # a DHCP client replaced it
    plan = sandbox.netlab("plan").stdout
    assert "~ dns red/resolv.conf: nameservers 192.168.15.5 203.0.113.9 -> 192.168.15.5, edited outside netlab" in plan
    assert (
        "~ hosts host/hosts: 10.6.6.6 db db.mycompany.com -> (none), 192.168.1.11 (none) -> db db.mycompany.com" in plan
    )
    assert "~ dns host/resolv.conf" in plan and "replaced outside netlab" in plan
    result = sandbox.netlab("apply")
    assert "edited outside netlab" in result.stdout
    assert {path: sandbox.read(path) for path in written} == written
    # the original kept is still the one from before netlab, not the DHCP client's
    sandbox.netlab("destroy", "--yes")
    assert sandbox.read("/etc/resolv.conf") == RESOLV_CONF


def test_a_namespace_removed_takes_its_files_and_directory(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply")
    assert sorted(os.listdir(sandbox.path("/etc/netns/red"))) == ["hosts", "resolv.conf"]
    sandbox.write_config(
        "lab.yaml",
        LAB.replace(
            "  - name: red\n    dns: {nameservers: [192.168.15.5], search: [lab.internal], options: [ndots:2]}\n    hosts: [{address: 192.168.15.2, names: [blue, blue.lab.internal]}]\n",
            "",
        ),
    )
    plan = sandbox.netlab("plan").stdout
    assert "- namespace red" in plan and "- dns red/resolv.conf" in plan and "- hosts red/hosts" in plan
    sandbox.netlab("apply")
    assert not sandbox.path("/etc/netns/red").exists()
    assert "No changes" in sandbox.netlab("apply").stdout


def test_a_symlinked_resolv_conf_is_refused_and_left_alone(sandbox: Sandbox) -> None:
    # As systemd-resolved sets it up. /etc is the machine's own directory, so the
    # sandbox gets an overlay on it first: the symlink exists only in there.
    sandbox.sh(
        """
        set -e
        mkdir -p /run/netlab/etc-upper /run/netlab/etc-work /run/netlab/systemd/resolve
        echo 'nameserver 127.0.0.53' > /run/netlab/systemd/resolve/stub-resolv.conf
        mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/netlab/etc-upper,workdir=/run/netlab/etc-work /etc
        rm -f /etc/resolv.conf
        ln -s /run/netlab/systemd/resolve/stub-resolv.conf /etc/resolv.conf
        """
    )
    sandbox.write_config("lab.yaml", "version: 1\ndns: {nameservers: [192.0.2.1]}\n")
    for command in ("plan", "apply"):
        result = sandbox.netlab(command, check=False)
        assert result.returncode == 1
        assert "nothing was changed" in result.stderr
        assert "/etc/resolv.conf is a symlink to /run/netlab/systemd/resolve/stub-resolv.conf" in result.stderr
        assert "(systemd-resolved manages it)" in result.stderr
        assert "does not write through it" in result.stderr
    assert sandbox.run("readlink", "/etc/resolv.conf").stdout.strip() == "/run/netlab/systemd/resolve/stub-resolv.conf"
    assert sandbox.read("/run/netlab/systemd/resolve/stub-resolv.conf") == "nameserver 127.0.0.53\n"
    assert not sandbox.path("/var/lib/netlab/originals").exists()


def test_the_daemon_puts_an_edited_file_back_on_its_resync(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.spawn(NETLAB, "daemon", "--resync-interval", "1", "--log-format", "json", stdout=subprocess.DEVNULL)
    path = "/etc/netns/red/resolv.conf"
    assert sandbox.wait_for(lambda: sandbox.path(path).exists(), timeout=30)
    written = sandbox.read(path)
    sandbox.path(path).write_text("nameserver 203.0.113.9\n")
    assert sandbox.wait_for(lambda: sandbox.read(path) == written, timeout=15), "the daemon did not repair the file"


def test_show_gives_the_resolver_hosts_and_nat_files_as_they_are_now(sandbox: Sandbox) -> None:
    nat = "nat:\n  - {type: masquerade, source: 192.168.15.0/24}\n  - {type: dnat, netns: red, protocol: tcp, port: 8080, to: '192.168.15.2:80'}\n"
    sandbox.write_config("lab.yaml", LAB + nat)
    sandbox.netlab("apply")
    document = json.loads(sandbox.netlab("show", "--json").stdout)
    assert document["dns"] == {"nameservers": ["192.0.2.1", "192.0.2.2"], "search": ["mycompany.com"], "owned": True}
    assert document["hosts"] == [{"address": "192.168.1.11", "names": ["db", "db.mycompany.com"], "owned": True}]
    red = next(ns for ns in document["namespaces"] if ns["name"] == "red")
    assert red["dns"] == {
        "nameservers": ["192.168.15.5"],
        "search": ["lab.internal"],
        "options": ["ndots:2"],
        "owned": True,
    }
    assert red["hosts"] == [{"address": "192.168.15.2", "names": ["blue", "blue.lab.internal"], "owned": True}]
    blue = next(ns for ns in document["namespaces"] if ns["name"] == "blue")
    assert "dns" not in blue and "hosts" not in blue  # it sees the host's files
    assert document["nat"] == [
        {"type": "masquerade", "source": "192.168.15.0/24", "owned": True},
        {"type": "dnat", "netns": "red", "protocol": "tcp", "port": "8080", "to": "192.168.15.2:80", "owned": True},
    ]
    # live, not the files: a rule flushed by hand is not shown, a resolver edited by hand is shown as it is
    for chain in ("prerouting", "output"):  # netlab's chains in nftables (the backend `auto` takes here)
        sandbox.run("ip", "netns", "exec", "red", "nft", "flush", "chain", "ip", "netlab", chain)
    sandbox.run("sh", "-c", "echo 'nameserver 203.0.113.7' >> /etc/netns/red/resolv.conf")
    document = json.loads(sandbox.netlab("show", "--json").stdout)
    assert [rule["type"] for rule in document["nat"]] == ["masquerade"]
    red = next(ns for ns in document["namespaces"] if ns["name"] == "red")
    assert red["dns"]["nameservers"] == ["192.168.15.5", "203.0.113.7"]
    text = sandbox.netlab("show").stdout
    assert "nat:" in text and "dns:" in text and "owned by netlab" in text


def test_a_killed_writers_temp_file_does_not_keep_etc_netns(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", LAB)
    sandbox.netlab("apply")
    # what a kill between a resolver file's temp file and its rename leaves
    sandbox.path("/etc/netns/red/.resolv.conf.k2j4x9.netlab.tmp").write_text("nameserver 192.168")
    sandbox.netlab("destroy", "--yes")
    assert not sandbox.path("/etc/netns/red").exists(), os.listdir(sandbox.path("/etc/netns"))
