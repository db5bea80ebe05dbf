"""The link types this machine's kernel has (vxlan, macvlan, macvtap, bridge options),
created, changed in place, replaced and removed by netlab, with a foreign link
of the type left alone, judged by `ip -d -j` (tests/link_lifecycle.py; the
types it lacks are tests/distro_kernel's)."""

from __future__ import annotations

import pytest

from tests.link_lifecycle import Case, link_of, live
from tests.sandbox import Sandbox

pytestmark = pytest.mark.kernel

_UNDERLAY = "  - {name: under0, type: veth, addresses: [10.0.0.2/24], peer: {name: under1}}\n"


def _lab(extra: str) -> str:
    return "version: 1\ninterfaces:\n" + _UNDERLAY + extra


CASES = [
    Case(
        "vxlan",
        "vx0",
        _UNDERLAY,
        "type: vxlan, vni: 42, local: 10.0.0.2, remote: 10.0.0.3, parent: under0",
        {"kind": "vxlan", "id": 42, "local": "10.0.0.2", "remote": "10.0.0.3", "port": 4789},
        ("remote: 10.0.0.3", "remote: 10.0.0.4"),
        {"remote": "10.0.0.4"},
        ("vni: 42", "vni: 43"),
        {"kind": "vxlan", "id": 43, "remote": "10.0.0.4", "port": 4789},
        ("f0", "type", "vxlan", "id", "5", "dstport", "4789"),
    ),
    Case(
        "macvlan",
        "mv0",
        _UNDERLAY + "  - {name: u9, type: veth, peer: {name: u9b}}\n",
        "type: macvlan, parent: under1, mode: bridge",
        {"kind": "macvlan", "link": "under1", "mode": "bridge"},
        ("mode: bridge", "mode: private"),
        {"mode": "private"},
        ("mode: private", "mode: passthru"),  # into passthru takes a new link
        {"kind": "macvlan", "link": "under1", "mode": "passthru"},
        ("link", "u9", "name", "f0", "type", "macvlan"),
    ),
    Case(
        "macvtap",
        "mt0",
        _UNDERLAY + "  - {name: u9, type: veth, peer: {name: u9b}}\n",
        "type: macvtap, parent: under1, mode: vepa",
        {"kind": "macvtap", "link": "under1", "mode": "vepa"},
        ("mode: vepa", "mode: bridge"),
        {"mode": "bridge"},
        ("parent: under1", "parent: under0"),  # a new parent is a new link
        {"kind": "macvtap", "link": "under0", "mode": "bridge"},
        ("link", "u9", "name", "f0", "type", "macvtap"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.type for case in CASES])
def test_a_link_type_is_created_changed_replaced_removed_and_a_foreign_one_kept(sandbox: Sandbox, case: Case) -> None:
    live(sandbox, case)


def test_bridge_stp_changes_in_place(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", _lab("  - {name: br0, type: bridge}\n"))
    sandbox.netlab("apply")
    before = link_of(sandbox, "br0")
    assert before["linkinfo"]["info_data"]["stp_state"] == 0
    sandbox.write_config("lab.yaml", _lab("  - {name: br0, type: bridge, stp: true}\n"))
    sandbox.netlab("apply")
    after = link_of(sandbox, "br0")
    assert after["ifindex"] == before["ifindex"] and after["linkinfo"]["info_data"]["stp_state"] == 1
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
