"""Files that netlab writes whole: resolv.conf on the host and in namespaces, and a
namespace's hosts file. Taking a file over keeps its original in the state
directory (`originals/` mirrors the path); giving it back puts the original back
byte for byte, or removes the file when there was none. Shared by the dns and
hosts kinds, which decide what goes into the files (it is not a kind itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netlab.controller.backends.resolver_files import FileState
from netlab.controller.changes import Action, AttributeChange, Change, Phase, Step
from netlab.controller.kinds.contract import PlanContext
from netlab.state.ledger import Entry
from netlab.state.model import Origin

if TYPE_CHECKING:
    from netlab.controller.backends.kernel import Kernel

HEADER = b"# Managed by netlab: edits are overwritten; change the files in /etc/netlab.d\n"
ORIGINALS_DIR = "originals"
NETNS_ETC_DIR = "/etc/netns"
# the kinds whose files live in /etc/netns/NAME: the directory goes when both are gone
FILE_KINDS = ("dns", "hosts")
NEW_FILE_MODE = 0o644
COPY_MODE = 0o600
COPY_DIR_MODE = 0o700


def netns_dir(netns: str) -> str:
    return os.path.join(NETNS_ETC_DIR, netns)


def etc_path(netns: str | None, name: str) -> str:
    """/etc/NAME for the host, /etc/netns/NETNS/NAME (which `ip netns exec`
    bind-mounts over /etc/NAME) for a namespace."""
    return os.path.join("/etc", name) if netns is None else os.path.join(netns_dir(netns), name)


def has_header(state: FileState) -> bool:
    return state.content is not None and state.content.startswith(HEADER)


@dataclass(frozen=True)
class ManagedFile:
    kind: str  # "dns" or "hosts": the ledger's kind, keyed (netns,)
    netns: str | None
    name: str  # "resolv.conf", "hosts"
    doc_path: str  # where in the files it is declared, for refusals

    @property
    def path(self) -> str:
        return etc_path(self.netns, self.name)

    @property
    def key(self) -> tuple[str | None]:
        return (self.netns,)


# what changes between two contents, attribute by attribute, for `netlab plan`
Describe = Callable[[bytes | None, bytes | None], tuple[AttributeChange, ...]]
# what netlab would write for the settings a content holds (not the same: edited by hand)
Rerender = Callable[[bytes], bytes]


def plan_file(
    ctx: PlanContext,
    target: ManagedFile,
    desired: bytes | None,
    origin: Origin | None,
    describe: Describe,
    rerender: Rerender,
) -> Change | None:
    """The change that makes the file hold `desired` (None: netlab lets go of it),
    or None when nothing is to be done. Refuses a symlink (see `refuse_symlink`)."""
    recorded = ctx.ledger.get(target.kind, target.key)
    state = ctx.kernel.file(target.path)
    ours = recorded is not None or has_header(state)
    if desired is None:
        return _give_back(ctx, target, state, recorded) if ours else None
    if state.type == "symlink":
        refuse_symlink(ctx, target, state, origin)
        return None
    if state.type not in ("absent", "file"):
        ctx.refuse(
            origin,
            target.doc_path,
            f"{target.path} is a {state.type}, not a file: move it away so netlab can write the file",
        )
        return None
    made_dir = False
    if target.netns is not None:
        directory = ctx.kernel.file(netns_dir(target.netns))
        if directory.type not in ("absent", "directory"):
            ctx.refuse(
                origin, target.doc_path, f"{directory.path} is a {directory.type}, not a directory: move it away"
            )
            return None
        made_dir = directory.type == "absent"
    if state.content == desired:
        return None
    attributes = describe(state.content, desired)
    if ours:
        note = ""
        if state.content is None:
            note = "the file is missing: written again"
        elif not has_header(state):
            note = "replaced outside netlab: netlab's content goes back"
        elif rerender(state.content) != state.content:
            note = "edited outside netlab: netlab's content goes back"
        record = recorded or {"existed": None, "mode": state.mode, "made_dir": made_dir}
        return _write(ctx, target, "~", state, desired, made_dir, attributes, note, origin, record, keep=False)
    note = f"the original is kept in {original_copy(ctx, target.path)}" if state.exists else ""
    record = {"existed": state.exists, "mode": state.mode, "made_dir": made_dir}
    return _write(ctx, target, "+", state, desired, made_dir, attributes, note, origin, record, keep=state.exists)


def refuse_symlink(ctx: PlanContext, target: ManagedFile, state: FileState, origin: Origin | None) -> None:
    link = state.symlink_to or ""
    owner = ""
    if "systemd/resolve" in link:
        owner = " (systemd-resolved manages it)"
    elif "resolvconf" in link:
        owner = " (resolvconf manages it)"
    ctx.refuse(
        origin,
        target.doc_path,
        f"{target.path} is a symlink to {link}{owner}: netlab does not write through it, since the "
        "program behind it would overwrite netlab's content and netlab would overwrite the program's. "
        "Either configure that program (for systemd-resolved: `resolvectl dns`, resolved.conf) and take "
        f"this section out of the file, or replace the symlink with a regular file (for example copy its "
        f"content: `cp --remove-destination $(readlink -f {target.path}) {target.path}`, after disabling the "
        "program) so that netlab can manage it",
    )


def original_copy(ctx: PlanContext, path: str) -> str:
    return str(ctx.state_dir / ORIGINALS_DIR / path.lstrip("/"))


def _write(
    ctx: PlanContext,
    target: ManagedFile,
    action: Action,
    state: FileState,
    desired: bytes,
    made_dir: bool,
    attributes: tuple[AttributeChange, ...],
    note: str,
    origin: Origin | None,
    record: Entry,
    keep: bool,
) -> Change:
    path, copy = target.path, original_copy(ctx, target.path)
    originals_root = str(ctx.state_dir / ORIGINALS_DIR)
    mode = state.mode if state.mode is not None else NEW_FILE_MODE
    directory = netns_dir(target.netns) if target.netns is not None else None

    def run(kernel: Kernel) -> None:
        if made_dir and directory is not None:
            kernel.make_directory(directory)
        if keep and state.content is not None:
            kernel.make_directory(os.path.dirname(copy), COPY_DIR_MODE)
            kernel.write_file(copy, state.content, COPY_MODE)
        kernel.write_file(path, desired, mode)

    def undo(kernel: Kernel) -> None:
        _put_back(kernel, state)
        if keep:
            _drop_copy(kernel, copy, originals_root)
        if made_dir and directory is not None:
            kernel.remove_directory_if_empty(directory)

    return Change(
        kind=target.kind,
        action=action,
        key=target.key,
        netns=target.netns,
        name=target.name,
        attributes=attributes,
        note=note,
        origin=origin,
        steps=(Step(Phase.WRITE_FILES, f"write {path}", run, undo=undo),),
        record=record,
    )


def _give_back(ctx: PlanContext, target: ManagedFile, state: FileState, recorded: Entry | None) -> Change:
    """Restores the original, or removes the file where there was none, or (the
    original lost) leaves the content without netlab's header."""
    note, writes = _giving_back(ctx, target, state, recorded)
    steps = () if writes is None else (Step(Phase.WRITE_FILES, f"give back {target.path}", *writes),)
    return Change(target.kind, "-", target.key, target.netns, target.name, note=note, steps=steps)


