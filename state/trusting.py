"""Whoever can write the config directory controls the host's network. Like sshd's
StrictModes, a directory or file that another user could write, or that another
user owns, is refused. Used by loading; relaxed with --allow-untrusted-config."""

from __future__ import annotations

import os
import stat

from netlab.state.errors import Problem


def distrust(path: str) -> str | None:
    """Why `path` (followed through symlinks) cannot be trusted, or None."""
    try:
        info = os.stat(path)
    except OSError:
        return None  # reading it reports the problem
    trusted_owners = {0, os.geteuid()}
    if info.st_uid not in trusted_owners:
        return f"it is owned by uid {info.st_uid}, not root: `chown root {path}`"
    if info.st_mode & stat.S_IWOTH:
        return f"any user can write it: `chmod o-w {path}`"
    if info.st_mode & stat.S_IWGRP and info.st_gid != 0:
        return f"group {info.st_gid} can write it: `chmod g-w {path}`"
    return None


def trust_problems(config_dir: str, files: list[str]) -> list[Problem]:
    problems = []
    for path in [config_dir, *files]:
        why = distrust(path)
        if why:
            problems.append(
                Problem(
                    path,
                    0,
                    0,
                    "",
                    f"refused: whoever can write this controls the host's network, and {why} "
                    "(or pass --allow-untrusted-config for a lab)",
                )
            )
    return problems
