"""The Textual monitor through its pilot: every pane and action, asserting on session state
and on the screen after key presses — the keys a terminal really sends (`]` is
`right_square_bracket`), the footer, the console, help, zoom, following the stop."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, TabbedContent

from kernel.scenario import parse_scenario
from l4tui.bench.tui import big_scenario
from l4tui.demo import demo_scenario
from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from l4tui.tui.console import ConsolePane
from l4tui.tui.cpus import CpuColumn, CpusPane, CpuStrip
from l4tui.tui.help import HelpScreen
from l4tui.tui.tables import EventLog, ThreadsPane
from l4tui.tui.views import ApicPaneView, MailboxPaneView, PhasePane, TcbPane
from tests.waiting import await_until

sys.path.insert(0, str(Path(__file__).parent))
from screen import enter_line, region_rows, screen_rows

from kernel.scenario import load_scenario

WIDE, SPLIT, NARROW = (160, 48), (120, 36), (80, 24)


def app_on_demo() -> MonitorApp:
    return MonitorApp(Session(demo_scenario()))


type_line = enter_line  # the console line as a user gives it (tests/screen.py)


def console_lines(app: MonitorApp) -> list[str]:
    return list(app.query_one("#console-out").lines)


async def test_every_pane_is_there_and_the_console_has_focus() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        for pane in (CpusPane, TcbPane, PhasePane, ThreadsPane, MailboxPaneView, ApicPaneView):
            assert len(app.query(pane)) == 1, pane
        assert len(app.query(EventLog)) == 1
        assert len(app.query(CpuColumn)) == 2
        assert app.focused is app.query_one("#console-in")
        assert app.query_one(ThreadsPane).row_count == 4


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


async def test_stepping_keys_move_the_machine_forwards_and_back() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape")  # out of the console: keys are actions now
        s = app.session
        await pilot.press("s")
        after_step = s.position
        assert after_step > 0 and s.stop_reason.startswith("phase ")
        await pilot.press("i")
        assert s.position == after_step + 1
        await pilot.press("n")
        await pilot.press("r")
        assert s.stop_reason.startswith("back at micro-op")
        at = s.position
        await pilot.press("f10")  # the function-key twin of s
        assert s.position > at
        await pilot.press("f")
        assert "returned" in s.stop_reason or s.stop_reason.startswith("run ended")


async def test_function_keys_step_from_inside_the_console_and_letters_are_typed() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        assert app.session.position == 0  # typed, not a step
        assert app.query_one("#console-in", Input).value == "s"
        await pilot.press("f10")
        assert app.session.position > 0


async def test_continue_runs_in_the_worker_and_stops_at_a_breakpoint() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "break xp.proxy.send")
        await pilot.press("f5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.stop_reason.startswith("breakpoint 1: xp.proxy.send")
        assert not app.running
        assert console_lines(app).count("(l4tui) continue") == 1
        await pilot.press("escape", "R")  # reverse-continue: back before that stop
        assert app.session.stop_reason.startswith("back at micro-op")


@pytest.mark.slow
async def test_continue_pauses_on_a_key() -> None:
    endless = parse_scenario(
        "name: endless\ntasks:\n  - name: t\n    threads:\n"
        "      - {name: spin, program: [{loop: [{compute: 100}]}]}\n",
        "<endless>",
    )
    app = MonitorApp(Session(endless))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape", "c")
        await await_until(lambda: app.session.position > 0, what="the machine ran")
        assert app.running
        await pilot.press("c")
        await app.workers.wait_for_complete()
        assert not app.running
        assert app.session.stop_reason.startswith("paused by you at micro-op")
        assert app.session.position > 0


async def test_a_stop_moves_the_focus_to_the_cpu_and_the_thread_a_proxy_works_for() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        assert app.session.focus_cpu == 1
        await type_line(pilot, "break xp.proxy.send")
        await type_line(pilot, "continue")
        s = app.session
        assert s.focus_cpu == 2 and s.focus_via == "proxy2.1"
        assert app.query_one(TcbPane).thread == "cli"  # the proxy sends in cli's stead
        assert "proxy2.1 works for it" in "\n".join(region_rows(app, app.query_one(TcbPane)))
        phase = "\n".join(region_rows(app, app.query_one(PhasePane)))
        assert "proxy2.1 for cli" in phase and "▶" in phase  # the marked line is in view
        assert "cpu2 ◀" in "\n".join(region_rows(app, app.query_one(CpusPane)))
        await pilot.press("escape", "p")  # the partner, one key away
        assert s.focused_thread() == "srv"
        await pilot.press("p")
        assert s.focused_thread() == "cli"


@pytest.mark.slow
async def test_a_pinned_focus_stays_where_the_user_put_it() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "focus thread pgr pin")
        await type_line(pilot, "break xp.proxy.send")
        await type_line(pilot, "continue")
        assert app.session.focused_thread() == "pgr" and app.session.focus_cpu == 1
        await pilot.press("escape", "P")  # unpin
        assert not app.session.focus_pinned
        await pilot.press("s")
        assert app.session.focus_thread != "pgr" or app.session.focus_cpu != 1
        await pilot.press("P")
        assert app.session.focus_pinned


@pytest.mark.slow
async def test_bracket_keys_as_a_terminal_sends_them_move_the_cpu_focus() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape", "right_square_bracket")
        assert app.session.focus_cpu == 2
        await pilot.press("left_square_bracket")
        assert app.session.focus_cpu == 1
        await pilot.press("right_curly_bracket")
        first = app.session.focus_thread
        assert first is not None
        await pilot.press("left_curly_bracket")
        assert app.session.focus_thread != first


async def test_a_thread_row_selects_the_focus() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        table = app.query_one(ThreadsPane)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")
        assert app.session.focus_thread == "srv"
        await pilot.pause()
        assert app.query_one(TcbPane).thread == "srv"


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
async def test_event_log_has_a_header_and_a_filter() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "step 40")
        log = app.query_one(EventLog)
        assert log.lines
        assert "micro-op" in "\n".join(region_rows(app, app.query_one("#logbox")))
        app.query_one("#log-filter").focus()
        await pilot.press(*"cpu2", "enter")
        await pilot.pause()
        assert log.lines and all("cpu2" in line for line in log.lines)
        assert app.focused is log  # Enter: back to the log, to scroll it


@pytest.mark.slow
async def test_many_cpus_and_threads_render() -> None:
    app = MonitorApp(Session(big_scenario(cpus=8, threads=64)))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert app.query_one(DataTable).row_count == 64
        await pilot.press("escape", "s")
        assert app.session.position > 0


async def test_thread_table_sorts_by_a_clicked_header() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        table = app.query_one(ThreadsPane)
        col = table.shown_columns.index("prio")
        key = table.ordered_columns[col].key
        table.post_message(DataTable.HeaderSelected(table, key, col, "prio"))
        await pilot.pause()
        prios = [str(table.get_row_at(i)[col]) for i in range(table.row_count)]
        assert prios == sorted(prios, key=int)
        table.post_message(DataTable.HeaderSelected(table, key, col, "prio"))
        await pilot.pause()
        prios = [str(table.get_row_at(i)[col]) for i in range(table.row_count)]
        assert prios == sorted(prios, key=int, reverse=True)


@pytest.mark.slow
async def test_marks_go_into_the_event_log() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "step 10")
        await pilot.press("escape", "m")
        assert any("mark at micro-op" in line for line in app.query_one(EventLog).lines)


@pytest.mark.slow
async def test_sixteen_cpus_show_whole_columns_that_follow_the_focus() -> None:
    app = MonitorApp(Session(big_scenario(cpus=16, threads=32)))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        cpus = app.query_one(CpusPane)
        shown = len(app.query(CpuColumn))
        assert 1 < shown < 16
        assert f"1-{shown} of 16" in str(cpus.border_title)
        await pilot.press("escape", *["right_square_bracket"] * 15)
        await pilot.pause()
        assert app.session.focus_cpu == 16
        assert "cpu16 ◀" in "\n".join(region_rows(app, cpus))
        assert f"{17 - shown}-16 of 16" in str(cpus.border_title)


async def test_clicking_a_cpu_column_focuses_that_cpu() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        second = app.query(CpuColumn)[1]
        await pilot.click(second)
        assert app.session.focus_cpu == 2


@pytest.mark.slow
async def test_the_export_key_writes_the_run_as_a_trace(
    private_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(private_dirs)
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape")
        await pilot.press("i", "i", "i")
        await pilot.press("e")
        await pilot.pause()
        path = private_dirs / f"{app.session.scenario.name}-3.trace.json"
        assert path.exists()
        assert json.loads(path.read_text())["traceEvents"]
        assert any("wrote" in line and "Perfetto" in line for line in app.transcript)


async def test_the_first_frame_exit_of_bench_tui_ends_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("L4TUI_FIRST_FRAME_EXIT", "1")
    app = app_on_demo()
    async with app.run_test(size=NARROW):
        await await_until(lambda: app.return_code == 0 or not app.is_running, what="the exit")


async def test_slash_in_the_event_log_goes_to_its_filter_and_letters_run_nothing() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("escape", "7")
        await pilot.pause()
        assert app.focused is app.query_one(EventLog)
        await pilot.press("slash", *"cpu1")
        await pilot.pause()
        assert app.query_one("#log-filter", Input).value == "cpu1"
        assert app.session.position == 0  # c of cpu1 did not continue


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


@pytest.mark.slow
async def test_a_slash_in_an_empty_help_filter_is_not_a_character() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("f1", "slash", *"disable", "escape", "slash", "slash", *"x ADDR")
        await pilot.pause()
        assert app.screen.query_one("#help-filter", Input).value == "x ADDR"


@pytest.mark.slow
async def test_the_cpus_tab_says_which_cpus_it_shows() -> None:
    app = MonitorApp(Session(big_scenario(cpus=4, threads=8)))
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("escape", "1")
        await pilot.pause()
        text = "\n".join(region_rows(app, app.query_one(CpusPane)))
        assert "CPUs 1-2 of 4 (] [ move)" in text


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


async def test_a_proxy_that_works_for_nobody_is_shown_itself() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "break xp.proxy.sleep")
        await type_line(pilot, "continue")
        s = app.session  # proxy2.1 has delivered and goes to sleep: no client any more
        assert s.stop_reason == "breakpoint 1: xp.proxy.sleep on cpu2 (proxy2.1)"
        assert s.focus_cpu == 2 and s.focus_via is None
        assert s.focused_thread() == "proxy2.1"  # the proxy's own TCB and path
        assert app.query_one(TcbPane).thread == "proxy2.1"
        assert "proxy2.1:" in "\n".join(region_rows(app, app.query_one(PhasePane)))
