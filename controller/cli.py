"""The `netlab` command line: validate, plan, check, apply, try, confirm, show,
graph, destroy, status, reload (the service's ExecReload) and daemon.
Each subcommand takes --config-dir, --state-dir and --log-format after its name.
Exit codes: 0 success, 1 error, 2 for `plan --detailed-exitcode` with changes,
130 interrupted; `netlab status` has its own (STATUS_EXIT_CODES), for
monitoring checks. What an error becomes is decided in one place, `run`.
"""

from __future__ import annotations

import argparse
import os
import sys

# `netlab --help` imports argparse and nothing else of weight (the commands
# import what they use): typing is imported by the type checker alone
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, TypeAlias

    from netlab.controller.daemon import Settings
    from netlab.state.ledger import Ledger
    from netlab.state.loading import Snapshot
    from netlab.state.model import DesiredState

DEFAULT_CONFIG_DIR = "/etc/netlab.d"
DEFAULT_STATE_DIR = "/var/lib/netlab"
DEFAULT_RUN_DIR = "/run/netlab"

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
REPORT_A_BUG = "this is a bug in netlab, not in your files or your system: please report it with the traceback above"

NAT_BACKENDS = ("auto", "nftables", "iptables")  # nat_backends.REQUESTS, without importing it

# `netlab status`: 0 only while a live daemon says the kernel matches the files,
# as `systemctl is-active` is 0 only for an active unit; 1 stays "cannot tell".
STATUS_EXIT_CODES = {"healthy": 0, "degraded": 2, "failing": 3, "starting": 4}
STATUS_NOT_RUNNING = 5  # no status since boot, or the daemon stopped
STATUS_DEAD = 6  # the status says running, but its writer is gone


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netlab",
        description="Declarative Linux host networking: namespaces, links, addresses, routes, sysctls.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    _add_reading_commands(commands, common)
    _add_writing_commands(commands, common)
    return parser


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-dir",
        type=_path,
        default=os.environ.get("NETLAB_CONFIG_DIR", DEFAULT_CONFIG_DIR),
        help="directory of desired-state files (env NETLAB_CONFIG_DIR; default %(default)s)",
    )
    common.add_argument(
        "--state-dir",
        type=_path,
        default=os.environ.get("NETLAB_STATE_DIR", DEFAULT_STATE_DIR),
        help="where netlab keeps its ledger (env NETLAB_STATE_DIR; default %(default)s)",
    )
    common.add_argument(
        "--log-format",
        choices=("console", "json"),
        default=None,
        help="events as readable lines or JSON lines (default: console on a terminal, "
        "JSON otherwise for the daemon; console for the other commands)",
    )
    common.add_argument(
        "--nat-backend",
        choices=NAT_BACKENDS,
        default=os.environ.get("NETLAB_NAT_BACKEND", "auto"),
        help="where NAT rules go: nftables (netlab's own tables), iptables (the legacy tables) or auto, "
        "chosen by what the host runs (env NETLAB_NAT_BACKEND; default %(default)s)",
    )
    common.add_argument(
        "--allow-untrusted-config",
        dest="allow_untrusted",
        action="store_true",
        default=os.environ.get("NETLAB_ALLOW_UNTRUSTED_CONFIG") == "1",
        help="read a config dir or files that users other than root could write (labs and tests only)",
    )
    return common


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_reading_commands(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """The commands that change nothing: validate, plan, show, status."""
    validate = commands.add_parser("validate", parents=[common], help="check files without touching the kernel")
    validate.add_argument(
        "paths", nargs="*", type=_path, metavar="PATH", help="files or directories (default: the config dir)"
    )
    validate.add_argument(
        "--hostname",
        action="append",
        default=[],
        metavar="NAME",
        help="check the files as host NAME loads them (match.hostname); repeat for each host (default: this host)",
    )
    plan = commands.add_parser("plan", parents=[common], help="show what apply would change")
    _json_option(plan)
    plan.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 0 with nothing to do, 2 with changes, 1 on error"
    )
    plan.add_argument("--allow-empty", action="store_true", help=argparse.SUPPRESS)
    check = commands.add_parser(
        "check",
        parents=[common],
        help="run the declared connectivity checks now",
        epilog="exit codes: 0 every check passed (or none is declared), 1 a check failed or the files are invalid",
    )
    _json_option(check)
    show = commands.add_parser("show", parents=[common], help="live state of managed namespaces in the file format")
    _json_option(show)
    status = commands.add_parser(
        "status",
        parents=[common],
        help="the daemon's view: generation, last apply, errors, drift repairs",
        epilog="exit codes: 0 healthy, 1 the status cannot be read, 2 degraded (invalid files, or a change that broke "
        "a check, undone), 3 failing "
        "(the last apply failed), 4 starting, 5 not running (or stopped), 6 dead (crashed: its status is history)",
    )
    _json_option(status)
    _run_dir_option(status, "where the daemon writes status.json")
    _add_graph_command(commands, common)


