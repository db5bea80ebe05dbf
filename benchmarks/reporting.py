"""Turns the saved results of a benchmark run into RESULTS.md (a table per measure,
the targets met or not, the profiles) and, through the benchmark environment's
Python, cold-apply.png. A hand-written analysis kept between the markers below
in an existing RESULTS.md survives a re-run. Called by `benchmarks/run`.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from measuring import is_bridge_notice
from topology import Topology, gateway

HERE = Path(__file__).resolve().parent
ANALYSIS_BEGIN = "<!-- analysis: kept when the report is re-written -->"
ANALYSIS_END = "<!-- end of analysis -->"
TOOL_NAMES = {"netlab": "netlab", "batch": "`ip -batch`", "shell": "shell script", "ifstate": "ifstate"}


# -- numbers ---------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def _runs(results: dict[str, Any], tool: str, n: int) -> list[dict[str, Any]]:
    return [r for r in results["runs"] if r["tool"] == tool and r["n"] == n]


def _value(results: dict[str, Any], tool: str, n: int, key: str) -> float | None:
    return median([r.get(key) for r in _runs(results, tool, n)])  # type: ignore[misc]


def cold_medians(results: dict[str, Any]) -> dict[str, dict[int, float]]:
    """Median cold-apply seconds by tool and N, of verified runs only."""
    found: dict[str, dict[int, float]] = {}
    for tool in TOOL_NAMES:
        for n in results["settings"]["sizes"]:
            values = [r["cold_s"] for r in _runs(results, tool, n) if r.get("verify", {}).get("ok") and "cold_s" in r]
            if values:
                found.setdefault(tool, {})[n] = statistics.median(values)
    return found


def _verified(runs: list[dict[str, Any]], key: str = "verify") -> str:
    checked = [r for r in runs if key in r]
    if not checked:
        return "—"
    good = sum(1 for r in checked if r[key].get("ok"))
    return f"{good}/{len(checked)}"


def _missed(results: dict[str, Any], n: int, kinds: tuple[str, ...]) -> int:
    """Samples whose answer never came (the probe timed out)."""
    return sum(
        1
        for d in results["daemon"]
        if d["n"] == n
        for s in d.get("samples", [])
        if s["kind"] in kinds and "began_wall" in s and (s.get("address_s") is None or s.get("route_s") is None)
    )


def _samples(results: dict[str, Any], n: int, kind: str, key: str) -> list[float]:
    return [
        s[key]
        for d in results["daemon"]
        if d["n"] == n
        for s in d.get("samples", [])
        if s["kind"] == kind and isinstance(s.get(key), (int, float))
    ]


# -- what changed, from `ip monitor` lines --------------------------------------------------


def describe_event(line: str) -> str:
    where, _, text = line.partition(": ")
    sign = "-" if text.startswith("Deleted") else "+"
    text = text.removeprefix("Deleted ").strip()
    address = re.match(r"^\d+: (\S+)\s+inet6? (\S+)", text)
    if address:
        return f"{where} {sign}address {address[2]} on {address[1]}"
    link = re.match(r"^\d+: (\S+?)(@\S+)?: <([^>]*)>", text)
    if link:
        return f"{where} {sign}link {link[1]} <{link[3]}>"
    return f"{where} {sign}route {' '.join(text.split()[:3])}"


def writes_seen(events: list[str]) -> list[str]:
    """The events that are writes, described: without the kernel's own consequences
    of an address change (its connected, local and broadcast routes) and the
    bridge's port notices."""
    return [describe_event(line) for line in events if "proto kernel" not in line and not is_bridge_notice(line)]


def noop_writes(run: dict[str, Any]) -> int | None:
    """Kernel writes witnessed during a no-op, the bridge's own notices left out
    (results saved before the witness knew them still hold them)."""
    witnessed = run.get("noop_apply")
    if not isinstance(witnessed, dict):
        return None
    events = [line for line in witnessed["netlink_events"] if not is_bridge_notice(line)]
    return len(events) + int(witnessed["nat_changed"]) + len(witnessed["files_changed"])


def only_the_edit(run: dict[str, Any]) -> bool:
    """Whether the edit wrote only the edited namespace's old address away, its new
    address, and its default route (which the kernel drops with the old address)."""
    topology = Topology(run["n"], nat=False, dns=False)
    netns = f"ns{topology.edited}"
    allowed = {
        f"{netns} -address {topology.address(topology.edited)} on eth0",
        f"{netns} +address {topology.address(topology.edited, edited=True)} on eth0",
        f"{netns} +route default via {gateway(topology.edited)}",
        f"{netns} -route default via {gateway(topology.edited)}",
    }
    edit = run.get("edit") or {}
    described = writes_seen(edit.get("netlink_events", []))
    return (
        bool(described) and set(described) <= allowed and not edit.get("nat_changed") and not edit.get("files_changed")
    )


# -- the report --------------------------------------------------------------------------------


def write(results: dict[str, Any], out: Path, plot_python: str | None) -> None:
    path = out / "RESULTS.md"
    _resummarise_profiles(results, out)
    kept = ""
    # a report written elsewhere (--out) keeps the repository's analysis
    source = path if path.exists() else HERE / "RESULTS.md"
    if source.exists():
        text = source.read_text()
        if ANALYSIS_BEGIN in text and ANALYSIS_END in text:
            kept = text[text.index(ANALYSIS_BEGIN) + len(ANALYSIS_BEGIN) : text.index(ANALYSIS_END)].strip("\n")
    path.write_text(render(results, kept))
    if plot_python:
        plot = subprocess.run(
            [plot_python, str(HERE / "plotting.py"), str(out / "results.json"), str(out / "cold-apply.png")],
            capture_output=True,
            text=True,
        )
        if plot.returncode != 0:
            print(f"plotting failed: {plot.stderr.strip()[-500:]}")


