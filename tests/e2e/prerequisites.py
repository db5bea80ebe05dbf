"""What this machine must have for the end-to-end tests to boot a container, and
the reason to skip them when it has not; used by both e2e modules. A missing
prerequisite of the host is a skip with its reason, never an error."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

MACHINE_ID = Path("/etc/machine-id")


def why_not() -> str | None:
    """None when the e2e tests can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root: builds a Debian tree and boots it with systemd-nspawn"
    missing = [tool for tool in ("systemd-nspawn", "mmdebstrap") if shutil.which(tool) is None]
    if missing and shutil.which("apt-get") is None:
        return f"needs {' and '.join(missing)} (Debian: systemd-container, mmdebstrap)"
    try:
        machine_id = MACHINE_ID.read_text().strip()
    except OSError:
        machine_id = ""
    if not re.fullmatch(r"[0-9a-f]{32}", machine_id):
        # systemd-nspawn refuses to start without it ("Failed to retrieve machine
        # ID"): a fresh container or debootstrap tree has an empty one
        return (
            f"systemd-nspawn needs this machine's ID and {MACHINE_ID} holds none (`systemd-machine-id-setup` makes one)"
        )
    return None
