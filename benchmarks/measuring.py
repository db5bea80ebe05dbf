"""What one benchmark run measures, tool by tool, each run in a fresh sandbox:
the cold apply and its verification for every tool, then for netlab and ifstate
the no-op (witnessed by `ip monitor`) and one edited address, for netlab's daemon
the latencies of an edit and of drift repairs and its memory, and netlab's CLI
start-up. Called by `benchmarks/run`; stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox import Background, Sandbox, sandbox, wait_until_quiet
from topology import PORTS_PER_BRIDGE, UNTIL_GONE, Topology

HERE = Path(__file__).resolve().parent
VERIFY = str(HERE / "verify.py")
PROBE = str(HERE / "probe.py")
PHASES = str(HERE / "netlab_phases.py")
CONFIG = "/etc/netlab.d/topology.yaml"
DEBOUNCE = 0.25
WITNESS_OBJECTS = ("link", "address", "route")
PROBE_LINK = "bmprobe"
MONITOR_BUFFER = 32 << 20
MONITOR_ATTEMPTS = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Tools:
    """Where the measured programs are."""

    netlab: str  # the `netlab` entry point, in netlab's own environment
    netlab_python: str  # that environment's interpreter
    ifstatecli: str | None  # in the benchmark environment
    py_spy: str | None
    python: str = sys.executable  # runs verify.py and probe.py inside the sandbox


def log(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


# -- judging --------------------------------------------------------------------------


def verify(
    box: Sandbox, tools: Tools, topology: Topology, edited: bool = False, nat_dns: bool = True
) -> dict[str, Any]:
    argv = [tools.python, VERIFY, str(topology.n)]
    if edited:
        argv.append("--edited")
    if nat_dns and topology.nat:
        argv.append("--nat")
    if nat_dns and topology.dns:
        argv.append("--dns")
    result = box.run(*argv, check=False, timeout=600)
    try:
        verdict: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        verdict = {"ok": False, "problems": [f"verify.py failed: {result.stderr.strip()[-500:]}"]}
    return verdict


def _background(line: str) -> bool:
    """`ip monitor` lines that are nobody's write: the witness's own probe, IPv6
    link-local addresses and their routes (DAD), and the bridge's port notices."""
    return PROBE_LINK in line or "fe80:" in line or "ff00::/8" in line or is_bridge_notice(line)


def is_bridge_notice(line: str) -> bool:
    """The bridge's own notices about its ports (a port's state, seen about 15 s
    after it comes up, and again later) are link messages without a qdisc: a
    change made by a program comes with the link's full attributes."""
    return "Deleted" not in line and " master " in line and " qdisc " not in line


