"""Scheduling on one CPU: priorities, round robin on timeslice expiry,
thread_switch and thread_schedule with its MCP check (thesis §2.1, §6.1).

Orders are observed through a high-priority *logger* thread (`LOGGER` in
tests/kernel_helpers.py) that receives one message per event: its results
list who sent what, in order.
"""

from __future__ import annotations

import pytest

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import LOGGER, M1, _ops, log_words, results, run, state

# --- priorities and round robin -----------------------------------------------------


@pytest.mark.parametrize("hi_first_in_file", [True, False])
def test_higher_priority_runs_first(hi_first_in_file: bool) -> None:
    hi = """
              - name: hi
                priority: 200
                program:
                  - send: {to: log, words: [2]}"""
    lo = """
              - name: lo
                priority: 100
                program:
                  - send: {to: log, words: [1]}"""
    threads = hi + lo if hi_first_in_file else lo + hi
    s = run(f"""
        {M1}
        tasks:{LOGGER}
          - name: app
            threads:{threads}
        """)
    assert log_words(s, "log") == [2, 1]
    assert s.ended == "end"


def test_lower_priority_waits_for_higher_to_block() -> None:
    """A low-priority thread runs only while the higher one is blocked."""
    s = run(f"""
        {M1}
        kernel: {{tick: 2000}}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: lo
                priority: 10
                program:
                  - send: {{to: log, words: [1]}}
              - name: hi
                priority: 200
                program:
                  - send: {{to: log, words: [2]}}
                  - compute: 20000
                  - send: {{to: log, words: [3]}}
                  - sleep: 10000
                  - send: {{to: log, words: [4]}}
        """)
    assert log_words(s, "log") == [2, 3, 1, 4]


def test_round_robin_between_equal_priorities() -> None:
    s = run(f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: a
                timeslice: 2000
                program:
                  - repeat: 6
                    do:
                      - compute: 3000
                      - send: {{to: log, words: [1]}}
              - name: b
                timeslice: 2000
                program:
                  - repeat: 6
                    do:
                      - compute: 3000
                      - send: {{to: log, words: [2]}}
        """)
    order = log_words(s, "log")
    assert sorted(order) == [1] * 6 + [2] * 6
    # Without round robin a would finish all six before b's first.
    assert order.index(2) < len(order) - 1 - order[::-1].index(1)
    switches = sum(1 for x, y in zip(order, order[1:], strict=False) if x != y)
    assert switches >= 4
    assert state(s, "a") == state(s, "b") == "inactive"


def test_no_round_robin_within_a_long_timeslice() -> None:
    """With the default (long) timeslice the first thread finishes its short work first."""
    s = run(f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: a
                program:
                  - repeat: 3
                    do:
                      - compute: 1000
                      - send: {{to: log, words: [1]}}
              - name: b
                program:
                  - repeat: 3
                    do:
                      - compute: 1000
                      - send: {{to: log, words: [2]}}
        """)
    assert log_words(s, "log") == [1, 1, 1, 2, 2, 2]


