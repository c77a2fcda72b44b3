"""Where l4tui keeps its files between runs (the XDG base directory rules).

Headless: the console's history lives in `state_dir()`, and a test points
`XDG_STATE_HOME` at a temporary directory to keep it out of the user's home.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """`$XDG_STATE_HOME/l4tui`, or `~/.local/state/l4tui` (not created here)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    # The spec: a relative path in the variable is invalid and is ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "l4tui"


def history_path() -> Path:
    """The file the line console keeps its command history in."""
    return state_dir() / "history"


def lab_state_path(lab_file: str) -> Path:
    """Where `l4tui lab LAB` keeps a student's session when no --state is given: one file
    per lab, named after it, so progress survives quitting."""
    return state_dir() / "labs" / f"{Path(lab_file).stem}.json"


def schedule_path(scenario_name: str) -> Path:
    """Where `l4tui explore` saves a failing schedule when no --save is given: beside the
    labs' sessions, never in the working directory (a checkout, say)."""
    return state_dir() / "schedules" / f"{scenario_name}.schedule.json"
