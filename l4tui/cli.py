"""The `l4tui` command line (DESIGN.md §2, "Commands").

Exit codes: 0 success, 1 an expectation failed, 2 bad input with a one-line
``error: ...`` on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from l4tui import __version__
from machine.errors import ConfigError

DEFAULT_PROFILE = "p3-dual-450"
MAX_CPUS = 16
SCHEDULE = "follow a race schedule saved by `l4tui explore` (continue stops at each choice)"
NO_MOUSE = "leave the mouse to the terminal (its own selection and copy); every action has a key"


class _Parser(argparse.ArgumentParser):
    """An argparse parser that reports bad usage as one `error: ...` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see 'l4tui --help')\n")


def _cpus(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= n <= MAX_CPUS:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_CPUS}, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="l4tui",
        description="Kernel monitor and stepping debugger for a simulated L4 SMP machine.",
    )
    parser.add_argument("--version", action="version", version=f"l4tui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = commands.add_parser(
        "bench",
        help="reproduce the thesis's measurements, or time the engine",
        description="Run the thesis's micro-benchmarks (§3.2, §3.3) on the simulated "
        "machine, or time the simulation engine.",
    )
    bench.add_argument(
        "which",
        nargs="?",
        choices=("thesis", "engine", "kernel", "debugger", "tui", "serve", "explore", "all"),
        default="thesis",
        help="which benchmark (default: thesis)",
    )
    bench.add_argument("--json", action="store_true", help="print the result as JSON")
    bench.add_argument(
        "--profile",
        metavar="NAME_OR_FILE",
        default=DEFAULT_PROFILE,
        help=f"machine profile for the thesis benchmark (default: {DEFAULT_PROFILE})",
    )
    bench.add_argument(
        "--cpus",
        metavar="N",
        type=_cpus,
        default=None,
        help=f"override the profile's CPU count (1..{MAX_CPUS})",
    )
    bench.add_argument(
        "--history",
        metavar="N",
        type=int,
        default=1_000_000,
        help="micro-ops of history for the debugger benchmark (default: 1000000)",
    )
    bench.set_defaults(func=_bench)

    run = commands.add_parser(
        "run",
        help="run a scenario headless and report",
        description="Run a scenario to its end (or a limit), check its expectations and "
        "print a summary. Exit 0: every expectation holds; 1: one failed or a deadlock "
        "was found; 2: bad input.",
    )
    run.add_argument("file", metavar="FILE", help="scenario file (YAML)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--max-steps", metavar="N", type=_count, help="stop after N micro-ops")
    run.add_argument(
        "--until-cycle", metavar="C", type=_count, help="stop when the lowest CPU clock reaches C"
    )
    run.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    run.add_argument(
        "--trace",
        metavar="OUT",
        help="also write the run as a Chrome/Perfetto trace (JSON, streamed) to OUT",
    )
    run.add_argument(
        "--check-invariants",
        action="store_true",
        help="check the kernel invariants at every kernel exit (a violation: exit 1)",
    )
    run.set_defaults(func=_run)

    explore = commands.add_parser(
        "explore",
        help="search the interleavings of a scenario for races",
        description="Run a scenario under every interleaving of the CPUs' accesses to shared "
        "state within a preemption bound (breadth first, so the first failure found has the "
        "fewest preemptions). Checks the kernel invariants at every kernel exit, deadlock, "
        "lost messages and the scenario's expectations. Exit 0: none found (also when "
        "--max-schedules or Ctrl-C stops it first: it prints the result so far); 1: found (the "
        "schedule is saved, for `l4tui open FILE --schedule S`); 2: bad input.",
    )
    explore.add_argument("file", metavar="FILE", help="scenario file (YAML)")
    explore.add_argument(
        "--preemptions", metavar="K", type=_count, default=2, help="the bound (default 2)"
    )
    explore.add_argument("--max-schedules", metavar="N", type=_count, help="stop after N schedules")
    explore.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    explore.add_argument("--json", action="store_true", help="print the result as JSON")
    explore.add_argument(
        "--save",
        metavar="S",
        help="where to save a failing schedule "
        "(default: $XDG_STATE_HOME/l4tui/schedules/NAME.schedule.json)",
    )
    explore.add_argument(
        "--jobs",
        metavar="N",
        type=_jobs,
        help="worker processes (default: every core this process may use); "
        "the result does not depend on N",
    )
    explore.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the schedules on the workers of a Dask cluster (tcp://HOST:PORT; "
        "needs pip install 'l4tui[cluster]')",
    )
    explore.add_argument(
        "--progress",
        choices=("auto", "bar", "json", "none"),
        default="auto",
        help="progress on stderr: a line on a terminal (auto, the default), always (bar), "
        "JSON lines (json) or none",
    )
    explore.set_defaults(func=_explore)

    opener = commands.add_parser(
        "open",
        help="the monitor (TUI) on a scenario",
        description="Open the Textual monitor on a scenario file, or on a saved session "
        "with --load.",
    )
    opener.add_argument("file", metavar="FILE", nargs="?", help="scenario file (YAML)")
    opener.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    opener.add_argument("--load", metavar="SESSION", help="a session saved with `save FILE`")
    opener.add_argument("--no-mouse", action="store_true", help=NO_MOUSE)
    opener.add_argument("--schedule", metavar="S", help=SCHEDULE)
    opener.set_defaults(func=_open)

    lab = commands.add_parser(
        "lab",
        help="the monitor on a lab sheet, its exercises ticked as you go",
        description="Open the monitor on a lab's scenario with the lab sheet beside it. "
        "With --state the session is saved after every command and resumed from there.",
    )
    lab.add_argument("file", metavar="LAB", help="lab file (YAML)")
    lab.add_argument(
        "--state",
        metavar="FILE",
        help="save the session here after every command and resume from it "
        "(default: $XDG_STATE_HOME/l4tui/labs/LAB.json)",
    )
    lab.add_argument("--fresh", action="store_true", help="start over even if the state exists")
    lab.add_argument(
        "--confine",
        metavar="DIR",
        help="confine the console's file commands (save, load, load schedule, export) to "
        "DIR, made 0700 if missing: each FILE is resolved inside DIR, symlinks followed, "
        "and refused if it lands outside; a saved session of another scenario or lab is "
        "refused by load. `l4tui serve` runs each student's session so",
    )
    lab.add_argument("--no-mouse", action="store_true", help=NO_MOUSE)
    lab.set_defaults(func=_lab)

    serve = commands.add_parser(
        "serve",
        help="host a lab over SSH: each student in their own l4tui",
        description="Serve a lab over SSH. Each login gets its own l4tui process on its own "
        "terminal; sessions are saved continuously and resumed on the next login "
        "(log in as USER+fresh to start over). Give --authorized-keys, --users or both. "
        "The server's log (start-up, logins, refusals) goes to stderr.",
    )
    where = serve.add_argument_group("the lab and where it is served")
    where.add_argument("--lab", metavar="LAB", required=True, help="the lab file (YAML; required)")
    where.add_argument(
        "--ssh",
        metavar="HOST:PORT",
        default="0.0.0.0:2222",
        help="the address to listen on (default: %(default)s)",
    )
    where.add_argument(
        "--state-dir",
        metavar="DIR",
        default="l4tui-state",
        help="saved sessions, the students' homes, the host key (default: %(default)s)",
    )
    where.add_argument(
        "--host-key",
        metavar="FILE",
        help="the server's SSH host key, made on first start (default: host_ed25519 in "
        "the state directory)",
    )
    who = serve.add_argument_group("who may log in")
    who.add_argument(
        "--authorized-keys",
        metavar="DIR",
        help="by key: DIR holds one authorized_keys file per user, named after the user "
        "(default: no key logins)",
    )
    who.add_argument(
        "--users",
        metavar="FILE",
        help="by password: a users file of salted hashes made by 'l4tui passwd' "
        "(default: no password logins)",
    )
    limits = serve.add_argument_group("limits")
    limits.add_argument(
        "--max-sessions",
        metavar="N",
        type=int,
        default=30,
        help="most sessions at once, in all (default: %(default)s)",
    )
    limits.add_argument(
        "--per-user",
        metavar="N",
        type=int,
        default=2,
        help="most sessions at once for one user (default: %(default)s)",
    )
    limits.add_argument(
        "--idle-timeout",
        metavar="S",
        type=float,
        default=1800,
        help="end a session after S seconds without input; its work is saved "
        "(default: %(default)s, half an hour)",
    )
    limits.add_argument(
        "--login-timeout",
        metavar="S",
        type=float,
        default=60,
        help="seconds a connection has to log in (default: %(default)s)",
    )
    sessions = serve.add_argument_group("sessions")
    sessions.add_argument(
        "--warm",
        metavar="N",
        type=int,
        default=4,
        help="sessions kept started and painted for logins to come; for a class logging in "
        "at once, its size (default: %(default)s)",
    )
    sessions.add_argument(
        "--no-mouse",
        action="store_true",
        help="sessions leave the mouse to the students' terminals, for their own selection "
        "and copy (default: the mouse works in the monitor)",
    )
    serve.set_defaults(func=_serve)

    passwd = commands.add_parser(
        "passwd",
        help="add or change a user in a users file (salted scrypt hash)",
        description="Read a password from the terminal and store its salted hash.",
    )
    passwd.add_argument("user", metavar="USER")
    passwd.add_argument("--users", metavar="FILE", required=True)
    passwd.set_defaults(func=_passwd)

    status = commands.add_parser(
        "lab-status",
        help="every student's progress on a lab (from the saved sessions)",
        description="Grade the sessions saved in a state directory (one USER.json each) "
        "against their lab and print a table.",
    )
    status.add_argument("--state-dir", metavar="DIR", required=True, help="where sessions are")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=_lab_status)

    console = commands.add_parser(
        "console",
        help="the debugger's line console on a scenario (default: the built-in demo)",
        description="Step, break and inspect a scenario from a line console. Reads commands "
        "from --script or from standard input when it is not a terminal, prints a "
        "transcript, runs every line and exits 2 if any failed (naming the first on "
        "stderr as error: SCRIPT:LINE: ...).",
    )
    console.add_argument("file", metavar="FILE", nargs="?", help="scenario file (YAML)")
    console.add_argument(
        "--script", metavar="CMDS", help="a file of console commands to run, one a line"
    )
    shown = console.add_mutually_exclusive_group()
    shown.add_argument(
        "--echo",
        action="store_true",
        help="a transcript: each command after the prompt, then its output; comments as "
        "they are (the default; kept for old scripts)",
    )
    shown.add_argument(
        "--quiet", action="store_true", help="print only the commands' outputs, no transcript"
    )
    console.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    console.add_argument("--schedule", metavar="S", help=SCHEDULE)
    console.set_defaults(func=_console)

    check = commands.add_parser(
        "check",
        help="validate a scenario (exit 0 or 2)",
        description="Validate a scenario file without running it.",
    )
    check.add_argument("file", metavar="FILE", help="scenario file (YAML)")
    check.set_defaults(func=_check)
    return parser


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _jobs(text: str) -> int:
    n = _count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _run(args: argparse.Namespace) -> int:
    from kernel.scenario import load_scenario
    from kernel.system import System
    from l4tui.runner import summary as runs
    from machine.errors import MachineError

    scenario = load_scenario(args.file)
    system = System(scenario, seed=args.seed)
    limits = {
        "max_steps": args.max_steps,
        "until_cycle": args.until_cycle,
        "check_invariants": args.check_invariants,
    }
    from l4tui.files import FileError, atomic_text

    try:
        if args.trace is not None:  # "" too: refused as a name, not taken for no trace
            from l4tui.trace import TraceWriter

            with atomic_text(args.trace) as out:
                writer = TraceWriter(system, out)
                system.run(**limits, observer=writer.step)
                writer.close()
        else:
            system.run(**limits)
    except MachineError as e:
        print(f"error: {args.file}: the simulated machine stopped: {e}", file=sys.stderr)
        return 2
    except FileError as e:
        print(f"error: cannot write the trace {args.trace!r}: {e.message}", file=sys.stderr)
        return 2
    summary = runs.summary(system)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(runs.format_run(summary))
    return 1 if runs.failed(summary) else 0


