"""One SSH connection to the lab server: who logs in, and the places the connection holds.

Only public keys (an authorized_keys file per user) or passwords (salted scrypt
hashes) authenticate; bad passwords are counted per connection here and per user
and address across connections (l4tui/serve/guard.py), and a name that does not
exist costs the same scrypt as one that does. Port forwarding is refused.

The limits count from authentication (issue 14): an authenticated connection
holds a place until it closes — its sessions, or one place while it has none —
so a connection over a limit is disconnected with the reason at once, and one
that holds no session for the login timeout is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import asyncssh

from l4tui.serve.auth import USER, authorized_keys, check_password, reason, unknown_hash
from l4tui.serve.child import ChildSession

if TYPE_CHECKING:
    from l4tui.serve.server import LabServer

log = logging.getLogger("l4tui.serve")


def shown(name: str) -> str:
    """A user name as the log shows it: as it is if valid, quoted if not (no forged lines)."""
    return name if USER.fullmatch(name) else repr(name[:40])


def split_login(name: str) -> tuple[str, bool]:
    """`alice` or `alice+fresh` (start the lab over): the user and whether to start fresh."""
    if name.endswith("+fresh"):
        return name[: -len("+fresh")], True
    return name, False


class Connection(asyncssh.SSHServer):
    """One SSH connection: authentication, the places it holds, and what it may open."""

    def __init__(self, server: LabServer) -> None:
        self.server = server
        self.peer = "?"
        self.host = "?"  # the peer's address: its password budget (l4tui/serve/guard.py)
        self.user = ""
        self.fresh = False
        self.failures = 0
        self.conn: asyncssh.SSHServerConnection | None = None
        self.sessions: set[ChildSession] = set()  # its shell sessions (each holds a place)
        self._idle: asyncio.TimerHandle | None = None  # closes it if it holds no session

    def held(self) -> int:
        return max(1, len(self.sessions))

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        if peer:
            self.host = str(peer[0])
            self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in self.host else f"{peer[0]}:{peer[1]}"

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_idle()
        if self in self.server.connections:
            self.server.connections.discard(self)
            log.info("disconnect %s from %s", self.user, self.peer)

    def begin_auth(self, username: str) -> bool:
        self.user, self.fresh = split_login(username)
        keys = self.server.keys_dir and authorized_keys(self.server.keys_dir, self.user)
        if keys and self.conn is not None:
            try:
                self.conn.set_authorized_keys(keys)
            except (OSError, ValueError, asyncssh.KeyImportError) as e:
                # The instructor's file is broken: said in the log; this user's keys refuse.
                log.error("cannot read %s's authorized_keys %s: %s", self.user, keys, reason(e))
        return True  # always authenticate; nobody gets in without

    def public_key_auth_supported(self) -> bool:
        return self.server.keys_dir is not None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # only the keys set with set_authorized_keys count

    def password_auth_supported(self) -> bool:
        return self.server.users is not None

    async def validate_password(self, username: str, password: str) -> bool:
        user, _ = split_login(username)
        guard = self.server.guard
        if not guard.begin(user, self.host):
            log.info("refused %s from %s: locked out", shown(user), self.peer)
            return self._bad_password(user)
        stored = (self.server.users or {}).get(user) if USER.fullmatch(user) else None
        # A name that does not exist is checked against a hash no password matches: one
        # scrypt either way, so the refusal's time does not say whether the name exists.
        # scrypt takes ~50 ms on purpose: in a thread, so thirty logins do not queue.
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                None, check_password, password, stored or unknown_hash()
            )
        except BaseException:
            guard.end(user, self.host, False)
            raise
        ok = ok and stored is not None
        guard.end(user, self.host, ok)
        if ok:
            return True
        log.info("refused %s from %s: bad password (%d)", shown(user), self.peer, self.failures + 1)
        return self._bad_password(user)

    def _bad_password(self, user: str) -> bool:
        self.failures += 1
        if self.failures >= self.server.limits.password_attempts and self.conn is not None:
            log.info("refused %s from %s: too many attempts", shown(user), self.peer)
            self.conn.close()
        return False

    def auth_completed(self) -> None:
        refusal = self.server.refusal(self.user)
        if refusal is not None:
            # Over a limit: told why and disconnected now, never holding a place.
            log.info("refused %s from %s: %s", self.user, self.peer, refusal)
            if self.conn is not None:
                self.conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, f"l4tui: {refusal}")
            return
        self.server.connections.add(self)
        log.info("login %s from %s", self.user, self.peer)
        self._start_idle()

    def _start_idle(self) -> None:
        """A connection that holds no session for the login timeout is closed (it held a place)."""
        self._cancel_idle()
        if self in self.server.connections:
            timeout = self.server.limits.login_timeout
            self._idle = asyncio.get_running_loop().call_later(timeout, self._no_session)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _no_session(self) -> None:
        self._idle = None
        if not self.sessions and self.conn is not None:
            timeout = self.server.limits.login_timeout
            log.info("closed %s from %s: no session in %.0f s", self.user, self.peer, timeout)
            self.conn.close()

    def took(self, session: ChildSession) -> None:
        self.sessions.add(session)
        self._cancel_idle()

    def gave_back(self, session: ChildSession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            if not self.sessions:
                self._start_idle()

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
