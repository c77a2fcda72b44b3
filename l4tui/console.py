"""`l4tui console`: the command language on a line console (DESIGN.md §2).

Non-interactive — commands from `--script FILE`, or standard input when it is
not a terminal — each command's output is printed (with `--echo`, the command
first, so a demo reads as a transcript). Interactive, a prompt-toolkit
`PromptSession` in the pgcli manner: the line coloured by `CommandLexer`,
completion from `CommandCompleter`, suggestions from a history kept in
`state_dir()`, and a bottom toolbar showing where the machine is. A bad
command prints `error: …` and the session goes on; the exit code is 0 at `quit` or the end of input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from l4tui.executor import execute
from l4tui.grammar import CommandError, parse
from l4tui.paths import history_path, state_dir
from l4tui.session import Session

if TYPE_CHECKING:
    from prompt_toolkit.history import History

__all__ = ["interactive", "main", "make_history", "one", "run_lines", "state_dir", "toolbar"]


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
    return (
        f" cycle {cycle:,} \N{BOX DRAWINGS LIGHT VERTICAL} focus {focus}"
        f" \N{BOX DRAWINGS LIGHT VERTICAL} stop: {session.stop_reason}"
        f" \N{BOX DRAWINGS LIGHT VERTICAL} micro-op {session.position}"
    )


def interactive(session: Session) -> int:
    """Read commands at a prompt until `quit` or Ctrl-D; Ctrl-C clears the line.

    The prompt colours the line with the command lexer, completes from the
    grammar and the session, suggests from the history and shows where the
    machine is in a bottom toolbar. Input and output are the current prompt-toolkit
    app session's, so a test can drive it through a pipe.
    """
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.lexers import PygmentsLexer

    from l4tui.complete import CommandCompleter
    from l4tui.lexer import CommandLexer

    prompt: PromptSession[str] = PromptSession(
        lexer=PygmentsLexer(CommandLexer),
        completer=CommandCompleter(lambda: session),
        complete_while_typing=True,
        auto_suggest=AutoSuggestFromHistory(),
        history=make_history(),
        bottom_toolbar=lambda: toolbar(session),
    )
    while True:
        try:
            line = prompt.prompt("(l4tui) ")
        except KeyboardInterrupt:  # Ctrl-C: drop the line, stay in the console
            continue
        except EOFError:  # Ctrl-D on an empty line
            return 0
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
