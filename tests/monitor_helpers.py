"""The Textual monitor on the demo scenario, for the pilot tests: the app, its
console's lines, and the terminal sizes the layouts are tested at.
"""

from __future__ import annotations

import sys
from pathlib import Path

from l4tui.demo import demo_scenario
from l4tui.session import Session
from l4tui.tui.app import MonitorApp

sys.path.insert(0, str(Path(__file__).parent))
from screen import enter_line

WIDE, SPLIT, NARROW = (160, 48), (120, 36), (80, 24)


def app_on_demo() -> MonitorApp:
    return MonitorApp(Session(demo_scenario()))


type_line = enter_line  # the console line as a user gives it (tests/screen.py)


def console_lines(app: MonitorApp) -> list[str]:
    return list(app.query_one("#console-out").lines)
