"""The monitor's screen as text, read from Textual's SVG screenshot (its public export).

Each `<text>` element of the SVG is a run of characters at a column (x divided
by the cell width) on a line (its clip path names the line). Rebuilding the
grid gives what a person would read on the terminal — the same thing
`tmux capture-pane` gives for the real program.
"""

from __future__ import annotations

import html
import re

from textual.app import App

_TEXT = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)" '
    r'clip-path="url\(#[\w-]+-line-(\d+)\)">([^<]*)</text>'
)


def screen_rows(app: App) -> list[str]:
    """The screen, one string per row, exactly `app.size.width` wide."""
    width, height = app.size
    svg = app.export_screenshot()
    grid = [[" "] * width for _ in range(height)]
    for x, length, line, raw in _TEXT.findall(svg):
        text = html.unescape(raw).replace("\xa0", " ")
        if not text:
            continue
        cell = float(length) / len(text)
        col = round(float(x) / cell)
        row = int(line)
        for i, ch in enumerate(text):
            if 0 <= row < height and 0 <= col + i < width:
                grid[row][col + i] = ch
    return ["".join(r) for r in grid]


def region_rows(app: App, widget) -> list[str]:  # a Widget
    """The rows of the screen inside `widget`'s region (border included)."""
    r = widget.region
    rows = screen_rows(app)
    return [row[r.x : r.x + r.width] for row in rows[r.y : r.y + r.height]]


async def enter_line(pilot, text: str) -> None:  # a Pilot
    """A command line into the monitor's console, then Enter as a key, and wait for the
    machine (typing key by key is slow and tested on its own)."""
    app = pilot.app
    line = app.query_one("#console-in")
    app.screen.set_focus(line)
    line.value = text
    await pilot.press("enter")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
