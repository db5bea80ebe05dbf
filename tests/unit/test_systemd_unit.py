"""The unit file passes `systemd-analyze verify` with no output at all (unknown
keys are only warnings there, so any output fails), and keeps the hardening
that the README promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "netlab.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian's systemd package)")
def test_the_unit_verifies_without_a_word(tmp_path: Path) -> None:
    unit = tmp_path / "netlab.service"
    # the installed path does not exist here; any executable stands in for it
    unit.write_text(UNIT.read_text().replace("/opt/netlab/bin/netlab", sys.executable))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_the_unit_is_notify_hardened_and_keeps_mount_propagation() -> None:
    settings = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, value)
    assert settings["Type"] == "notify"
    assert (
        settings["ExecReload"] == "/opt/netlab/bin/netlab reload --pid $MAINPID --log-format json"
    )  # waits for the pass
    assert settings["NoNewPrivileges"] == "yes"
    assert "WatchdogSec" in settings and "CapabilityBoundingSet" in settings
    # each of these would give the service a private mount namespace, and every
    # network namespace it creates would be invisible to `ip netns` on the host
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths", "PrivateDevices", "PrivateMounts"):
        assert key not in settings, key
