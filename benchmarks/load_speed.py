"""How fast netlab loads the desired state of the benchmark topology: the whole of
`load_generation` (cold, then again on an unchanged and on an edited directory, as
the daemon does after a debounce; and edited when the same state is one file per
namespace) and each stage of it alone (parse, schema, build, cross-check). Run by
hand with the project's Python; writes only into a temp dir.

usage: load_speed.py [--sizes 100 1000] [--runs 7] [--profile N]
Prints a table of medians in milliseconds (and, with --profile N, the top of a
cProfile of one cold load of N namespaces).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from topology import Topology  # noqa: E402

from netlab.state import loading  # noqa: E402
from netlab.state.building import build  # noqa: E402
from netlab.state.cross_checking import cross_check  # noqa: E402
from netlab.state.reading import parse  # noqa: E402
from netlab.state.validating import check_schema  # noqa: E402

HOSTNAME = "bench"


def _median_ms(runs: int, work: Callable[[], Any], before: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(runs):
        before()
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _forget() -> None:
    """Empties the per-file cache, where there is one, so a load is a cold one."""
    clear = getattr(loading, "clear_cache", None)
    if clear is not None:
        clear()


def measure(n: int, runs: int) -> dict[str, float]:
    topology = Topology(n, nat=True, dns=True)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        path = directory / "topology.yaml"
        path.write_text(topology.netlab_yaml())
        raw = path.read_bytes()
        figures: dict[str, float] = {}

        doc, problems = parse(str(path), raw, is_json=False)
        assert doc is not None and not problems, problems
        schema = check_schema(doc)
        assert not schema.problems, schema.problems[:3]
        contribution = build(doc, schema, HOSTNAME)
        assert not contribution.problems, contribution.problems[:3]
        assert not cross_check([contribution], True)

        figures["parse"] = _median_ms(runs, lambda: parse(str(path), raw, is_json=False))
        figures["schema"] = _median_ms(runs, lambda: check_schema(doc), before=_forget)
        figures["schema (objects seen)"] = _median_ms(runs, lambda: check_schema(doc))
        figures["build"] = _median_ms(runs, lambda: build(doc, schema, HOSTNAME))
        figures["cross-check"] = _median_ms(runs, lambda: cross_check([contribution], True))

        def load() -> None:
            loading.load_generation(directory, HOSTNAME)

        figures["load (cold)"] = _median_ms(runs, load, before=_forget)
        load()
        figures["load (unchanged)"] = _median_ms(runs, load)

        # the daemon's case: one object edited since the last load
        texts = [topology.netlab_yaml(edited=flag) for flag in (True, False)]
        turn = iter(range(10**9))

        def edit() -> None:
            path.write_text(texts[next(turn) % 2])

        load()
        figures["load (one edit)"] = _median_ms(runs, load, before=edit)
        state = loading.load_generation(directory, HOSTNAME)
        assert len(state.namespaces) == n and len(state.links) == 2 * n + 1
        figures["bytes"] = len(raw)
        figures["split: load (one edit)"] = _split_edit(topology, runs)
        return figures


def _split(text: str, n: int) -> dict[str, str]:
    """The topology's one file as one file per namespace (its namespace entry,
    veth and route) plus `host.yaml` with the rest."""
    lines = text.splitlines()
    starts = {line: index for index, line in enumerate(lines) if line in ("namespaces:", "interfaces:", "routes:")}
    namespaces = lines[starts["namespaces:"] + 1 : starts["interfaces:"]]
    interfaces = lines[starts["interfaces:"] + 1 : starts["routes:"]]
    routes = [line for line in lines[starts["routes:"] + 1 :] if line.startswith("  - {netns:")]
    per_namespace = len(namespaces) // n
    files = {}
    for i in range(1, n + 1):
        entry = namespaces[(i - 1) * per_namespace : i * per_namespace]
        body = ["version: 1", "namespaces:", *entry, "interfaces:", interfaces[i], "routes:", routes[i - 1]]
        files[f"ns{i:05}.yaml"] = "\n".join(body) + "\n"
    rest = [line for line in lines[starts["routes:"] + 1 :] if line not in routes]
    files["host.yaml"] = "\n".join(["version: 1", "interfaces:", interfaces[0], *rest]) + "\n"
    return files


def _split_edit(topology: Topology, runs: int) -> float:
    """The same state as one file per namespace: an edit rewrites one small file."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        for file, text in _split(topology.netlab_yaml(), topology.n).items():
            (directory / file).write_text(text)
        edited = f"ns{topology.edited:05}.yaml"
        versions = [(directory / edited).read_text(), _split(topology.netlab_yaml(edited=True), topology.n)[edited]]
        assert versions[0] != versions[1]
        state = loading.load_generation(directory, HOSTNAME)
        assert len(state.namespaces) == topology.n and len(state.links) == 2 * topology.n + 1
        assert len(state.nat) == 1 and len(state.sysctls) == 1
        turn = iter(range(10**9))
        return _median_ms(
            runs,
            lambda: loading.load_generation(directory, HOSTNAME),
            before=lambda: (directory / edited).write_text(versions[next(turn) % 2]),
        )


def profile(n: int) -> str:
    topology = Topology(n, nat=True, dns=True)
    with tempfile.TemporaryDirectory() as name:
        (Path(name) / "topology.yaml").write_text(topology.netlab_yaml())
        _forget()
        profiler = cProfile.Profile()
        profiler.runcall(loading.load_generation, Path(name), HOSTNAME)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", type=int, metavar="N", help="also print a cProfile of one cold load")
    args = parser.parse_args()

    results = {n: measure(n, args.runs) for n in args.sizes}
    stages = [key for key in next(iter(results.values())) if key != "bytes"]
    print(f"median of {args.runs} runs, ms" + "".join(f"{f'N={n}':>12}" for n in results))
    for stage in stages:
        print(f"{stage:<22}" + "".join(f"{results[n][stage]:>12.1f}" for n in results))
    print(f"{'file size, KiB':<22}" + "".join(f"{results[n]['bytes'] / 1024:>12.0f}" for n in results))
    if args.profile:
        print(profile(args.profile))


if __name__ == "__main__":
    main()
