"""Over `l4tui serve`, a student's session runs in an engine process with checkpoints — cold
(forked at login) or in a warm slot — and when the session's process is killed (kill -9)
the engine and every checkpoint end with it (issue 15 point 2 on issue 14's server).

The checkpoints' pids come from `info checkpoints`; the session's process is the session
leader of them all (the zygote's child calls setsid; the engine only makes its own process
group), so everything that is left of it is found by its session id in /proc.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from test_serve import lab  # noqa: F401 - lab: fixture
from test_serve_orphans import Served, _session, gone, served  # noqa: F401

from l4tui import engine
from tests.waiting import await_until

pytestmark = pytest.mark.skipif(not engine.available(), reason="no fork here")


def _sid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])


def in_session(sid: int) -> list[int]:
    """The live processes of the terminal session `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _sid(int(entry)) == sid and not gone(int(entry)):
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("warm", [0, 1], ids=["forked-at-login", "warm-slot"])
async def test_a_served_session_has_checkpoints_and_kill_9_leaves_nothing(
    served: Callable[..., Served],  # noqa: F811 - the fixture
    warm: int,
) -> None:
    server = served(warm=warm)
    conn, screen = await _session(server.port)
    screen.proc.stdin.write(b"stepi 400\r")  # type: ignore[attr-defined]
    await screen.wait_for("stepped; last")  # type: ignore[attr-defined]
    screen.proc.stdin.write(b"reverse-stepi 10\r")  # type: ignore[attr-defined]
    await screen.wait_for("back at micro-op")  # type: ignore[attr-defined]
    screen.proc.stdin.write(b"info checkpoints\r")  # type: ignore[attr-defined]
    # Up to the first row (position, pid): the screen paints the answer a line at a time.
    rows = re.compile(r"checkpoint\(s\), one every[\s\S]*?^\s*[\d,]+\s+\d+\s*$", re.M)
    text = await screen.wait_for(rows)  # type: ignore[attr-defined]
    assert "at most 12" in text, text  # the served budget
    pids = [int(m) for m in re.findall(r"^\s*[\d,]+\s+(\d+)\s*$", text, re.M)]
    assert pids, text
    front = _sid(pids[0])  # the session's own process: their session leader
    left = in_session(front)
    assert front in left and len(left) >= 3, left  # it, its engine, checkpoints
    os.kill(front, signal.SIGKILL)
    await await_until(lambda: all(gone(pid) for pid in left))
    conn.abort()
