"""The console pane: the command language inside the monitor, with the line console's
completer, lexer and history file (`l4tui/complete.py`, `lexer.py`, `paths.py`).

Typing shows completions in a list under the line (Tab takes the highlighted
one) and a grey suggestion from history (→ takes it); ↑/↓ walk the history
shared with `l4tui console`. Enter runs the line through the app, which runs
it through the one executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from pygments.token import Comment, Keyword, Name, Number, Operator, String
from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Log, OptionList

from l4tui.complete import CommandCompleter
from l4tui.lexer import CommandLexer

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


class CommandInput(Input):
    """The command line: Tab completes, ↑/↓ walk the history."""

    def on_mount(self) -> None:
        # No animations (as `l4tui serve` asks): a blinking cursor is a repaint
        # every half second, per student, down the network link.
        self.cursor_blink = os.environ.get("TEXTUAL_ANIMATIONS") != "none"

    BINDINGS = [
        Binding("tab", "complete", "complete", show=False, priority=True),
        Binding("up", "history(1)", "older", show=False),
        Binding("down", "history(-1)", "newer", show=False),
        Binding("escape", "app.leave_console", "panes", show=False),
    ]

    def action_complete(self) -> None:
        pane = self.parent
        if isinstance(pane, ConsolePane):
            pane.take_completion()

    def action_history(self, step: int) -> None:
        pane = self.parent
        if isinstance(pane, ConsolePane):
            pane.walk_history(step)


class ConsolePane(Vertical):
    """Output above, the command line, and the completions below it."""

    class Submitted(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(self, session: Callable[[], Session], history: History, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.get_session = session
        self.history = history
        self.entries: list[str] = list(history.load_history_strings())  # newest first
        self.completer = CommandCompleter(session)
        self.walk = -1
        self.completions: list = []

    def compose(self):  # noqa: ANN201 - ComposeResult
        yield Log(id="console-out", max_lines=2000)
        yield CommandInput(
            placeholder=": command (help lists them; Tab completes)",
            id="console-in",
            compact=True,
            highlighter=CommandHighlighter(),
            suggester=HistorySuggester(lambda: self.entries),
        )
        yield OptionList(id="console-completions")

    def on_mount(self) -> None:
        self.query_one("#console-completions").display = False

    def write(self, text: str) -> None:
        self.query_one("#console-out", Log).write_lines(text.split("\n"))

    def on_input_changed(self, event: Input.Changed) -> None:
        text = event.value
        box = self.query_one("#console-completions", OptionList)
        doc = Document(text, len(text))
        self.completions = list(self.completer.get_completions(doc, CompleteEvent()))[:40]
        box.clear_options()
        if not self.completions or not text:
            box.display = False
            return
        box.add_options([f"{c.text}  {c.display_meta_text}" for c in self.completions])
        box.highlighted = 0
        box.display = True

    def take_completion(self) -> None:
        box = self.query_one("#console-completions", OptionList)
        if not self.completions:
            return
        c = self.completions[box.highlighted or 0]
        inp = self.query_one("#console-in", Input)
        text = inp.value
        cut = len(text) + c.start_position
        inp.value = text[:cut] + c.text + ("" if c.text.endswith(("/", ".")) else " ")
        inp.cursor_position = len(inp.value)

    def walk_history(self, step: int) -> None:
        if not self.entries:
            return
        self.walk = max(-1, min(len(self.entries) - 1, self.walk + step))
        inp = self.query_one("#console-in", Input)
        inp.value = "" if self.walk < 0 else self.entries[self.walk]
        inp.cursor_position = len(inp.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        line = event.value
        event.input.value = ""
        self.walk = -1
        if line.strip():
            if not self.entries or self.entries[0] != line:
                self.entries.insert(0, line)
                self.history.append_string(line)
            self.post_message(self.Submitted(line))
