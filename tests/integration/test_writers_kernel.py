"""The daemon's look in /proc for writers of its config files sees only its own
files: a process in another mount namespace (a container, another sandbox)
writing a file of the same path is not a writer of them. Two sandboxes, each
with its own /etc/netlab.d."""

from __future__ import annotations

import sys

import pytest

from tests.sandbox import Sandbox

pytestmark = pytest.mark.kernel

HOLD = "import time; f = open('/etc/netlab.d/lab.yaml', 'a'); print('open', flush=True); time.sleep(120)"
SCAN = "from netlab.controller.watching import writers_in; print(writers_in('/etc/netlab.d').writers)"


def test_a_writer_in_another_mount_namespace_is_not_a_writer_of_these_files(sandbox: Sandbox) -> None:
    other = Sandbox()
    try:
        other.write_config("lab.yaml", "version: 1\n")
        writer = other.spawn(sys.executable, "-c", HOLD)
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        # the same path in another sandbox is seen as written: the scan works there
        assert f"pid={writer.pid}" in other.run(sys.executable, "-c", SCAN).stdout
        sandbox.write_config("lab.yaml", "version: 1\n")
        assert sandbox.run(sys.executable, "-c", SCAN).stdout.strip() == "()"
    finally:
        other.close()
