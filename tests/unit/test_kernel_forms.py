"""Values the kernel keeps in another form than the file's are compared in the
kernel's form, or they are planned again on every pass: an IPv6 route's metric
0 (the kernel's 1024). Sysctl values are pinned in test_planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.state.errors import ConfigError
from netlab.state.loading import load_generation


def test_an_ipv6_route_of_metric_0_is_the_kernels_route_of_metric_1024(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\nroutes:\n"
        "  - {to: '2001:db8:5::/64', dev: eth0, metric: 0}\n"
        "  - {to: 10.5.0.0/24, dev: eth0, metric: 0}\n"
    )
    state = load_generation(tmp_path, hostname="node-a")
    assert [r.key for r in state.routes] == [(None, 254, "2001:db8:5::/64", 1024), (None, 254, "10.5.0.0/24", 0)]


def test_ipv6_metrics_0_and_1024_are_one_route(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\nroutes:\n"
        "  - {to: '2001:db8:5::/64', dev: eth0, metric: 0}\n"
        "  - {to: '2001:db8:5::/64', dev: eth0}\n"
    )
    with pytest.raises(ConfigError, match="metric 1024"):
        load_generation(tmp_path, hostname="node-a")