GRAPH_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}


def _add_graph_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    graph = commands.add_parser(
        "graph",
        parents=[common],
        help="a picture of the network, from the files (no root needed) or the live kernel with drift marked",
        epilog="exit codes: 0 drawn, 1 invalid files (file:line, as validate says), or dot missing for svg/png",
    )
    graph.add_argument(
        "--format",
        choices=sorted(set(GRAPH_FORMATS.values())),
        help="svg and png are rendered by Graphviz's dot; dot and mermaid are text and need nothing "
        "(default: by --output's suffix, else dot)",
    )
    graph.add_argument("--output", "-o", type=_path, metavar="FILE", help="write the picture here (default: stdout)")
    graph.add_argument(
        "--live", action="store_true", help="draw the kernel as it is (needs root), marking what differs from the files"
    )
    graph.add_argument(
        "--hostname", metavar="NAME", help="draw the files as host NAME loads them (match.hostname; default: this host)"
    )
    _run_dir_option(graph, "where the daemon writes status.json, whose check results colour the checks")


def _add_writing_commands(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """The commands that change the network (or make the daemon do it)."""
    apply = commands.add_parser(
        "apply",
        parents=[common],
        help="make the kernel match the files, once",
        epilog="exit codes: 0 applied and every check passes, 1 an error (nothing or all undone) or a check fails",
    )
    _allow_empty_option(apply)
    _no_rollback_option(apply)
    trial = commands.add_parser(
        "try",
        parents=[common],
        help="apply the files, then keep them only if confirmed in time (`netlab confirm`, or Enter here)",
        epilog="exit codes: 0 confirmed (or nothing to try), 1 an error, or not confirmed in time: everything put back "
        "as before the try, 130 interrupted (put back too)",
    )
    trial.add_argument(
        "files",
        nargs="*",
        type=_path,
        metavar="FILE",
        help="files to try in place of the config dir's files of the same names (or beside them), installed "
        "there once confirmed; the daemon does not see them before (default: the config dir as it is)",
    )
    trial.add_argument(
        "--timeout",
        type=_seconds,
        default=120.0,
        help="seconds to wait for the confirmation before putting everything back (default %(default)s)",
    )
    _no_rollback_option(trial)
    _allow_empty_option(trial)
    _run_dir_option(trial, "where a running daemon writes status.json")
    commands.add_parser(
        "confirm",
        parents=[common],
        help="keep the change of the `netlab try` that waits",
        epilog="exit codes: 0 confirmed, 1 no try waits, or it is too late",
    )
    destroy = commands.add_parser("destroy", parents=[common], help="remove everything netlab owns")
    destroy.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reload = commands.add_parser(
        "reload",
        parents=[common],
        help="make the running daemon read the files now, and wait for that pass (ExecReload)",
    )
    reload.add_argument("--pid", type=int, help="the daemon's process (default: the one status.json names)")
    reload.add_argument(
        "--timeout", type=float, default=100.0, help="seconds to wait for the pass (default %(default)s)"
    )
    _run_dir_option(reload, "where the daemon writes status.json")
    daemon = commands.add_parser(
        "daemon", parents=[common], help="the service: watch, reconcile, repair drift, notify systemd"
    )
    _run_dir_option(daemon, "where status.json is written")
    daemon.add_argument(
        "--debounce",
        type=float,
        default=0.25,
        help="seconds of quiet in the config dir before it is read (default %(default)s)",
    )
    daemon.add_argument(
        "--resync-interval", type=float, default=60.0, help="seconds between full resyncs (default %(default)s)"
    )
    daemon.add_argument(
        "--check-interval",
        type=float,
        default=float(os.environ.get("NETLAB_CHECK_INTERVAL", "30")),
        help="seconds between runs of the declared checks, besides after each pass that changes something; "
        "0: only after passes (env NETLAB_CHECK_INTERVAL; default %(default)s)",
    )
    _no_rollback_option(daemon)
    _allow_empty_option(daemon)


MAX_TRY_SECONDS = 86400.0  # a day: a try is an answer awaited, not a state to live in


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_TRY_SECONDS:
        raise argparse.ArgumentTypeError(f"write a number of seconds above 0, at most {MAX_TRY_SECONDS:g}, not {text}")
    return value


def _json_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="machine-readable output (errors too)")


