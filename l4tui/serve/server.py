"""`l4tui serve`: a lab over SSH — each student in their own l4tui, on their own terminal.

This module is the server's lifetime and bookkeeping: listening, the session
zygote it starts and ends, the pool of warm slots, the limits and places held,
the idle watch, and shutdown. Each shell session is a `ChildSession`
(l4tui/serve/child.py) inside a `Connection` (l4tui/serve/connection.py).

Isolation: every shell session runs `l4tui lab LAB --state
STATE/USER.json` as its own process, in its own session with its own pseudo-
terminal (a fixed argv, never a shell; an allow-listed environment), niced,
with CPU-time and address-space limits. One student's runaway `continue`
costs the others only what the OS's CPU share gives it. The child saves its
session after every command, so a dropped connection loses nothing, and the
next login resumes it (`ssh USER+fresh@…` starts over).

Only public keys or passwords authenticate (l4tui/serve/auth.py). Port, agent
and X11 forwarding, exec requests and subsystems are refused. Limits: sessions
in all and per user, the login time, idle time, password attempts; they count
from authentication (issue 14). Each login, logout and refusal is a log line
with the peer and user.

The server says everything on one channel, its log (the `l4tui.serve` logger;
`l4tui serve` writes it to stderr), and each thing once: where it listens,
the host key's fingerprint, when the warm pool is ready, then the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from l4tui.serve.address import shown as shown_address
from l4tui.serve.auth import reason
from l4tui.serve.connection import Connection
from l4tui.serve.guard import Guard
from l4tui.serve.slot import POOL_SIZE, Slot
from machine.errors import ConfigError

if TYPE_CHECKING:
    from l4tui.serve.child import ChildSession

log = logging.getLogger("l4tui.serve")


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 30
    per_user: int = 2
    login_timeout: float = 60.0
    idle_timeout: float = 1800.0
    password_attempts: int = 3  # per connection; across connections: `Guard`
    cpu_seconds: int = 4 * 3600
    memory_mb: int = 1024
    repaint_ms: int = 400  # slower repaints for a network link


DRIVER = "l4tui.serve.driver:SessionDriver"  # sleeps while idle, ends with its terminal
MARKER = "L4TUI_SERVE"  # in the environment of every process a server starts: its state dir


@dataclass
class LabServer:
    """The lab's server: who may log in, the live sessions, and their children."""

    lab: str
    state_dir: Path
    users: dict[str, str] | None = None  # user -> salted hash
    keys_dir: str | None = None
    limits: Limits = field(default_factory=Limits)
    sessions: set[ChildSession] = field(default_factory=set)
    connections: set[Connection] = field(default_factory=set)  # authenticated, not yet closed
    guard: Guard = field(default_factory=Guard)  # password failures across connections
    _server: Any = None
    _zygote: Any = None  # the warm parent of the sessions (l4tui/serve/zygote.py)
    _zsock: Any = None
    warm: int = 0  # sessions kept started and painted, for a class logging in at once
    pool: list[Slot] = field(default_factory=list)
    _refill: Any = None  # the pending refill, pushed back while logins keep coming
    _announce: Any = None  # the task that says when the pool is painted
    _announced: bool = False  # the first "ready" is said; later ones are refills
    mouse: bool = True  # False: sessions leave mouse reporting off (terminal selection works)

    def __post_init__(self) -> None:
        # Sessions run in their own home directories: every path handed to them is absolute.
        self.state_dir = self.state_dir.resolve()

    async def start(self, host: str, port: int, host_key: Any) -> int:
        """Listen; returns the port (useful with port 0)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._start_zygote()
        try:
            self._server = await asyncssh.create_server(
                lambda: Connection(self),
                host,
                port,
                server_host_keys=[host_key],
                encoding=None,
                login_timeout=self.limits.login_timeout,
                x11_forwarding=False,
                agent_forwarding=False,
                allow_scp=False,
                allow_pty=True,
                line_editor=False,
            )
        except OSError:  # the address is taken, or not ours: no zygote left behind
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        loop.create_task(self._watch_idle())
        self.fill_pool()
        return self._server.sockets[0].getsockname()[1]

    def files_dir(self, user: str | None = None) -> Path:
        """Where a student's console file commands are confined (`lab --confine`), made 0700:
        STATE/files/USER; without a user the directory of them all (a warm slot's, until its
        student comes and it is narrowed to theirs)."""
        files = self.state_dir / "files"
        files.mkdir(mode=0o700, exist_ok=True)
        if user is None:
            return files
        mine = files / user
        mine.mkdir(mode=0o700, exist_ok=True)
        return mine

    def session_env(self, home: Path, term: str) -> dict[str, str]:
        """The allow-listed environment of a session (nothing of the server's own)."""
        return {
            "TERM": term,
            "COLORTERM": "truecolor",  # SSH clients rarely send it; Textual then uses 24-bit
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "PATH": os.defpath,
            "L4TUI_REPAINT_MS": str(self.limits.repaint_ms),
            "TEXTUAL_ANIMATIONS": "none",
            "L4TUI_MOUSE": "1" if self.mouse else "0",
            "TEXTUAL_DRIVER": DRIVER,
        }

    def fill_pool(self) -> None:
        """Start warm slots until there are `warm` of them."""
        home = self.state_dir / "home" / "_warm"
        home.mkdir(parents=True, exist_ok=True)
        while len(self.pool) < self.warm:
            master, slave = os.openpty()
            cols, rows = POOL_SIZE
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            request = {
                "argv": ["lab", self.lab, "--confine", str(self.files_dir())],
                "env": self.session_env(home, "xterm-256color"),
                "cwd": str(home),
                "cpu_seconds": self.limits.cpu_seconds,
                "memory_mb": self.limits.memory_mb,
            }
            try:
                pid = self.spawn(request, slave, theirs.fileno())
            finally:
                os.close(slave)
                theirs.close()
            os.set_blocking(master, False)
            slot = Slot(master, ours.detach(), pid)
            loop = asyncio.get_running_loop()
            loop.add_reader(master, slot.drain)
            loop.add_reader(slot.control, slot.hear)
            self.pool.append(slot)
        if self.warm and (self._announce is None or self._announce.done()):
            self._announce = asyncio.get_running_loop().create_task(self._announce_ready())

    def pool_ready(self, quiet: float = 1.0) -> bool:
        """Every warm slot has drawn its first frame and then been still for `quiet` s.

        After its first frame a session still settles (a few repaints as its panes
        fill); a class logging in during that would share the cores with it.
        """
        now = time.monotonic()
        return len(self.pool) >= self.warm and all(
            s.painted and now - s.last_output >= quiet for s in self.pool
        )

    async def _announce_ready(self) -> None:
        # Starting thirty sessions takes the cores for a while; a class that logs in
        # before then waits for it. The instructor (and `bench serve`) learn when.
        started = time.monotonic()
        while not self.pool_ready():
            if not self.warm:
                return
            await asyncio.sleep(0.25)
        took = time.monotonic() - started
        what = "refilled" if self._announced else "ready"
        self._announced = True
        n = len(self.pool)
        log.info("warm pool %s: %d session%s in %.1f s", what, n, "s"[: n != 1], took)

    def take(self) -> Slot | None:
        """A warm slot for a new session, if one is ready; more are started a moment later."""
        if not self.pool:
            return None
        slot = self.pool.pop(0)
        loop = asyncio.get_running_loop()
        loop.remove_reader(slot.master)
        loop.remove_reader(slot.control)
        # Refill once a burst of logins is past (10 s without one), not in the middle of it.
        if self._refill is not None:
            self._refill.cancel()
        self._refill = loop.call_later(10.0, self.fill_pool)
        return slot

    async def stop(self) -> None:
        """Close the listener, end every child (each saves on SIGTERM), wait for them."""
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            s.end("the lab server is shutting down")
        deadline = time.monotonic() + 10
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for slot in self.pool:
            with contextlib.suppress(OSError):
                asyncio.get_running_loop().remove_reader(slot.master)
                asyncio.get_running_loop().remove_reader(slot.control)
                os.killpg(slot.pid, signal.SIGTERM)
                os.close(slot.master)
                os.close(slot.control)
        self.pool.clear()
        self.warm = 0
        if self._announce is not None:
            self._announce.cancel()
        if self._zsock is not None:
            self._zsock.close()  # the zygote sees the end of its socket and leaves
        if self._zygote is not None:
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()

    def _start_zygote(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/"}
        env["TEXTUAL_ANIMATIONS"] = "none"  # Textual reads some settings at import
        env["TEXTUAL_DRIVER"] = DRIVER  # ... this one too
        # Every process this server starts carries it (sessions are forked, never exec'd, so
        # /proc/PID/environ shows it): whatever is left of a server can be found.
        env[MARKER] = str(self.state_dir)
        argv = [sys.executable, "-m", "l4tui.serve.zygote", str(theirs.fileno()), self.lab]
        # The zygote dies with this thread (PR_SET_PDEATHSIG): the event loop's, which runs
        # the server to its end.
        argv.append(str(os.getpid()))
        self._zygote = subprocess.Popen(
            argv,
            pass_fds=(theirs.fileno(),),
            env=env,
            start_new_session=True,
        )
        theirs.close()
        self._zsock = ours

    def spawn(self, request: dict[str, Any], slave: int, control: int | None = None) -> int:
        """Fork a session from the zygote onto the pty `slave`; its pid.

        A zygote that has ended (killed; its sessions went with it) is started again once.
        """
        fds = [slave] if control is None else [slave, control]
        for again in (True, False):
            try:
                socket.send_fds(self._zsock, [json.dumps(request).encode()], fds)
                reply = self._zsock.recv(4096)
            except OSError:
                reply = b""
            if reply:
                return int(json.loads(reply)["pid"])
            if not again or self._zygote is None:
                break
            try:  # its socket's end: it has gone, or is going
                code = self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                break
            log.error("the session zygote ended (%s); starting another", code)
            self._zsock.close()
            self._start_zygote()
        raise OSError("the session zygote has gone")

    def held(self, user: str | None = None) -> int:
        """Places held (by `user`, or by all): an authenticated connection holds one per session,
        or one while it has none; a session whose connection has gone, one until it has saved
        and ended."""
        n = sum(c.held() for c in self.connections if user is None or c.user == user)
        gone = (s for s in self.sessions if s.conn not in self.connections)
        return n + sum(1 for s in gone if user is None or s.user == user)

    def refusal(self, user: str, more: int = 1) -> str | None:
        """Why `user` may not take `more` places now (None: they may)."""
        limits = self.limits
        if self.held() + more > limits.max_sessions:
            return f"the lab is full ({limits.max_sessions} sessions); try again later"
        n = self.held(user)
        if n + more > limits.per_user:
            return f"you already have {n} session{'s'[: n != 1]} open"
        return None

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.limits.idle_timeout / 4))
            now = time.monotonic()
            for s in list(self.sessions):
                if now - s.last_input > self.limits.idle_timeout:
                    log.info("idle %s from %s after %.0f s", s.user, s.peer, now - s.last_input)
                    s.end(f"idle for {self.limits.idle_timeout:.0f} s: your work is saved")