def _resummarise_profiles(results: dict[str, Any], out: Path) -> None:
    """Reads the profiles' raw stacks again where they are kept, so that a change
    to the summary shows in a re-written report."""
    import profiling

    rate = results["settings"].get("profile_rate", 200)
    for name, profile in (results.get("profiles") or {}).items():
        raw = out / profile.get("file", "")
        if profile.get("file") and raw.is_file():
            results["profiles"][name] = {"file": profile["file"], **profiling.summarise_file(raw, rate)}


def render(results: dict[str, Any], analysis: str = "") -> str:
    settings, machine = results["settings"], results["machine"]
    sizes = settings["sizes"]
    lines: list[str] = []
    w = lines.append
    w("# netlab benchmarks")
    w("")
    w("Written by `benchmarks/run` (do not edit the tables by hand: re-run it; the analysis")
    w("section between its markers is kept).")
    w("")
    w(f"- **Date:** {machine['date']}; the run took {results.get('duration_s', 0) / 60:.0f} min.")
    w(
        f"- **Machine:** {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB, kernel {machine['kernel']}, "
        f"Python {machine['python']}, pyroute2 {machine['pyroute2']}, {machine['iproute2']}, ifstate {machine['ifstate']}; "
        f"load average at the start {', '.join(f'{x:.2f}' for x in machine['load_at_start'])}. A shared, noisy machine: compare ratios, not absolutes."
    )
    w(
        f"- **netlab:** {machine['netlab']} at commit {machine['netlab_commit']}; kinds {', '.join(settings['netlab_kinds'])}."
    )
    w(
        f"- **Command:** `{results['command']}` (as root, from the repository) — sizes {', '.join(map(str, sizes))}, "
        f"{settings['repeat']} runs of each tool at each size"
        + (
            f" ({settings['large_repeat']} above 1000)"
            if settings.get("large_repeat", settings["repeat"]) != settings["repeat"]
            else ""
        )
        + ", every run in a fresh sandbox; each figure is the median."
    )
    w("")
    w("## What is built, and how it is judged")
    w("")
    w("The same topology by every tool: a bridge `br0` (10.0.0.1/16) in the root namespace; N namespaces")
    w("`ns1..nsN`, each with a veth whose inner end `eth0` is addressed and up and whose outer end `vhI` is a")
    w("port of `br0`; a default route in each namespace via 10.0.0.1; forwarding on.")
    if settings["nat"] and settings["dns"]:
        w("netlab, `ip -batch` and the shell script also write one masquerade rule (`-s 10.0.0.0/16`) and")
        w("`/etc/netns/nsI/resolv.conf` for every namespace, so that their work is equal. The rule goes where a")
        w("Debian 12 host puts it: the scripts use the host's `iptables` (iptables-nft), and netlab chooses its")
        w("backend as on such a host (`--nat-backend auto`: nftables; the NAT section below measures both backends).")
        w("**ifstate cannot express either** (it has no NAT and no per-namespace resolver files): its runs build")
        w("and are checked for the rest only.")
    else:
        w("netlab's `nat` or `dns` kind was not registered when this ran, so the masquerade rule and the")
        w("per-namespace resolv.conf files are left out for **every** tool.")
    w("")
    w("- `ip -batch`: one `ip -batch` for the root namespace and one `ip -n nsI -batch` per namespace (a batch file")
    w("  has no per-line namespace); the rest with shell builtins. The practical floor.")
    w("- shell script: one `ip` process per command, as a lecture types it (`ip -n nsI ...` inside namespaces).")
    w(
        f"- ifstate {machine['ifstate']}: `ifstatecli -c FILE apply`, run only up to N = {settings['ifstate_max']}: its cost grows"
    )
    w("  quadratically (189 s for a cold apply at N = 200 on this kind of machine, 153 s for its no-op), so larger")
    w("  sizes would take hours.")
    w("- netlab: `netlab apply` with the topology as one file in `/etc/netlab.d`, and `netlab daemon --debounce 0.25`.")
    w("")
    w(
        "Every run happens in a fresh private network + mount + PID namespace (`tests/sandbox.py`'s benchmark layout), with tmpfs"
    )
    w("over `/run`, `/etc/netns`, `/etc/netlab.d` and `/var/lib/netlab` and temporary files over `/etc/resolv.conf`")
    w("and `/etc/hosts`: the host's network is never touched. Every result is checked by `benchmarks/verify.py`,")
    w("which asks the kernel directly (raw rtnetlink, not the tools' libraries): the namespace count, N + 2 links")
    w("in the root namespace, N bridge ports up, in every namespace exactly `lo` and `eth0` up with the right")
    w("address and default route, the resolv.conf files and the masquerade rule where they apply, then pings")
    w("ns1 → nsN, nsN → ns1 and ns1 → the bridge. Times are wall-clock from outside the sandbox, process start")
    w("included (entering the sandbox adds about 2 ms to each). Kernel writes are witnessed by `ip monitor`")
    w("(links, addresses, routes) in the root namespace and in ns1, the edited namespace and nsN, by the NAT")
    w("rules before and after (`nft list ruleset`, and the legacy nat table where it exists), and by the")
    w("modification times of every resolv.conf and hosts file. netlab is installed as `scripts/install` installs")
    w("it (Debian's python3, not editable: its bytecode compiled), from the checkout, at every run.")
    w("")
    _targets_19(results, w)
    _targets(results, w)
    _cold(results, w)
    _noop(results, w)
    _edit(results, w)
    _daemon(results, w)
    _removal(results, w)
    _nat(results, w)
    _startup(results, w)
    _profiles(results, w)
    w("## Analysis")
    w("")
    w(ANALYSIS_BEGIN)
    w(analysis or "(not written yet)")
    w(ANALYSIS_END)
    w("")
    w("## How to reproduce")
    w("")
    w("As root on a Debian 12 machine, from a clone of the repository:")
    w("")
    w("```sh")
    w(
        "benchmarks/run                             # the full suite: sizes 10,100,500,1000, 3 runs each (~50 min on 2 cores)"
    )
    w("benchmarks/run --sizes 10,100,500,1000,5000 --large-repeat 1   # this report: one run at N = 5000 (~75 min)")
    w("benchmarks/run --sizes 10 --repeat 1       # a quick look (the smoke test runs this)")
    w(
        "benchmarks/run --tools remove --no-profile --sizes 1000 --out /tmp/rm   # destroy, prune and the `ip` ways alone"
    )
    w(
        "benchmarks/run --tools daemon --no-profile --sizes 1000 --repeat 1 --out /tmp/daemon   # the daemon alone, one size"
    )
    w(
        "benchmarks/run --tools nat --no-profile --out /tmp/nat   # the NAT benchmark alone (1000 rules, each backend, nft -f)"
    )
    w("benchmarks/run --report benchmarks/results.json   # re-write this report from a run's saved results")
    w("python3 benchmarks/sandbox.py bash         # a shell in a fresh sandbox, to try things by hand")
    w("```")
    w("")
    w("The runner makes `benchmarks/.venv` (ifstate, matplotlib, py-spy from `benchmarks/requirements.txt`)")
    w("and `benchmarks/.netlab-venv` (netlab and its dependencies only, as `scripts/install` has them: the")
    w("repository's `.venv` also holds the test tools, whose `rich` structlog would import) when missing.")
    w("`results.json` holds every run's figures, verdicts and witnessed events; `profile-*.txt`")
    w("are py-spy's raw stacks (load them into speedscope or flamegraph.pl). The run writes both next to this")
    w("report (its `--out`), and they are not committed: this report and `cold-apply.png` are.")
    w("")
    return "\n".join(lines)


