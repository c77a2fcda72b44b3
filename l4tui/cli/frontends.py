"""`l4tui open`, `l4tui console` and `l4tui lab`: the debugger's front ends on a session.

The Textual monitor's import (`l4tui.tui.app`, seconds) is made inside
`open_monitor` and `lab`, after the check for a terminal: `console`, and a
monitor refused for want of a terminal, never pay it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kernel.scenario import load_scenario
from l4tui import console as consoles
from l4tui.cli.sessions import lab_session, with_engine
from l4tui.demo import demo_scenario
from l4tui.executor import load_schedule, load_session
from l4tui.paths import lab_state_path
from l4tui.session import Session
from machine.errors import ConfigError


def _session(args: argparse.Namespace) -> Session:
    """The session a front end opens: a schedule followed on the scenario, or the
    scenario (the built-in demo without one) from its start."""
    if args.schedule:
        return load_schedule(args.schedule, args.file)
    scenario = load_scenario(args.file) if args.file else demo_scenario()
    return Session(scenario, seed=args.seed)


def _no_terminal(hint: str = "") -> bool:
    """Whether the monitor cannot run here (said on stderr): it needs a terminal."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return False
    print(f"error: the monitor needs a terminal{hint}", file=sys.stderr)
    return True


def console(args: argparse.Namespace) -> int:
    session = _session(args)
    return with_engine(session, lambda s: consoles.main(s, args.script, echo=not args.quiet))


def open_monitor(args: argparse.Namespace) -> int:
    # --load "" too: refused as a name, not taken for no session
    session = load_session(args.load) if args.load is not None else _session(args)
    if _no_terminal("; try `l4tui console`"):
        return 2
    from l4tui.tui.app import run_app  # lazy: see the module docstring

    fresh = args.load is None and not args.schedule  # a saved session or schedule sets its stage
    return with_engine(session, lambda s: run_app(s, mouse=not args.no_mouse, run_script=fresh))


def lab(args: argparse.Namespace) -> int:
    state = args.state if args.state is not None else str(lab_state_path(args.file))
    lab, session = lab_session(args.file, state, args.fresh, args.confine)
    if _no_terminal():
        return 2
    from l4tui.tui.app import run_app  # lazy: see the module docstring

    autosave = Path(state)
    try:
        autosave.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot make its directory: {e.strerror}", state) from None
    # A served student's too (`--confine`), and a warm slot's: its student's session is
    # loaded into the engine's later (tui/warm.py).
    return with_engine(
        session,
        lambda s: run_app(s, lab=lab, autosave=autosave, mouse=not args.no_mouse),
        served=args.confine is not None,
    )
