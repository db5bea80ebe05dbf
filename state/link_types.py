"""Link types as data: one `LinkType` entry per `type` of the file format, and
nothing else anywhere knows a type by name.

An entry says the kernel's kind (IFLA_INFO_KIND), the place in the creation order,
the file key naming the link it sits on (and where the kernel keeps that link's
index), whether other links may name it as their `master`, the kernel module that
brings its driver, and its attributes. An attribute says its file key, its
IFLA_INFO_DATA attribute by name (a string: `state/` needs no pyroute2), how the
file's values become the kernel's and back, what an undeclared one means, and
whether the kernel changes it on a live link or the link must be replaced.

Read by `state.building` (the options a file declares), `state.validating` (its
hints), `state.cross_checking` (masters), the link kind (comparing, creating,
changing, replacing, `show`) and the netlink backend (creating, observing). Adding
a type is one entry here, its part of the schema (`$defs/<type>Link`, checked
against this table by tests/unit/test_link_types.py), and a test.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# where most kinds keep the index of the link they sit on (a vxlan keeps its
# underlay's in IFLA_INFO_DATA instead: `LinkType.parent_in`)
IFLA_LINK = "IFLA_LINK"


class Declaring(Protocol):
    """What of a declared link the table reads (`model.Link`)."""

    @property
    def options(self) -> tuple[tuple[str, Any], ...]: ...


@dataclass(frozen=True)
class Attribute:
    """One attribute of a type, kept by the kernel in the link's IFLA_INFO_DATA."""

    key: str  # in the file: `id`, `mode`, `vni`
    kernel: str  # the IFLA_INFO_DATA attribute: `IFLA_VLAN_ID`
    # the file's words and the kernel's numbers for them; None: the value itself
    values: Mapping[Any, int] | None = None
    scale: int = 1  # kernel units per file unit (forward_delay: centiseconds per second)
    # what an undeclared attribute means; None: the kernel has none (or, with
    # `unmanaged`, whatever the kernel has: not compared)
    default: Any = None
    unmanaged: bool = False
    # the kernel gives a new link the default by itself: sent only when declared
    # (a kernel without the feature refuses even its default: vlan_filtering)
    implicit: bool = False
    replace: bool = True  # the kernel cannot change it on a live link
    # values to or from which a change needs a new link, where others change in place
    replace_values: tuple[Any, ...] = ()
    # of the kernel's values of a shared attribute, which are this one's (remote:
    # the unicast ones of IFLA_VXLAN_GROUP, group: the multicast ones)
    keeps: Callable[[Any], bool] | None = None
    hint: str = ""  # what to write when it is required and missing
    # what is wrong with a value the schema lets through, or None
    refuses: Callable[[Any], str | None] | None = None
    # the kernel keeps one value for every link of the parent that has this
    # attribute (an ipvlan's mode is its lower device's): they must agree
    per_parent: bool = False

    def declared(self, link: Declaring) -> Any:
        """The value the file asks for, as the file writes it (the default if undeclared)."""
        return next((value for key, value in link.options if key == self.key), self.default)

    def is_declared(self, link: Declaring) -> bool:
        return any(key == self.key for key, _ in link.options)

    def managed(self, link: Declaring) -> bool:
        return not self.unmanaged or self.is_declared(link)

    def differs(self, link: Declaring, observed: Any) -> bool:
        """Whether the kernel's value (the file's words, `observed`) is not the declared one."""
        return self.managed(link) and observed != self.declared(link)

    def needs_replace(self, current: Any, desired: Any) -> bool:
        """Whether going from `current` to `desired` takes a new link."""
        return self.replace or current in self.replace_values or desired in self.replace_values

    def to_kernel(self, value: Any) -> Any:
        if value is None:
            return None
        if self.values is not None:
            return self.values[value]
        return value * self.scale if self.scale != 1 else value

    def from_kernel(self, value: Any) -> Any:
        """The file's word for a kernel value (the number itself if it has none)."""
        if value is None or (self.keeps is not None and not self.keeps(value)):
            return None
        if self.values is not None:
            return next((word for word, number in self.values.items() if number == value), value)
        if self.scale != 1 and isinstance(value, int):
            return value // self.scale if value % self.scale == 0 else value / self.scale
        return value