def _no_rollback_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-rollback-on-check",
        dest="rollback_on_check",
        action="store_false",
        default=os.environ.get("NETLAB_NO_ROLLBACK_ON_CHECK") != "1",
        help="keep a change after which a check fails that passed before it "
        "(default: roll it back; env NETLAB_NO_ROLLBACK_ON_CHECK=1)",
    )


def _run_dir_option(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--run-dir", type=_path, default=DEFAULT_RUN_DIR, help=f"{what} (default %(default)s)")


def _allow_empty_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--allow-empty", action="store_true", help="accept a config dir with no files, removing everything netlab owns"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from netlab.controller import logs

    if args.command == "daemon":
        # journald keeps stdout; JSON lines unless a person is watching
        logs.configure(args.log_format or ("console" if sys.stdout.isatty() else "json"), sys.stdout)
    else:
        # A person reads the command's own output; the per-change events are
        # for when a log format is asked for (and warnings and errors always).
        logs.configure(args.log_format or "console", level=logs.LEVELS["info" if args.log_format else "warning"])
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Runs a command; the one place that decides what an error escaping it
    becomes, whichever command it is. ConfigError (the files are invalid;
    nothing was changed) and ApplyError (the kernel or the system refused, or
    a pass failed and was rolled back; KernelRefused and NotVerified among
    them): their message, exit 1. OSError (the state or run directory cannot
    be written, no permission): what and where, exit 1. Ctrl-C: exit 130,
    after the pass it interrupted was rolled back. Anything else is a bug of
    netlab: its traceback and a line asking to report it, exit 1. With --json,
    each error is also a JSON document on stdout."""
    from netlab.state.errors import NetlabError

    try:
        return int(COMMANDS[args.command](args))
    except NetlabError as error:
        return _failed(args, error, _error_text(error))
    except OSError as error:
        return _failed(args, error, _os_error_text(error))
    except KeyboardInterrupt:
        print("netlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - a bug of ours: shown as one, not hidden
        import traceback

        traceback.print_exc()
        return _failed(args, error, f"netlab: {REPORT_A_BUG} ({type(error).__name__}: {error})")


def _failed(args: argparse.Namespace, error: Exception, text: str) -> int:
    """The error for a person on stderr; with --json, also a JSON document on
    stdout, so that a program reading it always gets one."""
    if getattr(args, "json", False):
        from netlab.controller import reporting

        print(reporting.plan_error_json(error, text.removeprefix("netlab: ")), end="")
    print(text, file=sys.stderr)
    return EXIT_ERROR


def _error_text(error: Exception) -> str:
    from netlab.state.errors import ConfigError

    if isinstance(error, ConfigError):
        count = len(error.problems)
        head = f"netlab: {count} problem{'s' if count != 1 else ''}; nothing was changed:"
        return head + "\n" + "\n".join(str(problem) for problem in error.problems)
    return f"netlab: {error}"


def _os_error_text(error: OSError) -> str:
    """An OSError at the edges (the state directory, the run directory, a
    signal to the daemon) as what failed and where."""
    where = f": {error.filename}" if error.filename else ""
    said = error.strerror or str(error)
    if isinstance(error, PermissionError):
        return f"netlab: {said}{where} (netlab needs root to change the network)"
    return f"netlab: {said}{where}"


# -- commands --------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from netlab.state.loading import validate_paths

    paths = args.paths or [args.config_dir]
    problems = validate_paths(paths, args.hostname)
    if problems:
        print("\n".join(str(problem) for problem in problems), file=sys.stderr)
        return EXIT_ERROR
    named = list(dict.fromkeys(args.hostname))
    hosts = f" (for host{'s' if len(named) > 1 else ''} {', '.join(named)})" if named else ""
    print(f"valid: {', '.join(str(path) for path in paths)}{hosts}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from netlab.controller import reporting
    from netlab.controller.backends.kernel import Kernel
    from netlab.controller.planning import make_plan

    desired = _load(args)
    ledger = _ledger(args)
    with Kernel(nat_backend=args.nat_backend) as kernel:
        plan = make_plan(desired, kernel, ledger)
    print(reporting.plan_json(plan) if args.json else reporting.plan_text(plan), end="")
    return EXIT_CHANGES if (plan and args.detailed_exitcode) else EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    from netlab.controller import kept, logs, reporting, trying
    from netlab.controller.applying import Checking, reconcile
    from netlab.controller.backends.kernel import Kernel
    from netlab.controller.checks import failing
    from netlab.controller.guards import locked

    log = logs.get_logger(command="apply")
    with locked(args.state_dir):
        with Kernel(nat_backend=args.nat_backend) as kernel:
            # a try whose process is gone first: settling it may install files, and
            # its rollback must not wait for the files to be valid
            settled = trying.settle(args.state_dir, kernel, log)
            if settled is not None:
                print(settled)
            snapshot, desired = _load_snapshot(args)
            if settled is not None and settled.held_back_again(kept.digest_of(snapshot)):
                # the change nobody confirmed is not made again behind the operator's back
                print(
                    "The files are the ones tried, so they were not applied again: run `netlab apply` "
                    "once more to apply them without a confirmation, or `netlab try` them again."
                )
                return EXIT_OK
            ledger = _ledger(args)
            result = reconcile(desired, kernel, ledger, log, checking=Checking(rollback=args.rollback_on_check))
        # the files in force now: what a `netlab try` goes back to, and a daemon started with broken files
        kept.keep_last_good(args.state_dir, kept.contents_of(snapshot))
        kept.release_held_back(args.state_dir)
    print(reporting.plan_text(result.plan), end="")
    if result.plan:
        print(f"Applied and verified in {result.duration_ms:.0f} ms.")
    if result.checks:
        print(reporting.checks_text(result.checks), end="")
    return EXIT_ERROR if failing(result.checks) else EXIT_OK


def cmd_try(args: argparse.Namespace) -> int:
    """Applies the files like `apply` (checks and their rollback included), then
    waits for a confirmation; without one in time, everything is put back as it
    was before the try. See controller/trying.py."""
    from netlab.controller import kept, logs, reporting, trying
    from netlab.controller.applying import Checking, reconcile
    from netlab.controller.backends.kernel import Kernel
    from netlab.controller.guards import locked
    from netlab.controller.planning import make_plan
    from netlab.state.errors import ConfigError

    # a hangup (the SSH session gone) must not end the try before its rollback
    signals = trying.Signals().install()
    log = logs.get_logger(command="try")
    config_dir = _path(os.path.realpath(args.config_dir))
    # a file given from the config dir itself is a try in place: nothing to install
    installs = [path.name for path in args.files if os.path.realpath(path) != str(config_dir / path.name)]
    with locked(args.state_dir), Kernel(nat_backend=args.nat_backend) as kernel:
        settled = trying.settle(args.state_dir, kernel, log)
        if settled is not None:
            print(settled)
        snapshot, desired = _load_snapshot(args, args.files)
        ledger = _ledger(args)
        if not make_plan(desired, kernel, ledger):
            if not installs:
                kept.keep_last_good(args.state_dir, kept.contents_of(snapshot))
            print("Nothing to try: the network is as the files say.")
            if not args.files and reporting.daemon_status(args.run_dir / "status.json").get("daemon") == "running":
                print(
                    "A running daemon applies the files in the config dir as they are saved: "
                    "to try a change, edit a copy and `netlab try COPY`."
                )
            return EXIT_OK
        before = trying.before_files(args.state_dir, ledger)
        drift = make_plan(trying.before_state(args.state_dir, ledger), kernel, ledger)
        if drift:
            print(
                f"Note: the network differs from the files applied last ({len(drift.changes)} changes); "
                "without a confirmation those files are put back, not these differences."
            )
        if signals.stopped:
            print("Stopped before anything was changed.", file=sys.stderr)
            return EXIT_INTERRUPTED
        trial = trying.Trial.begin(
            args.state_dir,
            config_dir,
            kept.digest_of(snapshot),
            kept.contents_of(snapshot),
            before,
            args.timeout,
            installs,
        )
        try:
            result = reconcile(desired, kernel, ledger, log, checking=Checking(rollback=args.rollback_on_check))
        except ConfigError:
            trial.end("failed")  # refused before any write
            raise
        except BaseException:
            # the pass rolled itself back; the record makes sure, from the files
            with Kernel(nat_backend=args.nat_backend) as fresh:
                trial.roll_back(fresh, _ledger(args), log)
            trial.end("failed")
            raise
    ended, failure = _wait_for_confirmation(args, trial, signals, result)
    with locked(args.state_dir):
        if ended == "confirmed":
            trial.end("confirmed")
            log.info("try confirmed: the change stays", digest=trial.record["digest"])
            _tell("Confirmed: the change stays.")
            return EXIT_OK
        why = {
            "timeout": f"no confirmation came within {args.timeout:g} s",
            "refused": "you answered no",
            "stopped": "the try was stopped",
        }[ended]
        log.info("try not confirmed: rolling it back", why=why)
        with Kernel(nat_backend=args.nat_backend) as kernel:
            trial.roll_back(kernel, _ledger(args), log)
        trial.end("rolled back", why)
    _tell(f"Not confirmed ({why}): everything was put back as it was before the try.")
    if failure is not None and not isinstance(failure, KeyboardInterrupt):
        raise failure  # after the rollback: a bug of ours, shown as one
    return EXIT_INTERRUPTED if ended == "stopped" else EXIT_ERROR


def _wait_for_confirmation(
    args: argparse.Namespace, trial: Any, signals: Any, result: Any
) -> tuple[str, BaseException | None]:
    """Shows what the try did and waits for its answer. Whatever goes wrong
    meanwhile (a pipe closed under the output, Ctrl-C, a bug) is no
    confirmation: it comes back as the error, for the caller to roll back first."""
    from netlab.controller import reporting, trying
    from netlab.controller.checks import failing

    try:
        _tell(reporting.plan_text(result.plan) + f"Applied and verified in {result.duration_ms:.0f} ms.")
        if result.checks:
            _tell(reporting.checks_text(result.checks).rstrip("\n"))
            if failing(result.checks):
                _tell(
                    "Some checks fail (they did not pass before the try, or rollback on checks is off): look before you confirm."
                )
        _tell(
            f"Keep this change? Press Enter here, or run `netlab confirm`, within {args.timeout:g} s; "
            "otherwise everything is put back as it was before the try."
        )
        waiting = trying.Waiting(trial, stdin=_stdin_fd(), signals=signals)
        return waiting.wait(args.timeout), None
    except BaseException as error:  # noqa: BLE001 - rolled back, then raised by the caller
        try:
            confirmed = trial.decide(confirm=False)
        except BaseException:  # noqa: BLE001 - the record stays: the next apply or start settles it
            confirmed = False
        return ("confirmed" if confirmed else "stopped"), error


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None  # no stdin at all: only `netlab confirm` can confirm


def _tell(text: str) -> None:
    """A last word that may find its terminal gone."""
    try:
        print(text, flush=True)
    except OSError:
        pass


def cmd_confirm(args: argparse.Namespace) -> int:
    from netlab.controller import trying

    print(trying.confirm(args.state_dir))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from netlab.controller import reporting
    from netlab.controller.checks import failing, run_checks

    outcomes = run_checks(_load(args).checks)
    print(reporting.checks_json(outcomes) if args.json else reporting.checks_text(outcomes), end="")
    return EXIT_ERROR if failing(outcomes) else EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from netlab.controller import reporting
    from netlab.controller.backends.kernel import Kernel
    from netlab.state.errors import ConfigError
    from netlab.state.model import DesiredState

    try:
        desired = _load(args)
    except ConfigError:
        # show what is live even while the files are broken; ownership still comes from the ledger
        desired = DesiredState()
    with Kernel(nat_backend=args.nat_backend) as kernel:
        document = reporting.live_state(desired, kernel, _ledger(args))
    print(reporting.live_state_json(document) if args.json else reporting.live_state_yaml(document), end="")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """The files drawn (no kernel, no root; load_generation gives validate's
    located problems), or with --live the kernel merged with them."""
    from netlab.controller import drawing, topologies
    from netlab.state.loading import load_generation

    desired = load_generation(args.config_dir, args.hostname, strict_modes=not args.allow_untrusted and args.live)
    if desired.files and not (desired.namespaces or desired.links or desired.routes or desired.nat or desired.checks):
        import socket

        host = args.hostname or socket.gethostname()
        print(
            f"netlab graph: no file of {args.config_dir} declares anything for host {host}; a file with "
            "match.hostname applies only to the hosts it names: --hostname NAME draws the files as that host loads them",
            file=sys.stderr,
        )
    results = _check_results(args.run_dir / "status.json")
    if args.live:
        from netlab.controller import reporting
        from netlab.controller.backends.kernel import Kernel

        with Kernel(nat_backend=args.nat_backend) as kernel:
            document = reporting.live_state(desired, kernel, _ledger(args))
        topology = topologies.from_live(desired, document, results)
    else:
        topology = topologies.from_files(desired, results)
    output_format = args.format or GRAPH_FORMATS.get(args.output.suffix if args.output else "", "dot")
    picture = drawing.picture(topologies.grouped(topology))
    text = drawing.mermaid(picture) if output_format == "mermaid" else drawing.dot(picture)
    data = drawing.rendered(text, output_format) if output_format in ("svg", "png") else text.encode()
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
    return EXIT_OK


def _check_results(path: Path) -> dict[str, bool]:
    """The daemon's last result of each check, by the check (its text: where
    it was declared may have moved since); none without a readable status.json
    (no daemon here, or not root)."""
    import json

    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    checks = status.get("checks") if isinstance(status, dict) else None
    return {str(c.get("check")): bool(c.get("passed")) for c in checks or [] if isinstance(c, dict)}


def cmd_destroy(args: argparse.Namespace) -> int:
    from netlab.controller import kept, logs, reporting, trying
    from netlab.controller.applying import Pass, apply_and_verify
    from netlab.controller.backends.kernel import Kernel
    from netlab.controller.guards import locked
    from netlab.controller.planning import make_plan
    from netlab.state.model import DesiredState

    if not args.yes and not sys.stdin.isatty():
        # no one can be asked: a script or a pipe must say it means it
        print(
            "netlab: destroy removes everything netlab owns; without a terminal to ask on, pass --yes", file=sys.stderr
        )
        return EXIT_ERROR
    nothing = DesiredState()
    log = logs.get_logger(command="destroy")
    with locked(args.state_dir):
        with Kernel(nat_backend=args.nat_backend) as kernel:
            settled = trying.settle(args.state_dir, kernel, log)
            if settled is not None:
                print(settled)
            ledger = _ledger(args)
            plan = make_plan(nothing, kernel, ledger)
            if not plan:
                print("Nothing to remove: netlab owns nothing here.")
                return EXIT_OK
            print(reporting.plan_text(plan), end="")
            if not args.yes:
                answer = input("Remove all of this? Type 'yes' to go on: ")
                if answer.strip() != "yes":
                    print("Nothing was changed.")
                    return EXIT_ERROR
            apply_and_verify(plan, Pass(nothing, kernel, ledger, log))
        # nothing is in force now: neither a daemon nor a try may bring it back
        kept.forget_last_good(args.state_dir)
        kept.release_held_back(args.state_dir)
    print("Removed everything netlab owned.")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from netlab.controller import reporting

    status = reporting.daemon_status(args.run_dir / "status.json")
    if status.get("daemon") != "running":
        from netlab.controller import trying

        # no daemon to say so: a try that waits, or one whose process is gone, is told from the state dir
        found = trying.look(args.state_dir)
        if found is not None:
            status["waiting_for_try"] = {**found.record, "process_gone": not found.alive}
    import json

    print(
        json.dumps(status, indent=2) if args.json else reporting.daemon_status_text(status),
        end="\n" if args.json else "",
    )
    return status_exit_code(status)


def status_exit_code(status: dict[str, Any]) -> int:
    """What a monitoring check of `netlab status` reads (see STATUS_EXIT_CODES)."""
    daemon = status.get("daemon")
    if daemon == "running":
        return STATUS_EXIT_CODES.get(str(status.get("state")), EXIT_ERROR)
    if daemon == "dead":
        return STATUS_DEAD
    if daemon in ("stopped", "not running"):
        return STATUS_NOT_RUNNING
    return EXIT_ERROR


def cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP to the daemon, then waits until status.json shows a reload pass
    that began after the signal was sent (so it read the files as they are
    now) and says how it ended. systemd 252 has no Type=notify-reload: this is
    the unit's ExecReload, so that `systemctl reload netlab` returns when the
    files are in the kernel, and fails when they could not be applied. With
    --log-format json (the unit's) it says so in one JSON line, as the daemon's
    own lines in the journal are."""
    import signal
    import time

    from netlab.controller import reporting

    path = args.run_dir / "status.json"
    status = reporting.daemon_status(path)
    pid = args.pid if args.pid is not None else status.get("pid")
    if not isinstance(pid, int) or (args.pid is None and status.get("daemon") != "running"):
        return _reload_failed(args, f"no daemon to reload: {status.get('detail') or f'{path} names none running'}")
    if args.pid is None and not reporting.is_netlab_daemon(pid):
        # status.json outlives a crash: its process number may be someone else's now
        return _reload_failed(args, f"no daemon to reload: process {pid}, named in {path}, is not `netlab daemon`")
    asked = time.monotonic()
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return _reload_failed(args, f"no daemon to reload: process {pid} does not exist")
    if status.get("pid") == pid and "last_reload" not in status:
        # a daemon from before `netlab reload` (not restarted since an upgrade):
        # it says nothing of its reload passes, so there is nothing to wait for
        _say(
            args, "warning", "reload requested; this daemon does not report its reload passes (restart it to have them)"
        )
        return EXIT_OK
    passed = _reload_pass(args, path, pid, asked)
    return _reload_done(args, passed, pid) if passed is not None else EXIT_ERROR


