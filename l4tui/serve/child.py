"""A student's shell session: their own l4tui process on its own pseudo-terminal.

The process is forked by the server's zygote (l4tui/serve/zygote.py) with a fixed
argv, never a shell, and an allow-listed environment; or a warm slot
(l4tui/serve/slot.py) is handed over. Terminal bytes go through untouched; the
client's size is set on the pty at start and on every resize (the child gets
SIGWINCH). Ending the session sends the child SIGTERM: it saves and exits, and
the next login resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import struct
import termios
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from l4tui.serve.slot import BUFFER, POOL_SIZE, Slot

if TYPE_CHECKING:
    from l4tui.serve.connection import Connection

log = logging.getLogger("l4tui.serve")


class ChildSession(asyncssh.SSHServerSession):
    """A shell session: the student's own l4tui process on its own pseudo-terminal."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.server = conn.server
        self.user = conn.user
        self.peer = conn.peer
        self.chan: Any = None
        self.term = "xterm-256color"
        self.size = (80, 24)
        self.master = -1
        self.pid = 0  # the session's process (a child of the zygote)
        self.last_input = time.monotonic()
        self.refusal: str | None = None

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        self.term = term_type or self.term
        if term_size[0] and term_size[1]:
            self.size = (term_size[0], term_size[1])
        return True

    def shell_requested(self) -> bool:
        # The connection's first session takes the place it holds already; a second one more.
        more = 1 if self.conn.sessions else 0
        self.refusal = self.server.refusal(self.user, more) if more else None
        if self.refusal is None:
            self.conn.took(self)
        return True

    def exec_requested(self, command: str) -> bool:
        log.info("refused %s from %s: exec %r", self.user, self.peer, command[:60])
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        log.info("refused %s from %s: subsystem %r", self.user, self.peer, subsystem)
        return False

    def session_started(self) -> None:
        if self.refusal is not None:
            log.info("refused %s from %s: %s", self.user, self.peer, self.refusal)
            self.chan.write(f"l4tui: {self.refusal}\r\n".encode())
            self.chan.exit(1)
            return
        try:
            slot = self.server.take()
            if slot is not None:
                self._attach(slot)
            else:
                self._spawn()
        except OSError as e:
            log.error("cannot start l4tui for %s: %s", self.user, e)
            self.conn.gave_back(self)
            self.chan.write(b"l4tui: the lab could not start; tell the instructor\r\n")
            self.chan.exit(1)
            return
        self.server.sessions.add(self)
        log.info("session %s from %s (%dx%d %s)", self.user, self.peer, *self.size, self.term)

    def _spawn(self) -> None:
        server, limits = self.server, self.server.limits
        home = server.state_dir / "home" / self.user
        home.mkdir(parents=True, exist_ok=True)
        state = server.state_dir / f"{self.user}.json"
        files = server.files_dir(self.user)  # file commands stay in there
        # A fixed argv: never a shell.
        argv = ["lab", server.lab, "--state", str(state), "--confine", str(files)]
        if self.conn.fresh:
            argv.append("--fresh")
        env = server.session_env(home, self.term)
        master, slave = os.openpty()
        self.master = master
        self._set_size()
        request = {
            "argv": argv,  # the zygote's child runs l4tui's main with it
            "env": env,
            "cwd": str(home),
            "cpu_seconds": limits.cpu_seconds,
            "memory_mb": limits.memory_mb,
        }
        try:
            self.pid = server.spawn(request, slave)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._from_child)

    def _attach(self, slot: Slot) -> None:
        """Give a warm slot to this student: their session, their size, its screen so far."""
        home = self.server.state_dir / "home" / self.user
        home.mkdir(parents=True, exist_ok=True)
        assignment = {
            "lab": self.server.lab,
            "state": str(self.server.state_dir / f"{self.user}.json"),
            "fresh": self.conn.fresh,
            "history": str(home / "state" / "l4tui" / "history"),
            "confine": str(self.server.files_dir(self.user)),
        }
        os.write(slot.control, json.dumps(assignment).encode())
        os.close(slot.control)
        self.master, self.pid = slot.master, slot.pid
        self.chan.write(bytes(slot.output))  # everything it drew: the screen as it is
        cols, rows = self.size
        if len(slot.output) >= BUFFER:
            # Some of its drawing was dropped: two sizes a moment apart, each a SIGWINCH,
            # make it repaint whole even at the slot's own size.
            self.size = (max(2, cols - 1), rows)
            self._set_size()
            self.size = (cols, rows)
            asyncio.get_running_loop().call_later(0.15, self._set_size)
        elif self.size != POOL_SIZE:
            self._set_size()  # one repaint, at the client's size
        asyncio.get_running_loop().add_reader(self.master, self._from_child)

    def _set_size(self) -> None:
        if self.master >= 0:
            cols, rows = self.size
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _from_child(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            with contextlib.suppress(BrokenPipeError, OSError):  # the client went away
                self.chan.write(data)
            return
        self._finished()

    def _finished(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self.master)
        with contextlib.suppress(OSError):
            os.close(self.master)
        self.master = -1
        if self in self.server.sessions:
            self.server.sessions.discard(self)
            log.info("logout %s from %s", self.user, self.peer)
        self.conn.gave_back(self)
        with contextlib.suppress(Exception):
            self.chan.exit(0)

    def data_received(self, data: bytes, datatype: Any) -> None:
        self.last_input = time.monotonic()
        if self.master >= 0:
            with contextlib.suppress(OSError):
                os.write(self.master, data)

    def terminal_size_changed(self, width: int, height: int, pw: int, ph: int) -> None:
        if width and height:
            self.size = (width, height)
            self._set_size()

    def eof_received(self) -> bool:
        self.end(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.end(None)  # the child saves on SIGTERM; the next login resumes
        if self.pid == 0 or self.master < 0:  # no child to wait for: its place is free now
            self.conn.gave_back(self)

    def end(self, message: str | None) -> None:
        """Stop the child (it saves its session and exits)."""
        if message and self.chan is not None:
            with contextlib.suppress(Exception):
                self.chan.write(f"\r\nl4tui: {message}\r\n".encode())
        if self.pid and self.master >= 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
