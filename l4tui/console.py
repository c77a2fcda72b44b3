"""`l4tui console`: the command language on a line console (DESIGN.md §2).

Non-interactive — commands from `--script FILE`, or standard input when it is
not a terminal — each command's output is printed (with `--echo`, the command
first, so a demo reads as a transcript). Interactive, a prompt-toolkit
`PromptSession` in the pgcli manner: the line coloured by `CommandLexer`,
completion from `CommandCompleter`, suggestions from a history kept in
`state_dir()`, and a bottom toolbar showing where the machine is; Ctrl-C
clears the line, or stops a running command, and Ctrl-D leaves. A bad
command prints `error: …` and the session goes on; the exit code is 0 at
`quit` or the end of input.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from l4tui.executor import execute
from l4tui.grammar import CommandError, parse
from l4tui.paths import history_path, state_dir
from l4tui.session import Session

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import History

__all__ = [
    "ctrl_c_interrupts",
    "interactive",
    "main",
    "make_history",
    "make_prompt",
    "one",
    "run_lines",
    "state_dir",
    "toolbar",
]


def one(session: Session, line: str) -> bool:
    """Execute one line and print its output; True when it was `quit`."""
    out = execute(session, line)
    if out:
        print(out)
    try:
        cmd = parse(line)
    except CommandError:
        return False
    return cmd is not None and cmd.name == "quit"


def run_lines(session: Session, lines: Iterable[str], echo: bool = False) -> int:
    """Execute `lines` in order, printing each output; stop at `quit`."""
    for line in lines:
        line = line.rstrip("\n")
        if echo and line.strip():
            print(f"(l4tui) {line}")
        if one(session, line):
            break
    return 0


def make_history() -> History:
    """The console's history: a file in `state_dir()`, or in memory if that cannot be written."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


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
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.lexers import PygmentsLexer

    from l4tui.complete import CommandCompleter
    from l4tui.lexer import CommandLexer

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


def main(session: Session, script: str | None, echo: bool) -> int:
    if script is not None:
        try:
            text = Path(script).read_text()
        except OSError as e:
            print(f"error: {script}: {e.strerror}", file=sys.stderr)
            return 2
        return run_lines(session, text.splitlines(), echo)
    if not sys.stdin.isatty():
        return run_lines(session, sys.stdin, echo)
    return interactive(session)
