"""The console's `goto N`: micro-op N of this history, back or forward (issue 15)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.session import Session


def fresh() -> Session:
    return Session(demo_scenario())


def where(s: Session) -> tuple[int, str, list]:
    return s.position, s.system.machine.fingerprint(), s.threads()


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 600), st.integers(0, 600))
def test_goto_back_is_the_state_a_fresh_run_reaches(ahead: int, target: int) -> None:
    s = fresh()
    execute(s, f"stepi {ahead}")
    out = execute(s, f"goto {target}")
    want = fresh()
    if target:
        execute(want, f"stepi {min(target, ahead)}" if target < ahead else f"stepi {target}")
    assert where(s) == where(want)
    if target < ahead:
        assert out.startswith(f"back at micro-op {target}")
    elif target == ahead:
        assert out.splitlines()[0] == f"already at micro-op {ahead}"


def test_goto_forward_runs_and_stops_at_a_breakpoint() -> None:
    s = fresh()
    assert execute(s, "break ipc.*").startswith("breakpoint 1")
    out = execute(s, "goto 100000")
    assert out.startswith("breakpoint 1")
    assert s.position < 100000


def test_bad_goto_is_one_line_and_changes_nothing() -> None:
    s = fresh()
    execute(s, "stepi 40")
    before = where(s)
    for line in ("goto", "goto x", "goto -1", "goto 1 2"):
        out = execute(s, line)
        assert out.startswith("error:") and "\n" not in out, (line, out)
        assert where(s) == before
