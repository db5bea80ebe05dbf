"""What a command imports on its way: `netlab --help` and `netlab validate` on
an empty directory load none of the heavy libraries (structlog, jsonschema,
pyroute2, the YAML parser), which are most of a small run's time (issue 19;
the time itself is measured by the benchmarks, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netlab.controller import cli
from netlab.controller.backends import nat_backends

HEAVY = ("structlog", "jsonschema", "pyroute2", "ruamel", "iptc", "nftables", "asyncio", "watchdog", "typing")

PROBE = """
import json, sys
from netlab.controller import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _imported(*argv: str) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=False)
    last = json.loads(done.stderr.strip().splitlines()[-1])
    return last["code"], {name.split(".")[0] for name in last["modules"]}


@pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"], ["plan", "--help"]])
def test_help_imports_none_of_the_heavy_libraries(argv: list[str]) -> None:
    code, modules = _imported(*argv)
    assert code == 0
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_validate_on_an_empty_directory_imports_none_of_them(tmp_path: Path) -> None:
    code, modules = _imported("validate", "--config-dir", str(tmp_path))
    assert code == 0
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_validate_of_a_file_still_checks_it_against_the_schema(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("version: 1\nnamespaces:\n  - name: red\n", encoding="utf-8")
    code, modules = _imported("validate", "--config-dir", str(tmp_path))
    assert code == 0
    # the common subset of YAML is read by libyaml: ruamel waits for a file that needs it
    assert "jsonschema" in modules and "ruamel" not in modules


def test_a_file_beyond_libyaml_s_subset_is_read_by_ruamel(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("version: 1\nnamespaces:\n  - &red {name: red}\n", encoding="utf-8")
    code, modules = _imported("validate", "--config-dir", str(tmp_path))
    assert code == 0
    assert "ruamel" in modules


def test_the_command_line_offers_the_nat_backends_the_kernel_knows() -> None:
    assert cli.NAT_BACKENDS == nat_backends.REQUESTS
