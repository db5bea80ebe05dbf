"""NAT on Debian's own kernel, in the qemu guest (tools/qemu-kernel.sh), on both
backends: there nf_tables, its NAT, masquerade and fib expressions, and the
legacy ip_tables, iptable_nat and the xt_ matches are modules that the first
rule must load, as on a Debian host (this machine's kernel has them built in).
The test is test_nat's port forward, run again here: a masquerade rule and a
port forward written, the forward judged by TCP connections from outside and
from the host itself, then taken out. (One test per backend: under the guest's
emulated CPU each takes about two minutes; test_nat runs the rest on this
machine's kernel.)"""

from __future__ import annotations

import pytest

from tests.integration.test_nat import (  # noqa: F401  (pytest collects what is imported: the fixture, the test)
    box,
    test_a_port_forward_reaches_a_listener_in_a_namespace,
)

pytestmark = [pytest.mark.kernel, pytest.mark.distro_kernel]
