"""The explore progress line fits the terminal it is drawn on (issue 15, point 8).

A line wider than the terminal wraps, and each redraw (`\\r`) then leaves the
wrapped part behind: at 80 columns the screen filled with half lines.
"""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from l4tui.explore import ProgressBar
from l4tui.explore.search import Report

big = st.integers(0, 10**9)


@given(st.integers(1, 400), big, big, big, big, st.floats(0, 10**6), st.integers(0, 9))
def test_the_line_is_never_wider_than_the_terminal(
    columns: int, schedules: int, states: int, queue: int, done: int, seconds: float, p: int
) -> None:
    report = Report("s", 2, schedules=schedules, states=states, queue=queue, seconds=seconds)
    report.preemptions_now, report.level_done, report.level_size = p, done, done + 1
    line = ProgressBar(io.StringIO()).line(report, columns)
    assert len(line) <= max(0, columns - 1)


def test_at_80_columns_every_figure_shows_and_at_160_the_bar_too() -> None:
    report = Report("s", 2, schedules=565, states=11_240, queue=1_435, seconds=8.4)
    report.preemptions_now, report.level_done, report.level_size = 2, 30, 120
    narrow = ProgressBar(io.StringIO()).line(report, 80)
    assert "565 schedules" in narrow and "11,240 states" in narrow and "1,435 queued" in narrow
    assert narrow.endswith("/s, 8 s")
    wide = ProgressBar(io.StringIO()).line(report, 160)
    assert wide.startswith("[######..................] 2 preemption(s)")