def _explore(args: argparse.Namespace) -> int:
    from kernel.scenario import load_scenario
    from l4tui import explore
    from machine.errors import MachineError

    scenario = load_scenario(args.file)
    if args.save is not None:  # "" is a bad name, not "the default name": refused before exploring
        from l4tui.files import check_name

        try:
            check_name(args.save)
        except ConfigError as e:
            print(f"error: --save {args.save!r}: {e.message}", file=sys.stderr)
            return 2
    pool = None
    if args.cluster is not None:
        try:
            from l4tui import cluster
        except ImportError:
            print(
                "error: --cluster needs the cluster extra: pip install 'l4tui[cluster]'",
                file=sys.stderr,
            )
            return 2
        pool = cluster.DaskPool(args.cluster, args.jobs)  # ClusterError: one line, exit 2
    explorer = explore.Explorer(
        scenario,
        args.seed,
        preemptions=args.preemptions,
        max_schedules=args.max_schedules,
        jobs=args.jobs,
        pool=pool,
    )
    shown: Any = None
    if args.progress == "json":
        shown = explore.JsonProgress(sys.stderr)
    elif args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty()):
        shown = explore.ProgressBar(sys.stderr)
    try:
        report = explorer.explore(shown.show if shown else None)  # Ctrl-C: the result so far
    except KeyboardInterrupt:  # between the search and its report
        report = explorer.report
        report.interrupted = True
    except MachineError as e:
        print(f"error: {args.file}: the simulated machine stopped: {e}", file=sys.stderr)
        return 2
    except explore.WorkerError as e:
        print(f"error: {args.file}: {e}", file=sys.stderr)
        return 2
    finally:
        if shown is not None:
            shown.clear()
        if pool is not None:
            pool.close()
    if isinstance(shown, explore.JsonProgress):
        shown.end(report)
    if report.interrupted:
        print("interrupted: the result so far", file=sys.stderr)
    saved = None
    if report.failure is not None:
        saved = args.save
        try:
            if saved is None:
                from l4tui.paths import schedule_path

                where = schedule_path(scenario.name)
                saved = str(where)
                where.parent.mkdir(parents=True, exist_ok=True)
            explore.write_schedule(saved, explore.schedule_data(scenario, args.seed, report))
        except OSError as e:  # the state directory cannot be made
            print(f"warning: cannot save the schedule to {saved!r}: {e.strerror}", file=sys.stderr)
            saved = None
        except ConfigError as e:  # files.FileError: the name and why, on one line
            print(f"warning: cannot save the schedule to {saved!r}: {e.message}", file=sys.stderr)
            saved = None
    if args.json:
        data = report.data()
        data["saved"] = saved
        print(json.dumps(data, indent=2))
    else:
        print(explore.format_report(report))
        if saved:
            print(
                f"schedule saved to {saved}: step through it with "
                f"`l4tui open {args.file} --schedule {saved}`"
            )
    return 1 if report.failure is not None else 0


