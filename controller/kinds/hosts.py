"""Hosts entries. Top-level `hosts` is a marked block (`# BEGIN netlab` ...
`# END netlab`) in /etc/hosts: every line outside it stays byte for byte. A
namespace's `hosts` is the whole /etc/netns/NAME/hosts, which replaces /etc/hosts
inside the namespace, so it carries the loopback entries too unless the files
declare those addresses. Key: (netns,) per file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netlab.controller.backends.resolver_files import FileState
from netlab.controller.changes import AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext, Planned, ShowContext, Shown
from netlab.controller.kinds.managed_files import (
    HEADER,
    NEW_FILE_MODE,
    ManagedFile,
    has_header,
    plan_file,
    refuse_symlink,
)
from netlab.state.model import HostsEntry, Origin

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

KIND = "hosts"
FILE_NAME = "hosts"
HOST_FILE = "/etc/hosts"
BEGIN = b"# BEGIN netlab"
END = b"# END netlab"
# what /etc/hosts says about loopback on Debian; a namespace's file needs it too
LOOPBACK = (("127.0.0.1", ("localhost",)), ("::1", ("localhost", "ip6-localhost", "ip6-loopback")))


@dataclass(frozen=True)
class Markers:
    """netlab's markers in /etc/hosts: the byte offsets of its block, from its
    BEGIN line to the end of its END line (`span`; None: no block), or, when
    they are not one BEGIN followed by one END, what is wrong (`broken`)."""

    span: tuple[int, int] | None = None
    broken: str = ""


def line(address: str, names: tuple[str, ...]) -> bytes:
    return f"{address}\t{' '.join(names)}\n".encode()


def render_block(entries: list[HostsEntry]) -> bytes:
    return BEGIN + b"\n" + HEADER + b"".join(line(e.address, e.names) for e in entries) + END + b"\n"


def render_netns_file(entries: list[HostsEntry]) -> bytes:
    declared = {entry.address for entry in entries}
    loopback = [line(address, names) for address, names in LOOPBACK if address not in declared]
    return HEADER + b"".join(loopback) + b"".join(line(e.address, e.names) for e in entries)


def entries_in(content: bytes | None) -> dict[str, str]:
    """address -> names, from hosts-file lines (comments and markers skipped)."""
    found: dict[str, str] = {}
    for raw in (content or b"").decode(errors="replace").splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) >= 2:
            found[words[0]] = " ".join(words[1:])
    return found


def find_block(content: bytes) -> Markers:
    """Where netlab's block is in `content`, or why its markers are broken."""
    offsets, position = [], 0
    begins, ends = [], []
    for number, text in enumerate(content.splitlines(keepends=True)):
        offsets.append(position)
        position += len(text)
        marker = text.rstrip()
        if marker == BEGIN:
            begins.append(number)
        elif marker == END:
            ends.append(number)
    if not begins and not ends:
        return Markers()
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        where = ", ".join(
            [f"'# BEGIN netlab' on line {n + 1}" for n in begins] + [f"'# END netlab' on line {n + 1}" for n in ends]
        )
        return Markers(broken=f"netlab's block is broken ({where}): expected one BEGIN line followed by one END line")
    end = offsets[ends[0] + 1] if ends[0] + 1 < len(offsets) else len(content)
    return Markers((offsets[begins[0]], end))


def splice(content: bytes, block: bytes | None, newline_added: bool = False) -> bytes:
    """`content` with netlab's block replaced by `block` (None: taken out); a new
    block goes at the end. Everything outside the block stays as it is: a last
    line without its newline gets one before a new block, and when
    `newline_added` says netlab gave it that newline, taking the block out from
    the end of the file takes the newline away again. Only for content whose
    markers are not broken (planning refuses the others)."""
    markers = find_block(content)
    assert not markers.broken, markers.broken
    span = markers.span
    if span is not None:
        start, end = span
        before, after = content[:start], content[end:]
        if block is None and newline_added and not after and before.endswith(b"\n"):
            before = before[:-1]
        return before + (block or b"") + after
    if block is None:
        return content
    if lacks_newline(content):
        content += b"\n"
    return content + block


def lacks_newline(content: bytes) -> bool:
    """Whether the file's last line has no newline (a block added gives it one)."""
    return bool(content) and not content.endswith(b"\n")


def describe(current: bytes | None, desired: bytes | None) -> tuple[AttributeChange, ...]:
    before, after = entries_in(current), entries_in(desired)
    return tuple(
        AttributeChange(address, before.get(address), after.get(address))
        for address in list(before) + [a for a in after if a not in before]
        if before.get(address) != after.get(address)
    )


def managed_file(netns: str) -> ManagedFile:
    return ManagedFile(KIND, netns, FILE_NAME, f"namespaces.{netns}.hosts")


