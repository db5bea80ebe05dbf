"""The link types this machine's kernel has (vxlan, macvtap, bridge options),
created, changed in place, replaced and removed by netlab, judged by `ip -d -j`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sandbox import Sandbox

pytestmark = pytest.mark.kernel


def _link(sandbox: Sandbox, name: str) -> dict[str, Any]:
    (link,) = json.loads(sandbox.run("ip", "-d", "-j", "link", "show", name).stdout)
    return link


def _lab(extra: str) -> str:
    return (
        "version: 1\ninterfaces:\n"
        "  - {name: under0, type: veth, addresses: [10.0.0.2/24], peer: {name: under1}}\n" + extra
    )


def test_a_vxlan_is_created_changed_in_place_replaced_and_removed(sandbox: Sandbox) -> None:
    vxlan = "  - {name: vx0, type: vxlan, vni: 42, local: 10.0.0.2, remote: 10.0.0.3, parent: under0}\n"
    sandbox.write_config("lab.yaml", _lab(vxlan))
    sandbox.netlab("apply")
    made = _link(sandbox, "vx0")
    data = made["linkinfo"]["info_data"]
    assert (made["linkinfo"]["info_kind"], data["id"], data["remote"], data["local"]) == (
        "vxlan",
        42,
        "10.0.0.3",
        "10.0.0.2",
    )
    assert data["port"] == 4789 and data["link"] == "under0"
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    # a new remote is changed in place: the same link
    sandbox.write_config("lab.yaml", _lab(vxlan.replace("10.0.0.3", "10.0.0.4")))
    sandbox.netlab("apply")
    moved = _link(sandbox, "vx0")
    assert moved["ifindex"] == made["ifindex"] and moved["linkinfo"]["info_data"]["remote"] == "10.0.0.4"
    # a new vni takes a new link
    sandbox.write_config("lab.yaml", _lab(vxlan.replace("vni: 42", "vni: 43")))
    sandbox.netlab("apply")
    renewed = _link(sandbox, "vx0")
    assert renewed["ifindex"] != made["ifindex"] and renewed["linkinfo"]["info_data"]["id"] == 43
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
    sandbox.write_config("lab.yaml", _lab(""))
    sandbox.netlab("apply")
    assert sandbox.run("ip", "link", "show", "vx0", check=False).returncode != 0


def test_bridge_stp_changes_in_place_and_a_macvtap_sits_on_its_parent(sandbox: Sandbox) -> None:
    sandbox.write_config("lab.yaml", _lab("  - {name: br0, type: bridge}\n"))
    sandbox.netlab("apply")
    before = _link(sandbox, "br0")
    assert before["linkinfo"]["info_data"]["stp_state"] == 0
    extra = "  - {name: br0, type: bridge, stp: true}\n  - {name: mt0, type: macvtap, parent: under1, mode: vepa}\n"
    sandbox.write_config("lab.yaml", _lab(extra))
    sandbox.netlab("apply")
    after = _link(sandbox, "br0")
    assert after["ifindex"] == before["ifindex"] and after["linkinfo"]["info_data"]["stp_state"] == 1
    tap = _link(sandbox, "mt0")
    assert (tap["linkinfo"]["info_kind"], tap["link"], tap["linkinfo"]["info_data"]["mode"]) == (
        "macvtap",
        "under1",
        "vepa",
    )
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0