def _console(args: argparse.Namespace) -> int:
    from kernel.scenario import load_scenario
    from l4tui import console
    from l4tui.demo import demo_scenario
    from l4tui.session import Session

    if args.schedule:
        from l4tui.executor import load_schedule

        session = load_schedule(args.schedule, args.file)
    else:
        scenario = load_scenario(args.file) if args.file else demo_scenario()
        session = Session(scenario, seed=args.seed)
    return _with_engine(session, lambda s: console.main(s, args.script, echo=not args.quiet))


def _open(args: argparse.Namespace) -> int:
    from kernel.scenario import load_scenario
    from l4tui.demo import demo_scenario
    from l4tui.session import Session

    if args.load is not None:  # "" too: refused as a name, not taken for no session
        from l4tui.executor import load_session

        session = load_session(args.load)
    elif args.schedule:
        from l4tui.executor import load_schedule

        session = load_schedule(args.schedule, args.file)
    else:
        scenario = load_scenario(args.file) if args.file else demo_scenario()
        session = Session(scenario, seed=args.seed)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("error: the monitor needs a terminal; try `l4tui console`", file=sys.stderr)
        return 2
    from l4tui.tui.app import run_app

    fresh = args.load is None and not args.schedule  # a saved session or schedule sets its stage
    return _with_engine(session, lambda s: run_app(s, mouse=not args.no_mouse, run_script=fresh))