def _reload_pass(args: argparse.Namespace, path: Path, pid: int, asked: float) -> dict[str, Any] | None:
    """status.json once it shows the daemon's reload pass begun after `asked`
    (monotonic); None, said, when the daemon ended or the time ran out first."""
    import time

    from netlab.controller import reporting

    while True:
        status = reporting.daemon_status(path)
        reload = status.get("last_reload")
        # `began` was the monotonic time before status.json's format_version 1
        began = reload.get("began_monotonic", reload.get("began")) if isinstance(reload, dict) else None
        if isinstance(began, float) and began >= asked and status.get("pid") == pid:
            return status
        if not reporting.is_alive(pid):
            _reload_failed(args, f"the daemon (process {pid}) ended before its reload pass did")
            return None
        if time.monotonic() - asked > args.timeout:
            _reload_failed(args, f"the daemon (process {pid}) has not finished a reload pass within {args.timeout:g} s")
            return None
        time.sleep(0.02)


def _reload_done(args: argparse.Namespace, status: dict[str, Any], pid: int) -> int:
    """How the reload pass in `status` ended: exit 0 when it is healthy."""
    from netlab.controller import reporting

    reload = status["last_reload"]
    healthy = reload.get("state") == "healthy"
    if args.log_format == "json":
        error = status.get("last_error")
        fields = {"pid": pid, "state": reload.get("state"), "generation": status.get("generation")}
        if not healthy and isinstance(error, dict):
            fields["error"] = error.get("message")
        _say(args, "info" if healthy else "error", "reload pass done", **fields)
    else:
        print(reporting.daemon_status_text(status), end="")
    return EXIT_OK if healthy else EXIT_ERROR


