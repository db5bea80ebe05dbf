"""The guards every writer passes, the cli and the daemon alike: one writer at a
time (a lock in the state directory), and a config directory with no files is
never read as "delete the whole network" unless the operator says so."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from netlab.state.errors import ConfigError, Problem
from netlab.state.ledger import Ledger
from netlab.state.loading import Snapshot, load_generation
from netlab.state.model import DesiredState

LOCK_FILE = "lock"


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """`netlab apply`, `netlab destroy` and the daemon never write at the same time."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def load_desired(
    config_dir: Path,
    state_dir: Path,
    allow_empty: bool = False,
    allow_untrusted: bool = False,
    snapshot: Snapshot | None = None,
) -> DesiredState:
    """The generation in the config directory (as read in `snapshot`, when given);
    ConfigError when it is invalid, or when it has no files while netlab owns
    objects and `allow_empty` is not given (a failed mount or sync looks exactly
    like that)."""
    desired = load_generation(config_dir, strict_modes=not allow_untrusted, snapshot=snapshot)
    if not desired.files and not allow_empty and Ledger.load(state_dir).count():
        raise ConfigError(
            [
                Problem(
                    str(config_dir),
                    0,
                    0,
                    "",
                    "the directory has no desired-state files while netlab owns objects: refusing "
                    "to remove them all. If that is meant, use --allow-empty or `netlab destroy`; "
                    "otherwise restore the files",
                )
            ]
        )
    return desired
