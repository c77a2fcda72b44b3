"""`l4tui console`: the command language on a line console (DESIGN.md §2).

Non-interactive — commands from `--script FILE`, or standard input when it is
not a terminal — it prints a transcript: each command after the prompt
``(l4tui) ``, then its output; comment lines as they are, blank lines blank
(`--quiet`: the outputs only). Every line runs; if any failed, the console ends
with exit status 2 and names the first on standard error as
``error: SCRIPT:LINE: …`` (a scenario file passed as the script is said to be
one). Interactive, a prompt-toolkit `PromptSession` in the pgcli manner: the
line coloured by `CommandLexer`, completion from `CommandCompleter`,
suggestions from a history kept in `state_dir()`, and a bottom toolbar showing
where the machine is; Ctrl-C clears the line, or stops a running command, and
Ctrl-D leaves. A bad command prints `error: …` and the session goes on; the
exit code is 0 at `quit` or the end of input.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from l4tui.executor import execute, outcome
from l4tui.grammar import CommandError, parse
from l4tui.paths import history_path, state_dir
from l4tui.session import Session
from machine.errors import ConfigError
from machine.yamlsrc import decode_text, read_limited

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
    "scenario_hint",
    "state_dir",
    "toolbar",
]


def one(session: Session, line: str) -> bool:
    """Execute one line and print its output; True when it was `quit`."""
    out = session.call(execute, line)  # where the session lives (engine.py)
    if out:
        print(out)
    return _is_quit(line)


SCRIPT_BYTES = 8 << 20  # a console script of commands: far more than any demo, never /dev/zero
SCENARIO_KEYS = ("name", "seed", "machine", "kernel", "tasks", "script", "expect")
LAB_KEYS = ("title", "scenario", "intro", "exercises")
_YAML_KEY = re.compile(r"^([A-Za-z_]\w*):(?:\s|$)")


def scenario_hint(session: Session, line: str, name: str) -> str | None:
    """What a script's first command line says if the script is YAML passed by mistake.

    A line `tasks:` or `name: xp-pingpong` would be read as an op injected into a thread
    of that name; unless the scenario has such a thread, it is a scenario (or lab) file.
    """
    text = line.strip()
    m = _YAML_KEY.match(text)
    if text != "---" and (m is None or session.call(_is_thread, m.group(1))):
        return None
    key = m.group(1) if m else "name"
    file = name if name != "<stdin>" else "FILE"
    if key in LAB_KEYS:
        return f"this looks like a lab file (YAML), not console commands; try l4tui lab {file}"
    if key in SCENARIO_KEYS or text == "---":
        return (
            "this looks like a scenario file (YAML), not console commands; "
            f"try l4tui console {file}"
        )
    return None


def _is_thread(session: Session, name: str) -> bool:
    return name in session.system.kernel.by_name


def run_lines(
    session: Session, lines: Iterable[str], echo: bool = True, name: str = "<stdin>"
) -> int:
    """Run a script's lines in order, printing a transcript; 2 if any line failed.

    With `echo` each command is printed after the prompt, comments as they are and blank
    lines blank; without it, only the outputs. Every line runs (up to `quit`); the first
    failure is named on standard error as `error: NAME:LINE: …`.
    """
    first: tuple[int, str] | None = None
    leading: list[str] | None = []  # comments before the first command, held back until
    for number, raw in enumerate(lines, 1):  # it shows the file is not YAML
        line = raw.rstrip()
        text = line.strip()
        if not text or text.startswith("#"):
            if leading is not None:
                leading.append(line)
            elif echo:
                print(line)
            continue
        if leading is not None:
            hint = scenario_hint(session, text, name)
            if hint is not None:
                print(f"error: {name}:{number}: {hint}", file=sys.stderr)
                return 2
            if echo and leading:
                print("\n".join(leading))
            leading = None
        if echo:
            print(f"(l4tui) {text}")
        out, ok = session.call(outcome, line)
        if out:
            print(out)
        if not ok:
            if first is None:
                first = (number, out.removeprefix("error: ").split("\n")[0])
        elif _is_quit(line):
            break
    if echo and leading:
        print("\n".join(leading))
    if first is not None:
        sys.stdout.flush()
        print(f"error: {name}:{first[0]}: {first[1]}", file=sys.stderr)
        return 2
    return 0


def _is_quit(line: str) -> bool:
    try:
        cmd = parse(line)
    except CommandError:
        return False
    return cmd is not None and cmd.name == "quit"


HISTORY_ENTRIES = 1000
"""History entries kept in memory (the newest); the file keeps growing by a line a command."""
HISTORY_BYTES = 256_000
"""At most this much of the history file's end is read at start: a file grown over years
(or one that is not a history at all) costs no more than that."""


def make_history() -> History:
    """The console's history: a file in `state_dir()`, or in memory if that cannot be written.

    Bounded (`HISTORY_ENTRIES`, `HISTORY_BYTES`): the prompt and the monitor keep the
    history in memory, and it grows with every line typed.
    """
    import stat

    from prompt_toolkit.history import FileHistory, InMemoryHistory

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


def main(session: Session, script: str | None, echo: bool = True) -> int:
    """Run `script`, or standard input when it is not a terminal, or the prompt."""
    if script is not None:
        try:
            raw = read_limited(script, SCRIPT_BYTES, "console scripts", "the script", pipes=True)
            text = decode_text(raw, script, "the script")
        except ConfigError as e:
            print(e.format(), file=sys.stderr)
            return 2
        return run_lines(session, text.splitlines(), echo, script)
    if not sys.stdin.isatty():
        return run_lines(session, sys.stdin, echo, "<stdin>")
    return interactive(session)
