"""The monitor's screens and keys through the pilot: the footer, layouts and zoom,
bringing panes forward, help, themes and the palette, the user's keymap.

Through Textual's pilot, asserting on session state and on the screen after the
keys a terminal really sends (`]` is `right_square_bracket`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from l4tui.tui.app import MonitorApp
from l4tui.tui.console import ConsolePane
from l4tui.tui.cpus import CpuStrip
from l4tui.tui.help import HelpScreen
from l4tui.tui.tables import EventLog, ThreadsPane
from l4tui.tui.views import TcbPane

sys.path.insert(0, str(Path(__file__).parent))
from screen import screen_rows

from tests.monitor_helpers import NARROW, SPLIT, WIDE, app_on_demo, console_lines, type_line


async def footer_when_painted(app: MonitorApp, pilot: Pilot[None]) -> str:
    """The footer row once it has been painted (a busy machine paints it a few frames late)."""
    for _ in range(200):
        await pilot.pause()
        footer = screen_rows(app)[-1]
        if footer.strip():
            return footer
    return footer


async def test_the_footer_shows_only_keys_that_work_where_the_focus_is() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        footer = await footer_when_painted(app, pilot)
        assert "F10 step" in footer and "F1 help" in footer
        assert "] cpu" not in footer and "q quit" not in footer  # typed in the console
        assert app.check_action("focus_cpu", (1,)) is False
        await pilot.press("escape")
        await pilot.pause()
        footer = screen_rows(app)[-1]
        assert "s step" in footer and "] cpu" in footer and "? help" in footer


@pytest.mark.slow
async def test_colon_focuses_the_console_from_a_pane_and_is_not_typed() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("escape", "4")  # the threads tab, focused
        await pilot.pause()
        assert app.focused is app.query_one(ThreadsPane)
        await pilot.press("colon")
        assert app.focused is app.query_one("#console-in")
        assert app.query_one("#console-in", Input).value == ""
        await pilot.press("colon", *"info cpus", "enter")  # a habit: a leading : is dropped
        await pilot.pause()
        assert not any(line.startswith("error") for line in console_lines(app))
        await pilot.press("escape")  # back to the pane it came from
        assert app.focused is app.query_one(ThreadsPane)


@pytest.mark.slow
async def test_t_cycles_the_layouts_that_fit_and_keeps_the_focus_out_of_the_console() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert app.mode == "wide" and len(app.query(TabbedContent)) == 0
        await type_line(pilot, "step 3")
        await pilot.press("escape", "7", "t")  # from the event log
        await pilot.pause()
        assert app.mode == "tabs" and len(app.query(TabbedContent)) == 1
        assert len(app.query(CpuStrip)) == 1
        assert app.focused is app.query_one(EventLog)  # where it was, not the console
        await pilot.press("t")  # a key still, not typed
        await pilot.pause()
        assert app.mode == "split" and len(app.query(TabbedContent)) == 2
        await pilot.press("t")
        await pilot.pause()
        assert app.mode == "wide"
        assert app.focused is app.query_one(EventLog)
        assert any("step 3" in line for line in console_lines(app))  # the console kept it


async def test_t_at_80x24_says_only_tabs_fit() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("escape", "t")
        await pilot.pause()
        assert app.mode == "tabs"
        assert any("fits only the tabs layout" in line for line in console_lines(app))


@pytest.mark.slow
async def test_the_layout_follows_the_terminal_size() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        assert app.mode == "tabs"
        await pilot.resize_terminal(*SPLIT)
        await pilot.pause()
        assert app.mode == "split"
        await pilot.resize_terminal(*WIDE)
        await pilot.pause()
        assert app.mode == "wide"
        assert len(app.query("#log-dock EventLog")) == 1  # beside the console


@pytest.mark.slow
async def test_digits_bring_a_pane_forward_and_focus_it() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("escape")
        for key, pane in (("5", "mailboxes"), ("6", "apic"), ("2", "tcb"), ("3", "phase")):
            await pilot.press(key)
            await pilot.pause()
            assert app.query_one(TabbedContent).active == f"tab-{pane}"
            assert app.focused is app.query_one(f"#{pane}")
        await pilot.press("8")  # no lab here: said, nothing else
        await pilot.pause()
        assert any("no lab sheet" in line for line in console_lines(app))


@pytest.mark.slow
async def test_zoom_fills_the_screen_with_the_focused_pane_and_escape_restores() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("f2")  # in the console: F2
        await pilot.pause()
        assert app.screen.maximized is app.query_one(ConsolePane)
        out = app.query_one("#console-out")
        assert out.size.height >= 18
        await pilot.press("f2")
        assert app.screen.maximized is None
        await pilot.press("escape", "2", "z")
        await pilot.pause()
        assert app.screen.maximized is app.query_one(TcbPane)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.maximized is None


@pytest.mark.slow
async def test_help_opens_from_anywhere_scrolls_and_filters() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("f1")  # from the console
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = screen_rows(app)
        assert any("Esc closes" in r for r in rows)  # how to leave is always in view
        scroll = app.screen.query_one("#help-scroll")
        await pilot.press("pagedown")
        assert scroll.scroll_y > 0
        await pilot.press("end")
        assert scroll.scroll_y == scroll.max_scroll_y
        await pilot.press("home", "j", "j")
        assert scroll.scroll_y == 2
        await pilot.press("k")
        assert scroll.scroll_y == 1
        await pilot.press("slash", *"reverse-cont")
        await pilot.pause()
        text = "\n".join(screen_rows(app))
        assert "reverse-continue" in text and "watch THREAD.FIELD" not in text
        assert "go back to the previous breakpoint" in text  # the whole entry
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_help_lists_keys_and_commands() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("f1")
        text = app.screen.text
        assert "reverse-continue" in text and "back to stop" in text and "] " in text
        assert "x ADDR" in text and "disable" in text and "lab" in text


@pytest.mark.slow
async def test_theme_toggle_and_palette_commands() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        before = app.theme
        await pilot.press("escape", "ctrl+t")
        assert app.theme != before
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Reverse step" in titles and "Continue / pause" in titles and "Zoom" in titles


@pytest.mark.slow
async def test_user_keymap_rebinds_an_action(private_dirs: Path) -> None:
    keymap = private_dirs / "config" / "l4tui" / "keymap.yaml"
    keymap.parent.mkdir(parents=True)
    keymap.write_text("step: x\n")
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape", "x")
        assert app.session.position > 0
        await pilot.press("f1")
        assert any(line.strip().startswith("x ") for line in app.screen.text.split("\n"))


@pytest.mark.slow
async def test_a_bad_keymap_is_reported_and_ignored(private_dirs: Path) -> None:
    keymap = private_dirs / "config" / "l4tui" / "keymap.yaml"
    keymap.parent.mkdir(parents=True)
    keymap.write_text("nosuchaction: x\n")
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert any("no action 'nosuchaction'" in n.message for n in app._notifications)
        await pilot.press("escape", "s")
        assert app.session.position > 0


@pytest.mark.slow
async def test_a_slash_in_an_empty_help_filter_is_not_a_character() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("f1", "slash", *"disable", "escape", "slash", "slash", *"x ADDR")
        await pilot.pause()
        assert app.screen.query_one("#help-filter", Input).value == "x ADDR"
