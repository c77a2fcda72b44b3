"""The monitor's panes through the pilot: every pane is there, the event log and
its filter, the thread table, many CPUs, marks, the export key, bench-tui.

Through Textual's pilot, asserting on session state and on the screen after the
keys a terminal really sends (`]` is `right_square_bracket`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from l4tui.bench.tui import big_scenario
from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from l4tui.tui.cpus import CpuColumn, CpusPane
from l4tui.tui.tables import EventLog, ThreadsPane
from l4tui.tui.views import ApicPaneView, MailboxPaneView, PhasePane, TcbPane
from tests.waiting import await_until

sys.path.insert(0, str(Path(__file__).parent))
from screen import region_rows

from tests.monitor_helpers import NARROW, WIDE, app_on_demo, type_line


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
async def test_the_cpus_tab_says_which_cpus_it_shows() -> None:
    app = MonitorApp(Session(big_scenario(cpus=4, threads=8)))
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("escape", "1")
        await pilot.pause()
        text = "\n".join(region_rows(app, app.query_one(CpusPane)))
        assert "CPUs 1-2 of 4 (] [ move)" in text
