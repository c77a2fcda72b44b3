"""`l4tui serve` over loopback with an asyncssh client: logins, refusals, the monitor on a pty
read through pyte, resize, limits, idle timeout, and resuming a dropped session exactly."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pyte
import pytest

from l4tui.cli import main
from l4tui.cli.parser import build_parser
from l4tui.serve.auth import check_password, hash_password, load_users
from l4tui.serve.connection import split_login
from l4tui.serve.server import LabServer, Limits, host_key
from tests.waiting import await_until

LAB = str(Path(__file__).parent.parent / "scripts" / "labs" / "xp-ipc.yaml")
TABS = re.compile(r"TCB +(\d +)?Phase")  # the panes' tab bar: below 120x36 panes become tabs


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[LabServer, int, asyncssh.SSHKey]]:
    users = tmp_path / "users.yaml"
    users.write_text(f'users: {{alice: "{hash_password("wonderland")}"}}\n')
    keys = tmp_path / "keys"
    keys.mkdir()
    bob = asyncssh.generate_private_key("ssh-ed25519")
    (keys / "bob").write_text(bob.export_public_key().decode())
    # Idle sessions end after 2 minutes: never while a test waits on a loaded machine (the
    # idle test shortens it once its session has answered).
    limits = Limits(max_sessions=2, per_user=1, idle_timeout=120.0, login_timeout=10.0)
    server = LabServer(LAB, tmp_path / "state", load_users(str(users)), str(keys), limits)
    port = await server.start("127.0.0.1", 0, host_key(tmp_path / "state" / "host_ed25519"))
    yield server, port, bob
    await server.stop()


def connect(port: int, user: str = "alice", **kw: object):  # a connection
    options = {"password": "wonderland", "client_keys": None} if "client_keys" not in kw else {}
    return asyncssh.connect("127.0.0.1", port, username=user, known_hosts=None, **{**options, **kw})


async def disconnect_reason(port: int, user: str = "alice", **kw: object) -> str:
    """Log in and wait for the server to close the connection: the reason it gave."""
    told: list[str] = []

    class Told(asyncssh.SSHClient):
        def connection_lost(self, exc: Exception | None) -> None:
            told.append(getattr(exc, "reason", "") or str(exc or ""))

    try:
        conn = await connect(port, user, client_factory=Told, **kw)
    except asyncssh.DisconnectError as e:
        return e.reason
    async with conn:
        await asyncio.wait_for(conn.wait_closed(), 30)
    return told[0] if told else ""


class Screen:
    """The client's terminal: bytes from the server through a VT emulator (pyte)."""

    def __init__(self, proc: asyncssh.SSHClientProcess, size: tuple[int, int]) -> None:
        self.proc = proc
        self.screen = pyte.Screen(*size)
        self.stream = pyte.ByteStream(self.screen)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    async def wait_for(self, text: str | re.Pattern[str], timeout: float = 30.0) -> str:
        def seen() -> bool:
            screen = self.text()
            return text in screen if isinstance(text, str) else bool(text.search(screen))

        deadline = time.monotonic() + timeout
        while not seen():
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r}:\n{self.text()}")
            try:
                data = await asyncio.wait_for(self.proc.stdout.read(65536), 0.3)
            except TimeoutError:
                continue
            if not data and self.proc.stdout.at_eof():
                raise AssertionError(f"closed before {text!r}:\n{self.text()}")
            self.stream.feed(data)
        return self.text()

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)
        self.proc.change_terminal_size(cols, rows)


async def open_monitor(conn: asyncssh.SSHClientConnection, size=(160, 48)) -> Screen:
    proc = await conn.create_process(term_type="xterm-256color", term_size=size, encoding=None)
    return Screen(proc, size)


async def sessions_ended(server: LabServer, timeout: float = 15.0) -> None:
    """Until every session's process has saved and gone."""
    await await_until(lambda: not server.sessions, timeout, "every session saved and gone")


def test_passwords_are_salted_and_logins_parsed() -> None:
    a, b = hash_password("secret"), hash_password("secret")
    assert a != b and check_password("secret", a) and not check_password("Secret", a)
    assert split_login("alice+fresh") == ("alice", True)
    assert split_login("alice") == ("alice", False)


