"""How a long exploration shows it is alive (issue 15, point 8).

On a terminal, one line redrawn in place: the level's bar, schedules run,
distinct states, the queue (schedules known and not run yet), the rate and
the time so far. `--progress json` prints the same figures as JSON lines, to
stderr like the bar (stdout keeps the result), for a program to follow.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from l4tui.explore.search import Report

EVERY = 0.1  # seconds between lines: ten a second is plenty


class _Throttled:
    """A progress display that draws at most every `EVERY` seconds."""

    shown = 0.0

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self.shown < EVERY:
            return False
        self.shown = now
        return True


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


class ProgressBar(_Throttled):
    """One line on a terminal: the level's bar, schedules, states, queue, rate, elapsed."""

    def __init__(self, out: Any, width: int = 24) -> None:
        self.out = out
        self.width = width

    def show(self, report: Report) -> None:
        if not self._due():
            return
        self.out.write("\r" + self.line(report, self._columns()) + "\x1b[K")
        self.out.flush()

    def line(self, report: Report, columns: int) -> str:
        """The line for a terminal `columns` wide: never wider, or it would wrap and every
        redraw would leave a line behind (the bar shrinks first, then goes, then the text
        is cut)."""
        f = figures(report)
        text = (
            f"{f['preemptions']} preemption(s): {f['schedules']:,} schedules, "
            f"{f['states']:,} states, {f['queue']:,} queued, {f['rate']:,.0f}/s, "
            f"{f['elapsed']:,.0f} s"
        )
        room = columns - 1 - len(text) - 3  # "[" bar "] ", and the last column left free
        width = min(self.width, room)
        if width < 6:
            return text[: max(0, columns - 1)]
        done = report.level_done / report.level_size if report.level_size else 0.0
        fill = int(done * width)
        return f"[{'#' * fill}{'.' * (width - fill)}] {text}"

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self.out.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return 80

    def clear(self) -> None:
        self.out.write("\r\x1b[K")
        self.out.flush()


class JsonProgress(_Throttled):
    """The same figures as JSON lines (at most ten a second, and one at the end)."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def show(self, report: Report) -> None:
        if not self._due():
            return
        self._line(report, False)

    def end(self, report: Report) -> None:
        self._line(report, True)

    def clear(self) -> None:
        pass

    def _line(self, report: Report, done: bool) -> None:
        self.out.write(json.dumps({**figures(report), "done": done}) + "\n")
        self.out.flush()
