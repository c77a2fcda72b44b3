"""Thread migration with thread_schedule's processor number (thesis §8.5, §8.7).

`schedule: {thread, cpu}` runs the A/B/C algorithm of §8.7.2 — A the
caller's CPU, B the thread's, C the destination — with the special cases
A == B and A == C. A ready thread runs on C afterwards; a waiting thread
keeps its timeout (§8.7.3); a thread that used the FPU has it saved on B and
uses C's (§8.7.1); migrating oneself is ignored (implementation decision 4);
the caller's MCP must be above the thread's priority; a thread half-way
through an IPC is not migrated (`busy`, §8.5). §8.5's second race: a
receiver leaving a CPU takes along the senders waiting for it.

Every run checks the kernel invariants at each quiescent kernel exit
(`System.run(check_invariants=True)`) and must end with "end". Where a
result must come from a particular CPU, the machine's `step` is wrapped to
note which CPU appended each result, and at which cycle of that CPU.
"""

from __future__ import annotations

import pytest

from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import Log, results, system, watch

#: A guard against a run that never ends; every scenario here needs far fewer.
MAX_STEPS = 400_000


def run_ok(text: str, names: tuple[str, ...] | list[str] = ()) -> tuple[System, Log]:
    """Run with the invariants checked; the run must end normally."""
    s = system(text)
    log = watch(s, list(names))
    ended = s.run(max_steps=MAX_STEPS, check_invariants=True)
    assert ended == "end", (ended, s.violations, run_summary(s).get("waits"), s.stuck())
    return s, log


def field(s: System, thread: str, name: str) -> int:
    return s.kernel.field(s.kernel.by_name[thread], name)


def migrate_ready(n: int, a: int, b: int, c: int) -> str:
    """Scheduler `s` on CPU a migrates worker `w` (computing) from b to c."""
    return f"""
        machine: {{cpus: {n}}}
        kernel: {{tick: 10000}}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: {a}
                priority: 200
                mcp: 250
                program:
                  - compute: 2000
                  - schedule: {{thread: w, cpu: {c}, priority: 90, timeslice: 7000}}
          - name: work
            threads:
              - name: w
                cpu: {b}
                program:
                  - read_utcb_cpu
                  - compute: 30000
                  - read_utcb_cpu
        """


# --- ready threads: A != B != C, A == B, A == C --------------------------------------

CASES = [
    pytest.param(3, 1, 2, 3, id="3cpu-A!=B!=C"),
    pytest.param(4, 4, 2, 3, id="4cpu-A!=B!=C"),
    pytest.param(4, 1, 3, 4, id="4cpu-A!=B!=C-b"),
    pytest.param(2, 1, 1, 2, id="2cpu-A==B"),
    pytest.param(3, 3, 3, 1, id="3cpu-A==B"),
    pytest.param(4, 2, 2, 4, id="4cpu-A==B"),
    pytest.param(2, 2, 1, 2, id="2cpu-A==C"),
    pytest.param(3, 1, 2, 1, id="3cpu-A==C"),
    pytest.param(4, 3, 4, 3, id="4cpu-A==C"),
]


@pytest.mark.parametrize(("n", "a", "b", "c"), CASES)
def test_ready_thread_migrates_and_runs_on_destination(n: int, a: int, b: int, c: int) -> None:
    s, log = run_ok(migrate_ready(n, a, b, c), ["w", "s"])
    # The scheduler's call succeeded and returned the old priority.
    (r,) = results(s, "s")
    assert (r["op"], r["ok"], r["error"], r["value"]) == ("schedule", True, None, 100)
    view = run_summary(s)["threads"]["w"]
    assert view["cpu"] == c
    assert view["state"] == "inactive"
    # The UTCB processor field shows the new CPU, and the later result came from there.
    values = [r["value"] for r in results(s, "w")]
    assert values[-1] == c
    last_op, last_cpu, last_cycle = log["w"][-1]
    assert (last_op, last_cpu) == ("read_utcb_cpu", c)
    assert last_cycle > log["s"][0][2]  # after the schedule call returned
    if a != b:
        # w started on B before the migration (the scheduler ran its compute first).
        assert log["w"][0][:2] == ("read_utcb_cpu", b)
        assert values[0] == b
    # Priority and timeslice given with the migration were applied.
    assert view["priority"] == 90
    assert field(s, "w", "timeslice") == 7000
    assert run_summary(s)["counters"]["migrations"] == 1
    # The thread sits in no ready list any more (it ended), on no CPU.
    assert all("w" not in cpu["ready"] for cpu in run_summary(s)["cpus"])