def test_the_state_dir_is_absolute_for_sessions_in_their_homes() -> None:
    server = LabServer(LAB, Path("relative-state"))
    assert server.state_dir == Path.cwd() / "relative-state"


async def test_password_login_shows_the_monitor_and_follows_a_resize(lab) -> None:
    server, port, _ = lab
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("lab sheet")
        screen.proc.stdin.write(b"break xp.proxy.send\r")
        await screen.wait_for("breakpoint 1 at xp.proxy.send")
        screen.resize(80, 24)
        await screen.wait_for(TABS)  # under 120x36 the panes become tabs
        # Should the terminal read ESC q as Alt+q on a loaded machine, the idle check ends it.
        server.limits = dataclasses.replace(server.limits, idle_timeout=4.0)
        screen.proc.stdin.write(b"\x1b")
        await asyncio.sleep(0.3)
        screen.proc.stdin.write(b"q")
        await screen.proc.wait_closed()
    saved = json.loads((server.state_dir / "alice.json").read_text())
    assert "break xp.proxy.send" in saved["commands"]


async def test_key_login_and_refusals(lab) -> None:
    server, port, bob = lab
    async with connect(port, "bob", client_keys=[bob]) as conn:
        screen = await open_monitor(conn, (120, 40))
        await screen.wait_for("CPUs")
        screen.proc.close()
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, "alice", password="wrong"):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, "mallory", password="wonderland"):
            pass
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, "bob", client_keys=[other]):
            pass


async def test_exec_and_forwarding_are_refused(lab) -> None:
    _, port, _ = lab
    async with connect(port) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", 22)
        with pytest.raises(asyncssh.ChannelOpenError):  # exec: the session request fails
            await conn.run("cat /etc/passwd", check=False)
        with pytest.raises(asyncssh.ChannelOpenError):  # so does a subsystem (sftp)
            await conn.start_sftp_client()


async def test_session_limits_refuse_with_a_message(lab) -> None:
    _, port, bob = lab
    async with connect(port) as conn:
        first = await open_monitor(conn)
        await first.wait_for("CPUs")
        second = await open_monitor(conn)  # per user: 1
        await second.wait_for("you already have 1 session open")
        async with connect(port, "bob", client_keys=[bob]) as conn2:
            b1 = await open_monitor(conn2)
            await b1.wait_for("CPUs")
            # A connection over a limit is told why and disconnected as it logs in.
            told = await disconnect_reason(port, "bob", client_keys=[bob])
            assert "the lab is full (2 sessions)" in told


async def test_an_idle_session_is_closed_and_its_work_saved(lab) -> None:
    server, port, _ = lab
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        screen.proc.stdin.write(b"step 7\r")
        await screen.wait_for("phase ")
        server.limits = dataclasses.replace(server.limits, idle_timeout=4.0)
        await asyncio.wait_for(screen.proc.wait_closed(), 20)  # the idle check runs every 5 s
    saved = json.loads((server.state_dir / "alice.json").read_text())
    assert "step 7" in saved["commands"]


@pytest.mark.slow
async def test_a_dropped_connection_resumes_exactly_and_fresh_starts_over(lab) -> None:
    server, port, _ = lab
    state = server.state_dir / "alice.json"
    conn = await connect(port)
    screen = await open_monitor(conn)
    await screen.wait_for("CPUs")
    screen.proc.stdin.write(b"break xp.proxy.send\r")
    await screen.wait_for("breakpoint 1 at")
    screen.proc.stdin.write(b"stepi 123\r")
    await screen.wait_for("stepped; last")
    conn.abort()  # the network goes away
    await sessions_ended(server)
    before = json.loads(state.read_text())
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        screen.proc.stdin.write(b"print cpu1.steps\r")
        await screen.wait_for("cpu1.steps = ")
        screen.proc.stdin.write(b"info breakpoints\r")
        await screen.wait_for("1: break xp.proxy.send")
        screen.proc.close()
    await sessions_ended(server)
    after = json.loads(state.read_text())
    assert after["log"] == before["log"]  # the same inputs: the identical state, replayed
    async with connect(port, "alice+fresh") as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        screen.proc.stdin.write(b"info breakpoints\r")
        await screen.wait_for("no breakpoints or watchpoints")
        screen.proc.close()


