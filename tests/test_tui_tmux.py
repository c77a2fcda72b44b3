"""End to end: the installed `l4tui` in a real terminal (tmux), keys in, the screen read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def l4tui_command() -> str:
    installed = Path(sys.executable).with_name("l4tui")
    return str(installed) if installed.exists() else f"{sys.executable} -m l4tui"


class Tmux:
    def __init__(self, command: str, env: dict[str, str], size: tuple[int, int]) -> None:
        self.name = f"l4tui-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name, "-f", "/dev/null"]
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        # A private server (-L): its window size is ours, whatever other tmux runs.
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                f"env -i HOME={Path.home()} {exports} {command}; sleep 5",  # nothing inherited
            ],
            check=True,
        )

    def screen(self) -> str:
        out = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"never saw {text!r}; the screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_the_monitor_in_tmux(tmp_path: Path) -> None:
    env = {
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", ""),
    }
    t = Tmux(l4tui_command(), env, (160, 48))
    try:
        t.wait_for("TCB cache lines")
        t.wait_for("demo · 2 CPUs")
        t.keys("break xp.proxy.send", "Enter")
        t.wait_for("breakpoint 1 at xp.proxy.send")
        t.keys("F5")
        screen = t.wait_for("breakpoint 1: xp.proxy.send on cpu2")
        assert "proxy2.1" in screen and "mailbox" in screen
        t.keys("focus thread srv", "Enter")
        t.wait_for("srv TCB")
        t.keys("Escape")
        time.sleep(0.5)  # alone, or the terminal reads ESC r as Alt+r
        t.keys("r")
        t.wait_for("back at micro-op")
        t.keys("q")
        deadline = time.monotonic() + 15
        while "TCB cache lines" in t.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "TCB cache lines" not in t.screen()  # the app has quit
    finally:
        t.close()
    history = (tmp_path / "state" / "l4tui" / "history").read_text()
    assert "+break xp.proxy.send" in history
