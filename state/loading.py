"""Loading one generation: lists the config directory, looks at who may write it,
reads every file's bytes once, and hands them to `state.evaluating` (parse,
schema, build, check as a whole). Called by the controller (`load_generation`)
and by `netlab validate` (`validate_paths`).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from netlab.state.errors import ConfigError, Problem
from netlab.state.model import DesiredState
from netlab.state.trusting import trust_problems

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
# Editor backups and temporaries, and package managers' leftovers: a half-written
# or superseded copy must never become part of the desired state.
IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".rpmnew", ".rpmsave", ".rpmorig")
MAX_FILE_BYTES = 16 * 1024 * 1024


def is_config_file_name(name: str) -> bool:
    """Whether a file of this name in the config directory is part of the state."""
    if name.startswith((".", "#")) or name.endswith(IGNORED_SUFFIXES) or ".dpkg-" in name:
        return False
    return name.endswith(CONFIG_SUFFIXES)


def _refused(config_dir: Path, resolved: str, why: str) -> ConfigError:
    shown = str(config_dir) if str(config_dir) == resolved else f"{config_dir} (-> {resolved})"
    message = (
        f"config directory {shown} {why}: refused, and not read as an empty configuration "
        "(which would remove everything netlab manages); fix the directory or --config-dir"
    )
    return ConfigError([Problem(str(config_dir), 0, 0, "", message)])


def _listing(config_dir: Path) -> tuple[list[Path], list[Path]]:
    """The config files directly in the directory, sorted by name, and the other
    entries of a config file's name that are not directories (FIFOs, sockets,
    devices): those are never opened, and reading them refuses them by type. An
    entry that cannot be examined (a dangling symlink, no permission) counts as a
    file, so that reading it reports why. The directory is resolved first:
    git-sync swaps a symlink to it."""
    resolved = os.path.realpath(config_dir)
    try:
        names = os.listdir(resolved)
    except FileNotFoundError:
        raise _refused(config_dir, resolved, "does not exist") from None
    except NotADirectoryError:
        raise _refused(config_dir, resolved, "is not a directory") from None
    except OSError as error:
        raise _refused(config_dir, resolved, f"cannot be read ({error.strerror})") from None
    base = Path(resolved)
    files: list[Path] = []
    special: list[Path] = []
    for name in sorted(names):
        if not is_config_file_name(name):
            continue
        try:
            mode = os.stat(base / name).st_mode
        except OSError:
            files.append(base / name)
            continue
        if stat.S_ISREG(mode):
            files.append(base / name)
        elif not stat.S_ISDIR(mode):
            special.append(base / name)
    return files, special


def list_config_files(config_dir: Path) -> list[Path]:
    """The desired-state files directly in the directory, sorted by name: regular
    files (and entries that cannot be examined), never a FIFO, socket or device,
    which could block or do something when opened."""
    return _listing(config_dir)[0]


@dataclass(frozen=True)
class _Source:
    shown: str  # how the file is named in problems and origins
    path: Path
    # what reading it gave, when it was read already (a `Snapshot`): not read again
    taken: tuple[bytes | None, tuple[Problem, ...]] | None = None


_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(source: _Source, mode: int) -> Problem:
    kind = next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")
    message = f"this is {kind}, not a regular file: netlab reads only regular files; remove or rename it"
    return Problem(source.shown, 1, 1, "", message)


def _read(source: _Source) -> tuple[bytes | None, list[Problem]]:
    if source.taken is not None:
        return source.taken[0], list(source.taken[1])
    try:
        # the type first, from the inode: opening a FIFO blocks until a writer
        # comes, and opening a device can do something (a watchdog starts)
        mode = os.stat(source.path).st_mode
        if not stat.S_ISREG(mode):
            return None, [_not_regular(source, mode)]
        # non-blocking, in case it was swapped for a FIFO since: checked again below
        descriptor = os.open(source.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(descriptor, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None, [_not_regular(source, info.st_mode)]
            # sized reads: read(MAX_FILE_BYTES + 1) would allocate 16 MiB per file
            size = info.st_size
            raw = handle.read(min(size, MAX_FILE_BYTES) + 1)
            if len(raw) > size:  # it grew since: read on, up to the limit
                raw += handle.read(MAX_FILE_BYTES + 1 - len(raw))
    except OSError as error:
        reason = error.strerror or str(error)
        return None, [Problem(source.shown, 1, 1, "", f"cannot read the file: {reason}")]
    if len(raw) > MAX_FILE_BYTES:
        message = f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: split it"
        return None, [Problem(source.shown, 1, 1, "", message)]
    return raw, []


def _evaluate(sources: list[_Source], hostname: str | None) -> tuple[DesiredState, list[Problem]]:
    """The merged state of the files and every problem found in them. The
    parser, the schema and the model's builder are imported only when there is
    a file to read: `netlab validate` or `plan` of an empty directory, and every
    command's start-up before it reads files, do without them."""
    if not sources:
        return DesiredState(), []
    from netlab.state import evaluating

    return evaluating.evaluate([(source, *_read(source)) for source in sources], hostname)


def clear_cache() -> None:
    """Forgets every file read before (and the objects found valid), so that the
    next load does all the work again."""
    if "netlab.state.evaluating" in sys.modules:
        sys.modules["netlab.state.evaluating"].clear_cache()


