"""Generations, for the daemon: which desired state is in force. `Generations.read`
takes one snapshot of the config directory (each file read once) and validates
those bytes: the same bytes are hashed for the digest and kept as the last good
copy, so what is applied is what was validated, even if a file changes meanwhile
(that write makes its own event, and a new snapshot). Invalid files leave the
generation in force (`Health.reject`); a daemon started with invalid files
enforces the last good generation kept in the state directory, which is written
after the first pass that applies a new generation cleanly (`keep_if_due`).
Used by daemon.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from netlab.controller.applying import CheckBroken
from netlab.controller.guards import load_desired
from netlab.controller.health import GenerationJson, Health
from netlab.controller.kept import (
    LAST_GOOD_DIR,
    HeldBackJson,
    contents_of,
    digest_of,
    held_back,
    keep_last_good,
    release_held_back,
)
from netlab.state.errors import ConfigError, Problem
from netlab.state.loading import Snapshot, list_config_files, load_generation, take_snapshot, validate_paths
from netlab.state.model import DesiredState

__all__ = ["LAST_GOOD_DIR", "Generation", "Generations", "digest_of"]

# what a read found: a new generation (or the same files read again by force);
# the files back to the generation in force after a broken edit; nothing new;
# invalid files (the generation in force stays)
Outcome = Literal["new", "restored", "unchanged", "rejected"]


@dataclass(frozen=True)
class Generation:
    number: int
    digest: str
    files: tuple[str, ...]
    desired: DesiredState
    source: Literal["config", "last-good"]
    contents: Mapping[str, bytes] = field(default_factory=dict)  # what was validated, kept as last good

    def to_json(self) -> GenerationJson:
        return {"number": self.number, "digest": self.digest, "source": self.source, "files": list(self.files)}


class Generations:
    """The generation in force (`current`), read from the config directory or
    from the last good copy in the state directory."""

    def __init__(
        self,
        config_dir: Path,
        state_dir: Path,
        health: Health,
        log: Any,
        *,
        allow_empty: bool = False,
        allow_untrusted: bool = False,
    ) -> None:
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.health = health
        self.log = log
        self.allow_empty = allow_empty
        self.allow_untrusted = allow_untrusted
        self.current: Generation | None = None
        self.keep_pending = False  # the generation read is not kept as the last good one yet
        self.held_digest: str | None = None  # the files held back (tried, not confirmed), while they are

    def read(self, force: bool = False) -> Outcome:
        """Reads the config directory once. `force` (a reload) validates the files
        again even when they did not change."""
        digest = None
        try:
            snapshot = take_snapshot(self.config_dir)
            digest = digest_of(snapshot)
            held = held_back(self.state_dir)
            if held is not None and held["digest"] == digest:
                return self._hold_back(held)
            if self.held_digest is not None:
                # held back no more (applied on purpose, or other files): read anew
                self.held_digest = None
                if self.health.rejected is not None and self.health.rejected["digest"] == digest:
                    self.health.rejected = None
                force = True
            known = None if force else self._known(digest)
            if known is not None:
                return known
            desired = load_desired(
                self.config_dir, self.state_dir, self.allow_empty, self.allow_untrusted, snapshot=snapshot
            )
        except ConfigError as error:
            return self._reject(error, digest)
        except Exception as error:  # noqa: BLE001 - no input may end the daemon
            # a bug of netlab's that some input meets (it may raise anything): the
            # generation is rejected like an invalid one, naming the file
            return self._reject(self._load_failure(error), digest)
        self._accept(snapshot, digest, desired)
        return "new"

    def _known(self, digest: str) -> Outcome | None:
        """What files of this digest are, when they were read before."""
        current, rejected = self.current, self.health.rejected
        if current is not None and current.source == "config" and digest == current.digest:
            if rejected is None:
                return "unchanged"
            # a broken edit undone: the files are the generation in force again
            self.health.rejected = None
            self.log.info("the files are back to the generation in force", generation=current.number)
            return "restored"
        if rejected is not None and rejected["digest"] == digest:
            return "unchanged"  # the same broken files: said already
        return None

    def _accept(self, snapshot: Snapshot, digest: str, desired: DesiredState) -> None:
        current = self.current
        number = 1
        if current is not None:
            same = current.source == "config" and digest == current.digest
            number = current.number if same else current.number + 1
        contents = contents_of(snapshot)
        files = tuple(str(path) for path in snapshot.files)
        self.current = Generation(number, digest, files, desired, "config", contents)
        self.health.rejected = None
        release_held_back(self.state_dir)  # other files: the ones held back are history
        self.keep_pending = True  # by the first pass that applies it cleanly
        self.log.info(
            "generation accepted", generation=number, digest=digest, files=[path.name for path in snapshot.files]
        )

    def _reject(self, error: ConfigError, digest: str | None) -> Outcome:
        self.health.reject(str(error), error.problems, digest)
        self.log.error(
            "generation rejected: the last good generation stays in force",
            problems=[str(p) for p in error.problems],
        )
        if self.current is None:
            self.enforce_last_good()
        return "rejected"

    def _hold_back(self, held: HeldBackJson) -> Outcome:
        """Files tried with `netlab try` and rolled back for want of a
        confirmation: rejected like invalid ones until they change (or `netlab
        apply` applies them on purpose); the generation from before the try,
        kept as the last good one, is in force."""
        digest = held["digest"]
        self.held_digest = digest
        rejected = self.health.rejected
        if rejected is not None and rejected["digest"] == digest:
            return "unchanged"  # said already
        message = (
            f"these files were tried with `netlab try` at {held['tried']} and not confirmed: {held['why']}. "
            "The daemon does not apply them again: change them, or run `netlab apply` to apply them as they are"
        )
        self.health.reject(message, [Problem(str(self.config_dir), 0, 0, "", message)], digest)
        self.log.error(
            "generation held back: tried with `netlab try` and not confirmed; the generation from before the try stays in force",
            digest=digest,
            tried=held["tried"],
        )
        if self.current is not None and self.current.digest == digest:
            self.current = None  # read while the try waited: never in force
            self.keep_pending = False
        if self.current is None:
            self.enforce_last_good()
        return "rejected"

    def held_back_released(self) -> bool:
        """Files were held back, and are no longer (`netlab apply` applied them)."""
        if self.held_digest is None:
            return False
        held = held_back(self.state_dir)
        return held is None or held["digest"] != self.held_digest

    def reject_broken(self, error: CheckBroken, back_to: Generation) -> None:
        """The generation in force broke checks and its pass was rolled back:
        it is rejected like invalid files (the same files are not applied again
        until they change), each broken check named with its file and line, and
        `back_to`, the generation of the last clean pass, is in force again."""
        rejected = self.current
        problems = [
            Problem(
                o.check.origin.file,
                o.check.origin.line,
                o.check.origin.column,
                "checks",
                f"the change broke this check ({o.check}: {o.detail}); it was rolled back",
            )
            for o in error.broken
        ]
        self.health.reject(str(error), problems, rejected.digest if rejected is not None else None)
        self.log.error(
            "generation rejected: it broke checks that passed before, and was rolled back; the generation applied before stays in force",
            generation=rejected.number if rejected is not None else None,
            checks=[str(o.check) for o in error.broken],
            declared=[str(o.check.origin) for o in error.broken],
        )
        self.keep_pending = False
        self.current = back_to

    def _load_failure(self, error: Exception) -> ConfigError:
        """A problem for each file whose loading alone raises what loading the
        directory raised unexpectedly (the directory, when none does alone)."""
        self.log.error("loading the files failed unexpectedly: a bug of netlab's", exc_info=error)
        try:
            files = list_config_files(self.config_dir)
        except ConfigError:
            files = []
        culprits = []
        for path in files:
            try:
                validate_paths([path])
            except Exception:  # noqa: BLE001 - the one that raises is the one to name
                culprits.append(str(path))
        message = (
            f"netlab could not load this ({type(error).__name__}: {error}); this is a bug of netlab's, "
            "please report it. Until a fix, change what this file holds; the last good generation stays in force"
        )
        return ConfigError([Problem(name, 0, 0, "", message) for name in culprits or [str(self.config_dir)]])

    # -- the last good generation -------------------------------------------------

    def enforce_last_good(self) -> None:
        """At the start, while the files are invalid (or being written): the
        generation kept after the last clean pass is the one in force."""
        kept = self.state_dir / LAST_GOOD_DIR
        if not kept.is_dir():
            self.log.warning("no last good generation kept yet: enforcing nothing until the files are fixed")
            return
        try:
            snapshot = take_snapshot(kept)
            desired = load_generation(kept, snapshot=snapshot)
        except ConfigError as error:
            self.log.error("the kept last good generation does not load", problems=[str(p) for p in error.problems])
            return
        except Exception as error:  # noqa: BLE001 - no input may end the daemon
            self.log.error("the kept last good generation does not load: a bug of netlab's", exc_info=error)
            return
        files = tuple(str(path) for path in snapshot.files)
        self.current = Generation(0, digest_of(snapshot), files, desired, "last-good")
        self.log.info("enforcing the last good generation kept in the state directory", digest=self.current.digest)

    def keep_if_due(self) -> None:
        """After a pass applied the generation cleanly: its files, copied into the
        state directory, are what a restart enforces while the files are broken.
        A disk that cannot take them fails the health (the network is as the
        files say; only a restart with broken files would miss this generation),
        and the next clean pass tries again."""
        if not self.keep_pending:
            return
        try:
            self._keep()
        except OSError as error:
            kept = self.state_dir / LAST_GOOD_DIR
            self.health.failed(f"could not keep the last good generation in {kept}: {error}")
            self.log.error("could not keep the last good generation: tried again at the next pass", error=str(error))
            return
        self.keep_pending = False

    def _keep(self) -> None:
        generation = self.current
        if generation is None or generation.source != "config":
            return
        # the bytes that were validated, not the files as they may be by now
        keep_last_good(self.state_dir, generation.contents)
