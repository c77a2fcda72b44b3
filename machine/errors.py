"""Errors that carry where in an input file something is wrong.

Every layer reports bad input (a profile, a scenario, a command) through
`ConfigError`, so every front end can print the one-line form
``error: FILE:LINE:COL: what is wrong`` and exit 2 (DESIGN.md §2).
"""

from __future__ import annotations


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
