"""End to end: the installed `l4tui` in a real terminal (tmux), keys in, the screen read back.

Two people at two sizes: a student at 80×24 who plays a shipped lab from what
the screen says (each step typed only once the instruction for it is on the
screen), and a kernel developer at 160×48 who stops on CPU 2 and finds the view
there, moves the CPU focus with `]` and `[`, and scrolls the help.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
ROOT = Path(__file__).parent.parent


def l4tui_command() -> str:
    installed = Path(sys.executable).with_name("l4tui")
    return str(installed) if installed.exists() else f"{sys.executable} -m l4tui"


class Tmux:
    def __init__(self, command: str, env: dict[str, str], size: tuple[int, int], cwd: Path) -> None:
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
                # Run in a scratch directory: whatever a key writes (a trace) lands there.
                f"cd {cwd} && env -i HOME={Path.home()} {exports} {command}; sleep 5",
            ],
            check=True,
        )

    def screen(self) -> str:
        out = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            flat = " ".join(screen.split())  # a sentence wrapped over rows reads as one
            if all(t in screen or " ".join(t.split()) in flat for t in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"never saw {texts!r}; the screen:\n{self.screen()}")

    def wait_gone(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text in self.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert text not in self.screen(), self.screen()

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def type(self, line: str) -> None:
        self.keys(line, "Enter")
        time.sleep(0.3)

    def escape(self) -> None:
        self.keys("Escape")
        time.sleep(0.6)  # alone, or the terminal reads ESC x as Alt+x

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", ""),
    }


@pytest.mark.slow(15)
def test_a_student_plays_the_uhlig_lab_at_80x24_from_the_screen(tmp_path: Path) -> None:
    lab = ROOT / "scripts" / "labs" / "uhlig.yaml"
    t = Tmux(f"{l4tui_command()} lab {lab}", environment(tmp_path), (80, 24), tmp_path)
    try:
        # The first exercise, whole, on the first screen.
        t.wait_for(
            "▶ 1. Stop the sender before it queues itself",
            "break ipc.send.enqueue_sendq and continue; print rcv.state.",
        )
        t.type("break ipc.send.enqueue_sendq")
        t.type("continue")
        t.wait_for("breakpoint 1: ipc.send.enqueue_sendq on cpu1 (snd)")  # the stop, in view
        t.type("print rcv.state")
        t.wait_for("rcv.state = ")
        t.wait_for("▶ 2. Take over the scheduling", "sched manual: from now on step cpu N")
        t.type("sched manual")
        t.wait_for(
            "▶ 3. Force the lost wake-up",
            "Step CPU 2 (step cpu 2) until the receiver has read the sender's state",
            "The run must end in a deadlock.",
        )
        for _ in range(10):
            t.type("step cpu 2")
        t.wait_for("cpu2 ◀")  # the focus followed the steps to CPU 2
        t.escape()
        t.keys("3")  # the phase tab: where rcv is in its receive path
        screen = t.wait_for("rcv: receive (§8.3.2)", "▶")
        assert "thread_state = waiting" in screen
        t.keys(":")  # back to the console; the colon is not typed
        t.type("sched timed")
        t.type("continue")
        t.wait_for("run ended: deadlock: snd polling on rcv, rcv waiting for snd")
        t.escape()
        t.keys("8")  # the lab tab
        t.wait_for("▶ 4. Show the wait-for graph", "info waits: the cycle")
        t.keys(":")
        t.type("info waits")
        t.wait_for("4 of 4 done")
        t.keys("F1")  # help, from the console
        t.wait_for("Esc closes")
        t.escape()  # closes help: back in the console
        t.type("quit")
        t.wait_gone("4 of 4 done")  # the app has quit
    finally:
        t.close()


@pytest.mark.slow
def test_a_developer_stops_on_cpu2_at_160x48_and_the_view_is_there(tmp_path: Path) -> None:
    t = Tmux(l4tui_command(), environment(tmp_path), (160, 48), tmp_path)
    try:
        t.wait_for("2 TCB", "demo · micro-op 0")
        assert "cpu1 ◀" in t.screen()
        t.type("break xp.proxy.send")
        t.wait_for("breakpoint 1 at xp.proxy.send")
        t.keys("F5")
        screen = t.wait_for(
            "breakpoint 1: xp.proxy.send on cpu2 (proxy2.1)",
            "cpu2 ◀",  # the focus followed the stop: the CPU,
            "cli TCB",  # the thread the proxy works for,
            "proxy2.1 works for it",
            "proxy2.1 for cli",  # and the path the proxy runs for it, its line marked
            "▶",
        )
        assert "cpu1 ◀" not in screen
        t.escape()
        t.keys("]")
        screen = t.wait_for("cpu1 ◀")
        assert "cpu2 ◀" not in screen
        t.keys("[")
        t.wait_for("cpu2 ◀")
        t.keys("F1")
        first = t.wait_for("Esc closes")
        t.keys("PageDown")
        t.keys("PageDown")
        wait_until(lambda: t.screen() != first, what="the help scrolled")  # it scrolled
        t.keys("End")
        t.wait_for("quit")
        t.escape()
        t.keys("r")
        t.wait_for("back at micro-op")
        t.keys("q")
        t.wait_gone("2 TCB")  # the app has quit
    finally:
        t.close()
    history = (tmp_path / "state" / "l4tui" / "history").read_text()
    assert "+break xp.proxy.send" in history
