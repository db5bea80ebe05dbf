"""The end-to-end tests' prerequisites: a host that cannot boot a container
skips them with the reason instead of erroring in the middle of a build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import prerequisites


@pytest.mark.parametrize("content", ["", "uninitialized\n", None])
def test_no_machine_id_is_a_skip_with_the_reason(
    content: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine_id = tmp_path / "machine-id"
    if content is not None:
        machine_id.write_text(content)
    monkeypatch.setattr(prerequisites, "MACHINE_ID", machine_id)
    monkeypatch.setattr(prerequisites.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prerequisites.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    why = prerequisites.why_not()
    assert why is not None and "machine's ID" in why and "systemd-machine-id-setup" in why
    machine_id.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    assert prerequisites.why_not() is None
