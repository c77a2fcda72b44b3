"""Snapshots of the monitor at 80×24 (tabs) and 160×48 (wide): a stop, and a lab.

The stop is the seeded demo at its first `xp.proxy.send`: the focus has followed
it to CPU 2 and to cli, the thread the proxy sends for. The lab is Uhlig's race
after its first exercise, the next one in view.

Regenerate after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from l4tui.cli.sessions import lab_session
from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.session import Session
from l4tui.tui.app import MonitorApp

LABS = Path(__file__).parent.parent / "scripts" / "labs"
SIZES = [(160, 48), (80, 24)]


@pytest.fixture(autouse=True)
def no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")  # no cursor blink: a stable picture


def app_at_a_breakpoint() -> MonitorApp:
    s = Session(demo_scenario())
    execute(s, "break xp.proxy.send")
    execute(s, "continue")
    return MonitorApp(s)


def app_in_a_lab() -> MonitorApp:
    lab, s = lab_session(str(LABS / "uhlig.yaml"), None, fresh=True)
    execute(s, "break ipc.send.enqueue_sendq")
    execute(s, "continue")
    return MonitorApp(s, lab=lab)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=["160x48", "80x24"])
def test_a_stop(snap_compare, size: tuple[int, int]) -> None:  # fixture
    assert snap_compare(app_at_a_breakpoint(), terminal_size=size, press=["escape", "s"])


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=["160x48", "80x24"])
def test_a_lab(snap_compare, size: tuple[int, int]) -> None:  # fixture
    assert snap_compare(app_in_a_lab(), terminal_size=size)