def test_ready_thread_counted_per_migration() -> None:
    """Three migrations of two workers, one refused self-migration: the counter says 3."""
    s, log = run_ok(
        """
        machine: {cpus: 4}
        kernel: {tick: 10000}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: 1
                priority: 200
                mcp: 250
                program:
                  - compute: 2000
                  - schedule: {thread: w1, cpu: 3}
                  - schedule: {thread: w2, cpu: 4}
                  - schedule: {thread: s, cpu: 2}
                  - compute: 3000
                  - schedule: {thread: w1, cpu: 2}
                  - read_utcb_cpu
          - name: work
            threads:
              - name: w1
                cpu: 2
                program:
                  - compute: 40000
                  - read_utcb_cpu
              - name: w2
                cpu: 1
                program:
                  - compute: 40000
                  - read_utcb_cpu
        """,
        ["w1", "w2", "s"],
    )
    assert run_summary(s)["counters"]["migrations"] == 3
    assert [r["value"] for r in results(s, "w1")] == [2]
    assert [r["value"] for r in results(s, "w2")] == [4]
    assert log["w1"][-1][1] == 2 and log["w2"][-1][1] == 4
    assert results(s, "s")[-1]["value"] == 1  # the scheduler never left CPU 1


# --- waiting threads (§8.7.3) ----------------------------------------------------------

TIMEOUT = 40_000
TICK = 1000


def waiting(n: int, a: int, b: int, c: int) -> str:
    return f"""
        machine: {{cpus: {n}}}
        kernel: {{tick: {TICK}}}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: {a}
                priority: 200
                mcp: 250
                program:
                  - compute: 5000
                  - schedule: {{thread: w, cpu: {c}}}
          - name: work
            threads:
              - name: w
                cpu: {b}
                priority: 220
                program:
                  - recv: {{from: s, timeout: {TIMEOUT}}}
                  - read_utcb_cpu
        """


WAIT_CASES = [
    pytest.param(3, 1, 2, 3, id="3cpu-A!=B!=C"),
    pytest.param(4, 2, 4, 1, id="4cpu-A!=B!=C"),
    pytest.param(2, 1, 1, 2, id="2cpu-A==B"),
    pytest.param(3, 1, 2, 1, id="3cpu-A==C"),
    pytest.param(4, 4, 1, 4, id="4cpu-A==C"),
]


@pytest.mark.parametrize(("n", "a", "b", "c"), WAIT_CASES)
def test_waiting_thread_keeps_its_timeout(n: int, a: int, b: int, c: int) -> None:
    """The receive times out on C at about the cycle it would have on B."""
    s, log = run_ok(waiting(n, a, b, c), ["w", "s"])
    # The baseline: the same scenario with the thread left where it is.
    base, base_log = run_ok(waiting(n, a, b, b), ["w"])
    assert run_summary(base)["counters"]["migrations"] == 0
    assert run_summary(s)["counters"]["migrations"] == 1
    rs = results(s, "w")
    assert [(r["op"], r["ok"], r["error"]) for r in rs] == [
        ("recv", False, "timeout"),
        ("read_utcb_cpu", True, None),
    ]
    assert rs[1]["value"] == c
    # The timeout fired on the new CPU, after the migration ...
    op, cpu, cycle = log["w"][0]
    assert (op, cpu) == ("recv", c)
    assert cycle > log["s"][0][2]
    # ... and at about the same cycle as without the migration (a tick or so apart).
    base_cycle = base_log["w"][0][2]
    assert base_log["w"][0][1] == b
    assert base_cycle >= TIMEOUT
    assert abs(cycle - base_cycle) <= 2 * TICK, (cycle, base_cycle)
    assert run_summary(s)["threads"]["w"]["cpu"] == c
    # B's wakeup queue no longer holds it: nothing of it is left to fire there.
    assert s.kernel.by_name["w"].deadline is None