def _section(w: Any, title: str, text: str) -> None:
    """A heading and the paragraphs under it (`text` indented as in the source)."""
    w(f"## {title}")
    w("")
    w(textwrap.dedent(text).strip("\n"))
    w("")


def _targets(results: dict[str, Any], w: Any) -> None:
    cold = cold_medians(results)
    rows: list[tuple[str, str, str, str]] = []

    def at(tool: str, n: int) -> float | None:
        return cold.get(tool, {}).get(n)

    n500 = 500
    netlab, batch, shell = at("netlab", n500), at("batch", n500), at("shell", n500)
    if netlab and batch:
        rows.append(
            (
                "cold apply at N = 500 ≤ 1.3 × `ip -batch`",
                f"{seconds(netlab)} vs {seconds(batch)}",
                f"{netlab / batch:.2f}×",
                "met" if netlab <= 1.3 * batch else "not met",
            )
        )
    else:
        rows.append(("cold apply at N = 500 ≤ 1.3 × `ip -batch`", "not measured", "—", "—"))
    if netlab and shell:
        rows.append(
            (
                "cold apply at N = 500 ≥ 10 × faster than the shell script",
                f"{seconds(netlab)} vs {seconds(shell)}",
                f"{shell / netlab:.1f}× faster",
                "met" if shell >= 10 * netlab else "not met",
            )
        )
    else:
        rows.append(("cold apply at N = 500 ≥ 10 × faster than the shell script", "not measured", "—", "—"))
    common = sorted(set(cold.get("netlab", {})) & set(cold.get("ifstate", {})))
    if common:
        worst = max(cold["netlab"][n] / cold["ifstate"][n] for n in common)
        rows.append(
            (
                "faster than ifstate at every N",
                ", ".join(f"N={n}: {seconds(cold['netlab'][n])} vs {seconds(cold['ifstate'][n])}" for n in common),
                f"netlab/ifstate ≤ {worst:.2f}",
                "met" if worst < 1 else "not met",
            )
        )
    n_big = 1000
    phases = [
        r["phases"]
        for r in _runs(results, "netlab", n_big)
        if isinstance(r.get("phases"), dict) and "observe_plan_ms" in r["phases"]
    ]
    noop_counts = [w for w in (noop_writes(r) for r in _runs(results, "netlab", n_big)) if w is not None]
    event_fed = [p for p in phases if "event_fed_pass_ms" in p]
    if event_fed:
        ms = median([p["event_fed_pass_ms"] for p in event_fed]) or 0
        full = median([p["observe_plan_ms"] for p in event_fed]) or 0
        rows.append(
            (
                "no-op at N = 1000: observe + plan ≤ 100 ms",
                f"{ms:.0f} ms (the daemon's event-fed pass; reading every "
                f"namespace again, as a resync or `netlab apply` does: {full:.0f} ms)",
                f"{ms / 100:.2f}× the target",
                "met" if ms <= 100 else "not met",
            )
        )
    elif phases:
        ms = median([p["observe_plan_ms"] for p in phases]) or 0
        rows.append(
            (
                "no-op at N = 1000: observe + plan ≤ 100 ms",
                f"{ms:.0f} ms (a daemon pass; `netlab apply` as a process: "
                f"{seconds(_value(results, 'netlab', n_big, 'noop_apply_s'))})",
                f"{ms / 100:.1f}× the target",
                "met" if ms <= 100 else "not met",
            )
        )
    else:
        rows.append(("no-op at N = 1000: observe + plan ≤ 100 ms", "not measured", "—", "—"))
    if noop_counts:
        rows.append(
            (
                "no-op at N = 1000: zero kernel writes",
                f"{max(noop_counts)} writes (worst of {len(noop_counts)} runs)",
                "—",
                "met" if max(noop_counts) == 0 else "not met",
            )
        )
    renames = _samples(results, n_big, "rename", "address_s")
    debounce = results["settings"]["debounce_s"]
    if renames:
        after = (median(renames) or 0) - debounce
        rows.append(
            (
                "one edit among N = 1000 applied ≤ 50 ms after the debounce",
                f"{after * 1000:.0f} ms after the {debounce * 1000:.0f} ms debounce "
                f"({seconds(median(renames))} from the rename)",
                f"{after / 0.05:.1f}× the target",
                "met" if after <= 0.05 else "not met",
            )
        )
    else:
        rows.append(("one edit among N = 1000 applied ≤ 50 ms after the debounce", "not measured", "—", "—"))
    drifts = _samples(results, n_big, "drift-addr", "route_s") + _samples(results, n_big, "drift-link", "route_s")
    missed = _missed(results, n_big, ("drift-addr", "drift-link"))
    if missed:
        rows.append(
            (
                "drift at N = 1000 repaired ≤ 200 ms",
                f"{missed} of {missed + len(drifts)} drifts not repaired within "
                "the probe's 60 s (the daemon saw no event)",
                "—",
                "not met",
            )
        )
    elif drifts:
        worst_drift = median(drifts) or 0
        rows.append(
            (
                "drift at N = 1000 repaired ≤ 200 ms",
                f"{seconds(worst_drift)} (median of address and veth deletions, to the route back)",
                f"{worst_drift / 0.2:.1f}× the target",
                "met" if worst_drift <= 0.2 else "not met",
            )
        )
    else:
        rows.append(("drift at N = 1000 repaired ≤ 200 ms", "not measured", "—", "—"))
    rss = [d["memory_kb"]["VmHWM"] / 1024 for d in results["daemon"] if d["n"] == n_big and "memory_kb" in d]
    if rss:
        peak = max(rss)  # MiB, the worst run
        megabytes = peak * 1024 * 1024 / 1e6  # the target's MB, taken strictly as 10^6 bytes
        rows.append(
            (
                "daemon peak RSS at N = 1000 ≤ 80 MB",
                f"{peak:.0f} MiB = {megabytes:.0f} MB (worst run)",
                f"{megabytes / 80:.2f}× the target",
                "met" if megabytes <= 80 else "not met",
            )
        )
    else:
        rows.append(("daemon peak RSS at N = 1000 ≤ 80 MB", "not measured", "—", "—"))
    per_ns = {n: cold["netlab"][n] / n for n in sorted(cold.get("netlab", {})) if n >= 100}
    if len(per_ns) >= 2:
        smallest, largest = min(per_ns), max(per_ns)
        growth = per_ns[largest] / per_ns[smallest]
        measured = ", ".join(f"N={n}: {v * 1000:.1f} ms" for n, v in per_ns.items())
        batch = cold.get("batch", {})
        if smallest in batch and largest in batch:
            floor = (batch[largest] / largest) / (batch[smallest] / smallest)
            measured += f" (`ip -batch`, the kernel's floor: {floor:.2f}× per namespace over the same range)"
        rows.append(
            (
                "cost growing linearly with N (cold apply per namespace)",
                measured,
                f"{growth:.2f}× per namespace from N={smallest} to N={largest}",
                "met" if growth <= 1.25 else "not met",
            )
        )
    _target_table(w, "Targets (issue 6)", rows)
    w("Linear means the cost per namespace stays within 25 % from the smallest to the largest size of 100 or more.")
    w("")


