"""A line of the pseudo-code pane, and the phase label the kernel emits on reaching it.

The paths themselves are in the sibling modules, by the thesis's sections:
ipc.py (§8.3.1–§8.3.3), xp.py (§8.3.4–§8.4.3), sched.py (§2.1.1, §2.2.2, §8.7).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    """One line of pseudo-code, and the phase label the kernel emits on reaching it."""

    text: str
    label: str | None


def path(*rows: str | tuple[str, str]) -> tuple[Line, ...]:
    """Lines from plain strings (no label) and (text, label) pairs."""
    return tuple(Line(r, None) if isinstance(r, str) else Line(r[0], r[1]) for r in rows)
