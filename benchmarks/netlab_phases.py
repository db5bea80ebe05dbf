"""Splits a no-op `netlab plan` into its phases, run with netlab's own Python inside
a sandbox where the topology is applied: importing, loading the files, then
observe + plan a few times in two ways: with every kernel read forgotten before
each (what `netlab apply` and the daemon's start, reload and resync do), and as
the daemon's event-fed pass does it when no event came (it forgets only what its
event listeners heard changing, here nothing; the namespace list, sysctls and
file signatures are read again). Reads only: nothing is written. Called by
`benchmarks/run`.

usage: netlab_phases.py [--passes 5] [--config-dir /etc/netlab.d] [--state-dir /var/lib/netlab]
Prints one JSON object of milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--config-dir", type=Path, default=Path("/etc/netlab.d"))
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/netlab"))
    args = parser.parse_args()

    began = time.perf_counter()
    from netlab.controller.backends.kernel import Kernel
    from netlab.controller.guards import load_desired
    from netlab.controller.planning import make_plan
    from netlab.state.ledger import Ledger

    imported = time.perf_counter()
    desired = load_desired(args.config_dir, args.state_dir)
    loaded = time.perf_counter()
    ledger = Ledger.load(args.state_dir)
    ledger_loaded = time.perf_counter()

    observe_plan, plan_only, event_fed, changes = [], [], [], 0
    with Kernel() as kernel:
        for _ in range(args.passes):
            kernel.forget_reads()
            t0 = time.perf_counter()
            plan = make_plan(desired, kernel, ledger)
            t1 = time.perf_counter()
            make_plan(desired, kernel, ledger)  # the kernel's reads are memoised now: planning alone
            t2 = time.perf_counter()
            observe_plan.append((t1 - t0) * 1000)
            plan_only.append((t2 - t1) * 1000)
            changes = len(plan.changes)
        for _ in range(args.passes):
            t0 = time.perf_counter()
            kernel.forget_heard()
            Ledger.load(args.state_dir)  # each pass loads the ledger afresh
            make_plan(desired, kernel, ledger)
            event_fed.append((time.perf_counter() - t0) * 1000)
    print(
        json.dumps(
            {
                "import_ms": (imported - began) * 1000,
                "load_ms": (loaded - imported) * 1000,
                "ledger_ms": (ledger_loaded - loaded) * 1000,
                "first_observe_plan_ms": observe_plan[0],
                "observe_plan_ms": statistics.median(observe_plan[1:] or observe_plan),
                "plan_only_ms": statistics.median(plan_only),
                "observe_ms": statistics.median(observe_plan[1:] or observe_plan) - statistics.median(plan_only),
                "changes": changes,
                "event_fed_pass_ms": statistics.median(event_fed),
            }
        )
    )


if __name__ == "__main__":
    main()