def infinite_wait(n: int, b: int, c: int, sender: int) -> str:
    return f"""
        machine: {{cpus: {n}}}
        kernel: {{tick: 10000}}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: 1
                priority: 200
                mcp: 250
                program:
                  - compute: 5000
                  - schedule: {{thread: w, cpu: {c}}}
          - name: work
            threads:
              - name: w
                cpu: {b}
                priority: 220
                program:
                  - recv: {{from: any}}
                  - read_utcb_cpu
              - name: x
                cpu: {sender}
                priority: 100
                program:
                  - compute: 40000
                  - send: {{to: w, words: [7]}}
        """


@pytest.mark.parametrize(
    ("n", "b", "c", "sender"),
    [
        pytest.param(3, 2, 3, 1, id="3cpu-xp-from-A"),
        pytest.param(3, 2, 3, 2, id="3cpu-xp-from-old-cpu"),
        pytest.param(3, 2, 3, 3, id="3cpu-local-on-new-cpu"),
        pytest.param(2, 1, 2, 2, id="2cpu-local-on-new-cpu"),
        pytest.param(2, 2, 1, 2, id="2cpu-xp-from-old-cpu"),
        pytest.param(4, 2, 1, 4, id="4cpu-xp"),
        pytest.param(4, 3, 4, 4, id="4cpu-local"),
    ],
)
def test_infinite_wait_then_ipc_reaches_new_cpu(n: int, b: int, c: int, sender: int) -> None:
    s, log = run_ok(infinite_wait(n, b, c, sender), ["w", "x", "s"])
    xp = sender != c
    rw = results(s, "w")
    assert [(r["op"], r["ok"], r["error"]) for r in rw] == [
        ("recv", True, None),
        ("read_utcb_cpu", True, None),
    ]
    assert rw[0]["words"] == [7] and rw[0]["from"] == "x"
    assert rw[0]["xp"] is xp
    assert rw[1]["value"] == c
    rx = results(s, "x")
    assert (rx[0]["op"], rx[0]["ok"], rx[0]["xp"]) == ("send", True, xp)
    # The message was received on the new CPU, after the migration.
    assert log["w"][0][:2] == ("recv", c)
    assert log["w"][0][2] > log["s"][0][2]
    assert run_summary(s)["counters"]["migrations"] == 1


# --- the FPU (§8.7.1) ------------------------------------------------------------------


@pytest.mark.parametrize(("n", "a", "b", "c"), [(2, 1, 2, 1), (3, 1, 2, 3), (4, 2, 2, 4)])
def test_fpu_user_migrates_and_uses_the_new_fpu(n: int, a: int, b: int, c: int) -> None:
    """w used B's FPU; it is saved on leaving; w then claims C's (whose owner is f)."""
    s, log = run_ok(
        f"""
        machine: {{cpus: {n}}}
        kernel: {{tick: 10000}}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: {a}
                priority: 200
                mcp: 250
                program:
                  - compute: 5000
                  - schedule: {{thread: w, cpu: {c}}}
          - name: work
            threads:
              - name: w
                cpu: {b}
                priority: 150
                program:
                  - fpu: 500
                  - compute: 30000
                  - fpu: 700
                  - read_utcb_cpu
              - name: f
                cpu: {c}
                program:
                  - fpu: 300
                  - compute: 60000
                  - fpu: 300
        """,
        ["w", "f"],
    )
    k = s.kernel
    w, f = k.by_name["w"], k.by_name["f"]
    assert w.fpu_cycles == 1200
    assert f.fpu_cycles == 600
    assert [r["value"] for r in results(s, "w")] == [c]
    assert log["w"][-1][1] == c
    # No CPU names a thread as FPU owner that is not there any more.
    for cd in k.cpus:
        assert cd.fpu_owner is None or cd.fpu_owner.cpu == cd.number


