"""Scheduling and thread control on one CPU (thesis §2.1, §6.1, §7.1–7.2, §8.7).

Priorities, round robin on timeslice expiry, thread_switch, thread_schedule
with its MCP check, the kernel info page and UTCB processor fields, lazy FPU
use, lthread_ex_regs, task_new and halt. Orders are observed through a
high-priority *logger* thread that receives one message per event: its
results list who sent what, in order.
"""

from __future__ import annotations

import pytest

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import froms, log_words, results, run, state

M1 = "machine: {profile: p3-dual-450, cpus: 1}"
LOGGER = """
          - name: logger
            threads:
              - name: log
                priority: 250
                program:
                  - loop:
                      - recv: {from: any}
"""


def _ops(s, name: str) -> list[str]:
    return [r["op"] for r in results(s, name)]


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


# --- kernel info page, UTCB, FPU -------------------------------------------------------


@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_read_kip_gives_highest_cpu_number(cpus: int) -> None:
    s = run(f"""
        machine: {{profile: p3-dual-450, cpus: {cpus}}}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - read_kip
                  - read_utcb_cpu
        """)
    kip, utcb = results(s, "a")
    assert kip["op"] == "read_kip" and kip["ok"] is True and kip["value"] == cpus
    assert utcb["op"] == "read_utcb_cpu" and utcb["ok"] is True and utcb["value"] == 1


def test_read_utcb_cpu_on_second_cpu() -> None:
    s = run("""
        machine: {profile: p3-dual-450, cpus: 2}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: 2
                program:
                  - read_utcb_cpu
              - name: b
                program:
                  - read_utcb_cpu
        """)
    assert results(s, "a")[0]["value"] == 2
    assert results(s, "b")[0]["value"] == 1
    assert run_summary(s)["threads"]["a"]["cpu"] == 2


def test_fpu() -> None:
    s = run(f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:
          - name: app
            threads:
              - name: a
                timeslice: 1000
                program:
                  - fpu: 3000
                  - fpu: 2000
                  - read_kip
              - name: b
                timeslice: 1000
                program:
                  - fpu: 4000
                  - read_kip
        """)
    assert s.ended == "end"
    assert _ops(s, "a") == ["read_kip"]  # fpu adds no result
    assert _ops(s, "b") == ["read_kip"]
    assert state(s, "a") == state(s, "b") == "inactive"
    assert run_summary(s)["cycles"] >= 9000
    assert s.kernel.by_name["a"].fpu_cycles == 5000
    assert s.kernel.by_name["b"].fpu_cycles == 4000


# --- lthread_ex_regs -------------------------------------------------------------------


def test_ex_regs_aborts_waiting_receive() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                program:
                  - recv: {{from: any}}
                  - read_kip
              - name: ctl
                program:
                  - compute: 1000
                  - ex_regs: {{thread: w}}
        """)
    rw = results(s, "w")
    assert rw[0]["op"] == "recv" and rw[0]["ok"] is False and rw[0]["error"] == "aborted"
    assert rw[1]["op"] == "read_kip"  # w goes on with its next op
    (rc,) = results(s, "ctl")
    assert rc["op"] == "ex_regs" and rc["ok"] is True
    assert state(s, "w") == "inactive"


def test_ex_regs_aborts_polling_send() -> None:
    """An aborted sender leaves the receiver's send queue: the receiver never gets it."""
    s = run(f"""
        {M1}
        kernel: {{tick: 2000}}
        tasks:
          - name: app
            threads:
              - name: w
                program:
                  - send: {{to: r, words: [1]}}
                  - read_kip
              - name: ctl
                program:
                  - compute: 1000
                  - ex_regs: {{thread: w}}
          - name: other
            threads:
              - name: r
                program:
                  - sleep: 20000
                  - recv: {{from: any, timeout: 0}}
        """)
    rw = results(s, "w")
    assert rw[0]["op"] == "send" and rw[0]["error"] == "aborted"
    assert rw[1]["op"] == "read_kip"
    (rr,) = results(s, "r")
    assert rr["ok"] is False and rr["error"] == "timeout"