def _with_engine(session: Any, run: Any, served: bool = False) -> int:
    """`run(session)` with the session in an engine process (checkpoints) where fork exists,
    forked before the front end starts any thread (Textual's); the engine ends with it.

    `served`: a student's session on a server that runs many (`lab --confine`): fewer
    checkpoints (checkpoints.SERVED_KEEP). A confined session stays confined on both
    sides: the engine's copy runs the file commands; the front end's names the root to
    the completer."""
    from l4tui import checkpoints, engine, files

    root = files.root_of(session)
    if served:
        spacing, keep = checkpoints.SERVED_SPACING, checkpoints.SERVED_KEEP
        session = engine.start(session, spacing, keep)
    else:
        session = engine.start(session)
    if root.confined:
        files.confine(session, root)
    try:
        return run(session)
    finally:
        if isinstance(session, engine.RemoteSession):
            session.close()


def lab_session(
    lab_file: str, state: str | None, fresh: bool, confine: str | None = None
) -> tuple[Any, Any]:
    """The lab and its session: resumed from `state` unless fresh or not there yet.

    `confine`: a directory the session's file commands are confined to (files.FileRoot),
    set before anyone can type a command.
    """
    import os

    from l4tui import files
    from l4tui.executor import load_session
    from l4tui.lab import load_lab
    from l4tui.saved import same_file
    from l4tui.session import Session

    root = files.FileRoot.confined_to(confine) if confine is not None else None
    lab = load_lab(lab_file)
    if state is not None:
        files.check_name(state)
    if state and not fresh and os.path.lexists(state):
        session = load_session(state)
        if not same_file(session.scenario.file, lab.scenario_file):
            raise ConfigError("the saved session is of another scenario; use --fresh", state)
    else:
        session = Session(lab.scenario())
    session.meta["lab"] = lab.file
    session.meta["lab_scenario"] = lab.scenario_file
    if root is not None:
        files.confine(session, root)
    return lab, session


