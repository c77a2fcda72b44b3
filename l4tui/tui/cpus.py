"""The CPUs: a column per CPU (what runs, its mode and IF, its ready queue by priority,
wakeups, busy proxies — §8.7), and on small terminals a one-line strip per CPU above the tabs.

Each column is as tall as what it holds: a ready queue wraps under its
priority instead of being cut, and the pane scrolls both ways when there is
more than fits (1 to 16 CPUs). The focused CPU is marked with ◀ and scrolled
into view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import ScrollableContainer, VerticalScroll
from textual.widgets import Static

from l4tui import panes
from l4tui.tui.views import rows, set_title, update
from l4tui.tui.wrap import cut, hang

if TYPE_CHECKING:
    from l4tui.session import Session

INNER = 35  # a column's text without its padding and rule, unless the pane says otherwise


def _state(c: panes.CpuPane) -> str:
    return "halted" if c.halted else c.mode


def column_text(c: panes.CpuPane, focused: bool, width: int = INNER) -> Text:
    """One CPU's column, every line within `width`, values whole or wrapped."""
    t = Text(no_wrap=True)
    head = f"cpu{c.number}" + (" ◀" if focused else "")
    cycles = f"{c.cycle:,} cyc"
    t.append(head, style="bold reverse" if focused else "bold")
    t.append(" " * max(1, width - len(head) - len(cycles)) + cycles + "\n")
    for row in hang("run  ", [c.thread, _state(c), f"IF={int(c.interrupts)}"], width):
        t.append(row + "\n")
    for row in hang("at   ", [c.phase], width):
        t.append(row + "\n")
    if not c.ready:
        t.append("rdy  -\n")
    for i, (prio, names) in enumerate(c.ready):
        head = ("rdy  " if i == 0 else "     ") + f"[{prio}] "
        words = [w for n in names for w in (n, "→")][:-1]
        cut = c.ready_tail(prio)
        if cut is not None:  # a ring met half-way through a change (kernel/lists.py)
            words += cut.tail("→", "…").split(" ")
        for row in hang(head, words, width):
            t.append(row + "\n")
    wake = [f"{n}@{at:,}" for n, at in c.wakeup]
    if c.wakeup_cut.broken:
        wake += c.wakeup_cut.tail("→", "…").split(" ")
    wake = wake or ["-"]
    for row in hang("wake ", wake, width):
        t.append(row + "\n")
    prox = [f"{n}:{s}" for n, s in c.proxies] or ["-"]
    rows = hang("prox ", prox, width)
    for i, row in enumerate(rows):
        t.append(row + ("\n" if i < len(rows) - 1 else ""))
    return t


class CpuColumn(Static):
    """One CPU's column."""

    shown: object = None
    shown_text: Text = Text()
    number = 0

    def render_pane(self, c: panes.CpuPane, focused: bool, width: int) -> None:
        if self.shown == (c, focused, width):
            return  # the views are values: equal means nothing to repaint
        self.shown = (c, focused, width)
        self.number = c.number
        self.shown_text = column_text(c, focused, width)
        update(self, self.shown_text)


class CpusPane(ScrollableContainer):
    """The CPUs side by side: as many whole columns as fit, the focused CPU among them.

    Past what fits (up to 16 CPUs) the pane shows a window of columns that
    moves with the focus (] and [), and says which CPUs it shows — never a
    column cut at the edge.
    """

    ALLOW_MAXIMIZE = True
    MIN_COLUMN = 30
    start = 0  # the first CPU (0-based) in the window

    def compose(self):  # ComposeResult
        yield Static(id="cpus-window")

    def fit(self, n: int) -> int:
        """How many columns fit whole."""
        room = self.scrollable_content_region.width or 80
        return max(1, min(n, room // self.MIN_COLUMN))

    def show(self, s: Session) -> None:
        self.session = s
        data = s.call(panes.cpu_panes)
        k = self.fit(len(data))
        focus = s.focus_cpu - 1
        if focus < self.start:
            self.start = focus
        elif focus >= self.start + k:
            self.start = focus - k + 1
        self.start = max(0, min(self.start, len(data) - k))
        cols = list(self.query(CpuColumn))
        if len(cols) != k:
            for col in cols:
                col.remove()
            cols = [CpuColumn(classes="cpu") for _ in range(k)]
            self.mount(*cols)
        room = self.scrollable_content_region.width or 80
        width = max(20, room // k - 3)  # a column's text: less its padding and rule
        for col, c in zip(cols, data[self.start : self.start + k], strict=True):
            col.render_pane(c, c.number == s.focus_cpu, width)
        tallest = max((rows(col.shown_text) for col in cols), default=1)
        for col in cols:  # equal heights: the rules between the columns run the whole way
            if col.styles.min_height is None or col.styles.min_height.value != tallest:
                col.styles.min_height = tallest
        title = "1 CPUs"
        window = f"{self.start + 1}-{self.start + k} of {len(data)} (] [ move)"
        if k < len(data):
            title += f" · {window}"
        set_title(self, title)
        # Without a frame (a tab) the window is said on a line of its own.
        head = self.query_one("#cpus-window", Static)
        shown = k < len(data) and not self.has_class("pane")
        if head.display != shown:
            head.display = shown
        if shown:
            update(head, Text(f"CPUs {window}"))

    def on_resize(self) -> None:
        if getattr(self, "session", None) is not None:
            self.call_after_refresh(self.show, self.session)


def strip_line(c: panes.CpuPane, focused: bool, width: int) -> Text:
    """One CPU on one line: number, cycle, thread, mode, IF, phase; the phase cut with `…`."""
    ready = sum(len(names) for _, names in c.ready)
    head = f"cpu{c.number:<2}{'◀' if focused else ' '}"
    thread = cut(c.thread, 10)
    body = f" {c.cycle:>11,} {thread:<10} {_state(c):<6} IF={int(c.interrupts)} "
    tail = f" rdy {ready}"
    room = width - len(head) - len(body) - len(tail)
    t = Text(no_wrap=True)
    t.append(head, style="bold reverse" if focused else "bold")
    t.append(body)
    if room >= 8:
        t.append(cut(c.phase, room).ljust(room))
        t.append(tail, style="dim")
    else:
        t.append(cut(c.phase, max(1, width - len(head) - len(body))))
    return t


class CpuStrip(VerticalScroll):
    """Every CPU on a line of its own (small terminals, above the tabs); the focused one shown."""

    can_focus = False
    shown: object = None

    def compose(self):  # ComposeResult
        yield Static(id="strip-text")

    def show(self, s: Session) -> None:
        data = s.call(panes.cpu_panes)
        width = max(20, self.size.width or 80)
        key = (data, s.focus_cpu, width)
        if key == self.shown:
            return
        self.shown = key
        t = Text(no_wrap=True)
        for i, c in enumerate(data):
            if i:
                t.append("\n")
            t.append_text(strip_line(c, c.number == s.focus_cpu, width))
        update(self.query_one("#strip-text", Static), t)
        row = max(0, s.focus_cpu - 1)
        self.call_after_refresh(self.scroll_to, y=max(0, row - 1), animate=False)

    def on_resize(self) -> None:
        self.shown = None
        app = self.app
        session = getattr(app, "session", None)
        if session is not None:
            self.show(session)
