"""`l4tui serve` and `l4tui passwd` on bad input: one `error:` line, exit 2, nothing changed
(issue 14), and `passwd` writes its users file whole or not at all, private."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_console_pty import Terminal
from test_serve import LAB

from l4tui.cli import main
from l4tui.serve.address import parse_address
from l4tui.serve.auth import check_password, load_users
from machine.errors import ConfigError


def _serve(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    argv = ["serve", "--lab", LAB, "--authorized-keys", str(keys), "--warm", "0"]
    if "--state-dir" not in extra:
        argv += ["--state-dir", str(tmp_path / "state")]
    return subprocess.run(
        [sys.executable, "-m", "l4tui", *argv, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--login-timeout", "-1"], "--login-timeout must be > 0"),
        (["--ssh", "::1:2222"], "an IPv6 address goes in brackets"),
        (["--ssh", "[::1"], "--ssh takes HOST:PORT or [IPV6]:PORT"),
        (["--ssh", "[nonsense]:22"], "is not an IPv6 address"),
        (["--ssh", "host:-1"], "the port is 0..65535"),
        (["--warm", "40"], "--warm must be at most --max-sessions"),
    ],
)
def test_a_bad_serve_argument_is_one_line(tmp_path: Path, extra: list[str], said: str) -> None:
    assert said in _one_error_line(_serve(tmp_path, *extra))
    assert not (tmp_path / "state").exists()


def test_a_host_key_that_is_no_key_is_one_line(tmp_path: Path) -> None:
    for bad in (tmp_path / "garbage", tmp_path / "dir"):
        if bad.name == "garbage":
            bad.write_bytes(b"\x00\xff not a key\n" * 10)
        else:
            bad.mkdir()
        err = _one_error_line(_serve(tmp_path, "--host-key", str(bad)))
        assert err.startswith(f"error: {bad}: not a usable host key: ")


def test_a_host_key_that_is_a_fifo_or_endless_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad in (str(fifo), "/dev/zero"):
        err = _one_error_line(_serve(tmp_path, "--host-key", bad))
        assert "not a usable host key: not a regular file" in err


def test_a_state_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("mine\n")
    err = _one_error_line(_serve(tmp_path, "--state-dir", str(plain)))
    assert err == f"error: {plain}: cannot use it as the state directory: not a directory\n"
    assert plain.read_text() == "mine\n"


def test_a_missing_lab_is_one_line_and_no_dependency_warnings(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "l4tui", "serve", "--lab", "missing.yaml"]
        + ["--authorized-keys", str(keys), "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert _one_error_line(done).startswith("error: missing.yaml: ")


@pytest.mark.slow
def test_serve_listens_on_an_ipv6_literal(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    keys = tmp_path / "keys"
    keys.mkdir()
    argv = ["serve", "--ssh", "[::1]:0", "--lab", LAB, "--authorized-keys", str(keys)]
    argv += ["--state-dir", str(tmp_path / "state"), "--warm", "0"]
    server = subprocess.Popen(
        [sys.executable, "-m", "l4tui", *argv], stderr=subprocess.PIPE, text=True
    )
    try:
        line = server.stderr.readline()
        assert " on [::1]:" in line, line
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0


def test_addresses_parse() -> None:
    assert parse_address("0.0.0.0:2222") == ("0.0.0.0", 2222)
    assert parse_address("[::1]:0") == ("::1", 0)
    assert parse_address("[::]:22") == ("::", 22)
    assert parse_address("lab.example.org:22") == ("lab.example.org", 22)
    for bad in ("", ":22", "host:", "host:65536", "[::1]", "[::1]22", "[]:22", "a b:22", "h:2e3"):
        with pytest.raises(ConfigError):
            parse_address(bad)


# --- passwd -------------------------------------------------------------------------------


def _passwd(users: Path, password: str | None) -> subprocess.CompletedProcess[str]:
    """`l4tui passwd alice --users FILE` with no terminal: the password comes on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "l4tui", "passwd", "alice", "--users", str(users)],
        input=None if password is None else password + "\n",
        stdin=subprocess.DEVNULL if password is None else None,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal: getpass reads stdin
    )


def test_passwd_makes_a_private_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    done = _passwd(users, "wonderland")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert check_password("wonderland", load_users(str(users))["alice"])


def test_passwd_keeps_the_files_mode_and_other_users(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    assert _passwd(users, "wonderland").returncode == 0
    text = users.read_text().replace("alice", "bob")
    users.write_text(text)
    users.chmod(0o640)
    assert _passwd(users, "looking-glass").returncode == 0
    assert stat.S_IMODE(users.stat().st_mode) == 0o640
    stored = load_users(str(users))
    assert check_password("looking-glass", stored["alice"]) and "bob" in stored


def test_passwd_with_no_input_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    assert "no password given" in _one_error_line(_passwd(users, None))
    assert not users.exists()


def test_passwd_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    users = tmp_path / "nowhere" / "users.yaml"
    err = _one_error_line(_passwd(users, "wonderland"))
    assert err == f"error: {users.parent}: no such directory for the users file\n"


def test_passwd_that_cannot_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk half-way through: the old users file stays as it was."""
    users = tmp_path / "users.yaml"
    monkeypatch.setattr(sys, "stdin", io.StringIO("wonderland\n"))
    assert main(["passwd", "alice", "--users", str(users)]) == 0
    before = users.read_bytes()

    def full_disk(data: object, *args: object, **kwargs: object) -> str:
        raise OSError(28, "No space left on device")  # as a write to a full disk would

    monkeypatch.setattr(yaml, "safe_dump", full_disk)
    monkeypatch.setattr(sys, "stdin", io.StringIO("looking-glass\n"))
    assert main(["passwd", "alice", "--users", str(users)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert users.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["users.yaml"]  # no temporary file left


def test_passwd_refuses_a_name_with_a_newline(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    assert main(["passwd", "alice\n", "--users", str(users)]) == 2
    assert not users.exists()


def test_passwd_at_a_terminal_asks_without_echo_and_ctrl_d_is_one_line(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    argv = [sys.executable, "-m", "l4tui", "passwd", "alice", "--users", str(users)]
    env = {**os.environ, "TERM": "xterm"}
    term = Terminal(argv, env)
    term.expect("password for alice: ")
    os.write(term.master, b"wonderland\r")
    term.expect("alice stored in")
    assert term.proc.wait(timeout=30) == 0
    assert "wonderland" not in term.seen  # not echoed
    assert check_password("wonderland", load_users(str(users))["alice"])
    again = Terminal(argv, env)
    again.expect("password for alice: ")
    os.write(again.master, b"\x04")  # Ctrl-D: end of input
    again.expect("the users file is unchanged")
    assert again.proc.wait(timeout=30) == 2
    assert "Traceback" not in again.seen
    assert check_password("wonderland", load_users(str(users))["alice"])


def test_without_the_serve_extra_serve_says_what_to_install(tmp_path: Path) -> None:
    """asyncssh is in the `serve` extra only (issue 17): without it, one line, exit 2."""
    blocker = tmp_path / "no_asyncssh"
    blocker.mkdir()
    (blocker / "asyncssh.py").write_text("raise ImportError('no module named asyncssh')\n")
    keys = tmp_path / "keys"
    keys.mkdir()
    for argv in (
        ["serve", "--lab", LAB, "--authorized-keys", str(keys), "--state-dir", str(tmp_path / "s")],
        ["bench", "serve"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "l4tui", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.getcwd()}"},
        )
        err = _one_error_line(done)
        assert "needs asyncssh" in err and "pip install 'l4tui[serve]'" in err, err
    assert not (tmp_path / "s").exists()