def _lab(args: argparse.Namespace) -> int:
    from pathlib import Path

    from l4tui.paths import lab_state_path

    state = args.state if args.state is not None else str(lab_state_path(args.file))
    lab, session = lab_session(args.file, state, args.fresh, args.confine)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("error: the monitor needs a terminal", file=sys.stderr)
        return 2
    from l4tui.tui.app import run_app

    autosave = Path(state)
    try:
        autosave.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot make its directory: {e.strerror}", state) from None
    # A served student's too (`--confine`), and a warm slot's: its student's session is
    # loaded into the engine's later (tui/warm.py).
    return _with_engine(
        session,
        lambda s: run_app(s, lab=lab, autosave=autosave, mouse=not args.no_mouse),
        served=args.confine is not None,
    )


def _need_asyncssh(what: str) -> None:
    """ConfigError saying what to install, if the `serve` extra is not installed."""
    try:
        importlib.import_module("l4tui.serve")  # first: it quiets what asyncssh's import says
        importlib.import_module("asyncssh")
    except ImportError:
        raise ConfigError(
            f"{what} needs asyncssh, which the plain install leaves out: "
            "pip install 'l4tui[serve]' (in a checkout: pip install -e '.[serve]')"
        ) from None


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import math
    from pathlib import Path

    from l4tui.lab import load_lab
    from l4tui.serve.address import parse_address
    from l4tui.serve.auth import load_users

    host, port = parse_address(args.ssh)
    for name, ok, must in (
        ("max_sessions", args.max_sessions >= 1, "be at least 1"),
        ("per_user", args.per_user >= 1, "be at least 1"),
        ("idle_timeout", math.isfinite(args.idle_timeout) and args.idle_timeout > 0, "be > 0"),
        ("login_timeout", math.isfinite(args.login_timeout) and args.login_timeout > 0, "be > 0"),
        ("warm", args.warm >= 0, "be 0 or more"),
        ("warm", args.warm <= args.max_sessions, "be at most --max-sessions"),
    ):
        if not ok:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must {must}, not {getattr(args, name):g}")
    if not args.authorized_keys and not args.users:
        raise ConfigError("nobody could log in: give --authorized-keys DIR or --users FILE")
    if args.authorized_keys and not Path(args.authorized_keys).is_dir():
        raise ConfigError("not a directory of authorized_keys files", args.authorized_keys)
    lab = load_lab(args.lab)  # a bad lab is found before anyone connects
    users = load_users(args.users) if args.users else None
    state = Path(args.state_dir)
    # Only now the SSH library (asyncssh, cryptography): every bad argument is said before.
    _need_asyncssh("l4tui serve")
    from l4tui.serve.server import LabServer, Limits, serve

    limits = Limits(
        max_sessions=args.max_sessions,
        per_user=args.per_user,
        idle_timeout=args.idle_timeout,
        login_timeout=args.login_timeout,
    )
    server = LabServer(str(Path(lab.file).resolve()), state, users, args.authorized_keys, limits)
    server.warm = args.warm
    server.mouse = not args.no_mouse
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # our own line per event is enough
    key = Path(args.host_key) if args.host_key else state / "host_ed25519"
    return asyncio.run(serve(server, host, port, key))


