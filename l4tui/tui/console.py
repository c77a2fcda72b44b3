"""The console pane: the command language inside the monitor, with the line console's
completer, lexer and history file (`l4tui/complete.py`, `lexer.py`, `paths.py`).

Output above, the completion list, then the command line — the list takes
room from the output and never covers the line being typed. Typing shows
completions with what each is (Tab takes the highlighted one; Tab on an
empty line lists every command; ↑/↓ move in the list while it is open and
walk the history when it is not); a grey suggestion from history (→ takes
it). PageUp/PageDown (with or without Shift) scroll the output without
leaving the line; output is wrapped to the pane with a hanging indent, so a
long table row goes on under its own column. Escape closes the list, or
goes back to the panes. Enter runs the line through the app, which runs it
through the one executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from pygments.token import (  # type: ignore[import-untyped]
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    String,
)
from rich.highlighter import Highlighter
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Log, OptionList

from l4tui.complete import CommandCompleter
from l4tui.lexer import CommandLexer
from l4tui.prompt import HISTORY_ENTRIES
from l4tui.tui.wrap import wrap_line

if TYPE_CHECKING:
    from prompt_toolkit.history import History

    from l4tui.session import Session

TOKEN_STYLES = (
    (Comment, "dim italic"),
    (Keyword, "bold cyan"),
    (Name.Label, "bold magenta"),
    (Name.Attribute, "yellow"),
    (Name, "green"),
    (Number, "blue"),
    (Operator, "bold"),
    (String, "magenta"),
)
KEEP = 2000  # output lines kept (and re-wrapped when the pane changes width)
SHOWN = 40  # completions listed at most


class CommandHighlighter(Highlighter):
    """Colours a command line with the pygments lexer the line console uses."""

    def __init__(self) -> None:
        self.lexer = CommandLexer()

    def highlight(self, text: Text) -> None:
        at = 0
        for token, value in self.lexer.get_tokens(text.plain):
            for kind, style in TOKEN_STYLES:
                if token in kind:
                    text.stylize(style, at, at + len(value))
                    break
            at += len(value)


class HistorySuggester(Suggester):
    """The newest history entry that starts with what is typed (fish-style)."""

    def __init__(self, entries: Callable[[], list[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.entries = entries

    async def get_suggestion(self, value: str) -> str | None:
        if not value.strip():
            return None
        for entry in self.entries():
            if entry.startswith(value) and entry != value:
                return entry
        return None


class ConsoleLog(Log):
    """The console's output: at its newest line whenever its size changes (the completion
    list closing, a zoom, a new layout), since a terminal user reads the bottom."""

    def on_resize(self) -> None:
        self.call_after_refresh(self.scroll_end, animate=False)


class CommandInput(Input):
    """The command line: Tab completes, ↑/↓ move in the completions or walk the history,
    PageUp/PageDown scroll the output."""

    BINDINGS = [
        Binding("tab", "complete", "complete", show=False, priority=True),
        Binding("up", "updown(-1)", "older", show=False),
        Binding("down", "updown(1)", "newer", show=False),
        Binding("escape", "escape", "panes", show=False),
        Binding("pageup,shift+pageup", "scroll_output(-1)", "scroll up", show=False),
        Binding("pagedown,shift+pagedown", "scroll_output(1)", "scroll down", show=False),
    ]

    async def _on_key(self, event: events.Key) -> None:
        # Enter is handled here, as the key arrives: left to the app's binding lookup it was
        # now and then dropped when keys came in a burst (a fast typist, tmux send-keys).
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            await self.action_submit()
            return
        if event.character == ":" and not self.value:
            # `:` on an empty line: the panes' habit for "to the console"; no command starts
            # with it. Dropped here, as it arrives (not later, from a stale Changed event).
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def on_mount(self) -> None:
        # No animations (as `l4tui serve` asks): a blinking cursor is a repaint
        # every half second, per student, down the network link.
        self.cursor_blink = os.environ.get("TEXTUAL_ANIMATIONS") != "none"

    @property
    def pane(self) -> ConsolePane:
        parent = self.parent
        assert isinstance(parent, ConsolePane)
        return parent

    def action_complete(self) -> None:
        self.pane.complete()

    def action_updown(self, step: int) -> None:
        self.pane.updown(step)

    def action_scroll_output(self, pages: int) -> None:
        out = self.pane.query_one("#console-out", Log)
        if pages < 0:
            out.scroll_page_up(animate=False)
        else:
            out.scroll_page_down(animate=False)

    def action_escape(self) -> None:
        if not self.pane.close_completions():
            self.pane.post_message(self.pane.Leave())

    async def action_submit(self) -> None:
        """Enter: take the completion moved to, or run the line — emptied here and now, so
        keys typed right after Enter start the next line (Input.Submitted would reach the
        pane only after them)."""
        if self.pane.chosen():
            self.pane.take_completion()
            return
        line = self.value
        self.value = ""
        self.pane.submit(line)


class ConsolePane(Vertical):
    """Output above, the completions, and the command line at the bottom."""

    ALLOW_MAXIMIZE = True

    class Submitted(Message):
        """A command line to run."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    class Leave(Message):
        """Escape with nothing to close: back to the panes."""

    def __init__(self, session: Callable[[], Session], history: History, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.get_session = session
        self.history = history
        # Newest first, at most HISTORY_ENTRIES (a history not ours may hold more).
        self.entries: list[str] = list(history.load_history_strings())[:HISTORY_ENTRIES]
        self.completer = CommandCompleter(session)
        self.walk = -1
        self.completions: list = []
        self.navigated = False  # the user moved in the completion list
        self.raw: list[str] = []  # the output as written, re-wrapped on resize
        self.wrapped_at = 0

    def compose(self):  # ComposeResult
        yield ConsoleLog(id="console-out", max_lines=4 * KEEP)
        yield OptionList(id="console-completions")
        yield CommandInput(
            placeholder="command (help lists them; Tab completes; F1 keys)",
            id="console-in",
            compact=True,
            highlighter=CommandHighlighter(),
            suggester=HistorySuggester(lambda: self.entries),
        )

    def on_mount(self) -> None:
        self.query_one("#console-completions").display = False

    # --- output ------------------------------------------------------------------------

    def out_width(self) -> int:
        out = self.query_one("#console-out", Log)
        return max(20, (out.scrollable_content_region.width or 80) - 1)

    def write(self, text: str) -> None:
        lines = text.split("\n")
        self.raw.extend(lines)
        del self.raw[:-KEEP]
        out = self.query_one("#console-out", Log)
        width = self.out_width()
        if width != self.wrapped_at:
            self._rewrap()
            return
        # New output always shows (a terminal's habit); PageUp looks back.
        out.write_lines([row for line in lines for row in wrap_line(line, width)], scroll_end=True)

    def clear(self) -> None:
        self.raw.clear()
        self.query_one("#console-out", Log).clear()

    def _rewrap(self) -> None:
        out = self.query_one("#console-out", Log)
        width = self.out_width()
        self.wrapped_at = width
        out.clear()
        out.write_lines(
            [row for line in self.raw for row in wrap_line(line, width)], scroll_end=True
        )

    def on_resize(self) -> None:
        if self.raw and self.out_width() != self.wrapped_at:
            self.call_after_refresh(self._rewrap)

    # --- completion --------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "console-in":
            return
        self._list(event.value, show_all=False)

    def _list(self, text: str, show_all: bool) -> None:
        box = self.query_one("#console-completions", OptionList)
        doc = Document(text, len(text))
        self.completions = list(self.completer.get_completions(doc, CompleteEvent()))[:SHOWN]
        self.navigated = False
        box.clear_options()
        if not self.completions or not (text or show_all):
            box.display = False
            return
        width = max(len(c.text) for c in self.completions)
        options = []
        for c in self.completions:
            t = Text(c.text.ljust(width + 2), no_wrap=True, overflow="ellipsis")
            t.append(c.display_meta_text, style="dim")
            options.append(t)
        box.add_options(options)
        box.highlighted = 0
        box.display = True

    def complete(self) -> None:
        """Tab: take the highlighted completion; on an empty line, list every command."""
        inp = self.query_one("#console-in", Input)
        box = self.query_one("#console-completions", OptionList)
        if not inp.value.strip() and not box.display:
            self._list("", show_all=True)
            return
        if not self.completions:
            return
        self.take_completion()

    def chosen(self) -> bool:
        """Whether Enter should take a completion: the user moved to one in the open list."""
        box = self.query_one("#console-completions", OptionList)
        return box.display and self.navigated and bool(self.completions)

    def take_completion(self) -> None:
        box = self.query_one("#console-completions", OptionList)
        if not self.completions:
            return
        c = self.completions[box.highlighted or 0]
        inp = self.query_one("#console-in", Input)
        text = inp.value
        cut = len(text) + c.start_position
        inp.value = text[:cut] + c.text + ("" if c.text.endswith(("/", ".", ":")) else " ")
        inp.cursor_position = len(inp.value)

    def close_completions(self) -> bool:
        """Close the list if it is open; whether it was."""
        box = self.query_one("#console-completions", OptionList)
        if not box.display:
            return False
        box.display = False
        return True

    def updown(self, step: int) -> None:
        box = self.query_one("#console-completions", OptionList)
        if box.display and self.completions:
            n = len(self.completions)
            here = box.highlighted if box.highlighted is not None else -1
            box.highlighted = (here + step) % n
            self.navigated = True
            return
        self.walk_history(-step)

    def walk_history(self, step: int) -> None:
        if not self.entries:
            return
        self.walk = max(-1, min(len(self.entries) - 1, self.walk + step))
        inp = self.query_one("#console-in", Input)
        inp.value = "" if self.walk < 0 else self.entries[self.walk]
        inp.cursor_position = len(inp.value)
        self.close_completions()

    def submit(self, line: str) -> None:
        """A line from the command line: into the history, then to the app to run."""
        line = line.lstrip(":")
        self.walk = -1
        self.close_completions()
        if line.strip():
            if not self.entries or self.entries[0] != line:
                self.entries.insert(0, line)
                del self.entries[HISTORY_ENTRIES:]  # bounded, as the history is
                self.history.append_string(line)
            self.post_message(self.Submitted(line))
