"""Which NAT backend netlab writes to: nftables (`nftables`) or legacy iptables
(`iptables`), asked for by `--nat-backend`, or chosen (`auto`) by what the host
runs. One choice for the host and all its namespaces, made once per kernel
facade from facts read in the host's namespace. Used by the Kernel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Backend = Literal["nftables", "iptables"]
Requested = Literal["auto", "nftables", "iptables"]
BACKENDS: tuple[Backend, ...] = ("nftables", "iptables")
REQUESTS: tuple[Requested, ...] = ("auto", "nftables", "iptables")


@dataclass(frozen=True)
class Facts:
    """What the choice looks at, all of the host's namespace. The last two cost
    a read each (a worker process; every table's chains):
    they are asked only when the choice comes to them."""

    nftables_unavailable: str | None  # why nftables cannot be used (None: it can)
    legacy_available: bool  # the kernel has legacy iptables (ip_tables)
    iptables_command: str | None  # what the host's `iptables` is: "nft", "legacy", None (none)
    legacy_rules_of_others: Callable[[], int]  # rules of other tools in the host's legacy nat table
    nftables_in_use: Callable[
        [], tuple[str, ...]
    ]  # other tools' tables with base chains, like `ip filter (3 base chains)`


@dataclass(frozen=True)
class Choice:
    backend: Backend | None  # None: the one asked for cannot be used (`reason` says why)
    reason: str


def other_than(backend: Backend) -> Backend:
    return "iptables" if backend == "nftables" else "nftables"


def choose(requested: Requested, facts: Facts) -> Choice:
    """The backend, and why, in this order: what was asked for; for `auto`,
    nftables unless it cannot be used; legacy where the kernel has nothing
    else or the host's NAT lives in legacy tables already; then nftables where
    the host's iptables is iptables-nft or nftables holds a firewall; legacy where
    the host's iptables is iptables-legacy; and nftables, the kernel's current
    firewall, on a host with neither."""
    if requested == "nftables":
        if facts.nftables_unavailable:
            return Choice(None, f"--nat-backend nftables, but {facts.nftables_unavailable}")
        return Choice("nftables", "asked for with --nat-backend nftables")
    if requested == "iptables":
        if not facts.legacy_available:
            return Choice(None, "--nat-backend iptables, but this kernel has no legacy iptables (ip_tables)")
        return Choice("iptables", "asked for with --nat-backend iptables")
    if facts.nftables_unavailable:
        if not facts.legacy_available:
            return Choice(
                None,
                f"neither backend can work here: {facts.nftables_unavailable}, and this kernel has "
                "no legacy iptables (ip_tables)",
            )
        return Choice("iptables", f"auto: {facts.nftables_unavailable}")
    if not facts.legacy_available:
        return Choice("nftables", "auto: this kernel has no legacy iptables")
    count = facts.legacy_rules_of_others()
    if count:
        return Choice(
            "iptables",
            f"auto: the host's NAT lives in the legacy iptables tables ({count} rule"
            f"{'s' if count != 1 else ''} of other tools there)",
        )
    if facts.iptables_command == "nft":
        return Choice("nftables", "auto: the host's iptables is iptables-nft")
    in_use = facts.nftables_in_use()
    if in_use:
        return Choice("nftables", f"auto: nftables holds the host's firewall ({', '.join(in_use)})")
    if facts.iptables_command == "legacy":
        return Choice("iptables", "auto: the host's iptables is iptables-legacy")
    return Choice("nftables", "auto: no iptables command on the host; nftables is the kernel's current firewall")


def iptables_command() -> str | None:
    """What `iptables` on the PATH (or in /usr/sbin) is, by the program it
    resolves to: iptables-nft ("nft") or iptables-legacy ("legacy"), as
    Debian's alternatives, Fedora and Arch install them; None: there is none."""
    import shutil  # only when a backend is chosen: it is slow to import

    path = shutil.which("iptables") or shutil.which("iptables", path="/usr/sbin:/sbin")
    if path is None:
        return None
    target = os.path.basename(os.path.realpath(path))
    if "legacy" in target:
        return "legacy"
    if "nft" in target:
        return "nft"
    return None  # a plain build of iptables: legacy, or a wrapper we cannot tell


def firewalld_running() -> bool:
    """Whether a firewalld process runs (in any namespace: /proc shows all)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as handle:
                if handle.read().strip() == "firewalld":
                    return True
        except OSError:
            continue
    return False


def legacy_available() -> bool:
    """Whether the kernel has legacy iptables: ip_tables is loaded (it has
    /proc/net/ip_tables_names) or can be (a module or built in, as the kernel's
    module lists say)."""
    if os.path.exists("/proc/net/ip_tables_names"):
        return True
    modules = os.path.join("/lib/modules", os.uname().release)
    for listing in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(modules, listing), encoding="utf-8", errors="replace") as handle:
                if any("/ip_tables.ko" in line.split(":", 1)[0] for line in handle):
                    return True
        except OSError:
            continue
    return False