class Witness:
    """Records every kernel write while a block runs: netlink changes (`ip monitor`)
    in the root namespace and in a sample of namespaces, changes to the NAT
    rules (nftables and the legacy nat table), and rewritten resolv.conf /
    hosts files. A probe event proves that
    each monitor listens before the block starts."""

    def __init__(self, box: Sandbox, namespaces: list[str]) -> None:
        self.box = box
        self.namespaces = namespaces
        self.events: list[str] = []
        self.nat_changed = False
        self.files_changed: list[str] = []

    def __enter__(self) -> Witness:
        self._monitors = [(netns, *self._monitor(netns)) for netns in (None, *self.namespaces)]
        for netns in (None, *self.namespaces):
            ns = [] if netns is None else ["-n", netns]
            probe = (
                f"link add {PROBE_LINK} type bridge\naddr add 192.0.2.254/32 dev {PROBE_LINK}\n"
                f"link set {PROBE_LINK} up\nlink del {PROBE_LINK}\n"
            )
            self.box.run("ip", *ns, "-batch", "-", input=probe)
        time.sleep(0.3)
        self._nat = self._nat_rules()
        self._files = self._file_times()
        return self

    def _monitor(self, netns: str | None) -> tuple[Background, Any]:
        """`ip monitor` in the namespace, listening. Into a file, with a large
        receive buffer: thousands of bridge ports' notices would fill a pipe
        (and block the monitor) or its socket before the probe is heard. ip
        reads the link list as it starts and gives up when the list changed
        meanwhile ("Dump was interrupted"), as it keeps doing for a while after
        thousands of links came up: it is started again until it stays."""
        ns = [] if netns is None else ["-n", netns]
        for _ in range(MONITOR_ATTEMPTS):
            out = tempfile.TemporaryFile(mode="w+")
            monitor = self.box.spawn(
                "ip", *ns, "-rc", str(MONITOR_BUFFER), "-o", "monitor", *WITNESS_OBJECTS, stdout=out
            )
            time.sleep(0.2)
            if monitor.poll() is None:
                return monitor, out
            monitor.stop()
            out.close()
        raise RuntimeError(f"ip monitor in {netns or 'root'} would not start: {MONITOR_ATTEMPTS} attempts")

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        for netns, monitor, out in self._monitors:
            monitor.stop()
            out.seek(0)
            lines = out.read().splitlines()
            out.close()
            if not any(PROBE_LINK in line for line in lines):
                raise RuntimeError(f"the witness in {netns or 'root'} saw nothing: it was not listening")
            self.events += [f"{netns or 'root'}: {line.strip()}" for line in lines if not _background(line)]
        self.nat_changed = self._nat_rules() != self._nat
        after = self._file_times()
        self.files_changed = sorted(
            path for path in set(after) | set(self._files) if after.get(path) != self._files.get(path)
        )

    def _nat_rules(self) -> list[str]:
        """The NAT rules and chains in nftables (any table: netlab's, or
        iptables-nft's) and in the legacy nat table, without counters; the
        legacy table only where it exists (reading it with iptables-legacy-save
        would create it)."""
        listed = self.box.run("nft", "list", "ruleset", check=False).stdout
        rules = [re.sub(r"counter packets \d+ bytes \d+", "counter", line) for line in listed.splitlines()]
        names = self.box.run("cat", "/proc/net/ip_tables_names", check=False).stdout.split()
        if "nat" in names:
            saved = self.box.run("iptables-legacy-save", "-t", "nat").stdout
            rules += [re.sub(r"\[\d+:\d+\]", "", line) for line in saved.splitlines() if line.startswith((":", "-A"))]
        return rules

    def _file_times(self) -> dict[str, int]:
        found = {}
        paths = [self.box.path("/etc/resolv.conf"), self.box.path("/etc/hosts")]
        netns_dir = self.box.path("/etc/netns")
        if netns_dir.is_dir():
            for entry in netns_dir.iterdir():
                paths += [entry / "resolv.conf", entry / "hosts"]
        for path in paths:
            try:
                found[str(path).split("/root", 1)[1]] = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
        return found

    @property
    def writes(self) -> int:
        return len(self.events) + int(self.nat_changed) + len(self.files_changed)

    def summary(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "netlink_events": self.events,
            "nat_changed": self.nat_changed,
            "files_changed": self.files_changed,
            "watched": ["root", *self.namespaces],
        }


def sample_namespaces(topology: Topology) -> list[str]:
    return sorted({f"ns{i}" for i in (1, topology.edited, topology.n)}, key=lambda name: int(name[2:]))


# -- the baselines ------------------------------------------------------------------------


def run_script(tools: Tools, topology: Topology, workdir: Path, script: str) -> dict[str, Any]:
    """`ip -batch` (batch.sh) or the shell script (shell.sh): cold apply only; neither
    can be run a second time over what it made."""
    with sandbox() as box:
        seconds, result = box.timed(str(workdir / script), check=False)
        record: dict[str, Any] = {"cold_s": seconds}
        if result.returncode != 0:
            record["error"] = result.stderr.strip()[-1000:]
        record["verify"] = verify(box, tools, topology)
    return record


# -- removing it all: netlab destroy, a prune, and the `ip` ways -----------------------------

FOREIGN_NETNS = "foreign"
FOREIGN_LINK = "foreign0"
FOREIGN_ADDRESS = "192.0.2.1/24"


