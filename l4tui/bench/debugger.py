"""`l4tui bench debugger`: what going backwards costs with a long history (issue 5's goal).

A session runs a cross-processor ping-pong that never ends for `history`
micro-ops, then steps back one micro-op and one phase. Reverse execution is
exact replay of the input log from the start (l4tui/session.py says why), so
its latency grows with the history; the report gives the latency, the
forward stepping rate it is bound by, and the memory the history takes.
Host time is measured here, so these figures vary from run to run.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kernel.scenario import parse_scenario
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


def _history_bytes(s: Session) -> int:
    """The input log and the phase marks, as Python holds them."""
    total = sys.getsizeof(s.log) + sys.getsizeof(s.marks)
    total += sum(sys.getsizeof(m) for m in s.marks)
    return total


def run_debugger(history: int = 1_000_000) -> dict[str, Any]:
    """The rows of `bench debugger`."""
    s = Session(parse_scenario(SCENARIO, "<bench-reverse>"))
    t0 = time.perf_counter()
    s.stepi(history)
    forward = time.perf_counter() - t0
    assert s.position == history, s.stop_reason
    t0 = time.perf_counter()
    s.reverse_stepi(1)
    back_i = time.perf_counter() - t0
    t0 = time.perf_counter()
    s.reverse_step(1)
    back_step = time.perf_counter() - t0
    rows = [
        ("forward stepping through the session", "micro-ops/s", history / forward),
        (f"reverse-stepi with {history:,} micro-ops of history", "s", back_i),
        (f"reverse-step with {history:,} micro-ops of history", "s", back_step),
        ("history memory (input log + phase marks)", "MB", _history_bytes(s) / 1e6),
        ("goal for reverse-stepi (issue 5)", "s", 0.2),
    ]
    return {"rows": [{"name": n, "unit": u, "value": round(v, 3)} for n, u, v in rows]}
