"""A scenario's console ``script:``: commands run as if typed when it opens (DESIGN.md §2).

The scenario loader keeps ``script:`` as plain strings (`Scenario.script`);
what they mean is the console's. Each is a console command (the language
of `l4tui.grammar`), run in order through the one executor on a fresh
session — one at its first step, not one loaded at a later step — to set up
a demo: breakpoints, a focus, a ``continue``. The front end shows the
transcript: each command after the prompt, then its output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from l4tui.executor import execute


def pending(session: Any) -> tuple[str, ...]:
    """The script commands to run now: all of them on a fresh session, else none.

    `session` is a `Session` or an engine's remote one (`l4tui.engine`).
    """
    return tuple(session.scenario.script) if session.position == 0 else ()


def transcript(session: Any, lines: tuple[str, ...]) -> Iterator[str]:
    """Run `lines` in order, yielding the transcript as it goes.

    Each command is yielded (after the prompt) before it runs, then its
    output if it printed any, so a front end shows it in the order typed.
    """
    for line in lines:
        yield f"(l4tui) {line}"
        out = session.call(execute, line, show_where=False)
        if out:
            yield out
