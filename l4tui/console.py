"""`l4tui console`: the command language on a line console (DESIGN.md §2).

Non-interactive — commands from `--script FILE`, or standard input when it is
not a terminal — each command's output is printed (with `--echo`, the command
first, so a demo reads as a transcript). Interactive, a prompt-toolkit
`PromptSession` with history. A bad command prints `error: …` and the
session goes on; the exit code is 0 at `quit` or the end of input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from l4tui.executor import execute
from l4tui.grammar import CommandError, parse
from l4tui.session import Session


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


def interactive(session: Session) -> int:  # pragma: no cover - needs a terminal
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    state = Path.home() / ".local" / "state" / "l4tui"
    state.mkdir(parents=True, exist_ok=True)
    prompt = PromptSession(history=FileHistory(str(state / "history")))
    while True:
        try:
            line = prompt.prompt("(l4tui) ")
        except (EOFError, KeyboardInterrupt):
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
