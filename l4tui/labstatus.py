"""`l4tui lab-status`: every student's progress on their lab, read from the saved sessions.

A state directory holds one `USER.json` per student, as `l4tui serve` and
`l4tui lab --state` write them. Each is replayed (exactly, from its input
log) and graded with its lab's checks; a file that cannot be read is listed
with the reason on its own row, and the report goes on. A saved session is
data (saved.py): grading runs nothing it holds, and reads only regular files
of bounded size — the session, its scenario and its lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4tui.executor import load_session
from l4tui.grammar import CommandError
from l4tui.lab import load_lab, progress
from l4tui.report import format_table
from machine.errors import ConfigError, MachineError


def grade(root: Path) -> list[dict[str, Any]]:
    """One row per saved session: user, lab title, exercises done."""
    rows: list[dict[str, Any]] = []
    for path in sorted(root.glob("*.json")):
        user = path.stem
        try:
            s = load_session(str(path))
            lab_file = s.meta.get("lab")
            if not lab_file:
                raise ConfigError("a session without a lab", str(path))
            lab = load_lab(lab_file)
            done = progress(lab, s)
        except ConfigError as e:
            rows.append({"user": user, "error": e.format().removeprefix("error: ")})
            continue
        except (CommandError, MachineError) as e:  # a check that cannot be evaluated on it
            rows.append({"user": user, "error": f"{path}: {' '.join(str(e).split())}"})
            continue
        rows.append(
            {
                "user": user,
                "lab": lab.title,
                "done": sum(done),
                "of": len(done),
                "exercises": done,
                "position": s.position,
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no saved sessions"
    table = []
    for r in rows:
        if "error" in r:
            table.append((r["user"], "-", "-", f"error: {r['error']}"))
        else:
            ticks = " ".join("✓" if d else "·" for d in r["exercises"])
            table.append((r["user"], r["lab"], f"{r['done']}/{r['of']}", ticks))
    return format_table(
        ("user", "lab", "done", "exercises"), table, right=(False, False, True, False)
    )
