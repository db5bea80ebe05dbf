"""NAT on Debian's own kernel, in the qemu guest (tools/qemu-kernel.sh), on both
backends: there nf_tables, its NAT and fib expressions, and the legacy ip_tables
and iptable_nat are modules that the first rule must load, as on a Debian
host (this machine's kernel has them built in). The tests are test_nat's, run
again here: masquerade judged by ping, a port forward by a TCP connection from
outside and from the host itself, and a switch of backend in one pass."""

from __future__ import annotations

import pytest

from tests.integration.test_nat import (  # noqa: F401  (pytest collects what is imported: the fixture, the tests)
    box,
    test_a_port_forward_reaches_a_listener_in_a_namespace,
    test_a_switch_of_backend_moves_the_rules_in_one_pass,
    test_masquerade_lets_the_lab_reach_a_network_with_no_route_back,
)

pytestmark = [pytest.mark.kernel, pytest.mark.distro_kernel]
