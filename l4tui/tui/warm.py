"""A warm slot of `l4tui serve`: a monitor already started and painted, waiting for a student.

The server holds the other end of a socket (fd `L4TUI_POOL_FD`). The slot
writes `painted` once its first frame is out; when a student logs in, the
server writes a JSON request naming the student's saved session (or asking
for a fresh one), their history file and where to save — and the slot takes
that student's work as it is. The end of the socket with no request means the
server has gone: the slot ends (it has no student's work to save).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from machine.errors import ConfigError

if TYPE_CHECKING:
    from l4tui.tui.app import MonitorApp


def listen(app: MonitorApp, fd: int) -> None:
    """Wait for this slot's student on `fd`; say `painted` after the first frame."""
    asyncio.get_running_loop().add_reader(fd, assign, app, fd)
    app.call_after_refresh(_painted, fd)


def _painted(fd: int) -> None:
    with contextlib.suppress(OSError):  # already taken: the server closed its end
        os.write(fd, b"painted")


def assign(app: MonitorApp, fd: int) -> None:
    """The server gave this warm slot a student: their saved session (or a fresh one)."""
    from l4tui import files
    from l4tui.cli import lab_session
    from l4tui.tui.console import ConsolePane

    asyncio.get_running_loop().remove_reader(fd)
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b""
    if not data:  # the server has gone (or given up on this slot): nobody is coming
        with contextlib.suppress(OSError):
            os.close(fd)
        app.exit(0)
        return
    req: dict = {}
    root = None
    try:
        req = json.loads(data)
        # The student's own directory for file commands (`confine`, files.FileRoot); without
        # one the slot's own confinement carries over to the student's session.
        root = files.root_of(app.session)
        if req.get("confine"):
            root = files.FileRoot.confined_to(req["confine"])
            # The slot's own session is narrowed first: whatever fails below, the student
            # works inside their own directory, never the slot's (all the students').
            files.confine(app.session, root)
        if req.get("fresh") or not Path(req["state"]).exists():
            # A new student: this slot's own untouched session is theirs as it is.
            lab, session = app.lab, app.session
        else:
            lab, session = lab_session(req["lab"], req["state"], False)
        files.confine(session, root)  # FileError (a ConfigError) if it would widen the slot's
    except (OSError, ValueError, KeyError, ConfigError) as e:
        if isinstance(req, dict) and req.get("confine") and files.root_of(app.session) != root:
            app.exit(1)  # not confined to the student's own directory: nobody works here
            return
        app.notify(f"cannot load your session: {e}", severity="error", timeout=30)
        return
    finally:
        os.close(fd)
    if session is not app.session:
        app.session, app.lab = session, lab
        app.transcript.clear()
        app.query_one(ConsolePane).clear()
        for pane in app.query("LabPane"):
            pane.shown = None  # type: ignore[attr-defined]
        app.for_each_pane()
        if lab is not None:
            app.report(app.lab_greeting())
    app.autosave = Path(req["state"])
    if req.get("history"):  # the student's own history, not the warm slot's
        from prompt_toolkit.history import FileHistory

        hist = Path(req["history"])
        with contextlib.suppress(OSError):
            hist.parent.mkdir(parents=True, exist_ok=True)
            console = app.query_one(ConsolePane)
            console.history = FileHistory(str(hist))
            console.entries = list(console.history.load_history_strings())
    app.save_now()