def _add_foreign(box: Sandbox) -> None:
    """What is not the tools' own and must outlive the removal: a namespace with
    a resolver file, a bridge on the host with an address."""
    box.run("ip", "netns", "add", FOREIGN_NETNS)
    box.run("ip", "link", "add", FOREIGN_LINK, "type", "bridge")
    box.run("ip", "addr", "add", FOREIGN_ADDRESS, "dev", FOREIGN_LINK)
    box.run("mkdir", "-p", f"/etc/netns/{FOREIGN_NETNS}")
    box.write(f"/etc/netns/{FOREIGN_NETNS}/resolv.conf", "nameserver 192.0.2.53\n")


def _judge_removed(box: Sandbox, tools: Tools, topology: Topology) -> dict[str, Any]:
    """Everything of the topology gone, what was foreign still there, asked of
    the kernel by `ip`, of the NAT tables by `nft` (and iptables-legacy-save),
    and of /etc/netns."""
    problems = []
    namespaces = [line.split()[0] for line in box.run("ip", "netns", "list", check=False).stdout.splitlines() if line]
    if namespaces != [FOREIGN_NETNS]:
        problems.append(f"namespaces left: {namespaces[:10]}")
    links = json.loads(box.run("ip", "-j", "addr", "show").stdout)
    names = sorted(link["ifname"] for link in links)
    if names != sorted(["lo", FOREIGN_LINK]):
        problems.append(f"host links: {names[:10]}{' ...' if len(names) > 10 else ''}")
    foreign = next((link for link in links if link["ifname"] == FOREIGN_LINK), {})
    if FOREIGN_ADDRESS.split("/")[0] not in [a.get("local") for a in foreign.get("addr_info", [])]:
        problems.append(f"{FOREIGN_LINK} lost its address")
    left = sorted(entry.name for entry in box.path("/etc/netns").iterdir())
    if left != [FOREIGN_NETNS] or not box.path(f"/etc/netns/{FOREIGN_NETNS}/resolv.conf").exists():
        problems.append(f"/etc/netns holds {left[:10]}")
    if topology.nat:
        verdict = box.run(tools.python, VERIFY, "--masquerade-rules", check=False).stdout.strip()
        if verdict != "[]":
            problems.append(f"masquerade rules left: {verdict}")
    return {"ok": not problems, "problems": problems}


def run_removal(tools: Tools, topology: Topology, workdir: Path, way: str) -> dict[str, Any]:
    """One way of removing the whole topology, timed from the command's start to
    the kernel showing no veth left on the host: "destroy" (`netlab destroy
    --yes`) and "prune" (the file removed, `netlab apply --allow-empty`) after
    a `netlab apply`; "one", "netns", "group" the scripts of
    `Topology.remove_sh` after batch.sh. A foreign namespace and link are
    there throughout, and must stay."""
    record: dict[str, Any] = {}
    with sandbox() as box:
        if way in ("destroy", "prune"):
            box.write(CONFIG, (workdir / "netlab" / "topology.yaml").read_text())
            built = box.run(tools.netlab, "apply", check=False, timeout=3600)
        else:
            built = box.run(str(workdir / "batch.sh"), check=False, timeout=3600)
        if built.returncode != 0:
            record["error"] = f"building failed: {built.stderr.strip()[-1000:]}"
            return record
        _add_foreign(box)
        wait_until_quiet(cap=30)
        if way == "destroy":
            command = f"{tools.netlab} destroy --yes >/dev/null && {UNTIL_GONE}"
        elif way == "prune":
            command = f"rm {CONFIG} && {tools.netlab} apply --allow-empty >/dev/null && {UNTIL_GONE}"
        else:
            command = str(workdir / f"remove-{way}.sh")
        seconds, result = box.timed("bash", "-c", command, check=False)
        record["remove_s"] = seconds
        if result.returncode != 0:
            record["error"] = result.stderr.strip()[-1000:]
        record["removed"] = _judge_removed(box, tools, topology)
    return record


# -- netlab, the command line --------------------------------------------------------------


