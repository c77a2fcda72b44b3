"""`l4tui serve`: a lab over SSH — each student in their own l4tui, on their own terminal.

Isolation: every shell session runs `l4tui lab LAB --state
STATE/USER.json` as its own process, in its own session with its own pseudo-
terminal (a fixed argv, never a shell; an allow-listed environment), niced,
with CPU-time and address-space limits. One student's runaway `continue`
costs the others only what the OS's CPU share gives it. Terminal bytes go
through untouched; the client's size is set on the pty at start and on
every resize (the child gets SIGWINCH). The child saves its session after
every command, so a dropped connection loses nothing, and the next login
resumes it (`ssh USER+fresh@…` starts over).

Only public keys (an authorized_keys file per user) or passwords (salted
scrypt hashes) authenticate. Port, agent and X11 forwarding, exec requests
and subsystems are refused. Limits: sessions in all and per user, the login
time, idle time, password attempts. Each login, logout and refusal is a log
line with the peer and user.

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
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from l4tui.serve.auth import USER, authorized_keys, check_password
from machine.errors import ConfigError

log = logging.getLogger("l4tui.serve")


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 30
    per_user: int = 2
    login_timeout: float = 60.0
    idle_timeout: float = 1800.0
    password_attempts: int = 3
    cpu_seconds: int = 4 * 3600
    memory_mb: int = 1024
    repaint_ms: int = 400  # slower repaints for a network link


POOL_SIZE = (80, 24)  # warm slots are painted at the usual default terminal size
BUFFER = 256 << 10  # what a slot keeps of its first output: terminal set-up and first frame


@dataclass
class Slot:
    """A warm session: l4tui already running and painted on its pty, waiting for a student."""

    master: int
    control: int  # our end of its control socket: it says "painted"; its student goes here
    pid: int
    output: bytearray = field(default_factory=bytearray)
    painted: bool = False
    last_output: float = 0.0  # monotonic time of its last drawing

    def hear(self) -> None:
        """The slot's word that its first frame is drawn (or its end, as end of file)."""
        with contextlib.suppress(OSError):
            self.painted = bool(os.read(self.control, 16))
        asyncio.get_running_loop().remove_reader(self.control)

    def drain(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return
        self.last_output = time.monotonic()
        if len(self.output) < BUFFER:
            self.output += data[: BUFFER - len(self.output)]


@dataclass
class LabServer:
    """The lab's server: who may log in, the live sessions, and their children."""

    lab: str
    state_dir: Path
    users: dict[str, str] | None = None  # user -> salted hash
    keys_dir: str | None = None
    limits: Limits = field(default_factory=Limits)
    sessions: set[ChildSession] = field(default_factory=set)
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
                "argv": ["lab", self.lab],
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
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "l4tui.serve.zygote", str(theirs.fileno()), self.lab],
            pass_fds=(theirs.fileno(),),
            env=env,
            start_new_session=True,
        )
        theirs.close()
        self._zsock = ours

    def spawn(self, request: dict[str, Any], slave: int, control: int | None = None) -> int:
        """Fork a session from the zygote onto the pty `slave`; its pid."""
        fds = [slave] if control is None else [slave, control]
        socket.send_fds(self._zsock, [json.dumps(request).encode()], fds)
        reply = self._zsock.recv(4096)
        if not reply:
            raise OSError("the session zygote has gone")
        return int(json.loads(reply)["pid"])

    def count(self, user: str) -> int:
        return sum(1 for s in self.sessions if s.user == user)

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.limits.idle_timeout / 4))
            now = time.monotonic()
            for s in list(self.sessions):
                if now - s.last_input > self.limits.idle_timeout:
                    log.info("idle %s from %s after %.0f s", s.user, s.peer, now - s.last_input)
                    s.end(f"idle for {self.limits.idle_timeout:.0f} s: your work is saved")


def split_login(name: str) -> tuple[str, bool]:
    """`alice` or `alice+fresh` (start the lab over): the user and whether to start fresh."""
    if name.endswith("+fresh"):
        return name[: -len("+fresh")], True
    return name, False


class Connection(asyncssh.SSHServer):
    """One SSH connection: authentication and what it may open."""

    def __init__(self, server: LabServer) -> None:
        self.server = server
        self.peer = "?"
        self.user = ""
        self.fresh = False
        self.failures = 0
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.user:
            log.info("disconnect %s from %s", self.user, self.peer)

    def begin_auth(self, username: str) -> bool:
        self.user, self.fresh = split_login(username)
        keys = self.server.keys_dir and authorized_keys(self.server.keys_dir, self.user)
        if keys and self.conn is not None:
            self.conn.set_authorized_keys(keys)
        return True  # always authenticate; nobody gets in without

    def public_key_auth_supported(self) -> bool:
        return self.server.keys_dir is not None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # only the keys set with set_authorized_keys count

    def password_auth_supported(self) -> bool:
        return self.server.users is not None

    async def validate_password(self, username: str, password: str) -> bool:
        user, _ = split_login(username)
        stored = (self.server.users or {}).get(user)
        if stored is not None and USER.match(user):
            # scrypt takes ~50 ms on purpose: in a thread, so thirty logins do not queue.
            ok = await asyncio.get_running_loop().run_in_executor(
                None, check_password, password, stored
            )
            if ok:
                return True
        self.failures += 1
        log.info("refused %s from %s: bad password (%d)", user, self.peer, self.failures)
        if self.failures >= self.server.limits.password_attempts and self.conn is not None:
            log.info("refused %s from %s: too many attempts", user, self.peer)
            self.conn.close()
        return False

    def auth_completed(self) -> None:
        log.info("login %s from %s", self.user, self.peer)

    def connection_requested(self, *args: Any) -> bool:
        log.info("refused %s from %s: port forwarding", self.user, self.peer)
        return False

    def server_requested(self, *args: Any) -> bool:
        log.info("refused %s from %s: remote port forwarding", self.user, self.peer)
        return False

    def unix_connection_requested(self, *args: Any) -> bool:
        return False

    def unix_server_requested(self, *args: Any) -> bool:
        return False

    def session_requested(self) -> ChildSession:
        return ChildSession(self)


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
        limits = self.server.limits
        if len(self.server.sessions) >= limits.max_sessions:
            self.refusal = f"the lab is full ({limits.max_sessions} sessions); try again later"
        elif self.server.count(self.user) >= limits.per_user:
            self.refusal = f"you already have {limits.per_user} sessions open"
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
        argv = ["lab", server.lab, "--state", str(state)]  # a fixed argv: never a shell
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

    def end(self, message: str | None) -> None:
        """Stop the child (it saves its session and exits)."""
        if message and self.chan is not None:
            with contextlib.suppress(Exception):
                self.chan.write(f"\r\nl4tui: {message}\r\n".encode())
        if self.pid and self.master >= 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key: read, or generated (ed25519) and kept on first start."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
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
    try:
        server.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        where = str(server.state_dir)
        raise ConfigError(f"cannot make the state directory: {_reason(e)}", where) from None
    made = not key_path.exists()
    try:
        key = host_key(key_path)
    except (OSError, asyncssh.KeyImportError) as e:
        raise ConfigError(f"not a usable host key: {_reason(e)}", str(key_path)) from None
    try:
        port = await server.start(host, port, key)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {_reason(e)}") from None
    log.info("serving %s on %s:%d", server.lab, host, port)
    log.info("host key %s (%s%s)", key.get_fingerprint(), key_path, ", new" if made else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: %d sessions", len(server.sessions))
    await server.stop()
    return 0
