"""Fork checkpoints in an engine process (l4tui/engine.py, l4tui/checkpoints.py; issue 15).

Going back restores the nearest checkpoint and replays the rest, so it must land exactly
where replay from the start lands: the same machine fingerprint, log, marks and views,
after any sequence of forward and reverse commands. Every process (engine, checkpoints,
their forks) ends with the client — closed, or killed — and none is left a zombie. The
front end's interrupt stops a running `continue`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from screen import enter_line, screen_rows

from kernel.scenario import parse_scenario
from l4tui import engine, views
from l4tui.bench.debugger import SCENARIO
from l4tui.cli import main
from l4tui.demo import demo_scenario
from l4tui.executor import execute, load_schedule, outcome
from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from tests.waiting import await_until

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork checkpoints need fork")

SPACING = 300  # small: every test crosses many checkpoints and thins them


def _endless() -> Session:
    return Session(parse_scenario(SCENARIO, "<bench-reverse>"))


def state(s: Session) -> tuple[Any, ...]:
    """Everything going back must re-create (run where the session lives)."""
    return (
        s.position,
        s.system.machine.fingerprint(),
        list(s.log),
        list(s.marks),
        dict(s.last_phase),
        s.stop_reason,
        views.render(s, "threads", None),
        views.where(s),
        s.focus_cpu,
        s.focus_thread,
    )


def _alive(pid: int) -> bool:
    """Whether `pid` runs. An exited process is a zombie only until its parent reaps it:
    the engine and checkpoints ignore SIGCHLD (the kernel reaps their children at once);
    one whose parent has gone is init's, which here reaps only every second or two."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return state[0] not in ("X", "Z") or int(state[1]) == os.getpid()


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def remote() -> Any:
    made: list[Any] = []

    def make(session: Session, spacing: int = SPACING, keep: int = 6) -> Any:
        r = engine.start(session, spacing=spacing, keep=keep)
        assert isinstance(r, engine.RemoteSession)
        made.append(r)
        return r

    yield make
    pids = []
    for r in made:
        if not r._closed:
            pids += [r.engine_pid, *(p for _, p in r.checkpoint_list())]
        r.close()
    assert _gone(pids), "a process outlived its client"


COMMANDS = st.one_of(
    st.tuples(st.just("stepi"), st.integers(1, 2500)),
    st.tuples(st.just("step"), st.integers(1, 40)),
    st.tuples(st.just("reverse_stepi"), st.integers(0, 3000)),
    st.tuples(st.just("reverse_step"), st.integers(0, 60)),
    st.tuples(st.just("goto"), st.integers(0, 20_000)),
    st.tuples(st.just("cont"), st.integers(1, 3000)),
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands=st.lists(COMMANDS, min_size=1, max_size=12))
def test_going_back_through_checkpoints_is_exact(remote: Any, commands: list[Any]) -> None:
    here = _endless()
    there = remote(_endless())
    for name, n in commands:
        if name == "cont":
            a, b = here.cont(limit=n), there.cont(limit=n)
        else:
            a, b = getattr(here, name)(n), getattr(there, name)(n)
        assert a == b, (name, n)
        assert there.position == here.position
    assert there.call(state) == state(here)
    there.close()


def test_console_commands_in_the_engine_match_in_process(remote: Any) -> None:
    lines = [
        "break ipc.transfer.short",
        "continue",
        "continue",
        "stepi 1200",
        "watch srv.partner",
        "reverse-continue",
        "reverse-step 3",
        "reverse-stepi 700",
        "stepi 5",
        "info checkpoints",
    ]
    here, there = _endless(), remote(_endless())
    for line in lines:
        a, b = outcome(here, line), there.call(outcome, line)
        if line != "info checkpoints":
            assert a == b, line
    assert "checkpoint(s), one every 300 micro-ops and where you stopped" in b[0]
    assert "no checkpoints" in execute(here, "info checkpoints")
    assert there.call(state) == state(here)


def test_reverse_restores_a_checkpoint_not_the_start(remote: Any) -> None:
    s = remote(_endless(), spacing=2000, keep=8)
    s.stepi(20_000)
    cps = s.checkpoint_list()
    assert 2 <= len(cps) <= 8 and cps[0][0] == 0  # thinned, the start kept
    first = s.engine_pid
    s.reverse_stepi(10)
    assert s.engine_pid != first  # a checkpoint's fork took over
    assert [p for p, _ in s.checkpoint_list()][-1] <= s.position
    assert _gone([first]), "the engine that handed over is gone"
    assert s.position == 19_990