class HostsKind:
    name = KIND

    def plan(self, ctx: PlanContext) -> Planned:
        by_netns: dict[str | None, list[HostsEntry]] = {}
        for entry in ctx.desired.hosts:
            by_netns.setdefault(entry.netns, []).append(entry)
        changes: list[Change] = []
        host_change = self._plan_host(ctx, by_netns.get(None, [])) if ctx.in_scope(None) else None
        if host_change is not None:
            changes.append(host_change)
        recorded: set[str] = {key[0] for key in ctx.owned_keys(KIND) if key[0] is not None}
        for netns in sorted({name for name in by_netns if name is not None} | recorded):
            entries = by_netns.get(netns, [])
            desired = render_netns_file(entries) if entries else None
            origin = entries[0].origin if entries else None
            change = plan_file(ctx, managed_file(netns), desired, origin, describe, rerender_netns_file)
            if change is not None:
                changes.append(change)
        return Planned(tuple(changes))

    def show(self, view: ShowContext) -> Shown:
        return Shown.by_netns("hosts", {netns: _shown(view, netns) for netns in view.netns_shown})

    def _plan_host(self, ctx: PlanContext, entries: list[HostsEntry]) -> Change | None:
        found = _host_file(ctx, entries)
        if found is None:
            return None
        state, span = found
        content = state.content or b""
        current = content[span[0] : span[1]] if span else None
        desired = render_block(entries) if entries else None
        if current is None and desired is None and ctx.ledger.owns(KIND, (None,)):
            return Change(KIND, "-", (None,), None, FILE_NAME, note="already gone")
        if current == desired:
            return None
        recorded = ctx.ledger.get(KIND, (None,)) or {}
        updated: bytes | None = splice(content, desired, newline_added=bool(recorded.get("newline_added")))
        if not updated and recorded.get("existed") is False:
            updated = None  # netlab made the file for its block: it goes with the block
        note = ""
        if current is not None and desired is not None and render_block(_entries(current)) != current:
            note = "edited outside netlab: netlab's block goes back"
        return Change(
            kind=KIND,
            action="+" if current is None else "-" if desired is None else "~",
            key=(None,),
            netns=None,
            name=FILE_NAME,
            attributes=describe(current, desired),
            note=note,
            origin=entries[0].origin if entries else None,
            steps=(
                Step(
                    Phase.WRITE_FILES,
                    f"write netlab's block in {HOST_FILE}",
                    _writer(state, updated),
                    undo=_writer(state, state.content),
                ),
            ),
            # kept from the pass that added the block (the ledger keeps a first
            # record): whether the foreign last line got its newline from netlab
            record={"existed": state.exists, "newline_added": span is None and lacks_newline(content)},
        )


def _host_file(ctx: PlanContext, entries: list[HostsEntry]) -> tuple[FileState, tuple[int, int] | None] | None:
    """/etc/hosts and where netlab's block is in it, when netlab can write the
    block there; otherwise None, refused where the files declare entries (or,
    for broken markers, where netlab has a block to keep)."""
    origin = entries[0].origin if entries else None
    state = ctx.kernel.file(HOST_FILE)
    if state.type == "symlink":
        if entries:
            refuse_symlink(ctx, ManagedFile(KIND, None, FILE_NAME, "hosts"), state, origin)
        return None
    if state.type not in ("absent", "file"):
        if entries:
            ctx.refuse(origin, "hosts", f"{HOST_FILE} is a {state.type}, not a file: move it away")
        return None
    markers = find_block(state.content or b"")
    if markers.broken:
        if entries or ctx.ledger.owns(KIND, (None,)):
            ctx.refuse(
                origin,
                "hosts",
                f"{HOST_FILE}: {markers.broken}. Fix the markers by hand (netlab will not guess "
                "which lines are its own and which are someone else's); the next pass writes the block again",
            )
        return None
    return state, markers.span


def _shown(view: ShowContext, netns: str | None) -> list[dict[str, Any]]:
    """netlab's block of /etc/hosts, or the hosts file it wrote for a namespace
    (without the loopback lines it adds to one), as `hosts:`. Broken markers
    show nothing: the next pass says where they are."""
    state = view.kernel.file(HOST_FILE if netns is None else managed_file(netns).path)
    if state.content is None:
        return []
    if netns is None:
        span = find_block(state.content).span
        content = state.content[span[0] : span[1]] if span else b""
    else:
        content = state.content if has_header(state) else b""
    loopback = {address: " ".join(names) for address, names in LOOPBACK}
    return [
        {"address": address, "names": names.split(), "owned": True}
        for address, names in entries_in(content).items()
        if netns is None or loopback.get(address) != names
    ]


def _entries(content: bytes) -> list[HostsEntry]:
    found = Origin(HOST_FILE, 0)
    return [HostsEntry(None, address, tuple(names.split()), found) for address, names in entries_in(content).items()]


def rerender_netns_file(content: bytes) -> bytes:
    return render_netns_file(_entries(content))


def _writer(state: FileState, content: bytes | None) -> Callable[[Kernel], None]:
    """Writes `content` to /etc/hosts (None: removes the file netlab created)."""

    def write(kernel: Kernel) -> None:
        if content is None:
            kernel.remove_file(HOST_FILE)
        else:
            kernel.write_file(HOST_FILE, content, state.mode if state.mode is not None else NEW_FILE_MODE)

    return write