def test_fpu_saved_on_leaving_the_source_cpu() -> None:
    """Stopped right after the migration: B's FPU is released, w's state is in its TCB."""
    s = system(
        """
        machine: {cpus: 2}
        kernel: {tick: 10000}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: 1
                priority: 200
                mcp: 250
                program:
                  - compute: 5000
                  - schedule: {thread: w, cpu: 1}
                  - read_utcb_cpu
          - name: work
            threads:
              - name: w
                cpu: 2
                program:
                  - fpu: 500
                  - compute: 100000
                  - fpu: 100
        """
    )
    k = s.kernel
    w = k.by_name["w"]
    for _ in range(MAX_STEPS):
        if len(k.by_name["s"].results) >= 1:
            break
        assert s.machine.step() is not None
    assert w.cpu == 1
    assert k.cpus[1].fpu_owner is not w  # B's FPU no longer holds w's registers
    assert k.field(w, "resources") == 0  # saved (the FPU bit cleared)
    assert s.run(max_steps=MAX_STEPS, check_invariants=True) == "end", s.violations
    assert w.fpu_cycles == 600


# --- refusals ---------------------------------------------------------------------------


def test_self_migration_is_ignored() -> None:
    """ID 4: the request succeeds but nothing changes."""
    s, log = run_ok(
        """
        machine: {cpus: 2}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: 1
                priority: 200
                mcp: 250
                program:
                  - schedule: {thread: s, cpu: 2}
                  - read_utcb_cpu
        """,
        ["s"],
    )
    rs = results(s, "s")
    assert (rs[0]["op"], rs[0]["ok"], rs[0]["error"]) == ("schedule", True, None)
    assert rs[1]["value"] == 1
    assert [cpu for _, cpu, _ in log["s"]] == [1, 1]
    assert run_summary(s)["threads"]["s"]["cpu"] == 1
    assert run_summary(s)["counters"]["migrations"] == 0


@pytest.mark.parametrize("n", [2, 3])
def test_mcp_too_low_is_denied_and_thread_stays(n: int) -> None:
    s, log = run_ok(
        f"""
        machine: {{cpus: {n}}}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: 1
                priority: 200
                mcp: 100
                program:
                  - schedule: {{thread: w, cpu: {n}}}
                  - schedule: {{thread: v, cpu: {n}, priority: 150}}
                  - schedule: {{thread: v, cpu: {n}, priority: 60}}
          - name: work
            threads:
              - name: w
                cpu: 1
                priority: 100
                program:
                  - read_utcb_cpu
              - name: v
                cpu: 1
                priority: 50
                program:
                  - read_utcb_cpu
        """,
        ["w", "v"],
    )
    rs = results(s, "s")
    # w's priority is not below the MCP; v's new priority would not be.
    assert [(r["ok"], r["error"]) for r in rs] == [
        (False, "denied"),
        (False, "denied"),
        (True, None),
    ]
    assert run_summary(s)["threads"]["w"]["cpu"] == 1
    assert results(s, "w")[0]["value"] == 1
    assert log["w"][0][1] == 1
    assert run_summary(s)["threads"]["w"]["priority"] == 100
    # The allowed request did migrate v, with its new priority.
    assert run_summary(s)["threads"]["v"]["cpu"] == n
    assert run_summary(s)["threads"]["v"]["priority"] == 60
    assert run_summary(s)["counters"]["migrations"] == 1


