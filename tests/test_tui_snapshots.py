"""Snapshots of the main screen on the seeded demo: 80×24 (tabs) and 160×48 (side by side).

Regenerate after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from l4tui.demo import demo_scenario
from l4tui.session import Session
from l4tui.tui.app import MonitorApp


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def app_at_a_breakpoint() -> MonitorApp:
    s = Session(demo_scenario())
    s.focus_thread = "srv"
    from l4tui.executor import execute

    execute(s, "break xp.proxy.send")
    execute(s, "continue")
    return MonitorApp(s)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_main_screen(snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001 - fixture
    assert snap_compare(app_at_a_breakpoint(), terminal_size=size, press=["escape", "s"])
