"""One generation's files evaluated: each file parsed, validated against the
schema and built into model objects (the result of each kept while its bytes do
not change, and an edit of a few items read in place), then merged and checked
as a whole. Imported by `state.loading` when there is a file to read.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from typing import Any

from netlab.state.building import Contribution, build, build_items, splice
from netlab.state.cross_checking import cross_check, in_vrf_tables
from netlab.state.errors import Problem
from netlab.state.loading import _Source
from netlab.state.model import DesiredState
from netlab.state.reading import decode, parse, reparse
from netlab.state.validating import check_schema, forget_valid_items, items_are_valid


@dataclass(frozen=True)
class _Result:
    """What one file's bytes gave: read-only once cached (see `_handed_out`)."""

    digest: bytes
    contribution: Contribution | None
    problems: tuple[Problem, ...]
    # a valid YAML file's text, for `state.reparsing` to compare the next one with
    text: str | None = None
    # edits read in place since the file was last parsed whole
    reparsed: int = 0


# The last result of each file, by how it is named, for whom and in which format:
# the daemon reads the whole directory after every edit, and files whose bytes
# did not change are not parsed, checked and built again. One entry per file name,
# at most MAX_CACHED_FILES names (the least recently used goes first).
MAX_CACHED_FILES = 4096
_results: OrderedDict[tuple[str, str, bool], _Result] = OrderedDict()
_results_lock = threading.Lock()


def clear_cache() -> None:
    """Forgets every file read before (and the objects found valid)."""
    with _results_lock:
        _results.clear()
    forget_valid_items()


def _handed_out(result: _Result) -> tuple[Contribution | None, list[Problem]]:
    """The cached result with fresh containers: the model objects and the document
    are never written after building; the lists and sets of a contribution could be."""
    contribution = result.contribution
    if contribution is not None:
        # copied attribute by attribute, not with `dataclasses.replace`: this runs
        # for every file of the directory on every load (1000 files: ~15 ms with
        # `replace`, ~2 ms so)
        attributes = dict(contribution.__dict__)
        for name in _CONTAINERS:
            attributes[name] = attributes[name].copy()
        contribution = object.__new__(Contribution)
        contribution.__dict__.update(attributes)
    return contribution, list(result.problems)


_CONTAINERS = tuple(f.name for f in fields(Contribution) if f.default_factory in (list, set))


def _contribution(
    source: _Source, raw: bytes | None, problems: list[Problem], hostname: str
) -> tuple[Contribution | None, list[Problem]]:
    if raw is None:
        return None, problems
    key = (source.shown, hostname, source.path.name.endswith(".json"))
    digest = hashlib.sha256(raw).digest()
    with _results_lock:
        cached = _results.get(key)
        if cached is not None and cached.digest == digest:
            _results.move_to_end(key)
            return _handed_out(cached)
    again = _after_edit(cached, raw) if cached is not None else None
    if again is not None:
        result = replace(again, digest=digest)
    else:
        contribution, problems = _contribution_of(source, raw, hostname)
        result = _Result(digest, contribution, tuple(problems), _text_kept(source, raw, contribution, problems))
    with _results_lock:
        _results[key] = result
        _results.move_to_end(key)
        while len(_results) > MAX_CACHED_FILES:
            _results.popitem(last=False)
    return _handed_out(result)


# Model objects of unchanged items keep pointing at the document they were built
# from: after this many edits read in place, the whole file is parsed again, so
# that at most this many older documents are kept alive.
MAX_REPARSED = 16


def _text_kept(source: _Source, raw: bytes, contribution: Contribution | None, problems: list[Problem]) -> str | None:
    if contribution is None or problems or not contribution.doc.libyaml or source.path.name.endswith(".json"):
        return None
    return raw.decode("utf-8-sig")


def _after_edit(previous: _Result, raw: bytes) -> _Result | None:
    """The result of a valid file after an edit of a few items of one list section,
    from the previous result and those items alone; None when the file must be
    read whole (any problem, any other kind of edit: see `state.reparsing`)."""
    before = previous.contribution
    if previous.text is None or before is None or previous.reparsed >= MAX_REPARSED:
        return None
    text, problems = decode(before.doc.file, raw)
    found = reparse(before.doc, previous.text, text) if text is not None else None
    if found is None or text is None:
        return None
    doc, edit = found
    if not items_are_valid(edit.section, doc.data[edit.section][edit.first : edit.last + 1]):
        return None
    fresh = build_items(doc, edit.section, edit.first, edit.last)
    if fresh.problems:
        return None
    return _Result(previous.digest, splice(before, fresh, edit), (), text, previous.reparsed + 1)


def _contribution_of(source: _Source, raw: bytes, hostname: str) -> tuple[Contribution | None, list[Problem]]:
    doc, problems = parse(source.shown, raw, is_json=source.path.name.endswith(".json"))
    if doc is None:
        return None, problems
    schema = check_schema(doc)
    if ("version",) in schema.error_paths:
        # a file of another format version would only drown in errors of this one
        return None, [problem for problem in schema.problems if problem.path == "version"]
    contribution = build(doc, schema, hostname)
    return contribution, [*schema.problems, *contribution.problems]


def evaluate(
    sources: list[tuple[_Source, bytes | None, list[Problem]]], hostname: str | None
) -> tuple[DesiredState, list[Problem]]:
    """The merged state of the files (each with its bytes, or None and why it
    could not be read) and every problem found in them."""
    host = hostname if hostname is not None else socket.gethostname()
    problems: list[Problem] = []
    contributions: list[Contribution] = []
    complete = True
    for source, raw, read_problems in sources:
        contribution, found = _contribution(source, raw, read_problems, host)
        problems += found
        if contribution is None:
            complete = False
        else:
            complete = complete and contribution.complete
            contributions.append(contribution)
    applying, unplaced = in_vrf_tables([c for c in contributions if c.applies], complete)
    problems += unplaced + cross_check(applying, complete)
    return _merge(applying, [source for source, _, _ in sources]), problems


def _merge(applying: list[Contribution], sources: list[_Source]) -> DesiredState:
    def gather(bucket: str) -> tuple[Any, ...]:
        return tuple(item.obj for c in applying for item in getattr(c, bucket))

    return DesiredState(
        namespaces=gather("namespaces"),
        links=gather("links"),
        addresses=gather("addresses"),
        routes=gather("routes"),
        sysctls=gather("sysctls"),
        nat=gather("nat"),
        dns=gather("dns"),
        hosts=gather("hosts"),
        checks=gather("checks"),
        files=tuple(sorted(source.shown for source in sources)),
    )