def test_round_robin_short_thread_finishes_first() -> None:
    """Round robin: a short job behind a long one still finishes first."""
    s = run(f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: long
                timeslice: 1000
                program:
                  - compute: 60000
                  - send: {{to: log, words: [1]}}
              - name: short
                timeslice: 1000
                program:
                  - compute: 5000
                  - send: {{to: log, words: [2]}}
        """)
    assert log_words(s, "log") == [2, 1]


# --- thread_switch ---------------------------------------------------------------------


def test_thread_switch_to_ready_local_thread() -> None:
    s = run(f"""
        {M1}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: a
                program:
                  - thread_switch: c
                  - send: {{to: log, words: [1]}}
              - name: b
                program:
                  - send: {{to: log, words: [2]}}
              - name: c
                program:
                  - send: {{to: log, words: [3]}}
        """)
    # a gives its turn to c (skipping b, who was next).
    assert log_words(s, "log")[0] == 3
    r = results(s, "a")[0]
    assert r["op"] == "thread_switch" and r["ok"] is True and r["error"] is None


def test_thread_switch_nil_yields() -> None:
    s = run(f"""
        {M1}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: a
                program:
                  - thread_switch: nil
                  - send: {{to: log, words: [1]}}
              - name: b
                program:
                  - send: {{to: log, words: [2]}}
        """)
    assert log_words(s, "log") == [2, 1]
    assert _ops(s, "a") == ["thread_switch", "send"]
    assert results(s, "a")[0]["ok"] is True


def test_thread_switch_alone_continues() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - thread_switch: nil
                  - thread_switch: b
                  - read_kip
              - name: b
                program:
                  - halt
        """)
    assert _ops(s, "a") == ["thread_switch", "thread_switch", "read_kip"]
    assert all(r["ok"] for r in results(s, "a"))
    assert state(s, "a") == "inactive"


def test_thread_switch_to_blocked_thread_acts_as_nil() -> None:
    s = run(f"""
        {M1}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: w
                program:
                  - recv: {{from: a}}
              - name: a
                program:
                  - thread_switch: w
                  - send: {{to: log, words: [1]}}
                  - send: {{to: w}}
              - name: b
                program:
                  - send: {{to: log, words: [2]}}
        """)
    assert log_words(s, "log") == [2, 1]
    assert results(s, "w")[0]["ok"] is True


# --- thread_schedule -------------------------------------------------------------------


def _schedule_scenario(mcp: int, args: str) -> str:
    return f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: ctl
                priority: 200
                mcp: {mcp}
                program:
                  - schedule: {{thread: t, {args}}}
              - name: t
                priority: 100
                timeslice: 5000
                program:
                  - compute: 10
        """


@pytest.mark.parametrize("mcp", [150, 255])
def test_schedule_changes_priority_and_timeslice(mcp: int) -> None:
    s = run(_schedule_scenario(mcp, "priority: 120, timeslice: 7000"))
    (r,) = results(s, "ctl")
    assert r["op"] == "schedule" and r["ok"] is True and r["error"] is None
    assert run_summary(s)["threads"]["t"]["priority"] == 120
    t = s.kernel.by_name["t"]
    assert s.kernel.field(t, "timeslice") == 7000


@pytest.mark.parametrize("mcp", [0, 50, 100])
def test_schedule_denied_without_mcp_above_target(mcp: int) -> None:
    s = run(_schedule_scenario(mcp, "priority: 90, timeslice: 7000"))
    (r,) = results(s, "ctl")
    assert r["op"] == "schedule" and r["ok"] is False and r["error"] == "denied"
    assert run_summary(s)["threads"]["t"]["priority"] == 100
    t = s.kernel.by_name["t"]
    assert s.kernel.field(t, "timeslice") == 5000


def test_schedule_priority_change_affects_dispatch() -> None:
    s = run(f"""
        {M1}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: ctl
                priority: 220
                mcp: 255
                program:
                  - schedule: {{thread: lo, priority: 200}}
              - name: mid
                priority: 150
                program:
                  - send: {{to: log, words: [1]}}
              - name: lo
                priority: 100
                program:
                  - send: {{to: log, words: [2]}}
        """)
    assert results(s, "ctl")[0]["ok"] is True
    assert log_words(s, "log") == [2, 1]
    assert run_summary(s)["threads"]["lo"]["priority"] == 200


def test_schedule_of_blocked_thread_keeps_it_blocked() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                priority: 100
                program:
                  - recv: {{from: any}}
              - name: ctl
                priority: 50
                mcp: 255
                program:
                  - schedule: {{thread: w, priority: 120}}
        """)
    assert results(s, "ctl")[0]["ok"] is True
    assert run_summary(s)["threads"]["w"]["priority"] == 120
    assert state(s, "w") == "waiting"
    assert results(s, "w") == []
