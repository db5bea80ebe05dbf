"""resolv.conf and hosts files without root: rendering, the marked block of
/etc/hosts, and whole passes (plan, apply, plan again) against files held in
memory, through the real planner and applier."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netlab.controller.applying import apply_plan
from netlab.controller.backends.resolver_files import FileState
from netlab.controller.kinds import dns, hosts
from netlab.controller.kinds.managed_files import HEADER
from netlab.controller.planning import Plan, make_plan
from netlab.state.errors import ConfigError
from netlab.state.ledger import Ledger
from netlab.state.model import DesiredState, Dns, HostsEntry, Namespace, Origin
from tests.unit.fake_kernels import EmptyKernel

HERE = Origin("/etc/netlab.d/lab.yaml", 4, 1)
H = HEADER.decode()
FOREIGN_HOSTS = (
    b"127.0.0.1 localhost\r\n::1 localhost ip6-localhost\n# a comment\n10.0.0.9  nas   # no newline at the end"
)
ORIGINAL_RESOLV = b"# written by dhclient\nnameserver 192.0.2.53\n"


# -- rendering -------------------------------------------------------------------------


def test_resolv_conf_is_rendered_with_the_header() -> None:
    record = Dns(
        None, ("8.8.8.8", "2001:4860:4860::8888"), ("mycompany.com", "lab.internal"), ("ndots:2", "rotate"), HERE
    )
    assert dns.render(record).decode() == (
        H
        + "nameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\nsearch mycompany.com lab.internal\noptions ndots:2 rotate\n"
    )
    assert dns.render(Dns(None, (), (), (), HERE)) == HEADER
    assert dns.settings(dns.render(record)) == {
        "nameservers": "8.8.8.8 2001:4860:4860::8888",
        "search": "mycompany.com lab.internal",
        "options": "ndots:2 rotate",
    }
    assert dns.rerender(dns.render(record)) == dns.render(record)
    assert dns.rerender(dns.render(record) + b"nameserver 1.1.1.1\n") != dns.render(record) + b"nameserver 1.1.1.1\n"


def test_a_namespace_hosts_file_carries_loopback_unless_declared() -> None:
    entries = [HostsEntry("red", "192.168.15.2", ("blue",), HERE)]
    assert hosts.render_netns_file(entries).decode() == (
        H + "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n192.168.15.2\tblue\n"
    )
    own = [HostsEntry("red", "127.0.0.1", ("localhost", "red"), HERE), *entries]
    assert hosts.render_netns_file(own).decode() == (
        H + "::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\tlocalhost red\n192.168.15.2\tblue\n"
    )
    for rendered in (hosts.render_netns_file(entries), hosts.render_netns_file(own)):
        assert hosts.rerender_netns_file(rendered) == rendered


def test_the_block_goes_after_foreign_lines_and_leaves_them_byte_for_byte() -> None:
    block = hosts.render_block([HostsEntry(None, "192.168.1.11", ("db", "db.mycompany.com"), HERE)])
    added = hosts.splice(FOREIGN_HOSTS, block)
    assert added == FOREIGN_HOSTS + b"\n" + block  # the last line gets the newline it lacked
    assert added.endswith(b"# BEGIN netlab\n" + HEADER + b"192.168.1.11\tdb db.mycompany.com\n# END netlab\n")
    moved = added + b"172.16.0.1 later\n"
    replaced = hosts.splice(moved, hosts.render_block([HostsEntry(None, "192.168.1.12", ("db",), HERE)]))
    assert replaced.startswith(FOREIGN_HOSTS + b"\n# BEGIN netlab\n")
    assert replaced.endswith(b"192.168.1.12\tdb\n# END netlab\n172.16.0.1 later\n")
    assert hosts.splice(moved, None) == FOREIGN_HOSTS + b"\n172.16.0.1 later\n"
    assert hosts.splice(FOREIGN_HOSTS, None) == FOREIGN_HOSTS
    # the newline netlab gave the last line goes with the block, and only then
    assert hosts.splice(added, None, newline_added=True) == FOREIGN_HOSTS
    assert hosts.splice(added, None) == FOREIGN_HOSTS + b"\n"
    assert hosts.splice(moved, None, newline_added=True) == FOREIGN_HOSTS + b"\n172.16.0.1 later\n"


@pytest.mark.parametrize(
    "content",
    [
        b"# BEGIN netlab\n1.2.3.4 a\n",
        b"1.2.3.4 a\n# END netlab\n",
        b"# END netlab\n# BEGIN netlab\n",
        b"# BEGIN netlab\n# END netlab\n# BEGIN netlab\n# END netlab\n",
    ],
)
def test_broken_markers_are_an_error_not_a_guess(content: bytes) -> None:
    markers = hosts.find_block(content)
    assert markers.span is None
    assert markers.broken.startswith("netlab's block is broken (")
    assert markers.broken.endswith("): expected one BEGIN line followed by one END line")


def test_whole_markers_give_the_block_from_begin_to_the_end_of_end() -> None:
    block = hosts.render_block([HostsEntry(None, "10.0.0.1", ("x",), HERE)])
    assert hosts.find_block(FOREIGN_HOSTS + b"\n" + block + b"10.0.0.2 y\n") == hosts.Markers(
        (len(FOREIGN_HOSTS) + 1, len(FOREIGN_HOSTS) + 1 + len(block))
    )
    assert hosts.find_block(FOREIGN_HOSTS) == hosts.Markers()


# -- whole passes against files in memory -------------------------------------------


@dataclass
class FilesKernel(EmptyKernel):
    """Files in a dict; no links, no NAT. Enough for the planner and applier."""

    files: dict[str, FileState] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None:
        self.files[path] = FileState(path, "file", content, mode)

    def text(self, path: str) -> str:
        content = self.files[path].content
        assert content is not None
        return content.decode()

    def file(self, path: str) -> FileState:
        return self.files.get(path, FileState(path, "absent"))

    def create_namespace(self, name: str) -> None:
        self.names.add(name)

    def remove_namespace(self, name: str) -> None:
        self.names.discard(name)

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        if self.file(path).type == "symlink":
            raise OSError(40, "symlink")
        self.writes.append(path)
        self.put(path, data, mode)

    def remove_file(self, path: str) -> None:
        self.writes.append(path)
        self.files.pop(path, None)

    def make_directory(self, path: str, mode: int = 0o755) -> None:
        self.files.setdefault(path, FileState(path, "directory"))

    def remove_directory_if_empty(self, path: str) -> None:
        if not any(other.startswith(path + "/") for other in self.files):
            self.files.pop(path, None)


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...

    warning = error = info


def apply(desired: DesiredState, kernel: FilesKernel, ledger: Ledger) -> Plan:
    plan = make_plan(desired, kernel, ledger)  # type: ignore[arg-type]
    apply_plan(plan, kernel, ledger, Log())  # type: ignore[arg-type]
    assert not make_plan(desired, kernel, ledger), "a fresh plan after apply must be empty"  # type: ignore[arg-type]
    return plan


def host_files() -> FilesKernel:
    kernel = FilesKernel()
    kernel.put("/etc/resolv.conf", ORIGINAL_RESOLV)
    kernel.put("/etc/hosts", FOREIGN_HOSTS)
    return kernel


LAB = DesiredState(
    namespaces=(Namespace("red", HERE),),
    dns=(Dns(None, ("192.0.2.1",), ("mycompany.com",), (), HERE), Dns("red", ("192.168.15.5",), (), (), HERE)),
    hosts=(HostsEntry(None, "192.168.1.11", ("db",), HERE), HostsEntry("red", "192.168.15.2", ("blue",), HERE)),
    files=("lab.yaml",),
)


def test_a_lab_is_written_kept_and_given_back_byte_for_byte(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "ledger.json")
    plan = apply(LAB, kernel, book)
    assert [str(c) for c in plan.changes] == [
        "+ namespace red",
        "+ dns host/resolv.conf: nameservers 192.0.2.53 -> 192.0.2.1, search (none) -> mycompany.com, "
        f"the original is kept in {tmp_path}/originals/etc/resolv.conf",
        "+ dns red/resolv.conf: nameservers (none) -> 192.168.15.5",
        "+ hosts host/hosts: 192.168.1.11 (none) -> db",
        "+ hosts red/hosts: 127.0.0.1 (none) -> localhost, ::1 (none) -> localhost ip6-localhost ip6-loopback, "
        "192.168.15.2 (none) -> blue",
    ]
    assert kernel.text("/etc/resolv.conf") == H + "nameserver 192.0.2.1\nsearch mycompany.com\n"
    assert kernel.text("/etc/netns/red/resolv.conf") == H + "nameserver 192.168.15.5\n"
    assert kernel.file(f"{tmp_path}/originals/etc/resolv.conf").content == ORIGINAL_RESOLV
    assert kernel.file(f"{tmp_path}/originals/etc/resolv.conf").mode == 0o600
    assert kernel.file("/etc/netns/red").type == "directory"

    kernel.writes.clear()
    assert not make_plan(LAB, kernel, book)  # type: ignore[arg-type]

    plan = apply(DesiredState(files=("empty.yaml",)), kernel, book)  # what destroy plans
    assert sorted(str(c) for c in plan.changes) == [
        f"- dns host/resolv.conf: the original goes back (from {tmp_path}/originals/etc/resolv.conf)",
        "- dns red/resolv.conf: removed: there was none before netlab",
        "- hosts host/hosts: 192.168.1.11 db -> (none)",
        "- hosts red/hosts: removed: there was none before netlab",
        "- namespace red: with everything in it",
    ]
    assert kernel.file("/etc/resolv.conf").content == ORIGINAL_RESOLV
    assert kernel.file("/etc/hosts").content == FOREIGN_HOSTS  # without the newline its block needed
    assert sorted(kernel.files) == ["/etc/hosts", "/etc/resolv.conf"]  # no copy, no directory left
    assert book.count() == 0


def test_dns_leaving_the_files_restores_the_original_and_keeps_the_rest(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "ledger.json")
    apply(LAB, kernel, book)
    without_host_dns = DesiredState(namespaces=LAB.namespaces, dns=LAB.dns[1:], hosts=LAB.hosts, files=LAB.files)
    plan = apply(without_host_dns, kernel, book)
    assert [str(c) for c in plan.changes] == [
        f"- dns host/resolv.conf: the original goes back (from {tmp_path}/originals/etc/resolv.conf)"
    ]
    assert kernel.file("/etc/resolv.conf").content == ORIGINAL_RESOLV
    assert kernel.file("/etc/netns/red/resolv.conf").exists


def test_hand_edits_are_drift_and_go_back(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "ledger.json")
    apply(LAB, kernel, book)
    written = dict(kernel.files)
    kernel.put("/etc/netns/red/resolv.conf", HEADER + b"nameserver 192.168.15.5\nnameserver  203.0.113.9 # mine\n")
    kernel.put("/etc/resolv.conf", b"nameserver 203.0.113.9\n")  # replaced by a DHCP client
    kernel.put("/etc/hosts", written["/etc/hosts"].content.replace(b"192.168.1.11\t", b"10.6.6.6  "))  # type: ignore[union-attr]
    del kernel.files["/etc/netns/red/hosts"]
    plan = apply(LAB, kernel, book)
    assert [str(c) for c in plan.changes] == [
        "~ dns host/resolv.conf: nameservers 203.0.113.9 -> 192.0.2.1, search (none) -> mycompany.com, "
        "replaced outside netlab: netlab's content goes back",
        "~ dns red/resolv.conf: nameservers 192.168.15.5 203.0.113.9 -> 192.168.15.5, "
        "edited outside netlab: netlab's content goes back",
        "~ hosts host/hosts: 10.6.6.6 db -> (none), 192.168.1.11 (none) -> db, edited outside netlab: netlab's block goes back",
        "~ hosts red/hosts: 127.0.0.1 (none) -> localhost, ::1 (none) -> localhost ip6-localhost ip6-loopback, "
        "192.168.15.2 (none) -> blue, the file is missing: written again",
    ]
    assert kernel.files == written
    # the original kept is still the one from before netlab
    assert kernel.file(f"{tmp_path}/originals/etc/resolv.conf").content == ORIGINAL_RESOLV
    # an edit that looks like netlab's own writing is put back just the same,
    # without the label: netlab cannot tell it from a change of the files
    kernel.put("/etc/netns/red/resolv.conf", HEADER + b"nameserver 192.168.15.5\nnameserver 203.0.113.9\n")
    plan = apply(LAB, kernel, book)
    assert [str(c) for c in plan.changes] == [
        "~ dns red/resolv.conf: nameservers 192.168.15.5 203.0.113.9 -> 192.168.15.5"
    ]
    assert kernel.files == written


def test_a_change_in_the_files_is_not_called_drift(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "ledger.json")
    apply(LAB, kernel, book)
    edited = DesiredState(
        namespaces=LAB.namespaces,
        dns=(Dns(None, ("192.0.2.2",), ("mycompany.com",), (), HERE), LAB.dns[1]),
        hosts=LAB.hosts,
        files=LAB.files,
    )
    plan = apply(edited, kernel, book)
    assert [str(c) for c in plan.changes] == ["~ dns host/resolv.conf: nameservers 192.0.2.1 -> 192.0.2.2"]


@pytest.mark.parametrize(
    ("link", "owner"),
    [
        ("../run/systemd/resolve/stub-resolv.conf", "(systemd-resolved manages it)"),
        ("/run/resolvconf/resolv.conf", "(resolvconf manages it)"),
        ("/somewhere/else", ""),
    ],
)
def test_a_symlinked_resolv_conf_is_refused_with_what_to_do(link: str, owner: str, tmp_path: Path) -> None:
    kernel = host_files()
    kernel.files["/etc/resolv.conf"] = FileState("/etc/resolv.conf", "symlink", symlink_to=link)
    with pytest.raises(ConfigError) as refused:
        make_plan(LAB, kernel, Ledger(tmp_path / "ledger.json"))  # type: ignore[arg-type]
    (problem,) = refused.value.problems
    assert (problem.file, problem.line, problem.path) == (HERE.file, HERE.line, "dns")
    assert problem.message.startswith(
        f"/etc/resolv.conf is a symlink to {link} {owner}".replace("  ", " ").rstrip() + ":"
    )
    assert "does not write through it" in problem.message
    assert "replace the symlink with a regular file" in problem.message


def test_a_symlink_that_appears_later_is_left_alone_on_removal(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "ledger.json")
    apply(LAB, kernel, book)
    kernel.files["/etc/resolv.conf"] = FileState(
        "/etc/resolv.conf", "symlink", symlink_to="../run/systemd/resolve/stub-resolv.conf"
    )
    plan = apply(DesiredState(files=("x",)), kernel, book)
    assert "- dns host/resolv.conf: /etc/resolv.conf is a symlink now: left alone" in [str(c) for c in plan.changes]
    assert kernel.file("/etc/resolv.conf").type == "symlink"


def test_a_broken_block_is_refused_only_when_netlab_cares(tmp_path: Path) -> None:
    kernel = host_files()
    kernel.put("/etc/hosts", FOREIGN_HOSTS + b"\n# BEGIN netlab\n10.0.0.1 x\n")
    assert not make_plan(DesiredState(files=("x",)), kernel, Ledger(tmp_path / "l.json"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Fix the markers by hand"):
        make_plan(LAB, kernel, Ledger(tmp_path / "l.json"))  # type: ignore[arg-type]


def test_files_netlab_lost_track_of_are_recognised_by_their_header(tmp_path: Path) -> None:
    # the ledger is gone, netlab's files stay: destroy still cleans them up
    kernel = FilesKernel()
    kernel.put("/etc/resolv.conf", HEADER + b"nameserver 192.0.2.1\n")
    kernel.put("/etc/netns/gone/resolv.conf", HEADER + b"nameserver 192.0.2.1\n")
    kernel.put(
        "/etc/hosts", b"127.0.0.1 localhost\n" + hosts.render_block([HostsEntry(None, "10.0.0.1", ("x",), HERE)])
    )
    book = Ledger(tmp_path / "l.json")
    book.record("dns", ("gone",), {"existed": False, "mode": None, "made_dir": False})
    plan = apply(DesiredState(files=("x",)), kernel, book)
    assert sorted(str(c) for c in plan.changes) == [
        "- dns gone/resolv.conf: removed: there was none before netlab",
        "- dns host/resolv.conf: no original kept: the content stays, without netlab's header",
        "- hosts host/hosts: 10.0.0.1 x -> (none)",
    ]
    assert kernel.text("/etc/resolv.conf") == "nameserver 192.0.2.1\n"
    assert kernel.text("/etc/hosts") == "127.0.0.1 localhost\n"


def test_a_block_removed_by_hand_is_forgotten(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "l.json")
    desired = DesiredState(hosts=(HostsEntry(None, "10.0.0.1", ("x",), HERE),), files=("x",))
    apply(desired, kernel, book)
    kernel.put("/etc/hosts", FOREIGN_HOSTS)
    plan = apply(DesiredState(files=("x",)), kernel, book)
    assert [str(c) for c in plan.changes] == ["- hosts host/hosts: already gone"]
    assert book.count() == 0 and kernel.file("/etc/hosts").content == FOREIGN_HOSTS


def test_a_hosts_file_netlab_created_goes_with_its_block(tmp_path: Path) -> None:
    kernel, book = FilesKernel(), Ledger(tmp_path / "l.json")
    desired = DesiredState(hosts=(HostsEntry(None, "10.0.0.1", ("x",), HERE),), files=("x",))
    apply(desired, kernel, book)
    assert kernel.text("/etc/hosts").startswith("# BEGIN netlab\n")
    apply(DesiredState(files=("x",)), kernel, book)
    assert "/etc/hosts" not in kernel.files


def test_a_failed_pass_puts_every_file_back(tmp_path: Path) -> None:
    kernel, book = host_files(), Ledger(tmp_path / "ledger.json")
    before = dict(kernel.files)
    plan = make_plan(LAB, kernel, book)  # type: ignore[arg-type]
    done = []
    for _, step in plan.steps():
        step.run(kernel)  # type: ignore[arg-type]
        done.append(step)
    for step in reversed(done):
        assert step.undo is not None
        step.undo(kernel)  # type: ignore[arg-type]
    assert kernel.files == before
