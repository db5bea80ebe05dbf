"""Link types as data: for each type netlab creates, the kernel's kind, its place
in the creation order, the file key naming its parent, and its creation
attributes (file key, model field, the kernel's IFLA_INFO_DATA attribute by
name, default, whether a change needs a new link or is made in place). Read by the link kind (to
compare and replace) and the netlink backend (to create and observe)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netlab.state.model import Link


@dataclass(frozen=True)
class CreationAttribute:
    """An attribute given when a link is created, kept in its IFLA_INFO_DATA."""

    key: str  # in the file: `id`, `mode`
    field: str  # of `model.Link`: `vlan_id`, `mode`
    kernel: str  # the IFLA_INFO_DATA attribute: `IFLA_VLAN_ID`
    # the file's words and the kernel's numbers for them; None: the number itself
    values: Mapping[str, int] | None = None
    default: Any = None  # what an undeclared attribute means (the loader fills it in too)
    replace: bool = True  # the kernel cannot change it on a live link
    # values to or from which a change needs a new link, where others change in place
    replace_values: tuple[Any, ...] = ()

    def declared(self, link: Link) -> Any:
        """The value the file asks for, as the file writes it."""
        value = getattr(link, self.field)
        return self.default if value is None else value

    def needs_replace(self, current: Any, desired: Any) -> bool:
        """Whether going from `current` to `desired` takes a new link."""
        return self.replace or current in self.replace_values or desired in self.replace_values

    def to_kernel(self, value: Any) -> Any:
        return self.values[value] if self.values is not None and value is not None else value

    def from_kernel(self, value: Any) -> Any:
        """The file's word for a kernel value (the number itself if it has none)."""
        if self.values is None or value is None:
            return value
        return next((word for word, number in self.values.items() if number == value), value)


@dataclass(frozen=True)
class LinkType:
    name: str  # the file's `type`
    kind: str  # IFLA_INFO_KIND
    order: int  # creation order: a lower one first (a parent before its children)
    parent: str | None = None  # the file key naming the link it sits on, in the host
    attributes: tuple[CreationAttribute, ...] = ()
    module: str = ""  # the kernel module with its driver, when not named as the kind

    def kernel_data(self, link: Link) -> dict[str, Any]:
        """The IFLA_INFO_DATA attributes to create `link` with."""
        data = {}
        for attribute in self.attributes:
            value = attribute.declared(link)
            if value is not None:
                data[attribute.kernel] = attribute.to_kernel(value)
        return data


MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}

LINK_TYPES: dict[str, LinkType] = {
    t.name: t
    for t in (
        LinkType("bridge", "bridge", 0),
        LinkType("dummy", "dummy", 0),
        LinkType("veth", "veth", 1),
        LinkType("veth-peer", "veth", 1),
        LinkType(
            "vlan",
            "vlan",
            2,
            parent="parent",
            module="8021q",
            attributes=(CreationAttribute("id", "vlan_id", "IFLA_VLAN_ID"),),
        ),
        LinkType(
            "macvlan",
            "macvlan",
            2,
            parent="parent",
            # changelink takes a new mode, but not into or out of passthru
            attributes=(
                CreationAttribute(
                    "mode",
                    "mode",
                    "IFLA_MACVLAN_MODE",
                    MACVLAN_MODES,
                    default="bridge",
                    replace=False,
                    replace_values=("passthru",),
                ),
            ),
        ),
        LinkType(
            "ipvlan",
            "ipvlan",
            2,
            parent="parent",
            attributes=(
                CreationAttribute("mode", "mode", "IFLA_IPVLAN_MODE", IPVLAN_MODES, default="l2", replace=False),
            ),
        ),
        # exists already: planned last, once the bridges it may join are decided
        LinkType("device", "", 3),
    )
}

# the kernel attributes of IFLA_INFO_DATA that are read back, by kernel kind
OBSERVED_DATA: dict[str, tuple[str, ...]] = {
    t.kind: tuple(attribute.kernel for attribute in t.attributes) for t in LINK_TYPES.values() if t.attributes
}


def kernel_module(kind: str) -> str:
    """The module that brings the driver of a kernel link kind."""
    return next((t.module for t in LINK_TYPES.values() if t.kind == kind and t.module), kind)
