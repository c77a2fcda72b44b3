"""The session a front end drives: in its engine process, or a lab's resumed one (DESIGN.md §1).

`with_engine` runs a front end with its session moved into an engine
process (`l4tui.engine`: checkpoints forked off the session); `lab_session`
loads a lab sheet and its session — the saved one resumed, or a fresh one
on the lab's scenario. `l4tui open`, `console` and `lab` use them, and so do
the SSH server's zygote and warm slots (`l4tui/serve/zygote.py`,
`l4tui/tui/warm.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from l4tui import checkpoints, engine, files
from l4tui.executor import load_session
from l4tui.lab import load_lab
from l4tui.saved import same_file
from l4tui.session import Session
from machine.errors import ConfigError


def with_engine(session: Any, run: Callable[[Any], int], served: bool = False) -> int:
    """`run(session)` with the session in an engine process (checkpoints) where fork exists,
    forked before the front end starts any thread (Textual's); the engine ends with it.

    `served`: a student's session on a server that runs many (`lab --confine`): fewer
    checkpoints (checkpoints.SERVED_KEEP). A confined session stays confined on both
    sides: the engine's copy runs the file commands; the front end's names the root to
    the completer."""
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
