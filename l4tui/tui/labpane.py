"""The lab sheet pane: the introduction and the exercises, each ticked when its check holds
(l4tui/lab.py), wrapped to the pane and scrolled from the keyboard.

The exercise to do next — the first not yet ticked — is scrolled into view
when the sheet first shows, after every tick and when its tab comes back to
the front, so a student on an 80×24 terminal has the instruction in view
when they need it; the introduction stays one PageUp above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.markdown import Markdown
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from l4tui.lab import Lab, lab_progress

if TYPE_CHECKING:
    from l4tui.session import Session


def current_exercise(done: list[bool]) -> int | None:
    """The index of the first exercise not yet done, None when all are."""
    return next((i for i, ok in enumerate(done) if not ok), None)


class LabPane(VerticalScroll):
    """The lab sheet: a block for the introduction and one per exercise."""

    ALLOW_MAXIMIZE = True
    BINDINGS = [
        Binding("j", "scroll_down", "down", show=False),
        Binding("k", "scroll_up", "up", show=False),
    ]
    shown: tuple[bool, ...] | None = None
    current: Static | None = None  # the block of the exercise to do next

    def compose(self):  # ComposeResult
        yield Static(id="lab-status")  # docked: it stays while the sheet scrolls
        yield Static(id="lab-intro", classes="lab-block")

    def show(self, s: Session) -> None:
        lab: Lab | None = getattr(self.app, "lab", None)
        if lab is None:
            return
        done = tuple(s.call(lab_progress, lab))
        if done == self.shown:
            return
        self.shown = done
        self._paint(lab, list(done))

    def _paint(self, lab: Lab, done: list[bool]) -> None:
        n = sum(done)
        intro = Group(Text(lab.title, style="bold"), Text(""), Markdown(lab.intro.strip()))
        self.query_one("#lab-intro", Static).update(intro)
        blocks = list(self.query(".lab-exercise").results(Static))
        if len(blocks) != len(lab.exercises):
            for b in blocks:
                b.remove()
            blocks = [Static(classes="lab-block lab-exercise") for _ in lab.exercises]
            self.mount(*blocks)
        now = current_exercise(done)
        for i, (block, ex, ok) in enumerate(zip(blocks, lab.exercises, done, strict=True)):
            mark = "✔" if ok else ("▶" if i == now else "□")
            head = Text(f"{mark} {i + 1}. {ex.title}", style="bold green" if ok else "bold")
            if i == now:
                head.stylize("reverse")
            parts: list = [head]
            if ex.text.strip():
                parts.append(Markdown(ex.text.strip()))
            block.update(Group(*parts))
            block.set_class(i == now, "current")
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append(f"{n} of {len(done)} done", style="bold")
        status.append(" · all done" if now is None else " · 8 then PgUp/PgDn scrolls", style="dim")
        status.append(f" · {lab.title}")
        self.query_one("#lab-status", Static).update(status)
        self.current = blocks[now] if now is not None else None
        self.call_after_refresh(self.show_current)

    def show_current(self) -> None:
        """The exercise to do next into view, with as much as fits above it (the
        introduction, at first); the end when all are done."""
        if self.current is not None:
            self.scroll_to_widget(self.current, animate=False)
        elif self.shown is not None:
            self.scroll_end(animate=False)

    def on_show(self) -> None:
        # Ticked while another tab was in front: scrolling a hidden pane does nothing.
        self.call_after_refresh(self.show_current)