@dataclass(frozen=True)
class LinkType:
    name: str  # the file's `type`
    kind: str  # IFLA_INFO_KIND
    order: int  # creation order: a lower one first (a parent before its children)
    # the file key naming the link it sits on, in the host's namespace (it is
    # created beside it, then moved into its own)
    parent: str | None = None
    parent_in: str = IFLA_LINK  # where the kernel keeps the parent's index
    attributes: tuple[Attribute, ...] = ()
    other_keys: tuple[str, ...] = ()  # file keys of its own that are no attribute (a veth's `peer`)
    holds_ports: bool = False  # other links may name it as their `master`
    module: str = ""  # the kernel module with its driver, when not named as the kind

    def kernel_data(self, link: Declaring) -> dict[str, Any]:
        """The IFLA_INFO_DATA attributes to create `link` with."""
        data = {}
        for attribute in self.attributes:
            sent = attribute.is_declared(link) or not (attribute.unmanaged or attribute.implicit)
            value = attribute.declared(link) if sent else None
            if value is not None:
                data[attribute.kernel] = attribute.to_kernel(value)
        return data

    def observed_options(self, data: Callable[[str], Any]) -> dict[str, Any]:
        """The attributes as the kernel reports them, in the file's words
        (`data`: an IFLA_INFO_DATA attribute by name); those it has none of left out."""
        found = {attribute.key: attribute.from_kernel(data(attribute.kernel)) for attribute in self.attributes}
        return {key: value for key, value in found.items() if value is not None}

    @property
    def keys(self) -> tuple[str, ...]:
        """The file keys of this type beyond the common ones."""
        own = tuple(attribute.key for attribute in self.attributes)
        return ((self.parent,) if self.parent else ()) + self.other_keys + own


def _multicast(address: Any) -> bool:
    return isinstance(address, str) and ipaddress.ip_address(address).is_multicast


def _unicast(address: Any) -> bool:
    return isinstance(address, str) and not ipaddress.ip_address(address).is_multicast


def _ipv4(multicast: bool) -> Callable[[Any], str | None]:
    def refuses(address: Any) -> str | None:
        if ipaddress.ip_address(address).version != 4:
            return "vxlan endpoints are IPv4 here (IPv6 ones are not supported yet): write an IPv4 address"
        if _multicast(address) != multicast:
            return (
                "a group is a multicast address (224.0.0.0/4), like 239.1.1.1"
                if multicast
                else "write a unicast address here (a multicast one is a `group`)"
            )
        return None

    return refuses


BOOLEAN = {False: 0, True: 1}
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
VLAN_PROTOCOLS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
BOND_MODES = {
    "balance-rr": 0,
    "active-backup": 1,
    "balance-xor": 2,
    "broadcast": 3,
    "802.3ad": 4,
    "balance-tlb": 5,
    "balance-alb": 6,
}


def _mac_mode(kernel: str) -> Attribute:
    """macvlan's and macvtap's `mode`: changelink takes a new mode, but not into
    or out of passthru."""
    return Attribute("mode", kernel, MACVLAN_MODES, default="bridge", replace=False, replace_values=("passthru",))


def _ipvlan_mode() -> Attribute:
    """An ipvlan's or ipvtap's mode: the kernel keeps it per lower device."""
    return Attribute("mode", "IFLA_IPVLAN_MODE", IPVLAN_MODES, default="l2", replace=False, per_parent=True)


def _vxlan_address(key: str, keeps: Callable[[Any], bool] | None = None) -> Attribute:
    """A vxlan address: changed in place, but set or taken away with a new link."""
    return Attribute(
        key,
        "IFLA_VXLAN_LOCAL" if key == "local" else "IFLA_VXLAN_GROUP",
        replace=False,
        replace_values=(None,),
        keeps=keeps,
        refuses=_ipv4(multicast=key == "group"),
    )


