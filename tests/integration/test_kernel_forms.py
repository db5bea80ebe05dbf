"""Values the kernel keeps in its own form, applied to a real kernel: each
converges in one `netlab apply` (which verifies), plans nothing afterwards, and
is removed when it leaves the files. A route in the local table is read back
like any other."""

from __future__ import annotations

import pytest

from tests.sandbox import Sandbox

pytestmark = pytest.mark.kernel

FORMS = """version: 1
interfaces:
  - {name: br0, type: bridge, addresses: [10.1.0.1/24, "2001:db8:1::1/64"]}
routes:
  - {to: 10.60.0.0/24, via: 10.1.0.9, table: local}
  - {to: "2001:db8:5::/64", dev: br0, metric: 0}
sysctls: {net.ipv4.ip_forward: "01", net.ipv4.ip_default_ttl: "0101"}
"""


def test_values_in_the_kernels_own_form_converge_in_one_pass(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", FORMS)
    sandbox.netlab("apply")
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    local = sandbox.run("ip", "route", "show", "table", "local", "10.60.0.0/24").stdout
    assert "via 10.1.0.9 dev br0 proto 213" in local, local
    assert "metric 1024" in sandbox.run("ip", "-6", "route", "show", "2001:db8:5::/64").stdout
    assert sandbox.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert sandbox.run("cat", "/proc/sys/net/ipv4/ip_default_ttl").stdout.strip() == "65"  # 0101 is octal
    sandbox.write_config(
        "lab.yaml", "version: 1\ninterfaces:\n  - {name: br0, type: bridge, addresses: [10.1.0.1/24]}\n"
    )
    sandbox.netlab("apply")
    assert sandbox.run("ip", "route", "show", "table", "local", "10.60.0.0/24").stdout == ""
    assert sandbox.run("ip", "-6", "route", "show", "2001:db8:5::/64").stdout == ""
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
