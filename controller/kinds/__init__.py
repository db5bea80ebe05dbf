"""The resource kinds, one module each, none importing another; `REGISTRY` is the
one list of them, in the order they are planned (a kind is handed what those
before it decided: `contract.Decided`) and their parts of `netlab show` follow."""

from netlab.controller.kinds.address import AddressKind
from netlab.controller.kinds.contract import Kind
from netlab.controller.kinds.dns import DnsKind
from netlab.controller.kinds.hosts import HostsKind
from netlab.controller.kinds.link import LinkKind
from netlab.controller.kinds.namespace import NamespaceKind
from netlab.controller.kinds.nat import NatKind
from netlab.controller.kinds.route import RouteKind
from netlab.controller.kinds.sysctl import SysctlKind

REGISTRY: tuple[Kind, ...] = (
    NamespaceKind(),
    LinkKind(),
    AddressKind(),
    RouteKind(),
    SysctlKind(),
    NatKind(),
    DnsKind(),
    HostsKind(),
)