def run_netlab(tools: Tools, topology: Topology, workdir: Path, phases: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {}
    sample = sample_namespaces(topology)
    with sandbox() as box:
        box.write(CONFIG, (workdir / "netlab" / "topology.yaml").read_text())
        seconds, result = box.timed(tools.netlab, "apply", check=False)
        record["cold_s"] = seconds
        if result.returncode != 0:
            record["error"] = result.stderr.strip()[-1000:]
            record["verify"] = verify(box, tools, topology)
            return record
        record["verify"] = verify(box, tools, topology)
        try:
            _netlab_after_cold(box, tools, topology, workdir, sample, phases, record)
        except RuntimeError as error:  # a witness that heard nothing: what was measured stays
            record["error"] = f"{type(error).__name__}: {error}"
    return record


def _netlab_after_cold(
    box: Sandbox,
    tools: Tools,
    topology: Topology,
    workdir: Path,
    sample: list[str],
    phases: bool,
    record: dict[str, Any],
) -> None:
    """The no-op, the plan, the phases and the edit, after a cold apply."""
    if topology.n > PORTS_PER_BRIDGE:
        # thousands of bridge ports announce their state some 15 s after they
        # came up: a flood that would drown the witnesses' probe
        time.sleep(20)
    with Witness(box, sample) as witness:
        seconds, result = box.timed(tools.netlab, "apply", check=False)
    record["noop_apply_s"] = seconds
    record["noop_apply"] = witness.summary()
    record["noop_apply_said"] = result.stdout.strip().splitlines()[-1:] + result.stderr.strip().splitlines()[-3:]

    seconds, result = box.timed(tools.netlab, "plan", "--detailed-exitcode", check=False)
    record["noop_plan_s"] = seconds
    record["noop_plan_exit"] = result.returncode

    if phases:
        result = box.run(tools.netlab_python, PHASES, check=False, timeout=1800)
        try:
            record["phases"] = json.loads(result.stdout)
        except json.JSONDecodeError:
            record["phases"] = {"error": result.stderr.strip()[-1000:]}

    box.write(CONFIG, (workdir / "netlab-edited" / "topology.yaml").read_text())
    with Witness(box, sample) as witness:
        seconds, result = box.timed(tools.netlab, "apply", check=False)
    record["edit_s"] = seconds
    record["edit"] = witness.summary()
    record["edit_plan"] = [line for line in result.stdout.splitlines() if line[:2] in ("+ ", "- ", "~ ")]
    if result.returncode != 0:
        record["edit_error"] = result.stderr.strip()[-1000:]
    record["edit_verify"] = verify(box, tools, topology, edited=True)


# -- ifstate -----------------------------------------------------------------------------------


def run_ifstate(tools: Tools, topology: Topology, workdir: Path) -> dict[str, Any]:
    """ifstate expresses the links, addresses, routes and forwarding, not the NAT
    rule or the resolv.conf files: those are left out of its run and its check."""
    assert tools.ifstatecli is not None
    record: dict[str, Any] = {}
    sample = sample_namespaces(topology)
    ifstate = [tools.ifstatecli, "-q", "-c"]
    with sandbox() as box:
        seconds, result = box.timed(*ifstate, str(workdir / "ifstate.yaml"), "apply", check=False)
        record["cold_s"] = seconds
        if result.returncode != 0:
            record["error"] = result.stderr.strip()[-1000:]
        record["verify"] = verify(box, tools, topology, nat_dns=False)
        if result.returncode != 0:
            return record
        with Witness(box, sample) as witness:
            seconds, result = box.timed(*ifstate, str(workdir / "ifstate.yaml"), "apply", check=False)
        record["noop_apply_s"] = seconds
        record["noop_apply"] = witness.summary()
        with Witness(box, sample) as witness:
            seconds, result = box.timed(*ifstate, str(workdir / "ifstate-edited.yaml"), "apply", check=False)
        record["edit_s"] = seconds
        record["edit"] = witness.summary()
        if result.returncode != 0:
            record["edit_error"] = result.stderr.strip()[-1000:]
        record["edit_verify"] = verify(box, tools, topology, edited=True, nat_dns=False)
    return record


# -- netlab's daemon ------------------------------------------------------------------------------


def _cpu_ticks(box: Sandbox, pid: int) -> int:
    text = box.path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def wait_idle(box: Sandbox, pid: int, window: float = 1.0, busy_below: float = 0.05, cap: float = 600.0) -> float:
    """Waits until the daemon has used less than `busy_below` of a CPU for `window`
    seconds (its event threads poll, so it is never at zero); returns the wait."""
    began = time.monotonic()
    while time.monotonic() - began < cap:
        before = _cpu_ticks(box, pid)
        time.sleep(window)
        if (_cpu_ticks(box, pid) - before) / CLK_TCK < busy_below * window:
            break
    return time.monotonic() - began


def _status(box: Sandbox) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads(box.path("/run/netlab/status.json").read_text())
        return status
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _probe(box: Sandbox, tools: Tools, *args: str) -> dict[str, Any]:
    result = box.run(tools.python, PROBE, *args, check=False, timeout=600)
    try:
        answer: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        answer = {"error": result.stderr.strip()[-1000:]}
    return answer


def _memory(box: Sandbox, pid: int) -> dict[str, int]:
    found = {}
    for line in box.path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "Threads"):
            found[key] = int(value.split()[0])
    return found


