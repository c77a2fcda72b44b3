"""Errors that carry where in an input file something is wrong.

Every layer reports bad input (a profile, a scenario, a command) through
`ConfigError`, so every front end can print the one-line form
``error: FILE:LINE:COL: what is wrong`` and exit 2 (DESIGN.md §2).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """Bad input, with the position of the offending value where known."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def where(self) -> str:
        parts = [p for p in (self.file, self.line, self.col) if p is not None]
        return ":".join(str(p) for p in parts)

    def format(self) -> str:
        where = self.where()
        return f"error: {where}: {self.message}" if where else f"error: {self.message}"

    def __str__(self) -> str:
        return self.format()


class MachineError(Exception):
    """A program running on the simulated machine did something impossible."""


def suggest(word: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'X'?)`` for the closest of `choices`, or nothing: the hint every
    refusal of a name gives (a profile key, a scenario's thread, a TCB field, a command)."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
