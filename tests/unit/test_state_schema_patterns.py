"""The schema's `pattern`s, which editors and CI enforce where they ignore netlab's
formats: each sits beside its format, refuses no value the format accepts, refuses
the values of the issue, and `check-jsonschema` (a validator that is not ours)
passes every example and fails each broken file with the patterns alone."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlab.state.formats import FORMATS, PATTERNS
from netlab.state.validating import load_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "netlab.schema.json"


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _subschemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _subschemas(item)


def test_every_netlab_format_in_the_schema_carries_its_pattern() -> None:
    assert set(PATTERNS) == set(FORMATS)
    used = [node for node in _subschemas(load_schema()) if node.get("format") in FORMATS]
    assert {node["format"] for node in used} == set(FORMATS)
    for node in used:
        assert node.get("pattern") == PATTERNS[node["format"]], node["format"]
        # what editors (VS Code, yaml-language-server) show instead of the expression
        assert node.get("patternErrorMessage", "").startswith("write "), node["format"]


def _regress(pattern: str) -> Any:
    """The pattern as ECMAScript reads it (check-jsonschema's and editors' dialect)."""
    regress = pytest.importorskip("regress", reason="regress comes with check-jsonschema (test extras)")
    return regress.Regex(pattern, "u")


def _matches(name: str, value: str) -> bool:
    python = re.search(PATTERNS[name], value) is not None
    ecmascript = _regress(PATTERNS[name]).find(value) is not None
    # Python's `$` also matches before a final newline: the one place they differ
    assert python == ecmascript or value.endswith("\n"), (name, value)
    return ecmascript


# Formats a regular expression says exactly; the others are looser on purpose
# (bytes against characters, a range's order, a port's upper bound)
EXACT = ("ip-address", "ip-interface", "ip-network", "route-destination", "mac", "netns-name", "hostname-rfc1123")

addresses = st.ip_addresses().flatmap(
    lambda address: st.sampled_from(
        [str(address), address.exploded, address.exploded.upper()]
        + ([f"::ffff:{ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)}"] if address.version == 6 else [])
    )
)
prefixes = st.tuples(addresses, st.integers(0, 140), st.sampled_from(["", "0", "00"])).map(
    lambda parts: f"{parts[0]}/{parts[2]}{parts[1]}"
)
noise = st.text(alphabet="0123456789abcdefABCDEF:./%-_xyz []", max_size=24)
names = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.text(alphabet="ab.-_/:0 \t", max_size=70)
values = addresses | prefixes | noise | names | st.sampled_from(["default", "02:00:00:00:00:01", "01:00:5e:00:00:01"])


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_a_pattern_refuses_no_value_its_format_accepts(value: str) -> None:
    for name, explain in FORMATS.items():
        accepted = explain(value) is None
        if accepted:
            assert _matches(name, value), (name, value)
        elif name in EXACT and "\n" not in value:
            assert not _matches(name, value), (name, value)


EDGES = [
    "0.0.0.0", "255.255.255.255", "249.250.199.100", "10.0.0.1/032", "10.0.0.1/000", "::", "::1", "1::",
    "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "1:2:3:4:5::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
    "::ffff:255.1.0.9", "FFFF::/128", "::/128", "::/007", "fe80::1/64", "[2001:db8::2]:80", "10.0.0.1:00080",
    "AE:00:00:00:00:01", "0e:00:00:00:00:00", "a" * 15, "é" * 7, "x." * 126 + "y", "a" * 63 + ".b", "8000-8080",
]  # fmt: skip


@pytest.mark.parametrize("value", EDGES)
def test_a_pattern_accepts_the_edge_values_its_format_accepts(value: str) -> None:
    accepted = [name for name, explain in FORMATS.items() if explain(value) is None]
    assert accepted  # each is a good value of some format
    for name in accepted:
        assert _matches(name, value), (name, value)
    for name in EXACT:
        assert _matches(name, value) == (name in accepted), (name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ip-interface", "10.0.0.300/24"),
        ("ip-interface", "10.0.0.1/33"),
        ("ip-interface", "2001:db8::1/129"),
        ("ip-address", "not-an-ip"),
        ("ip-address", "fe80::1%eth0"),
        ("ifname", "abcdefghijklmnopqrstuvwxy"),  # 25 bytes
        ("ifname", ".."),
        ("ifname", "eth/0"),
        ("netns-name", "../../etc"),
        ("netns-name", "a" * 65),
        ("mac", "02:00:00:00:00"),
        ("mac", "zz:00:00:00:00:01"),
        ("mac", "01:00:5e:00:00:01"),
        ("mac", "00:00:00:00:00:00"),
        ("route-destination", "10.0.0.0/40"),
        ("dnat-target", "10.0.0.1:0"),
        ("dnat-target", "2001:db8::1:80:x"),
        ("port-range", "80-"),
        ("hostname-rfc1123", "-db.example.com"),
        ("resolver-option", "ndots 2"),
    ],
)
def test_the_patterns_refuse_the_broken_values(name: str, value: str) -> None:
    assert FORMATS[name](value) is not None
    assert not _matches(name, value)


BROKEN = {
    "address.yaml": "interfaces: [{name: br0, type: bridge, addresses: [10.0.0.300/24]}]",
    "gateway.yaml": "routes: [{to: default, via: not-an-ip}]",
    "ifname.yaml": "interfaces: [{name: abcdefghijklmnopqrstuvwxy, type: bridge}]",
    "netns.yaml": "namespaces: [{name: ../../etc}]",
    "mac.yaml": "interfaces: [{name: br0, type: bridge, mac: '02:00:00:00:00'}]",
    "dnat.yaml": "nat: [{type: dnat, protocol: tcp, port: 80, to: '10.0.0.1:'}]",
    "hosts.yaml": "hosts: [{address: 10.0.0.1, names: [db_1]}]",
}


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    if not Path(found).exists():
        pytest.skip("check-jsonschema is not installed: pip install -e '.[test]'")
    return found


def test_check_jsonschema_passes_every_example() -> None:
    examples = sorted(str(path) for path in (ROOT / "examples").glob("**/*.yaml"))
    examples.append(str(ROOT / "tests" / "unit" / "fixtures" / "design-example.yaml"))
    assert len(examples) >= 4
    run = subprocess.run(
        [_check_jsonschema(), "--schemafile", str(SCHEMA), *examples], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_jsonschema_fails_each_broken_file_on_the_patterns_alone(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("version: 1\n" + BROKEN[name] + "\n")
    run = subprocess.run(
        [_check_jsonschema(), "--schemafile", str(SCHEMA), "--disable-formats", "*", "-o", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert '"does not match' in run.stdout or "does not match" in run.stdout, run.stdout
