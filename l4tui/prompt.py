"""The interactive `l4tui console`: a prompt-toolkit `PromptSession` in the pgcli manner.

The line is coloured by `CommandLexer`, completed by `CommandCompleter` (both
derived from the command grammar), suggested from a history kept in
`state_dir()`, with a bottom toolbar showing where the machine is. Ctrl-C
clears the line, or stops a running command; Ctrl-D leaves. The monitor's
console pane reads the same history (`make_history`). Scripts never load
this module (l4tui/console.py), so they start without prompt-toolkit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Iterable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.lexers import PygmentsLexer

from l4tui.complete import CommandCompleter
from l4tui.console import one
from l4tui.lexer import CommandLexer
from l4tui.paths import history_path
from l4tui.session import Session

HISTORY_ENTRIES = 1000
"""History entries kept in memory (the newest); the file keeps growing by a line a command."""
HISTORY_BYTES = 256_000
"""At most this much of the history file's end is read at start: a file grown over years
(or one that is not a history at all) costs no more than that."""


class BoundedFileHistory(FileHistory):
    """prompt-toolkit's FileHistory, reading only the file's end and keeping the newest
    `HISTORY_ENTRIES` strings in memory."""

    def load_history_strings(self) -> Iterable[str]:
        try:
            fd = os.open(self.filename, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return []
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return []  # a FIFO or a device: nothing to read, and no waiting on it
            start = max(0, st.st_size - HISTORY_BYTES)
            os.lseek(fd, start, os.SEEK_SET)
            raw = os.read(fd, HISTORY_BYTES)
            if start:  # begun mid-file: the first line may be a piece of one
                raw = raw[raw.find(b"\n") + 1 :]
        except OSError:
            return []
        finally:
            os.close(fd)
        strings: list[str] = []
        lines: list[str] = []
        for line in raw.decode("utf-8", "replace").splitlines():
            if line.startswith("+"):
                lines.append(line[1:])
            elif lines:
                strings.append("\n".join(lines))
                lines = []
        if lines:
            strings.append("\n".join(lines))
        return list(reversed(strings[-HISTORY_ENTRIES:]))

    def append_string(self, string: str) -> None:
        super().append_string(string)
        del self._loaded_strings[HISTORY_ENTRIES:]


def make_history() -> History:
    """The console's history: a file in `state_dir()`, or in memory if that cannot be written.

    Bounded (`HISTORY_ENTRIES`, `HISTORY_BYTES`): the prompt and the monitor keep the
    history in memory, and it grows with every line typed.
    """
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except (OSError, ValueError):
        return InMemoryHistory()
    return BoundedFileHistory(str(path))


def toolbar(session: Session) -> str:
    """The bottom toolbar: the lowest CPU clock, the focus, why it stopped, the position."""
    cycle = min((c.cycle for c in session.cpus()), default=0)
    focus = f"cpu{session.focus_cpu}"
    if session.focus_thread:
        focus += f"/{session.focus_thread}"
    parts = (
        f"cycle {cycle:,}",
        f"focus {focus}",
        f"stop: {session.stop_reason}",
        f"micro-op {session.position}",
    )
    return " " + " │ ".join(parts)


def make_prompt(session: Session) -> PromptSession[str]:
    """The prompt, pgcli-style: lexer, completer, history, suggestions, toolbar.

    Input and output are the current prompt-toolkit app session's, so a test
    can feed keys through a pipe (`create_app_session`).
    """

    return PromptSession(
        lexer=PygmentsLexer(CommandLexer),
        completer=CommandCompleter(lambda: session),
        complete_while_typing=True,
        auto_suggest=AutoSuggestFromHistory(),
        history=make_history(),
        bottom_toolbar=lambda: toolbar(session),
    )


@contextlib.contextmanager
def ctrl_c_interrupts(session: Session) -> Iterator[None]:
    """While a command runs, Ctrl-C stops the machine (`Session.interrupt`), not the console.

    Only the main thread can take signals; elsewhere this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, lambda signum, frame: session.interrupt())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def interactive(session: Session) -> int:
    """Read commands at the prompt until `quit` or Ctrl-D.

    Ctrl-C at the prompt clears the line; while a command runs (a long
    `continue`), it stops the machine at the next micro-op.
    """
    prompt = make_prompt(session)
    while True:
        try:
            line = prompt.prompt("(l4tui) ")
        except KeyboardInterrupt:  # Ctrl-C: drop the line, stay in the console
            continue
        except EOFError:  # Ctrl-D on an empty line
            return 0
        with ctrl_c_interrupts(session):
            if one(session, line):
                return 0
