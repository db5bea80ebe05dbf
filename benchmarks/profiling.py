"""Reads py-spy's raw (collapsed) stacks of one `netlab apply` and says where the
wall-clock time went: by phase of the pass, by package, and the functions that
cost the most, on the main thread of the netlab process (helper threads and the
iptables worker processes are reported apart). Called by `benchmarks/run`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

# The first of these met walking a stack from its root names the phase it is in.
PHASES = {
    "_find_and_load": "imports (at start-up)",
    "load_desired": "load the files (parse, schema, build, check)",
    "verify": "verify: observe + plan again",
    "make_plan": "observe + plan",
    "apply_plan": "apply: kernel writes",
    "Ledger.load": "ledger",
    "Ledger.save": "ledger",
    "locked": "ledger",
    "plan_text": "print the plan",
}
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if not match:
        return frame, ""
    return match["function"], match["path"]


def package_of(path: str) -> str:
    if path.startswith(("controller/", "state/")):
        return "netlab." + path.split("/")[0] + ("." + path.split("/")[1] if path.count("/") > 1 else "")
    if path.startswith("<frozen importlib"):
        return "import machinery"
    head = path.split("/")[0].removesuffix(".py")
    if head == "selectors":
        return "waiting in select (child processes, sockets)"
    return head or "?"


def summarise(raw: str, rate: int) -> dict[str, Any]:
    main: list[tuple[list[tuple[str, str]], int]] = []
    threads = 0
    workers = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        process, _, frames_text = stack_text.partition(";")
        if not process.startswith("process "):  # recorded without --subprocesses
            frames_text = stack_text
        frames = [_parse(frame) for frame in frames_text.split(";") if frame]
        if "iptables_worker" in process:
            workers += count
        elif frames and frames[0][0] == "_bootstrap":
            threads += count
        elif frames and frames[0][0] == "<module>":
            main.append((frames, count))
    total = sum(count for _, count in main)
    phases: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    # netlab function -> the next netlab function below it, in samples: a function
    # whose time is almost all one callee's is only a way through, left out below
    below: dict[str, Counter[str]] = {}
    for frames, count in main:
        phase = "other (arguments, start-up, output)"
        for function, _ in frames:
            if function in PHASES:
                phase = PHASES[function]
                break
        phases[phase] += count
        function, path = frames[-1]
        by_package[package_of(path)] += count
        own[f"{function} ({path})"] += count
        ours = [f"{function} ({path})" for function, path in frames if path.startswith(("controller/", "state/"))]
        bucket = inclusive.setdefault(phase, Counter())
        for name in set(ours):
            bucket[name] += count
        for caller, callee in zip(ours, ours[1:], strict=False):
            if caller != callee:
                below.setdefault(caller, Counter())[callee] += count

    def seconds(samples: int) -> float:
        return samples / rate

    return {
        "wall_s": seconds(total),
        "phases": [(name, seconds(n), n / total if total else 0) for name, n in phases.most_common()],
        "packages": [(name, seconds(n), n / total if total else 0) for name, n in by_package.most_common(10)],
        "own_time": [(name, seconds(n), n / total if total else 0) for name, n in own.most_common(15)],
        # within each phase, netlab's functions that cost the most, time including
        # callees, leaving out the frames every stack of the phase goes through
        # (its callers) and those that only pass the time on to one callee
        "inclusive_by_phase": {
            phase: [
                (name, seconds(n), n / total if total else 0)
                for name, n in bucket.most_common(60)
                if n < phases[phase] and not _passes_through(name, n, below)
            ][:12]
            for phase, bucket in inclusive.items()
        },
        "helper_threads_s": seconds(threads),
        "iptables_worker_s": seconds(workers),
    }


def _passes_through(name: str, samples: int, below: dict[str, Counter[str]]) -> bool:
    callees = below.get(name)
    return bool(callees) and callees.most_common(1)[0][1] >= 0.9 * samples


def summarise_file(path: str | Path, rate: int) -> dict[str, Any]:
    return summarise(Path(path).read_text(errors="replace"), rate)