LINK_TYPES: dict[str, LinkType] = {
    t.name: t
    for t in (
        LinkType(
            "bridge",
            "bridge",
            0,
            holds_ports=True,
            attributes=(
                Attribute("stp", "IFLA_BR_STP_STATE", BOOLEAN, default=False, replace=False, implicit=True),
                Attribute(
                    "vlan_filtering", "IFLA_BR_VLAN_FILTERING", BOOLEAN, default=False, replace=False, implicit=True
                ),
                Attribute(
                    "forward_delay", "IFLA_BR_FORWARD_DELAY", scale=100, default=15, replace=False, implicit=True
                ),
            ),
        ),
        LinkType("dummy", "dummy", 0),
        LinkType(
            "bond",
            "bond",
            0,
            holds_ports=True,
            module="bonding",
            attributes=(
                Attribute("mode", "IFLA_BOND_MODE", BOND_MODES, default="balance-rr"),
                Attribute("miimon", "IFLA_BOND_MIIMON", unmanaged=True, replace=False),
            ),
        ),
        LinkType(
            "vrf",
            "vrf",
            0,
            holds_ports=True,
            attributes=(Attribute("table", "IFLA_VRF_TABLE", hint="write `table: N`, the VRF's routing table"),),
        ),
        LinkType("veth", "veth", 1, other_keys=("peer",)),
        LinkType("veth-peer", "veth", 1),
        LinkType(
            "vlan",
            "vlan",
            2,
            parent="parent",
            module="8021q",
            attributes=(
                Attribute("id", "IFLA_VLAN_ID", hint="write `id: N`, the VLAN id (1..4094)"),
                Attribute("protocol", "IFLA_VLAN_PROTOCOL", VLAN_PROTOCOLS, default="802.1Q"),
            ),
        ),
        LinkType("macvlan", "macvlan", 2, parent="parent", attributes=(_mac_mode("IFLA_MACVLAN_MODE"),)),
        LinkType("macvtap", "macvtap", 2, parent="parent", attributes=(_mac_mode("IFLA_MACVTAP_MODE"),)),
        LinkType(
            "ipvlan",
            "ipvlan",
            2,
            parent="parent",
            attributes=(_ipvlan_mode(),),
        ),
        LinkType(
            "ipvtap",
            "ipvtap",
            2,
            parent="parent",
            attributes=(_ipvlan_mode(),),
        ),
        LinkType(
            "vxlan",
            "vxlan",
            2,
            parent="parent",
            parent_in="IFLA_VXLAN_LINK",
            attributes=(
                Attribute("vni", "IFLA_VXLAN_ID", hint="write `vni: N`, the VXLAN network identifier (1..16777215)"),
                _vxlan_address("local"),
                _vxlan_address("remote", _unicast),
                _vxlan_address("group", _multicast),
                Attribute("dstport", "IFLA_VXLAN_PORT", default=4789),
                Attribute("learning", "IFLA_VXLAN_LEARNING", BOOLEAN, default=True, replace=False),
            ),
        ),
        # exists already: planned last, once the masters it may join are decided
        LinkType("device", "", 3, holds_ports=True),
    )
}

# the kernel attributes of IFLA_INFO_DATA that are read back, by kernel kind
OBSERVED_DATA: dict[str, tuple[str, ...]] = {
    t.kind: tuple(dict.fromkeys(a.kernel for a in t.attributes)) + ((t.parent_in,) if t.parent_in != IFLA_LINK else ())
    for t in LINK_TYPES.values()
    if t.attributes
}
# where a kernel kind keeps its parent's index, when not in IFLA_LINK
PARENT_DATA: dict[str, str] = {t.kind: t.parent_in for t in LINK_TYPES.values() if t.parent_in != IFLA_LINK}
# the file's type of each kernel kind (a veth's ends are both `veth`)
TYPE_OF_KIND: dict[str, str] = {t.kind: t.name for t in reversed(LINK_TYPES.values()) if t.kind}


def kernel_module(kind: str) -> str:
    """The module that brings the driver of a kernel link kind."""
    return next((t.module for t in LINK_TYPES.values() if t.kind == kind and t.module), kind)


def types_with(key: str) -> list[str]:
    """The types that have this file key of their own (`parent`: vlan, macvlan...)."""
    return [t.name for t in LINK_TYPES.values() if key in t.keys and t.name != "veth-peer"]


def master_types() -> list[str]:
    return [t.name for t in LINK_TYPES.values() if t.holds_ports and t.name != "device"]
