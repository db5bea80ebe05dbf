"""The few error types of netlab, each a policy for the caller:
`ConfigError` - the operator must fix a file (exit 1, nothing changed);
`ApplyError` - the kernel (or the system: a full disk) refused, or a pass failed
(exit 1, what the pass did is undone, the previous generation kept);
`KernelRefused` is the ApplyError of one refused request, with its errno;
anything else escaping is a bug of ours."""

from __future__ import annotations

from dataclasses import dataclass


def printable(text: str) -> str:
    """`text` with each character that is not printable (a newline, NUL, ESC, a
    bidi control) written as its Python escape (`\\x1b`), so that a message quoting
    a file can never act on the terminal or journal that shows it."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the desired-state files.

    `path` is the place inside the document in dotted form
    (`interfaces[2].addresses[0]`), empty for a whole-file problem.
    Printed as `file:line:col: path: message`. Every text is made printable here,
    once, whoever quoted the file (CLI, status, journal all show these).
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __post_init__(self) -> None:
        for name in ("file", "path", "message"):
            value = getattr(self, name)
            if not value.isprintable():
                object.__setattr__(self, name, printable(value))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class NetlabError(Exception):
    """Base of netlab's own errors: the message is for the operator."""


class ConfigError(NetlabError):
    """The files of a generation are invalid (or the ledger in the state
    directory is not one); the operator must fix them. Nothing was changed."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(sorted(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class ApplyError(NetlabError):
    """A reconcile pass could not complete; the message says which change failed,
    what the kernel said and what was undone."""


class KernelRefused(ApplyError):
    """The kernel answered a request with an error; the message says which request
    and, when the kernel said more than an errno, its own words."""

    def __init__(self, what: str, code: int, message: str, kernel_message: str | None = None) -> None:
        self.code = code
        said = f" (the kernel: {kernel_message})" if kernel_message else ""
        super().__init__(f"{what}: {message} (errno {code}){said}")
