"""Thread control on one CPU: the kernel info page and UTCB processor fields,
lazy FPU use, lthread_ex_regs, task_new and halt (thesis §7.1–7.2, §8.7).

Orders are observed through a high-priority *logger* thread (`LOGGER` in
tests/kernel_helpers.py) that receives one message per event.
"""

from __future__ import annotations

import pytest

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import LOGGER, M1, _ops, froms, results, run, state

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
