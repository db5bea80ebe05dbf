"""docs/json.md documents every field of the JSON that netlab prints and writes:
a field added to status.json, `plan --json` or `show --json` without its row in
the tables fails here. No root needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import structlog

from netlab.controller.daemon import Daemon, Settings
from netlab.controller.health import StatusJson
from netlab.controller.reporting import FORMAT_VERSION

DOC = (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(f"## `{title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else len(DOC)]


def _documented(section: str) -> set[str]:
    """The field names of a section's tables (first column, before any `[]` or `.`)."""
    return {re.split(r"[\[.]", name)[0] for name in re.findall(r"^\| `([^`]+)` \|", section, re.M)}


def test_every_field_of_status_json_is_documented(tmp_path: Path) -> None:
    fields = set(StatusJson.__required_keys__)
    missing = fields - {"format_version"} - _documented(_section("netlab status"))
    assert not missing, f"docs/json.md does not document status.json's {sorted(missing)}"
    # and what the daemon writes is that shape
    settings = Settings(config_dir=tmp_path / "conf", state_dir=tmp_path / "state", run_dir=tmp_path / "run")
    settings.run_dir.mkdir()
    daemon = Daemon(settings, structlog.get_logger())
    assert daemon.status_file.write(daemon._status(running=True)) is None
    status = json.loads((settings.run_dir / "status.json").read_text())
    assert status["format_version"] == FORMAT_VERSION
    assert set(status) == fields


def test_the_documented_examples_carry_the_format_version() -> None:
    for block in re.findall(r"```json\n(.*?)```", DOC, re.S):
        assert json.loads(block)["format_version"] == FORMAT_VERSION
