"""The kernel backends: netlink, namespaces, iptables, sysctls, resolver files.

pyroute2's package `__init__` imports the whole library (NDB, IPDB, nftables,
WireGuard, IPVS...: ~8 MiB and ~40 ms more than the message classes and
helpers netlab uses, in every netlab process). Before any backend imports
pyroute2, the package is registered here without running its `__init__`; its
submodules import as usual (`from pyroute2 import config` imports the submodule).
The first other attribute asked of the package (`pyroute2.IPRoute`,
`__version__`) runs the `__init__` then, so any other user of pyroute2 in the
process is served as usual.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def _defer_pyroute2_init() -> None:
    if "pyroute2" in sys.modules:
        return  # imported already, whole
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return  # not installed: the backends' own imports will say so
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def attribute(name: str) -> Any:
        if not name.startswith("__") and importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")
        del package.__getattr__  # the `__init__` defines the rest
        loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package


_defer_pyroute2_init()
