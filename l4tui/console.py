"""`l4tui console`: the command language on a line console (DESIGN.md §2).

Non-interactive — commands from `--script FILE`, or standard input when it is
not a terminal — it prints a transcript: each command after the prompt
``(l4tui) ``, then its output; comment lines as they are, blank lines blank
(`--quiet`: the outputs only). Every line runs; if any failed, the console ends
with exit status 2 and names the first on standard error as
``error: SCRIPT:LINE: …`` (a scenario file passed as the script is said to be
one). Interactive, the prompt of l4tui/prompt.py. A bad command prints
`error: …` and the session goes on; the exit code is 0 at `quit` or the end
of input.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from l4tui.executor import execute, outcome
from l4tui.grammar import command_name
from l4tui.paths import state_dir
from l4tui.session import Session
from machine.errors import ConfigError
from machine.yamlsrc import decode_text, read_limited

__all__ = ["main", "one", "run_lines", "scenario_hint", "state_dir"]


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
    return command_name(line) == "quit"


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
    # Only the prompt loads prompt-toolkit and pygments: a script starts faster without.
    from l4tui.prompt import interactive  # noqa: PLC0415 - start-up time

    return interactive(session)