def _log_times(path: Path) -> list[tuple[float, dict[str, Any]]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
            stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        events.append((stamp, event))
    return events


def run_daemon(tools: Tools, topology: Topology, workdir: Path, rep: int) -> dict[str, Any]:
    """The daemon from empty to ready, then four drifts, two edits by rename, its
    memory and idle cost. Latencies are from the act to the kernel showing the
    answer, seen by a netlink listener in the namespace."""
    record: dict[str, Any] = {"samples": []}
    k = topology.edited
    original = (workdir / "netlab" / "topology.yaml").read_text()
    edited = (workdir / "netlab-edited" / "topology.yaml").read_text()
    log_path = workdir / f"daemon-{topology.n}-{rep}.log"
    with sandbox() as box:
        box.write(CONFIG, original)
        with open(log_path, "w") as log_file:
            began = time.perf_counter()
            daemon = subprocess.Popen(
                box.argv(
                    tools.netlab,
                    "daemon",
                    "--debounce",
                    str(DEBOUNCE),
                    "--resync-interval",
                    "3600",
                    "--log-format",
                    "json",
                ),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=box.layout.env,
            )
            try:
                status = None
                while time.perf_counter() - began < 3600 and daemon.poll() is None:
                    status = _status(box)
                    if (
                        status
                        and status.get("last_apply")
                        and status.get("state") in ("healthy", "failing", "degraded")
                    ):
                        break
                    time.sleep(0.02)
                record["ready_s"] = time.perf_counter() - began
                if not status or status.get("state") != "healthy":
                    record["error"] = f"the daemon did not become healthy: {status}"
                    return record
                pid = int(status["pid"])
                record["verify"] = verify(box, tools, topology)
                wait_idle(box, pid)

                def rename(text: str, address: str) -> None:
                    temp = box.path(f"/etc/netlab.d/.{Path(CONFIG).name}.bench-tmp")
                    temp.write_text(text)
                    wait_idle(box, pid)  # the temp file's own events are debounced and read first
                    answer = _probe(
                        box, tools, "rename", f"ns{k}", address.split("/")[0], f"/etc/netlab.d/{temp.name}", CONFIG
                    )
                    record["samples"].append({"kind": "rename", "netns": f"ns{k}", **answer})
                    wait_idle(box, pid)

                for i in (k, 1):
                    answer = _probe(box, tools, "del-addr", f"ns{i}", topology.address(i))
                    record["samples"].append({"kind": "drift-addr", "netns": f"ns{i}", **answer})
                    wait_idle(box, pid)
                answer = _probe(box, tools, "del-link", f"ns{k}", f"vh{k}")
                record["samples"].append({"kind": "drift-link", "netns": f"ns{k}", **answer})
                wait_idle(box, pid)
                # a namespace deleted by hand (`ip netns del`): made anew, with its
                # veth, address, route and resolver file
                answer = _probe(box, tools, "del-netns", f"ns{k}", topology.address(k))
                record["samples"].append({"kind": "drift-netns", "netns": f"ns{k}", **answer})
                wait_idle(box, pid)
                rename(edited, topology.address(k, edited=True))
                rename(original, topology.address(k))
                record["final_verify"] = verify(box, tools, topology)
                record["memory_kb"] = _memory(box, pid)
                ticks = _cpu_ticks(box, pid)
                time.sleep(3.0)
                record["idle_cpu_pct"] = 100 * (_cpu_ticks(box, pid) - ticks) / CLK_TCK / 3.0
                box.run("kill", "-TERM", str(pid), check=False)
                daemon.wait(timeout=60)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait()
    _attach_log(record, _log_times(log_path))
    return record


def _attach_log(record: dict[str, Any], events: list[tuple[float, dict[str, Any]]]) -> None:
    """Adds to each sample what the daemon's log says happened after the act: when
    the generation was accepted (debounce + load), when the first change was
    applied, and the passes it ran until the next sample."""
    samples = record["samples"]
    for index, sample in enumerate(samples):
        start = sample.get("began_wall")
        if start is None:
            continue
        end = samples[index + 1].get("began_wall") if index + 1 < len(samples) else None
        window = [(t, e) for t, e in events if t >= start and (end is None or t < end)]
        accepted = [t for t, e in window if e.get("event") == "generation accepted"]
        applied = [t for t, e in window if e.get("event") == "change applied"]
        sample["log_accepted_s"] = accepted[0] - start if accepted else None
        sample["log_first_change_s"] = applied[0] - start if applied else None
        sample["log_changes"] = [e.get("detail") for _, e in window if e.get("event") == "change applied"]


# -- the command line's start-up ----------------------------------------------------------------------


def run_startup(tools: Tools, repeat: int) -> dict[str, Any]:
    """`netlab --help`, and `netlab validate` and `netlab plan` on an empty config dir, and the bare
    interpreter for scale; and which imports a `plan` pays for (-X importtime)."""
    record: dict[str, Any] = {"python_s": [], "help_s": [], "validate_empty_s": [], "plan_empty_s": []}
    with sandbox() as box:
        box.run(tools.netlab, "--help")  # warm the page cache
        for _ in range(repeat):
            record["python_s"].append(box.timed(tools.netlab_python, "-c", "pass")[0])
            record["help_s"].append(box.timed(tools.netlab, "--help")[0])
            record["validate_empty_s"].append(box.timed(tools.netlab, "validate")[0])
            record["plan_empty_s"].append(box.timed(tools.netlab, "plan")[0])
        result = box.run(tools.netlab_python, "-X", "importtime", "-m", "netlab.controller.cli", "plan", check=False)
    record["imports"] = _top_imports(result.stderr)
    return record


def _top_imports(text: str, top: int = 12) -> list[tuple[str, float]]:
    """Import time by top-level package (the sum of its modules' own times, in ms),
    from -X importtime's report: which libraries a `plan` pays for before it starts."""
    by_package: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        try:
            micros = int(own.strip())
        except ValueError:
            continue
        package = name.strip().split(".")[0]
        if package == "netlab":
            package = ".".join(name.strip().split(".")[:2])
        by_package[package] = by_package.get(package, 0.0) + micros / 1000
    return sorted(by_package.items(), key=lambda pair: -pair[1])[:top]


# -- profiles -----------------------------------------------------------------------------------


def run_profiles(tools: Tools, topology: Topology, workdir: Path, rate: int = 100) -> dict[str, str]:
    """py-spy, sampling wall-clock time (idle included) of the whole process tree,
    over a cold `netlab apply` and then a no-op one. Returns the raw stack files."""
    assert tools.py_spy is not None
    files = {}
    with sandbox() as box:
        box.write(CONFIG, (workdir / "netlab" / "topology.yaml").read_text())
        for name in ("cold", "noop"):
            out = workdir / f"profile-{name}-{topology.n}.txt"
            box.run(
                tools.py_spy,
                "record",
                "--idle",
                "--subprocesses",
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(out),
                "--",
                tools.netlab,
                "apply",
                timeout=3600,
            )
            files[name] = str(out)
    return files
