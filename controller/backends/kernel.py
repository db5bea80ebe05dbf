"""The kernel as netlab sees it: a facade over the backends that reads each
namespace once and remembers it, and carries the writers. Kinds read through it
while planning; their steps write through it. The resolver files count as kernel
state here: they are what the resolver reads.

What is remembered is forgotten by whoever knows it went stale: `forget_written`
after a pass forgets what its writes touched (so verifying re-reads only that),
and the daemon forgets the namespaces its event monitors heard from
(`forget_namespaces`) and everything on a resync (`forget_reads`).
"""

from __future__ import annotations

from netlab.controller.backends import iptables, namespaces, resolver_files, sysctls
from netlab.controller.backends.iptables import NatOp, NatTables
from netlab.controller.backends.netlink import Netlink, NetnsDump, open_socket
from netlab.controller.backends.resolver_files import FileState

EMPTY_DUMP = NetnsDump((), (), ())


class Kernel:
    def __init__(self) -> None:
        self.netlink = Netlink()
        self._namespaces: frozenset[str] | None = None
        self._dumps: dict[str | None, NetnsDump] = {}
        self._sysctls: dict[tuple[str | None, str], str | None] = {}
        self._legacy_nat: dict[str | None, bool] = {}
        self._nat: dict[str | None, NatTables] = {}
        self._nftables: dict[str | None, tuple[str, ...]] = {}
        # A file is read again only when lstat shows it changed (no events come
        # for files): (device, inode, mode, size, mtime, ctime) when it was read.
        self._files: dict[str, tuple[tuple[int, ...] | None, FileState]] = {}

    def close(self) -> None:
        self.netlink.close()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads, once per pass -------------------------------------------------------

    def namespaces(self) -> frozenset[str]:
        if self._namespaces is None:
            self._namespaces = namespaces.list_namespaces()
        return self._namespaces

    def has_netns(self, netns: str | None) -> bool:
        return netns is None or netns in self.namespaces()

    def dump(self, netns: str | None) -> NetnsDump:
        if netns not in self._dumps:
            self._dumps[netns] = self.netlink.dump(netns) if self.has_netns(netns) else EMPTY_DUMP
        return self._dumps[netns]

    def sysctl(self, netns: str | None, key: str) -> str | None:
        if (netns, key) not in self._sysctls:
            self._sysctls[(netns, key)] = sysctls.read(netns, key) if self.has_netns(netns) else None
        return self._sysctls[(netns, key)]

    def legacy_nat_exists(self, netns: str | None) -> bool:
        if netns not in self._legacy_nat:
            self._legacy_nat[netns] = self.has_netns(netns) and iptables.legacy_nat_exists(netns)
        return self._legacy_nat[netns]

    def nat(self, netns: str | None) -> NatTables:
        """netlab's chains and rules in the namespace's legacy nat tables: one
        worker process, only where a legacy nat table exists (reading one would
        create it)."""
        if netns not in self._nat:
            self._nat[netns] = iptables.dump(netns) if self.legacy_nat_exists(netns) else NatTables()
        return self._nat[netns]

    def nftables_in_use(self, netns: str | None) -> tuple[str, ...]:
        if netns not in self._nftables:
            self._nftables[netns] = iptables.nftables_in_use(netns) if self.has_netns(netns) else ()
        return self._nftables[netns]

    def file(self, path: str) -> FileState:
        signature = resolver_files.signature(path)
        known = self._files.get(path)
        if known is None or known[0] != signature:
            # the signature taken before the read: a write in between makes the
            # next look read it again
            known = self._files[path] = (signature, resolver_files.read(path))
        return known[1]

    def forget_reads(self) -> None:
        """Everything: the next read of anything asks the kernel again."""
        self.netlink.take_touched()
        self._namespaces = None
        self._dumps.clear()
        self._sysctls.clear()
        self._legacy_nat.clear()
        self._nat.clear()
        self._nftables.clear()
        self._files.clear()

    def forget_namespaces(self, names: set[str | None]) -> None:
        """What was read of these namespaces (None: the host), and which
        namespaces exist (a namespace's creation or removal in between makes its
        reads stale too)."""
        self._namespaces = None
        for netns in names:
            self._dumps.pop(netns, None)
            self._legacy_nat.pop(netns, None)
            self._nat.pop(netns, None)
            self._nftables.pop(netns, None)
            for key in [key for key in self._sysctls if key[0] == netns]:
                del self._sysctls[key]

    def forget_changed(self, names: set[str | None]) -> None:
        """Between the daemon's passes: forgets the namespaces the kernel reported
        changes in, and the sysctls (which make no events). Files are checked
        for changes on every read anyway."""
        self.forget_namespaces(names)
        self._sysctls.clear()

    def forget_written(self) -> None:
        """After a pass's writes: forgets the namespaces they touched (the files
        they wrote are forgotten as they are written)."""
        touched = self.netlink.take_touched()
        if touched is None:
            self.forget_reads()
        else:
            self.forget_namespaces(touched)

    # -- writes -------------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        self.netlink.forget(name)
        self.netlink.adopt(name, namespaces.create_namespace(name, then=open_socket))
        # A namespace without a working loopback surprises every program run in it.
        self.netlink.link_set(name, "lo", state="up")

    def remove_namespace(self, name: str) -> None:
        self.netlink.forget(name)
        # its veths' peers in other namespaces go with it
        self.netlink.touch_everything()
        namespaces.remove_namespace(name)

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        sysctls.write(netns, key, value)
        self._sysctls.pop((netns, key), None)

    def change_nat(self, netns: str | None, ops: list[NatOp]) -> None:
        iptables.change(netns, ops)
        self._legacy_nat.pop(netns, None)
        self._nat.pop(netns, None)

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        resolver_files.write(path, data, mode)
        self._files.pop(path, None)

    def remove_file(self, path: str) -> None:
        resolver_files.remove(path)
        self._files.pop(path, None)

    def make_directory(self, path: str, mode: int = 0o755) -> None:
        resolver_files.make_directory(path, mode)
        self._files.pop(path, None)

    def remove_directory_if_empty(self, path: str) -> None:
        resolver_files.remove_directory_if_empty(path)
        self._files.pop(path, None)
