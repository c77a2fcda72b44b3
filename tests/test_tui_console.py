"""The monitor's console through the pilot: commands drive the session and keep
history, output scrolls and wraps, completion and history keys, the stop reason,
a scenario's script.

Through Textual's pilot, asserting on session state and on the screen after the
keys a terminal really sends (`]` is `right_square_bracket`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList

from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from l4tui.tui.console import ConsolePane

sys.path.insert(0, str(Path(__file__).parent))
from screen import region_rows

from kernel.scenario import load_scenario
from tests.monitor_helpers import NARROW, WIDE, app_on_demo, console_lines, type_line


async def test_console_commands_drive_the_session_and_keep_history(private_dirs: Path) -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "break xp.proxy.send")
        await type_line(pilot, "step 5")
        assert app.session.position > 0
        assert any("breakpoint 1 at xp.proxy.send" in line for line in app.transcript)
        await type_line(pilot, "nosuchcommand")
        assert any(line.startswith("error: unknown command") for line in app.transcript)
    history = (private_dirs / "state" / "l4tui" / "history").read_text()
    assert "+break xp.proxy.send" in history and "+step 5" in history


async def test_a_stop_reason_is_the_last_thing_the_console_shows() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await type_line(pilot, "break xp.proxy.send")
        await type_line(pilot, "continue")
        lines = console_lines(app)
        assert lines[-1].startswith("breakpoint 1: xp.proxy.send on cpu2")
        assert not any(line.startswith("cpu ") and "thread" in line for line in lines)
        rows = region_rows(app, app.query_one("#console-out"))
        assert any("breakpoint 1: xp.proxy.send" in r for r in rows)  # on screen, not scrolled
        await type_line(pilot, "where")  # asked for: the table is printed
        assert any("cpu2" in line for line in console_lines(app)[-3:])


async def test_the_console_scrolls_from_the_keyboard_without_leaving_the_line() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await type_line(pilot, "help")
        out = app.query_one("#console-out")
        bottom = out.scroll_y
        assert bottom > 0
        await pilot.press("pageup")
        assert out.scroll_y < bottom
        assert app.focused is app.query_one("#console-in")
        await pilot.press("shift+pagedown")
        assert out.scroll_y > 0
        await type_line(pilot, "where")
        assert out.scroll_y == out.max_scroll_y  # new output shows


async def test_console_output_wraps_with_a_hanging_indent_and_is_never_cut() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await type_line(pilot, "help")
        out = app.query_one("#console-out")
        width = out.scrollable_content_region.width
        assert all(len(line) <= width for line in out.lines)
        joined = " ".join(line.strip() for line in out.lines)
        assert "go back to the previous breakpoint or watchpoint hit" in joined


async def test_completion_list_sits_between_output_and_line_and_arrows_move_in_it() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("i", "n", "f", "o", "space")
        await pilot.pause()
        box = app.query_one("#console-completions", OptionList)
        line = app.query_one("#console-in", Input)
        assert box.display and box.option_count >= 5
        assert box.region.bottom <= line.region.y  # above the line, never over it
        assert line.region.y < app.query_one(ConsolePane).region.bottom
        metas = {str(box.get_option_at_index(i).prompt) for i in range(box.option_count)}
        assert len({m.split(maxsplit=1)[1] for m in metas}) == len(metas)  # real descriptions
        await pilot.press("down", "down")
        assert box.highlighted == 2
        await pilot.press("up")
        assert box.highlighted == 1
        chosen = str(box.get_option_at_index(1).prompt).split()[0]
        await pilot.press("enter")  # moved into the list: Enter takes it
        assert line.value == f"info {chosen} "
        line.value = "info "
        await pilot.pause()
        assert box.display
        await pilot.press("escape")  # closes the list first
        assert app.focused is line and not box.display
        await pilot.press("escape")  # then goes back to the panes
        assert app.focused is not line


@pytest.mark.slow
async def test_tab_on_an_empty_line_lists_every_command() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("tab")
        await pilot.pause()
        box = app.query_one("#console-completions", OptionList)
        assert box.display and box.option_count >= 20
        assert app.query_one("#console-in", Input).value == ""
        await pilot.press("i", "n", "f")
        await pilot.pause()
        await pilot.press("tab")
        assert app.query_one("#console-in", Input).value == "info "


async def test_up_walks_the_history_when_no_list_is_open() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "info cpus")
        await pilot.press("up")
        assert app.query_one("#console-in", Input).value == "info cpus"


@pytest.mark.slow
async def test_the_console_shows_its_newest_output_after_unzooming() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await type_line(pilot, "help")
        await pilot.press("f2")
        await pilot.pause()
        await type_line(pilot, "info tcb srv")
        await pilot.press("f2")
        await pilot.pause()
        await pilot.pause()
        rows = "\n".join(region_rows(app, app.query_one("#console-out")))
        assert "global modified" in rows  # the end of the answer, in view


async def test_open_runs_the_scenarios_script_and_shows_it() -> None:
    root = Path(__file__).parent.parent
    app = MonitorApp(
        Session(load_scenario(str(root / "scripts" / "xp-pingpong.yaml"))), run_script=True
    )
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        lines = console_lines(app)
        assert "(l4tui) break xp.proxy.send" in lines
        assert any(line.startswith("breakpoint 1: xp.proxy.send") for line in lines)
        assert app.session.stop_reason.startswith("breakpoint 1")
