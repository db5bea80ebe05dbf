"""Hosts entries. Top-level `hosts` is a marked block (`# BEGIN netlab` ...
`# END netlab`) in /etc/hosts: every line outside it stays byte for byte. A
namespace's `hosts` is the whole /etc/netns/NAME/hosts, which replaces /etc/hosts
inside the namespace, so it carries the loopback entries too unless the files
declare those addresses. Key: (netns,) per file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from netlab.controller.backends.resolver_files import FileState
from netlab.controller.changes import AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext
from netlab.controller.kinds.managed_files import HEADER, NEW_FILE_MODE, ManagedFile, plan_file, refuse_symlink
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


class BlockError(ValueError):
    """The markers of netlab's block are not one BEGIN followed by one END."""


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


def find_block(content: bytes) -> tuple[int, int] | None:
    """Byte offsets of netlab's block, from its BEGIN line to the end of its END
    line, or None. Raises BlockError when the markers are broken."""
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
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        where = ", ".join(
            [f"'# BEGIN netlab' on line {n + 1}" for n in begins] + [f"'# END netlab' on line {n + 1}" for n in ends]
        )
        raise BlockError(f"netlab's block is broken ({where}): expected one BEGIN line followed by one END line")
    end = offsets[ends[0] + 1] if ends[0] + 1 < len(offsets) else len(content)
    return offsets[begins[0]], end


def splice(content: bytes, block: bytes | None, newline_added: bool = False) -> bytes:
    """`content` with netlab's block replaced by `block` (None: taken out); a new
    block goes at the end. Everything outside the block stays as it is: a last
    line without its newline gets one before a new block, and when
    `newline_added` says netlab gave it that newline, taking the block out from
    the end of the file takes the newline away again."""
    span = find_block(content)
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

    def plan(self, ctx: PlanContext) -> list[Change]:
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
        return changes

    def _plan_host(self, ctx: PlanContext, entries: list[HostsEntry]) -> Change | None:
        origin = entries[0].origin if entries else None
        cares = bool(entries) or ctx.ledger.owns(KIND, (None,))
        state = ctx.kernel.file(HOST_FILE)
        if state.type == "symlink":
            if entries:
                refuse_symlink(ctx, ManagedFile(KIND, None, FILE_NAME, "hosts"), state, origin)
            return None
        if state.type not in ("absent", "file"):
            if entries:
                ctx.refuse(origin, "hosts", f"{HOST_FILE} is a {state.type}, not a file: move it away")
            return None
        content = state.content or b""
        try:
            span = find_block(content)
        except BlockError as error:
            if cares:
                ctx.refuse(
                    origin,
                    "hosts",
                    f"{HOST_FILE}: {error}. Fix the markers by hand (netlab will not guess "
                    "which lines are its own and which are someone else's); the next pass writes the block again",
                )
            return None
        current = content[span[0] : span[1]] if span else None
        desired = render_block(entries) if entries else None
        if current is None and desired is None and ctx.ledger.owns(KIND, (None,)):
            return Change(KIND, "-", (None,), None, FILE_NAME, note="already gone")
        if current == desired:
            return None
        action = "+" if current is None else "-" if desired is None else "~"
        recorded = ctx.ledger.get(KIND, (None,)) or {}
        updated: bytes | None = splice(content, desired, newline_added=bool(recorded.get("newline_added")))
        if not updated and recorded.get("existed") is False:
            updated = None  # netlab made the file for its block: it goes with the block
        note = ""
        if current is not None and desired is not None and render_block(_entries(current)) != current:
            note = "edited outside netlab: netlab's block goes back"
        return Change(
            kind=KIND,
            action=action,
            key=(None,),
            netns=None,
            name=FILE_NAME,
            attributes=describe(current, desired),
            note=note,
            origin=origin,
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