def _target_table(w: Any, title: str, rows: list[tuple[str, str, str, str]]) -> None:
    w(f"## {title}")
    w("")
    w("| target | measured | ratio | |")
    w("|---|---|---|---|")
    for row in rows:
        w("| " + " | ".join(row) + " |")
    w("")


def _cold(results: dict[str, Any], w: Any) -> None:
    sizes = results["settings"]["sizes"]
    cold = cold_medians(results)
    _section(
        w,
        "Cold apply: from nothing to the whole topology",
        """
        Median wall time of verified runs, and each tool's ratio to `ip -batch`. ![cold apply against N](cold-apply.png)
    """,
    )
    w(
        "| N | netlab | `ip -batch` | shell script | ifstate | netlab / batch | shell / batch | ifstate / batch | shell / netlab | netlab per namespace |"
    )
    w("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        v = {tool: cold.get(tool, {}).get(n) for tool in TOOL_NAMES}
        per = f"{v['netlab'] / n * 1000:.1f} ms" if v["netlab"] else "—"
        w(
            f"| {n} | {seconds(v['netlab'])} | {seconds(v['batch'])} | {seconds(v['shell'])} | {seconds(v['ifstate'])} | "
            f"{ratio(v['netlab'], v['batch'])} | {ratio(v['shell'], v['batch'])} | {ratio(v['ifstate'], v['batch'])} | {ratio(v['shell'], v['netlab'])} | {per} |"
        )
    w("")
    w("Runs verified after the cold apply (topology, addresses, routes, pings; NAT and resolv.conf where the tool")
    w("does them):")
    w("")
    w("| N | " + " | ".join(TOOL_NAMES.values()) + " |")
    w("|---|" + "---|" * len(TOOL_NAMES))
    for n in sizes:
        w(f"| {n} | " + " | ".join(_verified(_runs(results, tool, n)) for tool in TOOL_NAMES) + " |")
    failures = [r for r in results["runs"] if not r.get("verify", {}).get("ok") or "error" in r]
    _failures(w, "Runs that failed or did not verify:", failures, "verify", lambda r: TOOL_NAMES[r["tool"]])
    w("")


def _failures(w: Any, heading: str, failures: list[dict[str, Any]], verdict: str, name: Any) -> None:
    """The runs that failed, each with its first problems."""
    if not failures:
        return
    w("")
    w(heading)
    w("")
    for r in failures:
        problems = "; ".join(p[:160] for p in r.get(verdict, {}).get("problems", [])[:3])
        w(f"- {name(r)} N={r['n']} run {r['rep'] + 1}: {r.get('error', '')[:300]} {problems}")


def _noop(results: dict[str, Any], w: Any) -> None:
    sizes = results["settings"]["sizes"]
    _section(
        w,
        "No-op reconcile: nothing changed",
        """
        `netlab apply` and `netlab plan` as processes (start-up, loading the files, observing, planning), then
        observe + plan alone (`benchmarks/netlab_phases.py`, connections kept, the median of passes 2..n of the
        first run) in two ways: reading every namespace again (what `netlab apply` and the daemon's start, reload
        and hourly-style resync do), and the daemon's event-fed pass when no event came (it re-reads only the
        namespaces its listeners heard changing, plus the namespace list, the sysctls, the file signatures and the
        ledger); and the kernel writes witnessed during the no-op `apply` (sum over all runs; 0 expected).
    """,
    )
    w(
        "| N | netlab apply | netlab plan | load files | observe + plan, all read again | of which plan | daemon pass, event-fed | netlab writes | ifstate apply | ifstate writes |"
    )
    w("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        runs = _runs(results, "netlab", n)
        phases = next(
            (r["phases"] for r in runs if isinstance(r.get("phases"), dict) and "observe_plan_ms" in r["phases"]), None
        )
        writes = [w for w in (noop_writes(r) for r in runs) if w is not None]
        if_runs = _runs(results, "ifstate", n)
        if_writes = [w for w in (noop_writes(r) for r in if_runs) if w is not None]
        w(
            f"| {n} | {seconds(_value(results, 'netlab', n, 'noop_apply_s'))} | {seconds(_value(results, 'netlab', n, 'noop_plan_s'))} | "
            f"{seconds(phases['load_ms'] / 1000) if phases else '—'} | {seconds(phases['observe_plan_ms'] / 1000) if phases else '—'} | "
            f"{seconds(phases['plan_only_ms'] / 1000) if phases else '—'} | "
            f"{seconds(phases['event_fed_pass_ms'] / 1000) if phases and 'event_fed_pass_ms' in phases else '—'} | {sum(writes) if writes else '—'} | "
            f"{seconds(_value(results, 'ifstate', n, 'noop_apply_s'))} | {sum(if_writes) if if_writes else '—'} |"
        )
    events = [
        (r, e)
        for r in results["runs"]
        if isinstance(r.get("noop_apply"), dict)
        for e in r["noop_apply"]["netlink_events"]
        if not is_bridge_notice(e)
    ]
    files = [
        (r, f)
        for r in results["runs"]
        if isinstance(r.get("noop_apply"), dict)
        for f in r["noop_apply"]["files_changed"]
    ]
    if events or files:
        w("")
        w("Writes seen during a no-op (first few):")
        w("")
        for r, e in events[:8]:
            w(f"- {TOOL_NAMES[r['tool']]} N={r['n']}: `{e[:160]}`")
        for r, f in files[:4]:
            w(f"- {TOOL_NAMES[r['tool']]} N={r['n']}: rewrote {f}")
    w("")


def _edit(results: dict[str, Any], w: Any) -> None:
    sizes = results["settings"]["sizes"]
    _section(
        w,
        "One change among N: the middle namespace's address edited",
        """
        Wall time of `netlab apply` (and `ifstatecli apply`) after the file changed, and what the kernel saw change
        (`ip monitor` in the root namespace, ns1, the edited namespace and nsN; NAT table; resolver files).
        For comparison, by hand this is three `ip` commands (delete the old address, add the new one, put back the
        default route the kernel drops with the namespace's last IPv4 address).

        *only that object changed* means the witnessed writes are the edited namespace's old address going, its
        new address coming and its default route put back, and nothing else;
        *verified* checks that the namespace then holds exactly the new address.
    """,
    )
    w("| N | netlab | only that object changed | verified | ifstate | only that object changed | verified |")
    w("|---|---|---|---|---|---|---|")
    examples: dict[str, list[str]] = {}
    for n in sizes:
        runs = _runs(results, "netlab", n)
        only = [only_the_edit(r) for r in runs if "edit" in r]
        if_runs = [r for r in _runs(results, "ifstate", n) if "edit" in r]
        if_only = [only_the_edit(r) for r in if_runs]
        w(
            f"| {n} | {seconds(_value(results, 'netlab', n, 'edit_s'))} | {'yes' if only and all(only) else ('no' if only else '—')} "
            f"({sum(only)}/{len(only)} runs) | {_verified(runs, 'edit_verify')} | {seconds(_value(results, 'ifstate', n, 'edit_s'))} | "
            f"{'—' if not if_only else ('yes' if all(if_only) else 'no') + f' ({sum(if_only)}/{len(if_only)} runs)'} | {_verified(if_runs, 'edit_verify')} |"
        )
        for tool, group in (("netlab", runs), ("ifstate", if_runs)):
            for r in group:
                if "edit" in r and tool not in examples:
                    examples[tool] = writes_seen(r["edit"]["netlink_events"])
    for tool, described in examples.items():
        w("")
        w(
            f"What {TOOL_NAMES[tool]}'s edit did (first run at the smallest size): "
            + ("; ".join(described[:12]) or "nothing seen")
            + ("; …" if len(described) > 12 else "")
        )
    w("")


def _daemon(results: dict[str, Any], w: Any) -> None:
    if not results["daemon"]:
        return
    sizes = results["settings"]["sizes"]
    debounce = results["settings"]["debounce_s"]
    _section(
        w,
        "The daemon (`netlab daemon --debounce 0.25`)",
        f"""
        Latencies are from the act to the kernel showing the answer, seen by a netlink listener opened in the
        namespace beforehand (`benchmarks/probe.py`). *Edit*: an edited copy of the file is renamed over it
        (editor-style), the middle namespace's address changes, and back again: time to the new address, and that
        minus the {debounce * 1000:.0f} ms debounce. *Drift*: an address deleted with netlink (in the middle namespace
        and in ns1), one veth deleted in the root namespace, and the middle namespace removed as `ip netns del` does
        (the listener then opened in the new one as soon as it is bound): time until the address and the default
        route are back. Peak RSS is VmHWM over the whole run (its cold start included); idle CPU over 3 s with nothing
        happening.
    """,
    )
    w(
        "| N | ready from empty | edit: to the address | after the debounce | drift, address: back | route back | drift, veth: route back | drift, namespace: route back | peak RSS | threads | idle CPU | verified |"
    )
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        runs = [d for d in results["daemon"] if d["n"] == n]
        if not runs:
            continue
        rename = median(_samples(results, n, "rename", "address_s"))
        rss = [d["memory_kb"]["VmHWM"] / 1024 for d in runs if "memory_kb" in d]
        threads = [d["memory_kb"].get("Threads") for d in runs if "memory_kb" in d]
        idle = median([d.get("idle_cpu_pct") for d in runs])  # type: ignore[misc]
        verified = sum(1 for d in runs if d.get("verify", {}).get("ok") and d.get("final_verify", {}).get("ok"))
        w(
            f"| {n} | {seconds(median([d.get('ready_s') for d in runs]))} | {seconds(rename)} | "  # type: ignore[misc]
            f"{seconds(rename - debounce) if rename is not None else '—'} | {_drift(results, n, 'drift-addr', 'address_s')} | "
            f"{_drift(results, n, 'drift-addr', 'route_s')} | {_drift(results, n, 'drift-link', 'route_s')} | "
            f"{_drift(results, n, 'drift-netns', 'route_s')} | "
            f"{f'{max(rss):.0f} MiB' if rss else '—'} | {max(t for t in threads if t) if any(threads) else '—'} | "
            f"{'—' if idle is None else f'{idle:.0f} %'} | {verified}/{len(runs)} |"
        )
    accepted = {n: median(_samples(results, n, "rename", "log_accepted_s")) for n in sizes}
    if any(v is not None for v in accepted.values()):
        w("")
        w(
            'From the daemon\'s own log, the rename to "generation accepted" (debounce + reading the files): '
            + ", ".join(f"N={n}: {seconds(v)}" for n, v in accepted.items() if v is not None)
            + "."
        )
    failures = [
        d
        for d in results["daemon"]
        if "error" in d or not d.get("verify", {}).get("ok") or not d.get("final_verify", {}).get("ok")
    ]
    if failures:
        w("")
        w("Daemon runs that failed or did not verify at the end:")
        w("")
    for d in failures:
        problems = "; ".join(
            p[:160] + ("…" if len(p) > 160 else "")
            for p in (d.get("final_verify") or d.get("verify") or {}).get("problems", [])[:3]
        )
        w(f"- N={d['n']} run {d['rep'] + 1}: {d.get('error', '')[:300]} {problems}")
    w("")


def _drift(results: dict[str, Any], n: int, kind: str, key: str) -> str:
    found = _samples(results, n, kind, key)
    missed = _missed(results, n, (kind,))
    if missed and not found:
        return f"never ({missed}/{missed} timed out)"
    return seconds(median(found)) + (f" ({missed} timed out)" if missed else "")


NAT_NAMES = {
    "nftables": "netlab, nftables backend",
    "iptables": "netlab, legacy iptables backend",
    "nft-f": "`nft -f`, one file per namespace (the floor)",
}


def _nat(results: dict[str, Any], w: Any) -> None:
    runs = results.get("nat") or []
    if not runs:
        return
    shape = results["settings"].get("nat_rules", {})
    rules, namespaces = shape.get("rules"), shape.get("namespaces")
    _section(
        w,
        f"NAT: {rules} port forwards across {namespaces} namespaces",
        f"""
        Each namespace gets its share of {rules} `dnat` rules (netlab writes each as two kernel rules, the
        prerouting one and the host's own output copy; the `nft -f` files hold the same), into namespaces
        made before the clock starts: the figures are the NAT's alone. netlab runs with
        `--nat-backend nftables` (one nftables transaction per namespace, in process) and
        `--nat-backend iptables` (a python-iptables worker process per namespace); the floor is
        `ip netns exec nsI nft -f FILE` for each namespace, one `nft` process each. Every run is checked:
        each namespace holds exactly its rules in the backend measured and none in the other
        (`benchmarks/nat_rules.py`, with `nft` and `iptables-legacy-save`).
        """,
    )
    floor = median([r.get("cold_s") for r in runs if r["tool"] == "nft-f" and r.get("verify", {}).get("ok")])
    w("| tool | verified | cold apply | × `nft -f` | no-op apply | no-op plan |")
    w("|---|---|---|---|---|---|")
    for tool, name in NAT_NAMES.items():
        mine = [r for r in runs if r["tool"] == tool]
        if not mine:
            continue
        good = [r for r in mine if r.get("verify", {}).get("ok")]
        cold = median([r.get("cold_s") for r in good])
        noop = median([r.get("noop_apply_s") for r in good])
        plan = median([r.get("noop_plan_s") for r in good])
        w(
            f"| {name} | {_verified(mine)} | {seconds(cold)} | {ratio(cold, floor)} | "
            f"{seconds(noop) if tool != 'nft-f' else '—'} | {seconds(plan) if tool != 'nft-f' else '—'} |"
        )
    nft = median([r.get("cold_s") for r in runs if r["tool"] == "nftables" and r.get("verify", {}).get("ok")])
    legacy = median([r.get("cold_s") for r in runs if r["tool"] == "iptables" and r.get("verify", {}).get("ok")])
    if nft and legacy:
        w("")
        w(f"The nftables backend's cold apply takes {ratio(nft, legacy)} the legacy backend's time.")
    errors = [f"{r['tool']} run {r['rep'] + 1}: {r['error'][:200]}" for r in runs if r.get("error")]
    for error in errors:
        w(f"- error: {error}")
    w("")


STARTUP_NAMES = {
    "help_s": "`netlab --help`",
    "validate_empty_s": "`netlab validate` on an empty config dir",
    "plan_empty_s": "`netlab plan` on an empty config dir",
}


REMOVAL_NAMES = {
    "destroy": "`netlab destroy --yes`",
    "prune": "prune: the file removed, `netlab apply --allow-empty`",
    "one": "`ip`, one command per object",
    "netns": "`ip -batch` deleting the namespaces",
    "group": "`ip link del group` and `ip -batch` deleting the namespaces",
}
IP_WAYS = ("one", "netns", "group")


def removal_medians(results: dict[str, Any]) -> dict[str, dict[int, float]]:
    """Median seconds of each way of removing it all, by N, of runs that left
    nothing of the topology and everything foreign."""
    found: dict[str, dict[int, float]] = {}
    for record in results.get("removal", []):
        if record.get("removed", {}).get("ok") and "remove_s" in record:
            found.setdefault(record["way"], {}).setdefault(record["n"], []).append(record["remove_s"])  # type: ignore[attr-defined]
    return {way: {n: statistics.median(v) for n, v in by_n.items()} for way, by_n in found.items()}  # type: ignore[arg-type]


def fastest_ip_way(removals: dict[str, dict[int, float]], n: int) -> tuple[str, float] | None:
    ways = [(way, removals[way][n]) for way in IP_WAYS if n in removals.get(way, {})]
    return min(ways, key=lambda pair: pair[1]) if ways else None


def _removal(results: dict[str, Any], w: Any) -> None:
    records = results.get("removal") or []
    if not records:
        return
    removals = removal_medians(results)
    sizes = sorted({r["n"] for r in records})
    _section(
        w,
        "Removing it all: `netlab destroy`, a prune, and the `ip` ways",
        """
        The whole topology removed again, timed from the command's start until the kernel shows no veth left
        on the host (a namespace is torn down after `ip netns del` returns, its veth's host end with it): netlab
        after a `netlab apply`, the `ip` ways after `batch.sh`. A foreign namespace with a resolver file and a
        foreign bridge with an address are made beforehand; every run is checked to leave them and nothing
        else (`ip`, `nft`, /etc/netns). The kernel deletes a link in some 20 ms when alone, most of it waiting
        for readers of the device list (synchronize_net); links deleted together share the wait, which is why
        one command per object is slow. netlab deletes the links of a namespace in one group deletion and the
        namespaces after them.
        """,
    )
    w(
        "| N | "
        + " | ".join(REMOVAL_NAMES.values())
        + " | destroy / fastest `ip` | prune / fastest `ip` | left everything foreign |"
    )
    w("|---|" + "---|" * (len(REMOVAL_NAMES) + 3))
    for n in sizes:
        fastest = fastest_ip_way(removals, n)
        cells = [seconds(removals.get(way, {}).get(n)) for way in REMOVAL_NAMES]
        mine = [r for r in records if r["n"] == n]
        good = sum(1 for r in mine if r.get("removed", {}).get("ok"))
        floor = fastest[1] if fastest else None
        w(
            f"| {n} | " + " | ".join(cells) + f" | {ratio(removals.get('destroy', {}).get(n), floor)} | "
            f"{ratio(removals.get('prune', {}).get(n), floor)} | {good}/{len(mine)} |"
        )
    failures = [r for r in records if "error" in r or not r.get("removed", {}).get("ok")]
    _failures(w, "Runs that failed or left something behind:", failures, "removed", lambda r: r["way"])
    w("")


def _worst_ratio(
    rows: list[tuple[str, str, str, str]],
    target: str,
    mine: dict[int, float],
    theirs: dict[int, float],
    from_n: int,
    bound: float,
    name: str,
) -> None:
    """A row for "netlab within `bound` × theirs at every N from `from_n`": the
    ratio at each N, judged by the worst."""
    sizes = sorted(n for n in set(mine) & set(theirs) if n >= from_n)
    if not sizes:
        rows.append((target, "not measured", "—", "—"))
        return
    worst = max(mine[n] / theirs[n] for n in sizes)
    measured = ", ".join(
        f"N={n}: {seconds(mine[n])} vs {seconds(theirs[n])} ({mine[n] / theirs[n]:.2f}×)" for n in sizes
    )
    rows.append((target, measured, f"netlab / {name} ≤ {worst:.2f}", "met" if worst <= bound else "not met"))


def _targets_19(results: dict[str, Any], w: Any) -> None:
    """The targets of issue 19, each measured in this run."""
    rows: list[tuple[str, str, str, str]] = []
    cold = cold_medians(results)
    startup = results.get("startup") or {}
    python = median(startup.get("python_s", []))
    for key, bound in (("validate_empty_s", 3), ("plan_empty_s", 3), ("help_s", 2)):
        name = STARTUP_NAMES[key]
        value = median(startup.get(key, []))
        if value is None or python is None:
            rows.append((f"{name} ≤ {bound} × `python -c pass`", "not measured", "—", "—"))
            continue
        rows.append(
            (
                f"{name} ≤ {bound} × `python -c pass`",
                f"{seconds(value)} vs {seconds(python)}",
                f"{value / python:.2f}×",
                "met" if value <= bound * python else "not met",
            )
        )
    netlab, shell, batch = cold.get("netlab", {}), cold.get("shell", {}), cold.get("batch", {})
    _worst_ratio(rows, "cold apply faster than the shell script at every N", netlab, shell, 0, 1.0, "shell")
    _worst_ratio(rows, "cold apply ≤ 1.0 × `ip -batch` from N = 100 up", netlab, batch, 100, 1.0, "`ip -batch`")
    if 500 in netlab and 500 in shell:
        rows.append(
            (
                "cold apply at N = 500 ≥ 10 × faster than the shell script",
                f"{seconds(netlab[500])} vs {seconds(shell[500])}",
                f"{shell[500] / netlab[500]:.1f}× faster",
                "met" if shell[500] >= 10 * netlab[500] else "not met",
            )
        )
    removals = removal_medians(results)
    fastest = fastest_ip_way(removals, 1000)
    for way in ("destroy", "prune"):
        value = removals.get(way, {}).get(1000)
        if value is None or fastest is None:
            rows.append((f"{REMOVAL_NAMES[way]} at N = 1000 ≤ 1.0 × the fastest `ip` way", "not measured", "—", "—"))
            continue
        rows.append(
            (
                f"{REMOVAL_NAMES[way]} at N = 1000 ≤ 1.0 × the fastest `ip` way",
                f"{seconds(value)} vs {seconds(fastest[1])} ({REMOVAL_NAMES[fastest[0]]}; one command per object: "
                f"{seconds(removals.get('one', {}).get(1000))})",
                f"{value / fastest[1]:.2f}×",
                "met" if value <= fastest[1] else "not met",
            )
        )
    kept = [r for r in results.get("removal", []) if r["way"] in ("destroy", "prune")]
    if kept:
        bad = [r for r in kept if not r.get("removed", {}).get("ok")]
        rows.append(
            (
                "nothing foreign removed",
                f"{len(kept) - len(bad)} of {len(kept)} netlab removals left the foreign namespace, link, address and file",
                "—",
                "met" if not bad else "not met",
            )
        )
    top = max(results["settings"]["sizes"])
    if top >= 5000:
        phases = [
            r["phases"]
            for r in _runs(results, "netlab", top)
            if isinstance(r.get("phases"), dict) and "event_fed_pass_ms" in r["phases"]
        ]
        if phases:
            ms = median([p["event_fed_pass_ms"] for p in phases]) or 0
            rows.append(
                (
                    f"N = {top}: no-op daemon pass ≤ 200 ms",
                    f"{ms:.0f} ms (event-fed)",
                    f"{ms / 200:.2f}×",
                    "met" if ms <= 200 else "not met",
                )
            )
        renames = _samples(results, top, "rename", "address_s")
        if renames:
            after = (median(renames) or 0) - results["settings"]["debounce_s"]
            rows.append(
                (
                    f"N = {top}: one edit ≤ 50 ms after the debounce",
                    f"{after * 1000:.0f} ms",
                    f"{after / 0.05:.2f}×",
                    "met" if after <= 0.05 else "not met",
                )
            )
        drifts = _samples(results, top, "drift-addr", "route_s") + _samples(results, top, "drift-link", "route_s")
        if drifts:
            value = median(drifts) or 0
            rows.append(
                (
                    f"N = {top}: drift repaired ≤ 200 ms",
                    f"{seconds(value)} (address and veth deletions)",
                    f"{value / 0.2:.2f}×",
                    "met" if value <= 0.2 else "not met",
                )
            )
        rss = [d["memory_kb"]["VmHWM"] / 1024 for d in results["daemon"] if d["n"] == top and "memory_kb" in d]
        if rss:
            megabytes = max(rss) * 1024 * 1024 / 1e6
            rows.append(
                (
                    f"N = {top}: daemon peak RSS ≤ 250 MB",
                    f"{max(rss):.0f} MiB = {megabytes:.0f} MB",
                    f"{megabytes / 250:.2f}×",
                    "met" if megabytes <= 250 else "not met",
                )
            )
        if top in netlab:
            rows.append(
                (
                    f"N = {top}: cold apply",
                    f"{seconds(netlab[top])} (`ip -batch`: {seconds(batch.get(top))})",
                    ratio(netlab[top], batch.get(top)),
                    "—",
                )
            )
        per = {n: netlab[n] / n for n in sorted(netlab) if n >= 100}
        if 100 in per and top in per:
            growth = per[top] / per[100]
            rows.append(
                (
                    f"linear: cold apply per namespace within 25 % from N = 100 to {top}",
                    ", ".join(f"N={n}: {v * 1000:.1f} ms" for n, v in per.items()),
                    f"{growth:.2f}×",
                    "met" if 0.75 <= growth <= 1.25 else "not met",
                )
            )
    if results.get("nat"):
        rows.append(("the nftables backend's NAT figures in the same report", "see the NAT section", "—", "met"))
    _target_table(w, "Targets (issue 19)", rows)


def _startup(results: dict[str, Any], w: Any) -> None:
    startup = results.get("startup")
    if not startup:
        return
    w("## Command-line start-up")
    w("")
    w("| command | median |")
    w("|---|---|")
    w(f"| `python -c pass` (netlab's interpreter, for scale) | {seconds(median(startup['python_s']))} |")
    python = median(startup["python_s"])
    for key, name in STARTUP_NAMES.items():
        if startup.get(key):
            w(f"| {name} | {seconds(median(startup[key]))} ({ratio(median(startup[key]), python)} `pass`) |")
    w("")
    w(
        "What `netlab plan` spends importing, by package (`python -X importtime`, own time of each package's modules): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in startup.get("imports", [])[:10])
        + "."
    )
    w("")


def _profiles(results: dict[str, Any], w: Any) -> None:
    profiles = results.get("profiles")
    if not profiles:
        return
    n = results["settings"]["profile_size"]
    w(f"## Where netlab's time goes (py-spy, N = {n})")
    w("")
    w(
        f"Wall-clock samples ({results['settings']['profile_rate']} Hz, idle included) of the netlab process's main thread, one"
    )
    w("`netlab apply` from nothing and one no-op, under py-spy (which slows it a little). The phase is the first of")
    w("imports / load / observe + plan / apply / verify met from the root of each stack.")
    for name, title in (("cold", "cold apply"), ("noop", "no-op apply")):
        p = profiles.get(name)
        if not p:
            continue
        w("")
        w(f"### {title}: {p['wall_s']:.2f} s sampled (`{p['file']}`)")
        w("")
        w("| phase | time | share |")
        w("|---|---|---|")
        for phase, s, share in p["phases"]:
            w(f"| {phase} | {seconds(s)} | {share * 100:.0f} % |")
        w("")
        w(
            "By package (own time): "
            + ", ".join(f"{pkg} {share * 100:.0f} %" for pkg, _, share in p["packages"][:8])
            + "."
        )
        if p.get("iptables_worker_s"):
            w(f"The iptables worker processes ran {seconds(p['iptables_worker_s'])} in all (inside the phases above).")
        w("")
        w("Top functions by own time:")
        w("")
        w("| function | time | share |")
        w("|---|---|---|")
        for function, s, share in p["own_time"][:10]:
            w(f"| `{function}` | {seconds(s)} | {share * 100:.0f} % |")
        w("")
        for phase, entries in p["inclusive_by_phase"].items():
            share_of_phase = next((sh for ph, _, sh in p["phases"] if ph == phase), 0)
            if share_of_phase < 0.08 or not entries:
                continue
            w(
                f"Inside *{phase}* ({share_of_phase * 100:.0f} %), the costliest calls (time including callees): "
                + "; ".join(f"`{fn}` {seconds(s)}" for fn, s, _ in entries[:8])
                + "."
            )
            w("")