def test_thread_in_ipc_is_busy() -> None:
    """A local sender polling on its receiver, a cross-CPU sender locked: both `busy`."""
    s, _ = run_ok(
        """
        machine: {cpus: 3}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: 1
                priority: 200
                mcp: 250
                program:
                  - compute: 3000
                  - schedule: {thread: w, cpu: 3}
                  - schedule: {thread: x, cpu: 1}
          - name: work
            threads:
              - name: w
                cpu: 2
                program:
                  - send: {to: r, words: [1]}
                  - read_utcb_cpu
              - name: x
                cpu: 3
                program:
                  - send: {to: r, words: [2]}
                  - read_utcb_cpu
              - name: r
                cpu: 2
                priority: 50
                program:
                  - compute: 20000
                  - recv: {from: w}
                  - recv: {from: x}
        """
    )
    assert [(r["ok"], r["error"]) for r in results(s, "s")] == [(False, "busy"), (False, "busy")]
    assert run_summary(s)["counters"]["migrations"] == 0
    assert [r["value"] for r in results(s, "w")[1:]] == [2]
    assert [r["value"] for r in results(s, "x")[1:]] == [3]
    assert [r["words"] for r in results(s, "r")] == [[1], [2]]


# --- §8.5: a receiver leaves while senders wait for it ---------------------------------


def pending_sender(n: int, a: int, snd: int, rcv: int, dest: int) -> str:
    """`snd` sends to `rcv` before rcv receives; meanwhile `s` migrates rcv to `dest`."""
    return f"""
        machine: {{cpus: {n}}}
        tasks:
          - name: sched
            threads:
              - name: s
                cpu: {a}
                priority: 200
                mcp: 250
                program:
                  - compute: 8000
                  - schedule: {{thread: rcv, cpu: {dest}}}
          - name: app
            threads:
              - name: snd
                cpu: {snd}
                program:
                  - compute: 1000
                  - send: {{to: rcv, words: [5]}}
                  - read_utcb_cpu
              - name: rcv
                cpu: {rcv}
                priority: 90
                program:
                  - compute: 30000
                  - recv: {{from: snd}}
                  - read_utcb_cpu
        """


@pytest.mark.parametrize(
    ("n", "a", "snd", "rcv", "dest"),
    [
        pytest.param(3, 3, 1, 2, 3, id="xp-sender-receiver-to-third-cpu"),
        pytest.param(4, 4, 1, 2, 3, id="xp-sender-4cpu"),
        pytest.param(3, 3, 1, 2, 1, id="xp-sender-receiver-to-senders-cpu"),
        pytest.param(2, 2, 1, 1, 2, id="local-sender-receiver-leaves-2cpu"),
        pytest.param(3, 3, 1, 1, 2, id="local-sender-receiver-leaves-3cpu"),
    ],
)
def test_receiver_migrates_with_a_sender_waiting(
    n: int, a: int, snd: int, rcv: int, dest: int
) -> None:
    """The message still arrives, on the receiver's new CPU; both threads finish."""
    s, log = run_ok(pending_sender(n, a, snd, rcv, dest), ["rcv", "snd", "s"])
    assert results(s, "s")[0]["ok"] is True
    assert run_summary(s)["counters"]["migrations"] == 1
    rr = results(s, "rcv")
    assert (rr[0]["op"], rr[0]["ok"], rr[0]["words"], rr[0]["from"]) == ("recv", True, [5], "snd")
    assert rr[1]["value"] == dest
    assert log["rcv"][0][1] == dest
    rs = results(s, "snd")
    assert (rs[0]["op"], rs[0]["ok"]) == ("send", True)
    assert rs[1]["value"] == snd
    assert s.kernel.mailboxes.mail == {}
