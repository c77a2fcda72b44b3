"""The help screen: every key and every command, scrolled from the keyboard and filtered with `/`.

It is as long as the command table, so it lives in a scroll container that
has the focus (PageUp/PageDown, arrows, Home/End, j/k), and how to close it is
written on its frame, where it is always in view.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from l4tui.grammar import SPECS
from l4tui.tui.wrap import wrap_line


def help_entries(keys: list[tuple[str, str]], keymap_file: str) -> list[tuple[bool, str]]:
    """The help text as entries (is-a-heading, text): keys (as the user's keymap has them),
    then each command's usage and help. The filter keeps whole entries."""
    width = max((len(k) for k, _ in keys), default=0)
    out = [(True, f"Keys (rebind them in {keymap_file})")]
    out += [(False, f"  {k.ljust(width)}  {d}") for k, d in keys]
    out.append((True, "In the console"))
    out.append(
        (
            False,
            "  Tab completes (on an empty line: every command); ↑/↓ walk the history, "
            "or move in the completion list while it is open; PageUp/PageDown scroll "
            "the output; F2 zooms it; Escape goes back to the panes.",
        )
    )
    out.append((True, "Commands (type them in the console; : focuses it)"))
    for spec in SPECS.values():
        out.append((False, f"  {spec.usage}\n      {spec.help}"))
    return out


class HelpScreen(ModalScreen[None]):
    """Keys and commands, scrollable, with a filter."""

    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "close"),
        Binding("slash", "filter", "filter"),
        Binding("j", "scroll(1)", "down", show=False),
        Binding("k", "scroll(-1)", "up", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]], keymap_file: str) -> None:
        super().__init__()
        self.entries = help_entries(keys, keymap_file)
        self.text = "\n".join(text for _, text in self.entries)
        self.words: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_title = "l4tui help"
            box.border_subtitle = "Esc closes · / filters · ↑↓ PgUp PgDn Home End j k scroll"
            yield Input(placeholder="filter: a word of a key or command", id="help-filter")
            with VerticalScroll(id="help-scroll"):
                yield Static(id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-filter").display = False
        self.query_one("#help-scroll").focus()
        self.call_after_refresh(self._paint)

    def action_close(self) -> None:
        box = self.query_one("#help-filter", Input)
        if box.has_focus:  # Escape in the filter: clear it, back to reading
            box.value = ""
            box.display = False
            self.query_one("#help-scroll").focus()
            return
        self.dismiss()

    def action_filter(self) -> None:
        box = self.query_one("#help-filter", Input)
        box.display = True
        box.focus()

    def action_scroll(self, rows: int) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_relative(y=rows, animate=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value.startswith("/"):  # `/` pressed again in the filter: not text to find
            event.input.value = event.value.lstrip("/")
            return
        self.words = event.value.lower().split()
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        """The entries the filter keeps, wrapped to the screen with a hanging indent."""
        scroll = self.query_one("#help-scroll")
        width = max(20, scroll.content_region.width - 1)  # room kept for the scrollbar
        t = Text(no_wrap=True)  # Text, not markup: "[N]" is literal
        shown = 0
        heading: str | None = None
        for is_heading, entry in self.entries:
            if is_heading:
                heading = entry  # shown only above an entry the filter keeps
                continue
            if self.words and not all(w in entry.lower() for w in self.words):
                continue
            if heading is not None:
                t.append(("\n" if t else "") + heading + "\n", style="bold")
                heading = None
            shown += 1
            for line in entry.split("\n"):
                t.append("\n".join(wrap_line(line, width)) + "\n")
        if self.words and not shown:
            t = Text(f"nothing matches {' '.join(self.words)!r}")
        self.query_one("#help-text", Static).update(t)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#help-scroll").focus()  # Enter: read what was found
