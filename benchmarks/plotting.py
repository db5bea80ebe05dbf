"""Plots cold-apply time against N for every tool, on log axes, from results.json.
Run with the benchmark environment's Python (matplotlib lives there only), by
`benchmarks/reporting.py`.

usage: plotting.py RESULTS_JSON OUTPUT_PNG
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import TOOL_NAMES, cold_medians  # noqa: E402

STYLE = {
    "netlab": {"color": "tab:blue", "marker": "o"},
    "batch": {"color": "tab:green", "marker": "s"},
    "shell": {"color": "tab:orange", "marker": "^"},
    "ifstate": {"color": "tab:red", "marker": "D"},
}


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())
    cold = cold_medians(results)
    figure, axes = plt.subplots(figsize=(7, 4.8), dpi=120)
    for tool, points in cold.items():
        sizes = sorted(points)
        axes.plot(sizes, [points[n] for n in sizes], label=TOOL_NAMES[tool].strip("`"), linewidth=1.8, **STYLE[tool])
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("namespaces (N)")
    axes.set_ylabel("cold apply, seconds (median)")
    machine = results["machine"]
    axes.set_title(
        f"Cold apply: bridge + N namespaces with veth, address, route\n"
        f"{machine['nproc']} CPUs, kernel {machine['kernel']}, {machine['date']}",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
