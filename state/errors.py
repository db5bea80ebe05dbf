"""The few error types of netlab, each a policy for the caller:
`ConfigError` - the operator must fix a file (exit 1, nothing changed);
`ApplyError` - the kernel refused or a pass failed (exit 1, previous generation kept);
anything else escaping is a bug of ours."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the desired-state files.

    `path` is the place inside the document in dotted form
    (`interfaces[2].addresses[0]`), empty for a whole-file problem.
    Printed as `file:line:col: path: message`.
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class NetlabError(Exception):
    """Base of netlab's own errors: the message is for the operator."""


class ConfigError(NetlabError):
    """The files of a generation are invalid; the operator must fix them."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(sorted(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class ApplyError(NetlabError):
    """A reconcile pass could not complete; the message says which change failed,
    what the kernel said and what was undone."""
