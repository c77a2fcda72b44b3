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
from typing import TYPE_CHECKING, Any

from prompt_toolkit.history import FileHistory

from l4tui import files
from l4tui.cli.sessions import lab_session
from l4tui.lab import load_lab
from l4tui.tui.console import ConsolePane
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


def take_student(session: Any, req: dict[str, Any]) -> tuple[str | None, bool, str | None]:
    """Where the session lives (`Session.call`: the engine process, engine.py): narrow the
    slot's session to the student's directory, then make it their saved session (in place,
    as `load` does, so an engine's session stays the one its checkpoints serve).

    Returns (the student's directory, whether their saved session was loaded, the error
    that stopped it). The slot's own session is narrowed first: whatever fails after, the
    student works inside their own directory, never the slot's (all the students')."""
    where: str | None = None
    try:
        root = files.root_of(session)
        if req.get("confine"):
            root = files.FileRoot.confined_to(req["confine"])
            files.confine(session, root)
            where = str(root.root)
        if req.get("fresh") or not Path(req["state"]).exists():
            return where, False, None  # a new student: this slot's untouched session is theirs
        _, loaded = lab_session(req["lab"], req["state"], False)
        files.confine(loaded, root)  # FileError (a ConfigError) if it would widen the slot's
        session.become(loaded)
        return where, True, None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        return where, False, str(e)


def assign(app: MonitorApp, fd: int) -> None:
    """The server gave this warm slot a student: their saved session (or a fresh one)."""
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
    os.close(fd)
    req: Any = None
    try:
        req = json.loads(data)
        if not isinstance(req, dict):
            raise ValueError("not a request")
        where, loaded, error = app.session.call(take_student, req)
        if where is not None:  # the front end's copy (a RemoteSession): for the completer
            files.confine(app.session, files.FileRoot(Path(where)))
        lab = load_lab(req["lab"]) if loaded else app.lab
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        where, loaded, error = None, False, str(e)
    if isinstance(req, dict) and req.get("confine") and where is None:
        app.exit(1)  # not confined to the student's own directory: nobody works here
        return
    if error is not None:
        app.notify(f"cannot load your session: {error}", severity="error", timeout=30)
        return
    if loaded:
        app.lab = lab
        app.transcript.clear()
        app.query_one(ConsolePane).clear()
        for pane in app.query("LabPane"):
            pane.shown = None  # type: ignore[attr-defined]
        app.for_each_pane()
        if lab is not None:
            app.report(app.lab_greeting())
    app.autosave = Path(req["state"])
    if req.get("history"):  # the student's own history, not the warm slot's
        hist = Path(req["history"])
        with contextlib.suppress(OSError):
            hist.parent.mkdir(parents=True, exist_ok=True)
            console = app.query_one(ConsolePane)
            console.history = FileHistory(str(hist))
            console.entries = list(console.history.load_history_strings())
    app.save_now()