def test_ex_regs_aborts_call() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                program:
                  - call: {{to: srv, words: [1]}}
              - name: ctl
                program:
                  - compute: 1000
                  - ex_regs: {{thread: w}}
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - sleep: 5000
                  - send: {{to: w, timeout: 0}}
        """)
    (rw,) = results(s, "w")
    assert rw["op"] == "call" and rw["ok"] is False and rw["error"] == "aborted"
    assert results(s, "srv")[0]["words"] == [1]
    # The late reply finds w gone: w no longer waits.
    assert results(s, "srv")[1]["ok"] is False


def test_ex_regs_across_tasks_is_denied() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                program:
                  - recv: {{from: any}}
          - name: intruder
            threads:
              - name: ctl
                program:
                  - compute: 1000
                  - ex_regs: {{thread: w, ip: 0}}
        """)
    (rc,) = results(s, "ctl")
    assert rc["op"] == "ex_regs" and rc["ok"] is False and rc["error"] == "denied"
    assert state(s, "w") == "waiting"
    assert results(s, "w") == []


def test_ex_regs_ip_restarts_program_at_index() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                program:
                  - recv: {{from: any}}
                  - read_kip
                  - read_utcb_cpu
                  - thread_switch: nil
              - name: ctl
                program:
                  - compute: 1000
                  - ex_regs: {{thread: w, ip: 2}}
        """)
    # The recv is cut short (aborted); w goes on at op 2, skipping read_kip.
    assert _ops(s, "w") == ["recv", "read_utcb_cpu", "thread_switch"]
    assert results(s, "w")[0]["error"] == "aborted"
    assert results(s, "ctl")[0]["ok"] is True


def test_ex_regs_ip_on_running_thread() -> None:
    """ex_regs with ip on a ready (not blocked) thread: it continues from that op."""
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: ctl
                priority: 200
                program:
                  - ex_regs: {{thread: w, ip: 2}}
              - name: w
                program:
                  - read_kip
                  - read_kip
                  - read_utcb_cpu
        """)
    assert _ops(s, "w") == ["read_utcb_cpu"]


def test_ex_regs_ip_restarts_inactive_thread() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                priority: 200
                program:
                  - read_kip
                  - read_utcb_cpu
              - name: ctl
                priority: 100
                program:
                  - ex_regs: {{thread: w, ip: 1}}
        """)
    assert _ops(s, "w") == ["read_kip", "read_utcb_cpu", "read_utcb_cpu"]
    assert state(s, "w") == "inactive"


# --- task_new, halt --------------------------------------------------------------------


def test_task_new_starts_first_thread() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: parent
            threads:
              - name: p
                program:
                  - send: {{to: kid, words: [1], timeout: 0}}
                  - task_new: child
                  - send: {{to: kid, words: [2]}}
          - name: child
            start: false
            threads:
              - name: kid
                program:
                  - read_kip
                  - recv: {{from: p}}
        """)
    rp = results(s, "p")
    assert rp[0]["ok"] is False and rp[0]["error"] == "not_exist"
    assert rp[1]["op"] == "task_new" and rp[1]["ok"] is True
    assert rp[2]["ok"] is True
    assert _ops(s, "kid") == ["read_kip", "recv"]
    assert results(s, "kid")[1]["words"] == [2]
    assert state(s, "kid") == "inactive"
    assert run_summary(s)["threads"]["kid"]["cpu"] == 1


def test_unstarted_task_stays_inactive() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - compute: 100
          - name: child
            start: false
            threads:
              - name: kid
                program:
                  - read_kip
        """)
    assert results(s, "kid") == []
    assert state(s, "kid") == "inactive"


def test_halt_ends_thread() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - read_kip
                  - halt
                  - read_kip
              - name: b
                program:
                  - repeat: 3
                    do:
                      - read_kip
                      - halt
        """)
    assert _ops(s, "a") == ["read_kip"]
    assert _ops(s, "b") == ["read_kip"]
    assert state(s, "a") == state(s, "b") == "inactive"
    assert s.ended == "end"


def test_program_end_is_inactive_and_loop_forever_is_not() -> None:
    s = run(
        f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - compute: 10
              - name: spin
                program:
                  - loop:
                      - compute: 500
        """,
        max_steps=5000,
    )
    assert s.ended == "max_steps"
    assert state(s, "a") == "inactive"
    assert state(s, "spin") in ("running", "ready")


def test_froms_helper_sanity() -> None:
    s = run(f"""
        {M1}
        tasks:{LOGGER}
          - name: app
            threads:
              - name: a
                program:
                  - send: {{to: log, words: [5]}}
        """)
    assert froms(s, "log") == ["a"]
