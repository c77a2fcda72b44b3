"""Stepping and following the stop in the monitor through the pilot: stepping keys,
`continue` in a worker and its pause key, the CPU and thread focus that follows
a stop (or stays pinned), and choosing the focus by keys, rows and clicks.

Through Textual's pilot, asserting on session state and on the screen after the
keys a terminal really sends (`]` is `right_square_bracket`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import Input

from kernel.scenario import parse_scenario
from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from l4tui.tui.cpus import CpuColumn, CpusPane
from l4tui.tui.tables import ThreadsPane
from l4tui.tui.views import PhasePane, TcbPane
from tests.waiting import await_until

sys.path.insert(0, str(Path(__file__).parent))
from screen import region_rows

from tests.monitor_helpers import WIDE, app_on_demo, console_lines, type_line


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


async def test_clicking_a_cpu_column_focuses_that_cpu() -> None:
    app = app_on_demo()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        second = app.query(CpuColumn)[1]
        await pilot.click(second)
        assert app.session.focus_cpu == 2


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