def test_a_loaded_session_and_a_relayout_start_new_checkpoints(remote: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    here, there = Session(demo_scenario()), remote(Session(demo_scenario()))
    for line in ("stepi 900", f"save {path}", "reverse-stepi 400", f"load {path}",
                 "reverse-stepi 250", "layout linear", "reverse-step 2", "stepi 30"):  # fmt: skip
        assert outcome(here, line)[0] == there.call(outcome, line)[0], line
    assert there.call(state) == state(here)


def test_interrupt_stops_a_running_continue(remote: Any) -> None:
    s = remote(_endless(), spacing=20_000)
    timer = threading.Timer(0.5, s.interrupt)
    timer.start()
    try:
        reason = s.cont()
    finally:
        timer.cancel()
    assert reason.startswith("interrupted at micro-op"), reason
    assert 0 < s.position < 5_000_000


def test_a_dead_engine_is_an_error_not_a_hang(remote: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "GRACE", 0.5)
    s = remote(_endless())
    s.stepi(10)
    pids = [s.engine_pid, *(p for _, p in s.checkpoint_list())]
    os.kill(s.engine_pid, signal.SIGKILL)
    with pytest.raises(engine.EngineGone):
        s.stepi(1)
    s.close()
    assert _gone(pids)


CLIENT = """
import sys
from l4tui import engine
from kernel.scenario import parse_scenario
from l4tui.bench.debugger import SCENARIO
from l4tui.session import Session
s = engine.start(Session(parse_scenario(SCENARIO, "<b>")), spacing=500, keep=5)
s.stepi(3000)
s.reverse_stepi(700)
s.stepi(100)
print(s.engine_pid, *(p for _, p in s.checkpoint_list()), flush=True)
sys.stdin.read()
"""


def test_killing_the_client_ends_every_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 3 and all(_alive(p) for p in pids)
        proc.kill()
        proc.wait()
        assert _gone(pids), "processes outlived a killed client"
    finally:
        proc.kill()


def test_in_process_where_the_engine_is_opted_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("L4TUI_ENGINE", "inprocess")
    s = Session(demo_scenario())
    assert engine.start(s) is s
    assert "L4TUI_ENGINE=inprocess" in execute(s, "info checkpoints")


# --- the monitor on an engine session --------------------------------------------------------


@pytest.mark.slow
async def test_the_monitor_on_an_engine_session_shows_what_it_shows_in_process(
    remote: Any,
) -> None:
    """Every pane paints from data read where the session lives (Session.call): the same
    keys on the same scenario give the same screen, in-process and through the engine."""
    screens = []
    for session in (Session(demo_scenario()), remote(Session(demo_scenario()), spacing=200)):
        app = MonitorApp(session)
        async with app.run_test(size=(160, 48)) as pilot:
            await enter_line(pilot, "stepi 900")
            await pilot.press("escape")
            for key in ("s", "s", "i", "r", "r", "p", "c"):
                await pilot.press(key)
                await pilot.pause()
            await await_until(lambda app=app: not app.running, what="the continue stopped")
            await pilot.press("r")
            await pilot.pause()
            app.for_each_pane()
            await pilot.pause()
            screens.append(screen_rows(app))
            if isinstance(session, engine.RemoteSession):
                assert len(session.checkpoint_list()) >= 2
    assert screens[0] == screens[1]


BREAKS = st.sampled_from(
    ["ipc.transfer.short", "xp.proxy.*", "syscall call", "ipi sent", "sched.switch", "idle"]
)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    breaks=st.lists(BREAKS, max_size=2, unique=True),
    watch=st.booleans(),
    ahead=st.integers(500, 6000),
    back=st.integers(1, 4),
)
def test_reverse_continue_scans_back_from_the_checkpoints_exactly(
    remote: Any, breaks: list[str], watch: bool, ahead: int, back: int
) -> None:
    """reverse-continue finds the last stop behind by scouts forked from the checkpoints,
    segment by segment backwards: the same stop as the replay from the start."""
    here, there = _endless(), remote(_endless())
    lines = [f"break {b}" for b in breaks] + (["watch srv.partner"] if watch else [])
    lines += [f"stepi {ahead}"] + ["reverse-continue"] * back + ["stepi 50", "reverse-continue"]
    for line in lines:
        assert outcome(here, line)[0] == there.call(outcome, line)[0], line
    assert there.call(state) == state(here)
    pids = [there.engine_pid, *(p for _, p in there.checkpoint_list())]
    there.close()
    assert _gone(pids)


def test_a_schedule_followed_through_the_engine_goes_back_exactly(
    remote: Any, tmp_path: Path
) -> None:
    """`--schedule`: the explorer's race, followed with its stops, reversed through the
    checkpoints and continued again, as in-process."""
    naive = str(Path(__file__).parent.parent / "scripts" / "races" / "uhlig-naive.yaml")
    saved = tmp_path / "race.json"
    assert main(["explore", naive, "--save", str(saved)]) == 1
    here, there = load_schedule(str(saved)), remote(load_schedule(str(saved)), spacing=150)
    lines = ["continue", "continue", "stepi 40", "reverse-step 5", "continue", "reverse-stepi 90",
             "continue", "continue", "reverse-continue", "continue"]  # fmt: skip
    for line in lines:
        assert outcome(here, line)[0] == there.call(outcome, line)[0], line
    assert there.call(state) == state(here)


@pytest.mark.slow
async def test_the_live_continue_through_an_engine_paints_and_reads_keys_while_it_runs(
    remote: Any,
) -> None:
    """The TUI waits for an engine's slices in a thread: keys that ask the session while it
    runs wait their turn (RemoteSession locks), the pause key stops it, and the run is the
    same run as in-process (its log replays to the same state)."""
    s = remote(_endless(), spacing=5_000)
    app = MonitorApp(s)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("escape", "c")
        for _ in range(6):  # focus keys read the session from the event loop as it runs
            await pilot.pause(0.05)
            await pilot.press("right_square_bracket")
        assert app.running
        await pilot.press("c")
        await app.workers.wait_for_complete()
        assert not app.running
        assert s.stop_reason.startswith("paused by you at micro-op")
        assert s.position > 2_000
        here = _endless()
        here.stepi(s.position)
        assert s.call(state)[:5] == state(here)[:5]  # (the focus keys moved the focus)
