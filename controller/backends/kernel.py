"""The kernel as one pass sees it: a facade over the backends that reads each
namespace once (memoised until `forget_reads`) and carries the writers.
Kinds read through it while planning; their steps write through it. The
resolver files count as kernel state here: they are what the resolver reads.
"""

from __future__ import annotations

from netlab.controller.backends import iptables, namespaces, resolver_files, sysctls
from netlab.controller.backends.iptables import NatOp, NatTables
from netlab.controller.backends.netlink import Netlink, NetnsDump
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
        self._files: dict[str, FileState] = {}

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
        if path not in self._files:
            self._files[path] = resolver_files.read(path)
        return self._files[path]

    def forget_reads(self) -> None:
        """After writes: the next read asks the kernel again."""
        self._namespaces = None
        self._dumps.clear()
        self._sysctls.clear()
        self._legacy_nat.clear()
        self._nat.clear()
        self._nftables.clear()
        self._files.clear()

    # -- writes -------------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        namespaces.create_namespace(name)
        # A namespace without a working loopback surprises every program run in it.
        self.netlink.link_set(name, "lo", state="up")

    def remove_namespace(self, name: str) -> None:
        self.netlink.forget(name)
        namespaces.remove_namespace(name)

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        sysctls.write(netns, key, value)

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
