"""`layout thesis|naive` (§8.6): the other TCB layout, back at the same point of the program —
the same thread at the same phase label, the nth time — with breakpoints, watchpoints, focus
and history kept; straight back is the state left; what cannot be matched is said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.scenario import load_scenario, parse_scenario
from l4tui import relayout
from l4tui import stops as stops_module
from l4tui.demo import demo_scenario
from l4tui.executor import execute, load_session
from l4tui.inputs import Inject, to_json
from l4tui.lab import load_lab, progress, sheet
from l4tui.relayout import Point, locate, switch
from l4tui.runner.summary import summary as run_summary
from l4tui.session import Session
from machine.ops import KERNEL_BASE

ROOT = Path(__file__).parent.parent
XP_IPC = str(ROOT / "scripts" / "demos" / "xp-ipc.yaml")
MIGRATION = str(ROOT / "scripts" / "demos" / "migration.yaml")


def state(s: Session) -> tuple[object, ...]:
    """What must be identical after going there and back: position, hardware, kernel, marks."""
    summary = json.dumps(run_summary(s.system), sort_keys=True, default=str)
    return (
        s.position,
        s.system.machine.fingerprint(),
        summary,
        s.marks,
        s.threads(),
        s.cpus(),
        s.system.kernel.layout.name,
    )


def last_label(s: Session) -> tuple[str, str, int]:
    """The thread at the last phase mark, the label, and the how-manyth time it passed it."""
    m = s.marks[-1]
    return m.thread, m.label, sum(1 for x in s.marks if (x.thread, x.label) == (m.thread, m.label))


def run(s: Session, *lines: str) -> str:
    out = ""
    for line in lines:
        out = execute(s, line)
        assert not out.startswith("error"), (line, out)
    return out


# --- the same point ---------------------------------------------------------------------------


def test_from_the_issue_stop_at_xp_send_naive_is_back_at_it() -> None:
    s = Session(demo_scenario())
    run(s, "break xp.send", "continue")
    assert last_label(s) == ("cli", "xp.send", 1)
    cycle = s.cpus()[0].cycle
    out = run(s, "layout naive")
    head = out.splitlines()[0]
    assert head.startswith("naive TCB layout: back at xp.send of cli (its 1st time), micro-op ")
    assert head.endswith(f"(was {cycle:,} with the thesis layout)")
    assert s.system.kernel.layout.name == "naive" and s.tcb_layout == "naive"
    assert last_label(s) == ("cli", "xp.send", 1) and s.marks[-1].position == s.position
    assert s.stop_reason == head
    assert "breakpoints kept, hit counts counted again in the naive run: 1 (1 hit)" in out


@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_the_nth_time_at_a_label_is_the_nth_time_in_the_other_layout(nth: int) -> None:
    s = Session(demo_scenario())
    run(s, "break xp.send thread cli", *["continue"] * nth)
    assert last_label(s) == ("cli", "xp.send", nth)
    out = run(s, "layout naive")
    assert f"back at xp.send of cli (its {relayout.ordinal(nth)} time)" in out
    assert last_label(s) == ("cli", "xp.send", nth)
    assert s.marks[-1].position == s.position  # at the label, not after it
    assert s.breakpoints[0].hits == nth


@pytest.mark.parametrize("stops", [1, 4, 9])
def test_a_proxys_stop_is_matched_for_the_proxy(stops: int) -> None:
    s = Session(demo_scenario())
    run(s, "break xp.proxy.*", *["continue"] * stops)
    thread, label, nth = last_label(s)
    assert thread.startswith("proxy")
    run(s, "layout naive")
    assert last_label(s) == (thread, label, nth)


def test_after_stepi_the_point_counts_the_threads_micro_ops_since_its_label() -> None:
    s = Session(demo_scenario())
    run(s, "break xp.send", "continue", "stepi 3")
    stop, _ = locate(s)
    assert stop.at.thread == "cli" and stop.at.label is not None and stop.at.ops > 0
    out = run(s, "layout naive")
    assert f"back at {stop.text()}" in out
    assert locate(s)[0] == stop


def test_thesis_naive_thesis_is_the_state_left_with_focus_and_history() -> None:
    s = Session(demo_scenario())
    run(s, "break xp.send", "continue", "continue", "focus thread srv")
    before = state(s)
    commands = list(s.commands)
    stops = list(s.stops)
    run(s, "layout naive")
    assert s.focus_thread == "srv" and s.focus_cpu == 2
    assert s.commands == [*commands, "layout naive"]
    assert s.stops[: len(stops)] == stops
    out = run(s, "layout thesis")
    assert "back where you left it" in out
    assert state(s) == before
    assert s.focus_thread == "srv"
    assert s.commands[-2:] == ["layout naive", "layout thesis"]
    assert [b.number for b in s.breakpoints] == [1] and s.breakpoints[0].hits == 2


@pytest.mark.parametrize("stops", [1, 2, 3, 5])
def test_matching_itself_round_trips_at_breakpoint_stops(stops: int) -> None:
    """Not only the remembered way back: matching the point again lands on the same state."""
    s = Session(demo_scenario())
    run(s, "break xp.*", *["continue"] * stops)
    before = state(s)
    switch(s, "naive", exact_return=False)
    switch(s, "thesis", exact_return=False)
    assert state(s) == before


def test_the_same_layout_changes_nothing() -> None:
    s = Session(load_scenario(XP_IPC))
    run(s, "step 5")
    before = state(s)
    assert run(s, "layout thesis").startswith("already the thesis TCB layout; nothing changes")
    assert state(s) == before
    assert execute(s, "layout wide").startswith("error: layout takes thesis or naive")


# --- breakpoints and watchpoints ----------------------------------------------------------


def test_a_field_watch_follows_its_field_and_still_fires() -> None:
    s = Session(load_scenario(XP_IPC))
    run(s, "watch srv.partner", "break xp.send", "continue")
    old = s.watches[0].paddr
    out = run(s, "layout naive")
    srv = s.system.kernel.by_name["srv"]
    (w,) = s.watches
    assert w.expr == "srv.partner" and w.paddr == srv.f["partner"] - KERNEL_BASE != old
    assert f"watchpoint srv.partner follows the field to {w.paddr:#x}" in out
    run(s, "delete 1")
    stop = run(s, "continue").splitlines()[0]
    assert stop.startswith("watchpoint srv.partner: 0x0 -> ")
    assert s.system.kernel.field(srv, "partner") != 0


def test_a_line_watch_stays_on_its_line_or_is_put_aside_and_comes_back() -> None:
    # 64-byte lines: the thesis layout has 4 TCB lines, the naive one 3.
    text = Path(XP_IPC).read_text().replace("p3-dual-450", "p4-dual-2000")
    s = Session(parse_scenario(text, "xp-ipc-p4.yaml"))
    run(s, "watch line srv.3 cpu 2", "watch line srv.0 cpu 2", "break xp.send", "continue")
    out = run(s, "layout naive")
    assert "watchpoint line srv.3 cpu 2 put aside: the naive TCB has lines 0..2" in out
    assert "watchpoint line srv.0 cpu 2 stays on TCB line 0, which holds myself" in out
    assert [w.expr for w in s.watches] == ["line srv.0 cpu 2"]
    run(s, "stepi")  # moved: the way back is matched, not remembered
    run(s, "layout thesis")
    assert sorted(w.expr for w in s.watches) == ["line srv.0 cpu 2", "line srv.3 cpu 2"]
    run(s, "layout naive", "delete", "layout thesis")
    assert s.watches == []  # delete cleared the one put aside too


def test_breakpoints_keep_numbers_and_recount_hits_in_the_new_run() -> None:
    s = Session(demo_scenario())
    run(s, "break xp.send", "tbreak ipc.recv.wait", "break xp.proxy.send log", "continue")
    run(s, "continue", "continue", "disable 1")
    numbers = [(b.number, b.temporary, b.log_only, b.enabled) for b in s.breakpoints]
    hits = {b.number: b.hits for b in s.breakpoints}
    records = list(s.records)
    run(s, "layout naive")
    assert [(b.number, b.temporary, b.log_only, b.enabled) for b in s.breakpoints] == numbers
    assert {b.number: b.hits for b in s.breakpoints} == hits  # the same point: the same counts
    assert len(s.records) == len(records)
    assert run(s, "break idle").startswith(f"breakpoint {max(hits) + 1} at idle")


def test_log_point_records_past_the_cap_are_carried_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # The session keeps the newest RECORDS; when it drops its oldest, the relayout run must
    # still see each step's new records (it once counted them by the list's length).
    monkeypatch.setattr(stops_module, "RECORDS", 3)
    s = Session(demo_scenario())
    run(s, "break xp.* log", "stepi 3000")
    assert s.records_made > 6
    records = list(s.records)
    run(s, "layout naive")
    assert s.records[-1:] == records[-1:] and len(s.records) >= 1


def test_an_injected_system_call_goes_with_its_thread() -> None:
    s = Session(load_scenario(XP_IPC))
    run(s, "break xp.send", "continue", "srv: send cli 7", "step 3")
    out = run(s, "layout naive")
    assert "left out" not in out
    assert [to_json(e) for e in s.log if isinstance(e, Inject)] == [
        ["inject", "srv", "send", "cli", "7"]
    ]


# --- what cannot be matched ------------------------------------------------------------------


def test_an_unreachable_point_says_what_it_matched_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relayout, "SLACK", 0)
    monkeypatch.setattr(relayout, "FLOOR", 5)
    s = Session(demo_scenario())
    run(s, "break xp.send", "continue")
    out = run(s, "layout naive").splitlines()[0]
    assert out.startswith(
        "naive TCB layout: could not reach xp.send of cli (its 1st time): "
        "it does not get there within 5 micro-ops; at the start instead, micro-op 0"
    )
    assert s.position == 0 and s.system.kernel.layout.name == "naive"


def test_a_fallback_lands_where_it_says() -> None:
    """The scheduler spins at a migration barrier (§8.7.2) a number of times that depends on
    timing: the other layout either gets there or says where it is instead — and is there."""
    s = Session(load_scenario(MIGRATION))
    s.stepi(482)
    first = run(s, "layout naive").splitlines()[0]
    stop, _ = locate(s)
    if "could not reach" in first:
        assert f"; at {stop.text()} instead" in first
    else:
        assert f"back at {stop.text()}" in first


def test_a_run_that_ends_first_falls_back_to_an_earlier_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Session(load_scenario(XP_IPC))
    run(s, "break xp.send", "continue")
    # Pretend cli's 3rd xp.send was the stop: the naive run ends before it.
    stop = relayout.Stop(Point("cli", "xp.send", 3, 0))
    monkeypatch.setattr(relayout, "locate", lambda _s: (stop, []))
    out = switch(s, "naive").splitlines()[0]
    assert "could not reach xp.send of cli (its 3rd time): the run ends first (run ended" in out
    assert "; at xp.send of cli (its 1st time) instead" in out
    assert last_label(s) == ("cli", "xp.send", 1)


# --- save, load, the lab ----------------------------------------------------------------------


def test_the_layout_survives_save_and_load(tmp_path: Path) -> None:
    s = Session(load_scenario(XP_IPC))
    run(s, "watch srv.partner", "break xp.send", "continue", "layout naive", "stepi 2")
    path = tmp_path / "s.json"
    run(s, f"save {path}")
    again = load_session(str(path))
    assert again.tcb_layout == "naive" and again.system.kernel.layout.name == "naive"
    assert state(again) == state(s)
    assert [w.paddr for w in again.watches] == [w.paddr for w in s.watches]


def test_the_lab_that_compares_layouts_compares_the_same_point() -> None:
    lab = load_lab(ROOT / "scripts" / "labs" / "xp-ipc.yaml")
    s = Session(lab.scenario())
    run(s, "break xp.proxy.send", "continue", "reverse-step 3", "info mailboxes", "info apic")
    run(s, "info tcb srv")
    here = state(s)[:1] + state(s)[3:4]
    out = run(s, "layout naive")
    assert "back at" in out and "info tcb" not in out
    assert "layout naive" in run(s, "info tcb srv").splitlines()[0]
    assert "back where you left it" in run(s, "layout thesis")
    assert state(s)[:1] + state(s)[3:4] == here
    run(s, "info sendq srv", "watch srv.partner", "continue", "reverse-continue")
    assert progress(lab, s) == [True] * len(lab.exercises), sheet(lab, s)


# --- any stop, there and back -------------------------------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.integers(0, 60), stepis=st.integers(0, 20))
def test_any_stop_there_and_back_is_the_same_state(steps: int, stepis: int) -> None:
    s = Session(load_scenario(XP_IPC))
    s.step(steps)
    s.stepi(stepis)
    before = state(s)
    switch(s, "naive")
    switch(s, "thesis")
    assert state(s) == before


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(steps=st.integers(0, 150))
def test_a_point_matched_both_ways_is_the_same_state(steps: int) -> None:
    """Without the remembered way back: whenever both switches say they matched the point,
    the round trip lands on the very state (no fallback was needed)."""
    s = Session(demo_scenario())
    s.step(steps)
    before = state(s)
    there = switch(s, "naive", exact_return=False)
    back = switch(s, "thesis", exact_return=False)
    if "could not reach" not in there + back:
        assert state(s) == before
