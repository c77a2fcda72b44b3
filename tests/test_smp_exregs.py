"""lthread_ex_regs across CPUs: aborting IPCs through unwind proxies (thesis §8.4.3).

ex_regs runs on its target's CPU (implementation decision 3); aborting a
cross-processor sender continues on the CPU where its proxy polls, with the
same mailbox. The aborted thread gets `aborted`, the other party of the IPC
is unaffected and receives later from someone else, and once the run ended
every mailbox is free again. ex_regs with an ip restarts the target at that
op, on its own CPU.

Every run checks the kernel invariants at each quiescent kernel exit and
must end with "end". The machine's `step` is wrapped to note which CPU
appended each result, and at which cycle of that CPU.
"""

from __future__ import annotations

import pytest

from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import Log, results, system, watch

MAX_STEPS = 400_000


def run_ok(text: str, names: tuple[str, ...] = ()) -> tuple[System, Log]:
    s = system(text)
    log = watch(s, list(names))
    ended = s.run(max_steps=MAX_STEPS, check_invariants=True)
    assert ended == "end", (ended, s.violations, run_summary(s).get("waits"), s.stuck())
    return s, log


def summary_of(s: System, name: str) -> list[tuple[str, bool, str | None]]:
    return [(r["op"], r["ok"], r["error"]) for r in results(s, name)]


def mailboxes_free(s: System) -> None:
    k = s.kernel
    assert k.mailboxes.mail == {}
    assert all(k.field(t, "proxy") == 0 for t in k.threads if t.task is not None)


# --- a remote receiver -----------------------------------------------------------------


@pytest.mark.parametrize(("n", "target"), [(2, 2), (3, 3), (4, 2), (4, 4)])
def test_abort_remote_receiver(n: int, target: int) -> None:
    s, log = run_ok(
        f"""
        machine: {{cpus: {n}}}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: 1
                program:
                  - compute: 5000
                  - ex_regs: {{thread: w}}
              - name: w
                cpu: {target}
                program:
                  - recv: {{from: any}}
                  - read_utcb_cpu
        """,
        ("w", "a"),
    )
    assert summary_of(s, "a") == [("ex_regs", True, None)]
    assert summary_of(s, "w") == [("recv", False, "aborted"), ("read_utcb_cpu", True, None)]
    assert results(s, "w")[1]["value"] == target
    # w was woken on its own CPU, and only by the abort (after a's compute).
    assert [cpu for _, cpu, _ in log["w"]] == [target, target]
    assert log["w"][0][2] > 5000
    mailboxes_free(s)


def test_abort_remote_receiver_with_timeout_leaves_no_wakeup() -> None:
    """An aborted receive with a timeout leaves the wakeup queue: no late timeout fires."""
    s, log = run_ok(
        """
        machine: {cpus: 2}
        kernel: {tick: 2000}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: 1
                program:
                  - compute: 5000
                  - ex_regs: {thread: w}
              - name: w
                cpu: 2
                program:
                  - recv: {from: any, timeout: 60000}
                  - recv: {from: x}
          - name: other
            threads:
              - name: x
                cpu: 1
                priority: 50
                program:
                  - compute: 90000
                  - send: {to: w, words: [3]}
        """,
        ("w",),
    )
    # Had the first receive's timeout stayed queued, it would end the second one at ~65000.
    assert summary_of(s, "w") == [("recv", False, "aborted"), ("recv", True, None)]
    assert results(s, "w")[1]["words"] == [3]
    assert log["w"][1][2] > 90000
    assert s.kernel.by_name["w"].deadline is None
    mailboxes_free(s)


# --- a cross-processor sender whose proxy polls elsewhere ------------------------------