def _passwd(args: argparse.Namespace) -> int:
    import getpass
    import os
    from pathlib import Path

    import yaml

    from l4tui.files import atomic_text
    from l4tui.serve.auth import USER, hash_password, load_users

    if not USER.fullmatch(args.user):
        raise ConfigError(f"not a user name: {args.user!r} (lower case, digits, - and _)")
    path = Path(args.users)
    if not path.parent.is_dir():  # said before the password is typed in vain
        raise ConfigError("no such directory for the users file", str(path.parent))
    users = load_users(args.users) if os.path.lexists(path) else {}
    try:
        if sys.stdin.isatty():
            password = getpass.getpass(f"password for {args.user}: ")
        else:  # from a pipe (a script): its first line, no prompt
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            password = line.removesuffix("\n")
    except EOFError:
        raise ConfigError("no password given (end of input); the users file is unchanged") from None
    except KeyboardInterrupt:
        print(file=sys.stderr)  # off the prompt's line
        raise ConfigError("interrupted; the users file is unchanged") from None
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters")
    users[args.user] = hash_password(password)
    made = False
    if not os.path.lexists(path):
        # A new users file is private from its first byte (it holds password hashes): made
        # 0600 here, the atomic writer then keeps that mode.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            raise ConfigError(f"cannot make the users file: {e.strerror}", args.users) from None
        made = True
    try:
        # Whole or not at all: a full disk leaves the old file as it was.
        with atomic_text(path) as out:
            out.write(yaml.safe_dump({"users": users}))
    except ConfigError as e:
        if made:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the users file: {e.message}", args.users) from None
    except OSError as e:
        if made:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the users file: {e.strerror}", args.users) from None
    print(f"{args.user} stored in {args.users}")
    return 0


def _lab_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from l4tui.labstatus import grade, render

    root = Path(args.state_dir)
    if not root.is_dir():
        raise ConfigError("no such state directory", args.state_dir)
    rows = grade(root)
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0


def _check(args: argparse.Namespace) -> int:
    from kernel.scenario import load_scenario
    from kernel.system import System

    scenario = load_scenario(args.file)
    System(scenario)  # what does not fit the machine (memory, threads) is found as by `run`
    threads = len(scenario.threads())
    print(
        f"{args.file}: ok ({len(scenario.tasks)} tasks, {threads} threads, "
        f"{scenario.profile.name} with {scenario.profile.cpus} CPUs)"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from l4tui import report

    result: dict[str, Any] = {}
    if args.which in ("serve", "all"):
        _need_asyncssh(f"l4tui bench {args.which}")  # said before anything runs
    if args.which in ("thesis", "all"):
        from machine.profile import load_profile

        overrides = {"cpus": args.cpus} if args.cpus else None
        profile = load_profile(args.profile, overrides=overrides)  # bad input first

        from l4tui.bench.thesis import run_thesis

        result["thesis"] = run_thesis(profile)
    if args.which in ("engine", "all"):
        from l4tui.bench.engine import run_engine

        result["engine"] = run_engine()
    if args.which in ("kernel", "all"):
        from l4tui.bench.kernel import run_kernel

        result["kernel"] = run_kernel()
    if args.which in ("debugger", "all"):
        from l4tui.bench.debugger import run_debugger

        if args.history < 1:
            raise ConfigError(f"--history must be at least 1, not {args.history}")
        result["debugger"] = run_debugger(args.history)
    if args.which in ("tui", "all"):
        from l4tui.bench.tui import run_tui

        result["tui"] = run_tui()
    if args.which in ("serve", "all"):
        from l4tui.bench.serve import run_serve

        result["serve"] = run_serve()
    if args.which in ("explore", "all"):
        from l4tui.bench.explore import run_explore

        result["explore"] = run_explore()

    if args.json:
        payload = result if args.which == "all" else result[args.which]
        print(json.dumps(payload, indent=2))
        return 0
    parts = []
    if "thesis" in result:
        parts.append(report.format_thesis(result["thesis"]))
    if "engine" in result:
        parts.append(report.format_engine(result["engine"]))
    if "kernel" in result:
        parts.append(report.format_rows(result["kernel"]))
    if "debugger" in result:
        parts.append(report.format_rows(result["debugger"]))
    if "tui" in result:
        parts.append(report.format_rows(result["tui"]))
    for name in ("serve", "explore"):
        if name in result:
            parts.append(report.format_rows(result[name]))
    print("\n\n".join(parts))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `l4tui` command with `argv` (default: `sys.argv[1:]`); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, bad usage
        return 0 if stop.code is None else int(stop.code)
    if args.command is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return _open(parser.parse_args(["open"]))  # the monitor on the built-in demo
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except ConfigError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`l4tui bench | head`): not an error of ours.
        sys.stdout = None  # type: ignore[assignment]  # no flush at exit
        return 0
