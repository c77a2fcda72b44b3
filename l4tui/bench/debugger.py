"""`l4tui bench debugger`: what going backwards costs with a long history (issue 15's goal).

A session runs a cross-processor ping-pong that never ends. With fork checkpoints (an
engine process, l4tui/engine.py and checkpoints.py), `reverse-stepi` and `reverse-step`
restore the nearest checkpoint and replay the rest, so their latency no longer grows
with the history: the report gives it after 10^4, 10^5 and `history` micro-ops (goal:
<= 0.2 s at 10^6), and `reverse-continue` (scouts replay back from the checkpoints),
a served student's session with the server's smaller budget (checkpoints.SERVED_KEEP),
the forward rate of the console's `continue` with and without checkpoints (each
checkpoint a fork, some 3-5 ms on the 2-core host of issue 15; the TUI's live continue,
which paints while the engine steps, is in `l4tui bench tui`), and the session's
resident memory: the PSS
summed over the engine and its checkpoints (/proc/PID/smaps_rollup: a page shared by
several is counted once in all), the engine's RSS, and the input log's own size. Where
there is no fork, the rows are the in-process session's: replay from the start.
Host time is measured here, so these figures vary from run to run.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from kernel.scenario import parse_scenario
from l4tui import checkpoints, engine
from l4tui.executor import execute
from l4tui.session import Session

SCENARIO = """
name: bench-reverse
seed: 1
machine: {profile: p3-dual-450, cpus: 2}
kernel: {xp_ipc: proxy, tcb_layout: thesis}
tasks:
  - name: server
    threads:
      - name: srv
        cpu: 2
        program:
          - recv: {from: any}
          - loop:
              - compute: 200
              - reply_wait: {words: [7]}
  - name: client
    threads:
      - name: cli
        cpu: 1
        program:
          - loop:
              - call: {to: srv, words: [1, 2, 3]}
              - compute: 500
"""
FORWARD = 200_000  # micro-ops of `continue` timed with and without checkpoints


def _session() -> Session:
    return Session(parse_scenario(SCENARIO, "<bench-reverse>"))


def history_bytes(s: Session) -> int:
    """The input log and the phase marks, as Python holds them."""
    total = sys.getsizeof(s.log) + sys.getsizeof(s.marks)
    return total + len(s.marks) * 18  # Marks: 18 bytes a mark (marks.py)


def _kb(pid: int, field: str) -> int:
    """A /proc/PID/smaps_rollup field in kB (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _timed(f: Any, *args: Any) -> float:
    """Milliseconds `f(*args)` takes."""
    t0 = time.perf_counter()
    f(*args)
    return (time.perf_counter() - t0) * 1000


def _forward_rate(s: Any) -> float:
    """Micro-ops a second of the console's `continue` (one request to an engine). The
    TUI's live continue, which paints while an engine steps, is `l4tui bench tui`'s."""
    start = s.position
    t0 = time.perf_counter()
    s.cont(limit=FORWARD)
    return (s.position - start) / (time.perf_counter() - t0)


def _served_rows(history: int) -> list[tuple[str, str, float]]:
    """A served student's session (`lab --confine`: checkpoints.SERVED_KEEP kept): going
    back after `history` micro-ops, and its PSS there — a server's bound per session."""
    budget = f"served budget: at most {checkpoints.SERVED_KEEP} checkpoints"
    s: Any = engine.start(_session(), checkpoints.SERVED_SPACING, checkpoints.SERVED_KEEP)
    try:
        s.stepi(history)
        rows = [(f"reverse-stepi after {history:,} micro-ops ({budget})", "ms",
                 _timed(s.reverse_stepi, 1))]  # fmt: skip
        s.stepi(1)
        time.sleep(2 * checkpoints.IDLE)  # a person reading the stop: a checkpoint there
        rows.append((f"goto half-way back ({budget})", "ms", _timed(s.goto, s.position // 2)))
        s.stepi(history - s.position)
        pids = [s.engine_pid, *(pid for _, pid in s.checkpoint_list())]
        pss = sum(_kb(p, "Pss") for p in pids) / 1024
        rows.append((f"session PSS at {history:,} micro-ops ({budget})", "MB", pss))
    finally:
        s.close()
    return rows


def run_debugger(history: int = 1_000_000) -> dict[str, Any]:
    """The rows of `bench debugger`."""
    rows: list[tuple[str, str, float]] = []
    forked = engine.available()
    s: Any = engine.start(_session()) if forked else _session()
    how = "fork checkpoints" if forked else "replay from the start (no fork)"
    try:
        sizes = sorted({n for n in (10_000, 100_000, history) if n <= history})
        for n in sizes:
            s.stepi(n - s.position)
            assert s.position == n, s.stop_reason
            back_i = _timed(s.reverse_stepi, 1)
            back_step = _timed(s.reverse_step, 1)
            rows.append((f"reverse-stepi after {n:,} micro-ops ({how})", "ms", back_i))
            rows.append((f"reverse-step after {n:,} micro-ops ({how})", "ms", back_step))
        s.call(execute, "break xp.proxy.send")
        back_c = _timed(s.reverse_continue)
        s.call(execute, "delete")
        rows.append((f"reverse-continue after {history:,} micro-ops ({how})", "ms", back_c))
        if forked:
            back_far = _timed(s.goto, s.position // 2)
            rows.append((f"goto half-way back after {history:,} micro-ops", "ms", back_far))
            s.stepi(history - s.position)  # the memory at `history` micro-ops of history
            pids = [s.engine_pid, *(pid for _, pid in s.checkpoint_list())]
            pss = sum(_kb(p, "Pss") for p in pids) / 1024
            rows.append(
                (f"session PSS: engine + {len(pids) - 1} checkpoints, {history:,} micro-ops",
                 "MB", pss)
            )  # fmt: skip
            rows.append(("engine process RSS", "MB", _kb(s.engine_pid, "Rss") / 1024))
        rows.append(("input log + phase marks", "MB", s.call(history_bytes) / 1e6))
    finally:
        if forked:
            s.close()
    if forked:
        rows += _served_rows(history)
    rate_plain = _forward_rate(_session())
    rows.append(("console continue, in-process (no checkpoints)", "micro-ops/s", rate_plain))
    if forked:
        r: Any = engine.start(_session())
        try:
            rate = _forward_rate(r)
        finally:
            r.close()
        rows.append(("console continue, engine process + checkpoints", "micro-ops/s", rate))
        share = 100 * rate / rate_plain
        rows.append(("  engine / in-process (the TUI's: l4tui bench tui)", "%", share))
    rows.append(("goal for reverse-stepi and reverse-step at 10^6 (issue 15)", "ms", 200))
    rows.append(("goal for the session's memory at 10^6 (issue 15)", "MB", 200))
    return {
        "rows": [{"name": n, "unit": u, "value": round(v, 3)} for n, u, v in rows],
        "engine": "fork" if forked else "inprocess",
        "pid": os.getpid(),
    }
