"""The lab sheet in the monitor as a student at 80×24 meets it: the exercise to do is on the
screen from the start and after each tick, the sheet scrolls from the keyboard, a resumed
session says so, and `lab` prints the sheet in the console."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from l4tui.cli.sessions import lab_session
from l4tui.lab import progress
from l4tui.tui.app import MonitorApp
from l4tui.tui.labpane import LabPane

sys.path.insert(0, str(Path(__file__).parent))
from screen import enter_line, region_rows

LABS = Path(__file__).parent.parent / "scripts" / "labs"
SIZES = [(80, 24), (120, 36), (160, 48)]


async def run(pilot, line: str) -> None:  # a Pilot
    await enter_line(pilot, line)
    await pilot.pause()


def sheet_on_screen(app: MonitorApp) -> str:
    """The sheet as read on the screen: inside its frame, wrapped lines joined."""
    rows = [r.strip("│╭╮╰╯─▊ ") for r in region_rows(app, app.query_one(LabPane))]
    return " ".join(" ".join(rows).split())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ["uhlig.yaml", "xp-ipc.yaml", "migration.yaml"])
async def test_the_first_exercise_is_on_the_first_screen(name: str, size: tuple[int, int]) -> None:
    lab, s = lab_session(str(LABS / name), None, fresh=True)
    app = MonitorApp(s, lab=lab)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.pause()
        text = sheet_on_screen(app)
        first = lab.exercises[0]
        assert f"1. {first.title}" in text
        assert first.text.split()[-1].replace("`", "").strip(".") in text  # to its end
        assert f"0 of {len(lab.exercises)} done" in text


async def test_after_each_tick_the_next_exercise_is_in_view_at_80x24() -> None:
    lab, s = lab_session(str(LABS / "uhlig.yaml"), None, fresh=True)
    app = MonitorApp(s, lab=lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await run(pilot, "break ipc.send.enqueue_sendq")
        await run(pilot, "continue")
        assert progress(lab, app.session)[0]
        text = sheet_on_screen(app)
        assert "2. Take over the scheduling" in text and "1 of 4 done" in text
        await run(pilot, "sched manual")
        text = sheet_on_screen(app)
        assert "3. Force the lost wake-up" in text
        assert "deadlock" in text  # the whole instruction, not its first line only


async def test_the_sheet_scrolls_from_the_keyboard() -> None:
    lab, s = lab_session(str(LABS / "xp-ipc.yaml"), None, fresh=True)
    app = MonitorApp(s, lab=lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape", "8")
        await pilot.pause()
        pane = app.query_one(LabPane)
        assert app.focused is pane
        await pilot.press("end")
        assert pane.scroll_y == pane.max_scroll_y > 0
        await pilot.press("home")
        assert pane.scroll_y == 0
        await pilot.press("pagedown")
        assert pane.scroll_y > 0


async def test_a_resumed_session_says_so_and_lab_prints_the_sheet(tmp_path: Path) -> None:
    state = tmp_path / "alice.json"
    lab, s = lab_session(str(LABS / "uhlig.yaml"), str(state), fresh=False)
    app = MonitorApp(s, lab=lab, autosave=state)
    async with app.run_test(size=(80, 24)) as pilot:
        await run(pilot, "break ipc.send.enqueue_sendq")
        await run(pilot, "continue")
    lab, s = lab_session(str(LABS / "uhlig.yaml"), str(state), fresh=False)
    app = MonitorApp(s, lab=lab, autosave=state)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        said = "\n".join(app.transcript)
        assert "resumed your saved session: 1 of 4 exercises done" in said
        assert "2. Take over the scheduling" in sheet_on_screen(app)
        await run(pilot, "lab")
        said = "\n".join(app.transcript)
        assert "[x] 1." in said and "[ ] 2." in said