@pytest.mark.slow
async def test_a_warm_slot_takes_the_students_session_and_size(lab) -> None:
    server, port, _ = lab
    (server.state_dir / "alice.json").unlink(missing_ok=True)
    async with connect(port) as conn:  # a first session, to have something saved
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        screen.proc.stdin.write(b"break xp.proxy.send\r")
        await screen.wait_for("breakpoint 1 at")
        screen.proc.close()
    await sessions_ended(server)
    server.warm = 1
    server.fill_pool()
    slot = server.pool[0]
    await await_until(server.pool_ready, 30, "the warm pool got ready")
    async with connect(port) as conn:
        screen = await open_monitor(conn, (100, 30))
        await screen.wait_for("CPUs")
        assert not server.pool or server.pool[0] is not slot  # the slot was taken
        screen.proc.stdin.write(b"info breakpoints\r")
        await screen.wait_for("1: break xp.proxy.send")  # alice's own session, resumed
        await screen.wait_for(TABS)  # repainted at her size (tabs under 120x36)
        screen.proc.close()


RUNAWAY = """\
name: runaway
machine: {profile: p3-dual-450, cpus: 2}
tasks:
  - name: spin
    threads:
      - {name: spinner, cpu: 1, program: [{loop: [{compute: 500}]}]}
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
async def test_a_runaway_continue_is_its_own_niced_limited_process(tmp_path: Path) -> None:
    """Alice's endless `continue` burns her own process's CPU share; Bob's screen still answers."""
    (tmp_path / "runaway.yaml").write_text(RUNAWAY)
    lab = tmp_path / "lab.yaml"
    lab.write_text(
        "title: Runaway\nscenario: runaway.yaml\n"
        "exercises: [{title: Spin, text: Run it, check: {ran: [continue]}}]\n"
    )
    users = tmp_path / "users.yaml"
    hashed = hash_password("pw")
    users.write_text(f'users: {{alice: "{hashed}", bob: "{hashed}"}}\n')
    limits = Limits(max_sessions=2, per_user=1, cpu_seconds=600, memory_mb=900)
    server = LabServer(str(lab), tmp_path / "state", load_users(str(users)), None, limits)
    port = await server.start("127.0.0.1", 0, host_key(tmp_path / "host"))
    try:
        async with connect(port, password="pw") as a, connect(port, "bob", password="pw") as b:
            alice, bob = await open_monitor(a), await open_monitor(b)
            await alice.wait_for("CPUs")
            await bob.wait_for("CPUs")
            alice.proc.stdin.write(b"continue\r")
            await alice.wait_for("running")
            pids = {s.user: s.pid for s in server.sessions}
            assert pids["alice"] != pids["bob"]
            for pid in pids.values():  # its own session and pty, niced, with limits
                assert os.getsid(pid) == pid
                assert os.getpriority(os.PRIO_PROCESS, pid) == 5
                limits_text = Path(f"/proc/{pid}/limits").read_text()
                assert re.search(r"Max cpu time\s+600\s+600", limits_text)
                assert re.search(rf"Max address space\s+{900 << 20}\s+{900 << 20}", limits_text)
            before = _cpu_seconds(pids["alice"])
            bob.proc.stdin.write(b"stepi 5\r")  # Bob works while Alice's session spins
            await bob.wait_for("stepped; last")
            bob.proc.stdin.write(b"print cpu1.clock\r")
            await bob.wait_for("cpu1.clock = ")
            assert _cpu_seconds(pids["alice"]) > before  # it was running all along
            alice.proc.stdin.write(b"\x03")  # Ctrl-C pauses it; nothing lost
            await alice.wait_for("paused by you at micro-op")
    finally:
        await server.stop()


