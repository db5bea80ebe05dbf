"""netlab as an operator installs it: scripts/install into a Debian 12 tree,
booted under the real systemd in systemd-nspawn with a private network. The
checks are in service.sh (start, STATUS=, a file reaching the kernel and
visible to `ip netns` outside the service, reload, JSON journal, stop)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.prerequisites import why_not

pytestmark = [pytest.mark.e2e, pytest.mark.kernel]

SCRIPT = Path(__file__).with_name("service.sh")


def test_the_service_under_systemd() -> None:
    why = why_not()
    if why:
        pytest.skip(why)
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0 and "E2E OK" in result.stdout, result.stdout[-4000:] + result.stderr[-4000:]
