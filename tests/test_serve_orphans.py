"""Nothing `l4tui serve` starts outlives it, and an idle session sleeps (issue 14: twenty warm
sessions were left with parent pid 1 and their pty deleted, each burning 9% of a CPU).

Every process a server starts carries `L4TUI_SERVE=STATE_DIR` in its environment as it began
(sessions are forked from the zygote, never exec'd), so the tests find all that is left of a
server by that marker in /proc, and wait for a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest
from test_serve import LAB, _lines, connect, lab, open_monitor  # noqa: F401 - lab: fixture

from l4tui.serve.auth import hash_password
from l4tui.serve.server import MARKER
from tests.waiting import await_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def started_by(state_dir: Path) -> list[int]:
    """The live processes a server with this state directory started (zombies are not live)."""
    mark = f"{MARKER}={state_dir.resolve()}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if mark in env.split(b"\0"):
            found.append(int(entry))
    return found


def gone(pid: int) -> bool:
    """Ended (a zombie waiting for its parent counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class Served:
    """`l4tui serve` as its own process, as on a lab host; its log read by a thread."""

    def __init__(self, tmp_path: Path, warm: int, ignore_hangup: bool = False) -> None:
        users = tmp_path / "users.yaml"
        users.write_text(f'users: {{alice: "{hash_password("wonderland")}"}}\n')
        self.state = tmp_path / "state"
        argv = ["serve", "--ssh", "127.0.0.1:0", "--lab", LAB, "--users", str(users)]
        argv += ["--state-dir", str(self.state), "--warm", str(warm)]

        def no_hangups() -> None:  # as under nohup: the case that left orphans spinning
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l4tui", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=no_hangups if ignore_hangup else None,
        )
        self.lines = _lines(self.proc.stderr)
        self.log: list[str] = []
        self.port = int(self.wait_for(r" on 127\.0\.0\.1:(\d+)$").group(1))
        if warm:
            self.wait_for(r"warm pool ready")

    def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            line = self.lines.get(timeout=120)
            assert line, "the server ended:\n" + "".join(self.log)
            self.log.append(line)
            if found := re.search(pattern, line):
                return found

    def kill(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    made: list[Served] = []

    def start(warm: int = 1, ignore_hangup: bool = False) -> Served:
        made.append(Served(tmp_path, warm, ignore_hangup))
        return made[-1]

    yield start
    for s in made:  # whatever a failed test left: ended here, by the pids it started
        with contextlib.suppress(ProcessLookupError):
            s.proc.kill()
        s.proc.wait(timeout=30)
        for pid in started_by(s.state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _session(port: int) -> tuple[asyncssh.SSHClientConnection, object]:
    conn = await connect(port)
    screen = await open_monitor(conn, (100, 30))
    await screen.wait_for("CPUs")
    return conn, screen


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_nothing_the_server_started_outlives_it(
    served: Callable[..., Served], sig: int
) -> None:
    # SIGHUP ignored as under nohup: the session processes must end all the same.
    server = served(warm=2, ignore_hangup=True)
    conn, screen = await _session(server.port)
    screen.proc.stdin.write(b"stepi 3\r")  # type: ignore[attr-defined]
    await screen.wait_for("stepped; last")  # type: ignore[attr-defined]
    started = started_by(server.state)
    assert len(started) >= 3  # the zygote, alice's session (a slot she took), a spare slot
    server.kill(sig)
    await await_until(lambda: all(gone(pid) for pid in started) and not started_by(server.state))
    conn.abort()
    if sig == signal.SIGTERM:  # a clean shutdown: alice's work saved, the server says so
        assert server.proc.returncode == 0
        assert "stepi 3" in (server.state / "alice.json").read_text()


async def test_nothing_outlives_a_server_killed_half_way_through_logins(
    served: Callable[..., Served],
) -> None:
    server = served(warm=0)  # every session forked cold: the kill lands while one starts
    stuck = asyncio.Event()

    class HalfWay(asyncssh.SSHClient):
        async def password_auth_requested(self) -> str | None:
            await stuck.wait()  # never answers: a login half-way through authentication
            return None

    waiting = asyncio.ensure_future(
        asyncssh.connect(
            "127.0.0.1",
            server.port,
            username="alice",
            known_hosts=None,
            client_keys=None,
            client_factory=HalfWay,
            preferred_auth="password",
        )
    )
    conn = await connect(server.port)
    await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
    await asyncio.to_thread(server.wait_for, r" session alice from ")  # its process is forked
    started = started_by(server.state)
    assert len(started) >= 2  # the zygote and alice's session, still starting
    server.kill(signal.SIGKILL)
    await await_until(lambda: all(gone(pid) for pid in started) and not started_by(server.state))
    conn.abort()
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError, asyncssh.Error):
        await waiting