def xp_sender(n: int, aborter: int, snd: int, rcv: int) -> str:
    """`snd` sends to `rcv` (not receiving yet); `a` aborts it; later `o` sends to rcv."""
    return f"""
        machine: {{cpus: {n}}}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: {aborter}
                priority: 90
                program:
                  - compute: 8000
                  - ex_regs: {{thread: snd}}
              - name: snd
                cpu: {snd}
                program:
                  - compute: 1000
                  - send: {{to: rcv, words: [1]}}
                  - read_utcb_cpu
          - name: other
            threads:
              - name: rcv
                cpu: {rcv}
                priority: 80
                program:
                  - compute: 30000
                  - recv: {{from: any}}
                  - read_utcb_cpu
              - name: o
                cpu: {aborter}
                priority: 80
                program:
                  - compute: 20000
                  - send: {{to: rcv, words: [2]}}
        """


@pytest.mark.parametrize(
    ("n", "aborter", "snd", "rcv"),
    [
        pytest.param(3, 1, 2, 3, id="3cpu-four-parties-on-three-cpus"),
        pytest.param(4, 1, 2, 3, id="4cpu"),
        pytest.param(4, 4, 3, 2, id="4cpu-b"),
        pytest.param(2, 1, 1, 2, id="2cpu-aborter-on-senders-cpu"),
        pytest.param(3, 2, 2, 3, id="3cpu-aborter-on-senders-cpu"),
    ],
)
def test_abort_xp_sender_with_polling_proxy(n: int, aborter: int, snd: int, rcv: int) -> None:
    s, log = run_ok(xp_sender(n, aborter, snd, rcv), ("snd", "rcv", "a"))
    assert summary_of(s, "a") == [("ex_regs", True, None)]
    rs = results(s, "snd")
    assert summary_of(s, "snd") == [("send", False, "aborted"), ("read_utcb_cpu", True, None)]
    assert rs[0]["xp"] is True
    assert rs[1]["value"] == snd
    assert log["snd"][0][1] == snd  # woken with `aborted` on its own CPU
    # The receiver was not disturbed: it later receives o's message, not snd's.
    rr = results(s, "rcv")
    assert summary_of(s, "rcv") == [("recv", True, None), ("read_utcb_cpu", True, None)]
    assert (rr[0]["from"], rr[0]["words"], rr[0]["xp"]) == ("o", [2], True)
    assert rr[1]["value"] == rcv
    assert summary_of(s, "o") == [("send", True, None)]
    # The unwind took a mailbox too: all of them are free again.
    mailboxes_free(s)


# --- ex_regs with an ip ----------------------------------------------------------------

PROGRAM = """
                  - {first}
                  - read_kip
                  - read_utcb_cpu
                  - read_kip"""


@pytest.mark.parametrize(("n", "target"), [(2, 2), (3, 3), (4, 2)])
def test_ex_regs_ip_restarts_waiting_thread_there(n: int, target: int) -> None:
    """The receive is aborted and w goes on at op 2 — op 1 is never executed."""
    s, log = run_ok(
        f"""
        machine: {{cpus: {n}}}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: 1
                program:
                  - compute: 5000
                  - ex_regs: {{thread: w, ip: 2}}
              - name: w
                cpu: {target}
                program:{PROGRAM.format(first="recv: {from: any}")}
        """,
        ("w",),
    )
    assert summary_of(s, "w") == [
        ("recv", False, "aborted"),
        ("read_utcb_cpu", True, None),
        ("read_kip", True, None),
    ]
    assert results(s, "w")[1]["value"] == target
    assert {cpu for _, cpu, _ in log["w"]} == {target}
    mailboxes_free(s)


@pytest.mark.parametrize("first", ["compute: 50000", "sleep: 50000"])
def test_ex_regs_ip_restarts_busy_or_sleeping_thread_there(first: str) -> None:
    """A computing or sleeping thread restarts at op 2 on its own CPU."""
    s, log = run_ok(
        f"""
        machine: {{cpus: 3}}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: 1
                program:
                  - compute: 5000
                  - ex_regs: {{thread: w, ip: 2}}
              - name: w
                cpu: 3
                program:{PROGRAM.format(first=first)}
        """,
        ("w",),
    )
    assert summary_of(s, "w") == [("read_utcb_cpu", True, None), ("read_kip", True, None)]
    assert results(s, "w")[0]["value"] == 3
    assert {cpu for _, cpu, _ in log["w"]} == {3}
    mailboxes_free(s)
