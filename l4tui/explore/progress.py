"""How a long exploration shows it is alive (issue 15, point 8).

On a terminal, one line redrawn in place: the level's bar, schedules run,
distinct states, the queue (schedules known and not run yet), the rate and
the time so far. `--progress json` prints the same figures as JSON lines, to
stderr like the bar (stdout keeps the result), for a program to follow.
"""

from __future__ import annotations

import json
import time
from typing import Any

from l4tui.explore.search import Report

EVERY = 0.1  # seconds between lines: ten a second is plenty


def figures(report: Report) -> dict[str, Any]:
    """The progress figures, as the JSON lines carry them."""
    rate = report.schedules / report.seconds if report.seconds > 0 else 0.0
    return {
        "schedules": report.schedules,
        "states": report.states,
        "queue": report.queue,
        "pruned": report.pruned,
        "preemptions": report.preemptions_now,
        "level_done": report.level_done,
        "level_size": report.level_size,
        "rate": round(rate, 1),
        "elapsed": round(report.seconds, 2),
        "jobs": report.jobs,
    }


class ProgressBar:
    """One line on a terminal: the level's bar, schedules, states, queue, rate, elapsed."""

    def __init__(self, out: Any, width: int = 24) -> None:
        self.out = out
        self.width = width
        self.shown = 0.0

    def show(self, report: Report) -> None:
        now = time.monotonic()
        if now - self.shown < EVERY:
            return
        self.shown = now
        f = figures(report)
        done = report.level_done / report.level_size if report.level_size else 0.0
        fill = int(done * self.width)
        bar = "#" * fill + "." * (self.width - fill)
        self.out.write(
            f"\r[{bar}] {f['preemptions']} preemption(s): {f['schedules']} schedules, "
            f"{f['states']} states, {f['queue']} queued, {f['rate']:.0f}/s, "
            f"{f['elapsed']:.0f} s \x1b[K"
        )
        self.out.flush()

    def clear(self) -> None:
        self.out.write("\r\x1b[K")
        self.out.flush()


class JsonProgress:
    """The same figures as JSON lines (at most ten a second, and one at the end)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.shown = 0.0

    def show(self, report: Report) -> None:
        now = time.monotonic()
        if now - self.shown < EVERY:
            return
        self.shown = now
        self._line(report, False)

    def end(self, report: Report) -> None:
        self._line(report, True)

    def clear(self) -> None:
        pass

    def _line(self, report: Report, done: bool) -> None:
        self.out.write(json.dumps({**figures(report), "done": done}) + "\n")
        self.out.flush()
