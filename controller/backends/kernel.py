"""The kernel as one pass sees it: a facade over the backends that reads each
namespace once (memoised until `forget_reads`) and carries the writers.
Kinds read through it while planning; their steps write through it.
"""

from __future__ import annotations

from netlab.controller.backends import namespaces, sysctls
from netlab.controller.backends.netlink import Netlink, NetnsDump

EMPTY_DUMP = NetnsDump((), (), ())


class Kernel:
    def __init__(self) -> None:
        self.netlink = Netlink()
        self._namespaces: frozenset[str] | None = None
        self._dumps: dict[str | None, NetnsDump] = {}
        self._sysctls: dict[tuple[str | None, str], str | None] = {}

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

    def forget_reads(self) -> None:
        """After writes: the next read asks the kernel again."""
        self._namespaces = None
        self._dumps.clear()
        self._sysctls.clear()

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