HOST_KEY_BYTES = 1 << 16  # far more than any private key file


def host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key: read, or generated (ed25519) and kept on first start.

    Only a regular file of a key's size is read (never a FIFO or /dev/zero, which would
    hang the start); OSError or asyncssh.KeyImportError if it is not a usable key.
    """
    if os.path.lexists(path):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise asyncssh.KeyImportError("not a regular file")
            data = f.read(HOST_KEY_BYTES + 1)
        if len(data) > HOST_KEY_BYTES:
            raise asyncssh.KeyImportError("too large for a key file")
        return asyncssh.import_private_key(data)
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    return key


async def serve(server: LabServer, host: str, port: int, key_path: Path) -> int:
    """Run until SIGTERM or SIGINT; then save and end every session.

    A host key that cannot be read or made, or an address that cannot be
    listened on, is a ConfigError (one `error:` line, exit 2).
    """
    where = str(server.state_dir)
    if os.path.lexists(server.state_dir) and not server.state_dir.is_dir():
        raise ConfigError("cannot use it as the state directory: not a directory", where)
    try:
        server.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot make the state directory: {reason(e)}", where) from None
    made = not key_path.exists()
    try:
        key = host_key(key_path)
    except (OSError, ValueError, asyncssh.KeyImportError) as e:
        raise ConfigError(f"not a usable host key: {reason(e)}", str(key_path)) from None
    # From here a SIGTERM is a clean shutdown, even one that comes while starting.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await server.start(host, port, key)
    except OSError as e:
        raise ConfigError(f"cannot listen on {shown_address(host, port)}: {reason(e)}") from None
    log.info("serving %s on %s", server.lab, shown_address(host, port))
    log.info("host key %s (%s%s)", key.get_fingerprint(), key_path, ", new" if made else "")
    await stop.wait()
    log.info("shutting down: %d sessions", len(server.sessions))
    await server.stop()
    return 0
