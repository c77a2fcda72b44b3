"""`l4tui bench tui`: how the monitor feels — first frame, step-to-repaint, speed while live.

- first frame: `l4tui open` started in a pseudo-terminal until the app has
  painted its first screen (L4TUI_FIRST_FRAME_EXIT makes it exit right then);
- step-to-repaint: on 8 CPUs and 256 threads, the median time from a step
  key to the repainted screen, through Textual's headless pilot;
- live speed: micro-ops per second of `continue` with the panes repainting,
  against the same session stepping headless.
Host time is measured, so the figures vary from run to run.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import statistics
import subprocess
import sys
import time
from typing import Any

from kernel.scenario import Scenario, parse_scenario
from l4tui import engine
from l4tui.bench.debugger import SCENARIO
from l4tui.session import Session
from l4tui.tui.app import MonitorApp


def big_scenario(cpus: int = 8, threads: int = 256) -> Scenario:
    """`threads` threads spread over `cpus` CPUs, pairs calling each other across CPUs."""
    lines = ["name: big", "seed: 1", f"machine: {{profile: p3-dual-450, cpus: {cpus}}}", "tasks:"]
    for i in range(threads):
        if i % 64 == 0:  # a task holds at most 128 threads (its UTCB area)
            lines += [f"  - name: task{i // 64}", "    threads:"]
        cpu = i % cpus + 1
        if i % 2 == 0:
            prog = f"[{{loop: [{{recv: {{from: t{i + 1}}}}}, {{compute: 300}}]}}]"
        else:
            prog = f"[{{loop: [{{compute: 500}}, {{send: {{to: t{i - 1}}}}}]}}]"
        lines.append(f"      - {{name: t{i}, cpu: {cpu}, program: {prog}}}")
    return parse_scenario("\n".join(lines) + "\n", "<big>")


def endless() -> Scenario:
    return parse_scenario(SCENARIO, "<bench-reverse>")


def first_frame_seconds(runs: int = 3) -> list[float]:
    """Wall time from exec to the first painted frame of `l4tui open` in a pty."""
    out = []
    for _ in range(runs):
        master, slave = pty.openpty()
        env = {**os.environ, "L4TUI_FIRST_FRAME_EXIT": "1", "TERM": "xterm-256color"}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "l4tui", "open"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        while proc.poll() is None:  # drain the screen so the child never blocks on output
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        proc.wait()
        out.append(time.perf_counter() - start)
        os.close(master)
    return out


async def _repaint_latencies(steps: int) -> list[float]:
    """From a step action's start to the end of the screen refresh it caused.

    (Timing `pilot.press` itself would add the pilot's own waits, ~90 ms.)
    """
    out: list[float] = []

    class Timed(MonitorApp):
        def _move(self, line: str) -> None:
            t0 = time.perf_counter()
            super()._move(line)
            self.call_after_refresh(lambda: out.append(time.perf_counter() - t0))

    app = Timed(Session(big_scenario()))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        for _ in range(steps):
            await pilot.press("s")
            await pilot.pause()
    return out


async def _live_rate(seconds: float, forked: bool = False) -> float:
    """Micro-ops a second of the TUI's live continue: in-process, or (`forked`) through an
    engine process with its checkpoints (l4tui/engine.py), as `l4tui open` runs it."""
    s: Any = engine.start(Session(endless())) if forked else Session(endless())
    app = MonitorApp(s)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("escape", "c")
        start, at = time.perf_counter(), app.session.position
        await asyncio.sleep(seconds)
        done, end = app.session.position, time.perf_counter()
        await pilot.press("c")
        await app.workers.wait_for_complete()
    if forked:
        s.close()
    return (done - at) / (end - start)


def headless_rate(seconds: float) -> float:
    s = Session(endless())
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        s.cont_for()
    return s.position / (time.perf_counter() - start)


def run_tui(seconds: float = 3.0) -> dict[str, Any]:
    """The rows of `bench tui`."""
    frames = first_frame_seconds()
    latencies = asyncio.run(_repaint_latencies(30))
    live = asyncio.run(_live_rate(seconds))
    forked = asyncio.run(_live_rate(seconds, True)) if engine.available() else None
    headless = headless_rate(seconds)
    rows = [
        ("time to first frame (median of 3)", "s", statistics.median(frames)),
        ("goal: time to first frame", "s", 1.5),
        (
            "step-to-repaint, 8 CPUs, 256 threads (median of 30)",
            "ms",
            1000 * statistics.median(latencies),
        ),
        ("step-to-repaint, worst of 30", "ms", 1000 * max(latencies)),
        ("goal: step-to-repaint median", "ms", 50),
        ("continue with the UI live", "micro-ops/s", live),
        ("continue headless", "micro-ops/s", headless),
        ("live / headless (goal >= 50%)", "%", 100 * live / headless),
    ]
    if forked is not None:
        rows += [
            ("continue with the UI live, engine process + checkpoints", "micro-ops/s", forked),
            ("  engine / in-process (goal: not slower, issue 15)", "%", 100 * forked / live),
        ]
    return {"rows": [{"name": n, "unit": u, "value": round(v, 3)} for n, u, v in rows]}