def _giving_back(
    ctx: PlanContext, target: ManagedFile, state: FileState, recorded: Entry | None
) -> tuple[str, tuple[Callable[[Kernel], None], Callable[[Kernel], None]] | None]:
    """How a file is given back: the note, and the write with its undo (None:
    nothing to write)."""
    path, copy = target.path, original_copy(ctx, target.path)
    kept = ctx.kernel.file(copy)
    existed = recorded.get("existed") if recorded else None
    mode = (recorded or {}).get("mode") or state.mode or NEW_FILE_MODE
    made_dir = _made_dir(ctx, target)

    def tidy(kernel: Kernel) -> None:
        if made_dir is not None:
            kernel.remove_directory_if_empty(made_dir)

    def put_back(kernel: Kernel) -> None:
        _put_back(kernel, state)

    if state.type not in ("absent", "file"):
        return f"{path} is a {state.type} now: left alone", None
    if kept.type == "file" and kept.content is not None and existed is not False:
        original = kept.content

        def restore(kernel: Kernel) -> None:
            kernel.write_file(path, original, mode)
            _drop_copy(kernel, copy, str(ctx.state_dir / ORIGINALS_DIR))
            tidy(kernel)

        def unrestore(kernel: Kernel) -> None:
            kernel.make_directory(os.path.dirname(copy), COPY_DIR_MODE)
            kernel.write_file(copy, original, COPY_MODE)
            put_back(kernel)

        return f"the original goes back (from {copy})", (restore, unrestore)
    if existed is False or (existed is None and target.netns is not None):

        def remove(kernel: Kernel) -> None:
            kernel.remove_file(path)
            tidy(kernel)

        if not state.exists and made_dir is None:
            return "already gone", None
        return "removed: there was none before netlab", (remove, put_back)
    if state.content is None or not has_header(state):
        return "no original kept: left as it is", None
    stripped = state.content[len(HEADER) :]
    return "no original kept: the content stays, without netlab's header", (
        lambda kernel: kernel.write_file(path, stripped, mode),
        put_back,
    )


def _made_dir(ctx: PlanContext, target: ManagedFile) -> str | None:
    """A namespace's /etc/netns directory, when netlab made it (for either of
    the files in it): it goes once both files are given back."""
    if target.netns is None:
        return None
    made = any((ctx.ledger.get(kind, target.key) or {}).get("made_dir") for kind in FILE_KINDS)
    return netns_dir(target.netns) if made else None


def _drop_copy(kernel: Kernel, copy: str, root: str) -> None:
    """Removes a kept original, and the directories under `root` it leaves empty."""
    kernel.remove_file(copy)
    directory = os.path.dirname(copy)
    while directory.startswith(root):
        kernel.remove_directory_if_empty(directory)
        directory = os.path.dirname(directory)


def _put_back(kernel: Kernel, state: FileState) -> None:
    if state.content is not None and state.mode is not None:
        kernel.write_file(state.path, state.content, state.mode)
    elif not state.exists:
        kernel.remove_file(state.path)
