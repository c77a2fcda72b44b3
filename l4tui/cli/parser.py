"""The `l4tui` argument parser: every subcommand, its options and its help (DESIGN.md §2).

Each subcommand's handler lives in a module of this package by group
(`run`, `explore`, `frontends`, `serving`, `bench`) and is imported only when
that command runs: the monitor's Textual, the SSH server's asyncssh and the
simulator itself cost seconds to import, which `l4tui --help`, `l4tui check`
or `l4tui console` should not pay for one another.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import NoReturn

from l4tui import __version__

DEFAULT_PROFILE = "p3-dual-450"
MAX_CPUS = 16
SCHEDULE = "follow a race schedule saved by `l4tui explore` (continue stops at each choice)"
NO_MOUSE = "leave the mouse to the terminal (its own selection and copy); every action has a key"


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The handler `name` of `l4tui.cli.<module>`, imported when the command runs."""

    def run(args: argparse.Namespace) -> int:
        handler = getattr(importlib.import_module(f"l4tui.cli.{module}"), name)
        return int(handler(args))

    return run


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
    bench.set_defaults(func=_command("bench", "bench"))

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
    run.set_defaults(func=_command("run", "run"))

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
    explore.set_defaults(func=_command("explore", "explore"))

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
    opener.set_defaults(func=_command("frontends", "open_monitor"))

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
    lab.set_defaults(func=_command("frontends", "lab"))

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
    serve.set_defaults(func=_command("serving", "serve_lab"))

    passwd = commands.add_parser(
        "passwd",
        help="add or change a user in a users file (salted scrypt hash)",
        description="Read a password from the terminal and store its salted hash.",
    )
    passwd.add_argument("user", metavar="USER")
    passwd.add_argument("--users", metavar="FILE", required=True)
    passwd.set_defaults(func=_command("serving", "passwd"))

    status = commands.add_parser(
        "lab-status",
        help="every student's progress on a lab (from the saved sessions)",
        description="Grade the sessions saved in a state directory (one USER.json each) "
        "against their lab and print a table.",
    )
    status.add_argument("--state-dir", metavar="DIR", required=True, help="where sessions are")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=_command("serving", "lab_status"))

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
    console.set_defaults(func=_command("frontends", "console"))

    check = commands.add_parser(
        "check",
        help="validate a scenario (exit 0 or 2)",
        description="Validate a scenario file without running it.",
    )
    check.add_argument("file", metavar="FILE", help="scenario file (YAML)")
    check.set_defaults(func=_command("run", "check"))
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