def _reload_failed(args: argparse.Namespace, why: str) -> int:
    _say(args, "error", why)
    return EXIT_ERROR


def _say(args: argparse.Namespace, level: str, text: str, **fields: object) -> None:
    """One line for `netlab reload`'s caller: a JSON event with --log-format json
    (the unit's, for the journal), else plain text (errors on stderr)."""
    if args.log_format == "json":
        from netlab.controller import logs

        getattr(logs.get_logger(), level)(text, **fields)
    else:
        print(f"netlab: {text}", file=sys.stderr if level == "error" else sys.stdout)


def cmd_daemon(args: argparse.Namespace) -> int:
    from netlab.controller import logs
    from netlab.controller.daemon import Daemon

    return Daemon(daemon_settings(args), logs.get_logger()).run()


def daemon_settings(args: argparse.Namespace) -> Settings:
    """The daemon's settings are its options, by name (`--resync-interval` is
    `resync_interval`); a setting no option names keeps its default."""
    import dataclasses

    from netlab.controller.daemon import Settings

    given = vars(args)
    return Settings(
        **{setting.name: given[setting.name] for setting in dataclasses.fields(Settings) if setting.name in given}
    )


COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "check": cmd_check,
    "apply": cmd_apply,
    "try": cmd_try,
    "confirm": cmd_confirm,
    "show": cmd_show,
    "graph": cmd_graph,
    "destroy": cmd_destroy,
    "status": cmd_status,
    "reload": cmd_reload,
    "daemon": cmd_daemon,
}


# -- shared helpers ----------------------------------------------------------------


def _load(args: argparse.Namespace) -> DesiredState:
    return _load_snapshot(args)[1]


def _load_snapshot(args: argparse.Namespace, given: Sequence[Path] = ()) -> tuple[Snapshot, DesiredState]:
    """The files read once (with the `given` ones in place of those of their
    names), and their generation: what is applied is what was validated, and
    those bytes are what is kept."""
    from netlab.controller.guards import load_desired
    from netlab.state.loading import take_snapshot, with_files

    snapshot = take_snapshot(args.config_dir)
    if given:
        snapshot = with_files(snapshot, args.config_dir, given)
    allow_empty = getattr(args, "allow_empty", False)
    return snapshot, load_desired(args.config_dir, args.state_dir, allow_empty, args.allow_untrusted, snapshot)


def _ledger(args: argparse.Namespace) -> Ledger:
    from netlab.state.ledger import Ledger

    return Ledger.load(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