@dataclass(frozen=True)
class Snapshot:
    """The config directory read once: each file's bytes (or why it could not be
    read) and whether the directory and its files can be trusted, as they were
    then. What is loaded from it is what was read: a write after it is not in it
    (the daemon hears of that write and takes a snapshot of its own)."""

    files: tuple[Path, ...]  # the config files (`list_config_files`)
    sources: tuple[_Source, ...]  # every entry of a config file's name, read
    distrusted: tuple[Problem, ...]  # why the directory or a file is not trusted (strict modes)

    def contents(self) -> dict[str, bytes | None]:
        """Each config file's bytes (None: unreadable), by path."""
        read = {source.path: source.taken[0] if source.taken else None for source in self.sources}
        return {str(path): read[path] for path in self.files}


def take_snapshot(config_dir: Path) -> Snapshot:
    """Lists the directory, looks at who may write it, and reads its files once;
    ConfigError when the directory itself cannot be listed."""
    files, special = _listing(config_dir)
    distrusted = trust_problems(os.path.realpath(config_dir), [str(path) for path in files])
    sources = []
    for path in sorted(files + special):
        source = _Source(str(path), path)
        raw, problems = _read(source)
        sources.append(replace(source, taken=(raw, tuple(problems))))
    return Snapshot(tuple(files), tuple(sources), tuple(distrusted))


def with_files(snapshot: Snapshot, config_dir: Path, given: Sequence[Path]) -> Snapshot:
    """The snapshot with the `given` files read in place of the config files of
    the same names (or beside them): the generation the config directory would
    hold with them installed, which `netlab try FILE...` applies before it
    installs them. Problems name the given file; each is trusted on its own
    (it need not sit in a directory only root can write: its bytes are read
    here once, and those are what is applied and installed)."""
    names = [path.name for path in given]
    refused = [
        Problem(
            str(path), 0, 0, "", f"not a desired-state file's name: netlab reads {', '.join(CONFIG_SUFFIXES)} files"
        )
        for path in given
        if not is_config_file_name(path.name)
    ]
    refused += [
        Problem(str(path), 0, 0, "", "given twice (by this name): give each config file once")
        for index, path in enumerate(given)
        if path.name in names[:index]
    ]
    if refused:
        raise ConfigError(refused)
    files = set(snapshot.files)
    sources = {source.path: source for source in snapshot.sources}
    distrusted = list(snapshot.distrusted)
    base = Path(os.path.realpath(config_dir))  # as the snapshot names its files
    for path in given:
        target = base / path.name
        raw, problems = _read(_Source(str(path), path))
        sources[target] = _Source(str(path), target, (raw, tuple(problems)))
        files.add(target)
        distrusted += trust_problems(str(path), [])
    return Snapshot(tuple(sorted(files)), tuple(sources[key] for key in sorted(sources)), tuple(distrusted))


def load_generation(
    config_dir: Path, hostname: str | None = None, *, strict_modes: bool = True, snapshot: Snapshot | None = None
) -> DesiredState:
    """The desired state of the directory's files; `ConfigError` with every problem
    of every file when anything is wrong (nothing of the generation may be applied).
    Files whose `match.hostname` does not match `hostname` (default: this host's
    name) are checked but contribute nothing. An empty directory gives an empty state.
    With `strict_modes`, a directory or file another user could write is refused.
    From `snapshot` when given (the files as read then), else from the directory now."""
    taken = snapshot if snapshot is not None else take_snapshot(config_dir)
    if strict_modes and taken.distrusted:
        raise ConfigError(list(taken.distrusted))
    state, problems = _evaluate(list(taken.sources), hostname)
    if problems:
        raise ConfigError(problems)
    return state


def validate_paths(paths: list[Path], hostnames: Sequence[str] = ()) -> list[Problem]:
    """`netlab validate PATH…`: files and directories that together form one
    generation, as each of `hostnames` would load it (default: this host), since
    `match.hostname` decides which files apply. Files named directly are read
    whatever their name; problems name files as given on the command line, and a
    problem that some of the hosts have and others not names those that have it."""
    problems: list[Problem] = []
    sources: list[_Source] = []
    seen: set[str] = set()

    def add(shown: str, path: Path) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            sources.append(_Source(shown, path))

    for given in paths:
        if os.path.isdir(given):
            try:
                files, special = _listing(given)
            except ConfigError as error:
                problems += error.problems
                continue
            for path in sorted(files + special):
                add(str(Path(given) / path.name), path)
        elif os.path.lexists(given):
            add(str(given), Path(given))
        else:
            problems.append(
                Problem(str(given), 0, 0, "", "no such file or directory: name an existing file or directory")
            )
    hosts: list[str | None] = [*dict.fromkeys(hostnames)] or [None]
    found = {host: set(_evaluate(sources, host)[1]) for host in hosts}
    everywhere = set.intersection(*found.values())
    for problem in sorted(set.union(*found.values()) - everywhere):
        having = [str(host) for host in hosts if problem in found[host]]
        on = f"on host{'s' if len(having) > 1 else ''} {', '.join(having)}"
        problems.append(replace(problem, message=f"{on}: {problem.message}"))
    return sorted(problems + list(everywhere))
