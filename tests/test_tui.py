"""The Textual monitor through its pilot: every pane and action, asserting on session state
after key presses; the layout at 80×24 and 160×48; keymaps, help, palette, console."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList, TabbedContent

from kernel.scenario import parse_scenario
from l4tui.bench.tui import big_scenario
from l4tui.demo import demo_scenario
from l4tui.session import Session
from l4tui.tui.app import HelpScreen, MonitorApp
from l4tui.tui.views import (
    ApicPaneView,
    CpuColumn,
    CpusPane,
    EventLog,
    MailboxPaneView,
    PhasePane,
    TcbPane,
    ThreadsPane,
)

WIDE, NARROW = (160, 48), (80, 24)


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """History and keymap live in the test's own directories."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def app_on_demo() -> MonitorApp:
    return MonitorApp(Session(demo_scenario()))


async def type_line(pilot, text: str) -> None:  # noqa: ANN001 - a Pilot
    await pilot.click("#console-in")
    await pilot.press(*text, "enter")
    await pilot.pause()


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


async def test_continue_runs_in_the_worker_and_stops_at_a_breakpoint() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "break xp.proxy.send")
        await pilot.press("f5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.stop_reason.startswith("breakpoint 1: xp.proxy.send")
        assert not app.running
        await pilot.press("escape", "R")  # reverse-continue: back before that stop
        assert app.session.stop_reason.startswith("back at micro-op")


async def test_continue_pauses_on_a_key() -> None:
    endless = parse_scenario(
        "name: endless\ntasks:\n  - name: t\n    threads:\n"
        "      - {name: spin, program: [{loop: [{compute: 100}]}]}\n",
        "<endless>",
    )
    app = MonitorApp(Session(endless))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape", "c")
        await pilot.pause(0.3)
        assert app.running
        await pilot.press("c")
        await app.workers.wait_for_complete()
        assert not app.running
        assert app.session.stop_reason.startswith("paused by you at micro-op")
        assert app.session.position > 0


async def test_focus_keys_and_thread_selection() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape", "bracketright")
        assert app.session.focus_cpu == 2
        await pilot.press("right_curly_bracket")
        first = app.session.focus_thread
        assert first is not None
        table = app.query_one(ThreadsPane)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")
        assert app.session.focus_thread == "srv"
        assert app.query_one(TcbPane).thread == "srv"


async def test_narrow_terminal_collapses_panes_to_tabs_and_t_switches() -> None:
    app = app_on_demo()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        assert len(app.query(TabbedContent)) == 1
        await type_line(pilot, "step 3")
        await pilot.press("escape", "t")
        await pilot.pause()
        assert len(app.query(TabbedContent)) == 0  # forced side by side
        assert any("step 3" in line for line in app.transcript)  # console kept its output


async def test_help_screen_lists_keys_and_commands() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        assert "reverse-continue" in text and "rev-step" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_theme_toggle_and_palette_commands() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        before = app.theme
        await pilot.press("escape", "ctrl+t")
        assert app.theme != before
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Reverse step" in titles and "Continue / pause" in titles


async def test_user_keymap_rebinds_an_action(private_dirs: Path) -> None:
    keymap = private_dirs / "config" / "l4tui" / "keymap.yaml"
    keymap.parent.mkdir(parents=True)
    keymap.write_text("step: x\n")
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("escape", "x")
        assert app.session.position > 0


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


async def test_console_completion_and_tab() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.click("#console-in")
        await pilot.press("i", "n", "f")
        await pilot.pause()
        box = app.query_one("#console-completions", OptionList)
        assert box.display and box.option_count >= 1
        await pilot.press("tab")
        assert app.query_one("#console-in", Input).value == "info "


async def test_event_log_filter() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "step 40")
        log = app.query_one(EventLog)
        assert log.lines
        await pilot.click("#log-filter")
        await pilot.press(*"cpu2", "enter")
        await pilot.pause()
        assert log.lines and all("cpu2" in line for line in log.lines)


async def test_many_cpus_and_threads_render() -> None:
    app = MonitorApp(Session(big_scenario(cpus=8, threads=64)))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert len(app.query(CpuColumn)) == 8
        assert app.query_one(DataTable).row_count == 64
        await pilot.press("escape", "s")
        assert app.session.position > 0


async def test_thread_table_sorts_by_a_clicked_header() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        table = app.query_one(ThreadsPane)
        table.post_message(DataTable.HeaderSelected(table, table.ordered_columns[4].key, 4, "prio"))
        await pilot.pause()
        prios = [str(table.get_row_at(i)[4]) for i in range(table.row_count)]
        assert prios == sorted(prios, key=int)
        table.post_message(DataTable.HeaderSelected(table, table.ordered_columns[4].key, 4, "prio"))
        await pilot.pause()
        prios = [str(table.get_row_at(i)[4]) for i in range(table.row_count)]
        assert prios == sorted(prios, key=int, reverse=True)


async def test_marks_and_pane_toggles() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await type_line(pilot, "step 10")
        await pilot.press("escape", "m")
        assert any("mark at micro-op" in line for line in app.query_one(EventLog).lines)
        await pilot.press("1")
        assert not app.query_one(TcbPane).display
        await pilot.press("1")
        assert app.query_one(TcbPane).display


async def test_sixteen_cpus_scroll_sideways() -> None:
    app = MonitorApp(Session(big_scenario(cpus=16, threads=32)))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert len(app.query(CpuColumn)) == 16
        cpus = app.query_one(CpusPane)
        assert cpus.virtual_size.width > cpus.size.width  # past what fits: it scrolls
        await pilot.press("escape", *["bracketright"] * 15)
        assert app.session.focus_cpu == 16


async def test_clicking_a_cpu_column_focuses_that_cpu() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        second = app.query(CpuColumn)[1]
        await pilot.click(second)
        assert app.session.focus_cpu == 2


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
