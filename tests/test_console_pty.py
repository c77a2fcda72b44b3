"""The interactive console once through a real pseudo-terminal: the prompt, a command, the
toolbar, Ctrl-C stopping a long `continue` without losing the session, and `quit`; and the
monitor asking for mouse reports only when wanted."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ENDLESS = """
name: endless
tasks:
  - name: t
    threads:
      - {name: spin, program: [{loop: [{compute: 100}]}]}
"""


class Terminal:
    """A child process on a pty, read until an expected text shows (or a generous deadline)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        os.set_blocking(self.master, False)
        # Its own session with the pty as controlling terminal, so Ctrl-C is a SIGINT to it.
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never saw {text!r}; screen so far:\n{self.seen[-2000:]}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536).decode(errors="replace")
                    if "\x1b[6n" in chunk:  # answer cursor position requests, as a terminal does
                        self.send("\x1b[1;1R")
                    self.seen += chunk
                except OSError:  # the child closed the terminal
                    if self.proc.poll() is not None:
                        raise AssertionError(f"exited before {text!r}:\n{self.seen}") from None
        at = self.seen.index(text) + len(text)
        before, self.seen = self.seen[:at], self.seen[at:]
        return before

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_console_in_a_pty_steps_interrupts_and_quits(tmp_path: Path) -> None:
    scenario = tmp_path / "endless.yaml"
    scenario.write_text(ENDLESS)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "xterm"}
    env.pop("CI", None)
    term = Terminal([sys.executable, "-m", "l4tui", "console", str(scenario)], env)
    try:
        term.expect("(l4tui)")
        term.expect("focus cpu1")  # the bottom toolbar
        term.send("stepi 5\r")
        term.expect("stepped; last ")
        term.expect("(l4tui)")
        term.send("continue\r")
        time.sleep(1.0)  # let it run; then Ctrl-C stops the machine, not the console
        term.send("\x03")
        term.expect("interrupted at micro-op ")
        term.expect("(l4tui)")
        term.send("print cpu1.steps\r")
        term.expect("cpu1.steps = ")
        term.send("quit\r")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert (tmp_path / "state" / "l4tui" / "history").read_text().count("continue") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
@pytest.mark.parametrize("no_mouse", [False, True])
def test_mouse_reports_only_when_wanted(tmp_path: Path, no_mouse: bool) -> None:
    env = {**os.environ, "L4TUI_FIRST_FRAME_EXIT": "1", "TERM": "xterm-256color"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env.pop("L4TUI_MOUSE", None)
    argv = [sys.executable, "-m", "l4tui", "open"] + (["--no-mouse"] if no_mouse else [])
    term = Terminal(argv, env)
    try:
        screen = term.expect("CPUs")  # the terminal set-up comes before the first frame
    finally:
        term.proc.kill()
        term.close()
    # Textual turns mouse reporting on with DEC private mode 1000 (and SGR mode 1006).
    assert ("\x1b[?1000h" in screen) is not no_mouse


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_interactively_bad_commands_still_end_in_exit_0(tmp_path: Path) -> None:
    """At a terminal nothing changes: an error is printed and the console goes on; `quit`
    exits 0. The new commands work there too."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "xterm"}
    env.pop("CI", None)
    term = Terminal([sys.executable, "-m", "l4tui", "console"], env)
    try:
        term.expect("(l4tui)")
        term.send("frobnicate\r")
        term.expect("error: unknown command 'frobnicate'")
        term.send("break foo.bar\r")
        term.expect("error: no phase label matches 'foo.bar'")
        term.send("x srv.partner 1\r")
        term.expect("srv.partner")
        term.send("lab\r")
        term.expect("error: this session has no lab sheet")
        term.expect("(l4tui)")
        term.send("quit\r")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