def _lines(stream) -> queue.Queue[str]:  # a text pipe
    """The lines of a pipe as they come ("" at its end), read by a thread that never blocks us."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.slow
def test_serve_starts_quietly_and_says_each_thing_once(tmp_path: Path) -> None:
    """No dependency's warnings; where it listens, the host key, the warm pool: each once, in the
    log (stderr), and nothing on stdout."""
    keys = tmp_path / "keys"
    keys.mkdir()
    argv = ["serve", "--ssh", "127.0.0.1:0", "--lab", LAB, "--authorized-keys", str(keys)]
    argv += ["--state-dir", str(tmp_path / "state"), "--warm", "1"]
    server = subprocess.Popen(
        [sys.executable, "-m", "l4tui", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said = []
    try:
        lines = _lines(server.stderr)
        while not said or "warm pool ready" not in said[-1]:
            line = lines.get(timeout=120)
            assert line, "the server ended before its pool was ready:\n" + "".join(said)
            said.append(line)
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = server.stdout.read()  # stderr is the thread's alone
    while (line := lines.get(timeout=30)) != "":
        said.append(line)
    log = "".join(said)
    assert server.returncode == 0, log
    assert "Warning" not in log + out
    assert out == ""  # one channel: the log
    for what in (
        " serving ",
        " host key SHA256:",
        " warm pool ready: 1 session in ",
        " shutting down",
    ):
        assert log.count(what) == 1, log
    assert re.search(r" serving \S+xp-ipc\.yaml on 127\.0\.0\.1:\d+$", log, re.M), log


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )


def test_only_asyncssh_s_cryptography_warnings_are_quieted() -> None:
    # With every warning an error, importing the server still works: asyncssh's are filtered ...
    assert _python("import l4tui.serve.server").stderr == ""
    # ... by module: the same category raised anywhere else still speaks.
    ours = _python(
        "import l4tui.serve.server, warnings\n"
        "from cryptography.utils import CryptographyDeprecationWarning as W\n"
        "warnings.warn('ours', W)"
    )
    assert ours.returncode == 1 and "CryptographyDeprecationWarning: ours" in ours.stderr


def test_serve_help_gives_every_option_a_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["serve", "--help"]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    options = re.split(r"\n  (?=--)", text.split("\n\n", 2)[2])[1:]  # one block per option
    names = [o.split()[0] for o in options]
    assert names == [
        "--lab",
        "--ssh",
        "--state-dir",
        "--host-key",
        "--authorized-keys",
        "--users",
        "--max-sessions",
        "--per-user",
        "--idle-timeout",
        "--login-timeout",
        "--warm",
        "--no-mouse",
    ]
    for option in options:
        assert "(default: " in option or "required" in option, option
    assert "(default: 30)" in options[names.index("--max-sessions")]
    # The defaults shown are the server's own.
    args = build_parser().parse_args(["serve", "--lab", LAB])
    for name in ("max_sessions", "per_user", "idle_timeout", "login_timeout"):
        assert getattr(args, name) == getattr(Limits(), name)


@pytest.mark.parametrize(
    "bad",
    [
        ["--max-sessions", "0"],
        ["--per-user", "-1"],
        ["--idle-timeout", "-1"],
        ["--idle-timeout", "0"],
        ["--login-timeout", "0"],
        ["--login-timeout", "nan"],
        ["--warm", "-3"],
        ["--warm", "many"],
        ["--ssh", "nonsense"],
        ["--ssh", "127.0.0.1:70000"],
    ],
)
def test_a_bad_serve_option_is_one_error_line(
    bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    argv = ["serve", "--lab", LAB, "--authorized-keys", str(keys)]
    assert main([*argv, "--state-dir", str(tmp_path / "state"), *bad]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert bad[0] in err
    assert not (tmp_path / "state").exists()  # nothing started


@pytest.mark.slow
def test_an_address_in_use_is_one_error_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--ssh", f"127.0.0.1:{port}", "--lab", LAB]
        argv += ["--authorized-keys", str(keys), "--state-dir", str(tmp_path / "state")]
        done = subprocess.run(
            [sys.executable, "-m", "l4tui", *argv], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert done.stderr.count("\n") == 1 and done.stdout == ""
