"""One link type's life on a kernel, for the tests that prove each type
(tests/integration/test_link_types_kernel.py on this machine's kernel,
tests/distro_kernel on Debian's): a `Case` says what to write and what
`ip -d -j link` must then show; `live` walks it through create, change in
place, replace and remove, with a foreign link of the type beside it. Adding
a type's proof is adding a Case."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.sandbox import Sandbox


def link_of(sandbox: Sandbox, name: str, netns: str | None = None) -> dict[str, Any]:
    where = ["-n", netns] if netns else []
    (link,) = json.loads(sandbox.run("ip", *where, "-d", "-j", "link", "show", name).stdout)
    return link


def seen(link: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    """What the kernel reports for these keys: the kind, the MTU, the parent
    (`link`), or an attribute of the type (`ip -d`'s info_data)."""
    info = link.get("linkinfo", {})
    top = {"kind": info.get("info_kind"), "mtu": link["mtu"], "link": link.get("link")}
    data = info.get("info_data", {})
    return {key: top[key] if key in top else data.get(key) for key in keys}


@dataclass(frozen=True)
class Case:
    """One link type's life: `link` is the link as first written (named `name`,
    with an address), `in_place` and `replaced` replace a piece of its line, and
    each `*_seen` is what `ip -d -j` must then report. `base` are the links it
    sits on or that sit on it, kept throughout; `foreign` is `ip link add`'s
    arguments for a link of the type that no file names."""

    type: str
    name: str
    base: str
    link: str
    made_seen: dict[str, Any]
    in_place: tuple[str, str]
    in_place_seen: dict[str, Any]
    replaced: tuple[str, str]  # made on top of `in_place`
    replaced_seen: dict[str, Any]
    foreign: tuple[str, ...]

    def lab(self, link: str) -> str:
        links = self.base + link
        return f"version: 1\ninterfaces:\n{links}" if links else "version: 1\ninterfaces: []\n"

    @property
    def ports(self) -> set[str]:
        """The links of `base` that the file makes ports of this one."""
        return set(re.findall(rf"name: ([^,}}]+), [^\n]*master: {re.escape(self.name)}\b", self.base))

    def without(self) -> str:
        """The file once the link is gone: its ports are nobody's."""
        return self.lab("").replace(f"master: {self.name}, ", "")

    def line(self, *edits: tuple[str, str]) -> str:
        text = f"  - {{name: {self.name}, {self.link}, addresses: [10.99.0.1/24]}}\n"
        for old, new in edits:
            assert old in text, f"{old!r} is not in {text!r}"
            text = text.replace(old, new)
        return text


def ports_of(sandbox: Sandbox, case: Case) -> set[str]:
    """The ports of the case's link, by what the kernel says."""
    links = json.loads(sandbox.run("ip", "-j", "link", "show").stdout)
    return {link["ifname"] for link in links if link.get("master") == case.name}


def live(sandbox: Sandbox, case: Case) -> None:
    """The case's link created, changed in place (the same ifindex), changed so
    that it must be a new link (a new ifindex, with its address and its ports),
    and removed, while a link of the type that no file names stays as it was."""
    sandbox.write_config("lab.yaml", case.lab(case.line()))
    sandbox.netlab("apply")
    made = link_of(sandbox, case.name)
    assert seen(made, case.made_seen) == case.made_seen
    ports = ports_of(sandbox, case)
    assert ports == case.ports, "the ports the file gives it are not its ports"
    sandbox.run("ip", "link", "add", *case.foreign)
    foreign = link_of(sandbox, "f0")

    sandbox.write_config("lab.yaml", case.lab(case.line(case.in_place)))
    sandbox.netlab("apply")
    changed = link_of(sandbox, case.name)
    assert seen(changed, case.in_place_seen) == case.in_place_seen
    assert changed["ifindex"] == made["ifindex"], "changed in place, not made anew"

    sandbox.write_config("lab.yaml", case.lab(case.line(case.in_place, case.replaced)))
    sandbox.netlab("apply")
    renewed = link_of(sandbox, case.name)
    assert seen(renewed, case.replaced_seen) == case.replaced_seen
    assert renewed["ifindex"] != made["ifindex"], "a replace-only change made no new link"
    # what hung on the old link hangs on the new one: its address, its ports
    assert "10.99.0.1/24" in sandbox.run("ip", "-br", "addr", "show", case.name).stdout
    assert ports_of(sandbox, case) == ports
    assert sandbox.netlab("plan", "--detailed-exitcode", check=False).returncode == 0

    sandbox.write_config("lab.yaml", case.without())
    sandbox.netlab("apply")
    assert sandbox.run("ip", "link", "show", case.name, check=False).returncode != 0
    assert all(link_of(sandbox, port).get("master") is None for port in ports)
    # all `ip -d -j` says of it (this reads no counters), through every pass
    now = link_of(sandbox, "f0")
    touched = {
        key: (foreign.get(key), now.get(key)) for key in foreign.keys() | now.keys() if foreign.get(key) != now.get(key)
    }
    assert not touched, f"a link no file names was touched: {touched}"
