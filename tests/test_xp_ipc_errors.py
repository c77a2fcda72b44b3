"""Cross-processor IPC that does not complete: send and receive timeouts, not_exist,
and xp_fault aborting a cross-CPU operation (thesis §8.3.5, §8.4).

Each test is a scenario run headless with `System` (tests/xp_helpers.py), looking
at what `run --json` reports and at the kernel's memory where the thesis names
the structure; the invariants are checked at every quiescent kernel exit, and
after every run the mailbox flags are all clear, every mailbox is free and no
thread has a mailbox hooked — except where a sender stays blocked for good.
"""

from __future__ import annotations

import pytest

from l4tui.runner.figures import counters
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import results, state
from tests.xp_helpers import CPUS, POLICIES, _all_inactive, _ok, assert_mailboxes_clean, xp_run

# --- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("timeout", [0, 3000], ids=["timeout-0", "timeout-finite"])
@pytest.mark.parametrize("cpus", CPUS)
def test_send_timeout_cross_cpu(cpus: int, timeout: int, policy: str) -> None:
    """The receiver is busy: the send times out and leaves no trace in its send queue."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - compute: 30000
                  - recv: {{from: any, timeout: 0}}
                  - recv: {{from: s, timeout: 2000}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - send: {{to: r, words: [1], timeout: {timeout}}}
                  - read_kip
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    rs, rk = results(s, "s")
    assert rs["op"] == "send" and rs["ok"] is False and rs["error"] == "timeout", rs
    assert rs["xp"] is True
    assert rk["op"] == "read_kip" and rk["value"] == cpus
    # The sender left the receiver's send queue: nothing for the receiver afterwards.
    r1, r2 = results(s, "r")
    assert r1["error"] == "timeout" and r2["error"] == "timeout"
    assert s.kernel.field(s.kernel.by_name["r"], "send_queue") == 0
    _all_inactive(s, "r", "s")
    assert counters(s)["ipc"] == 0
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_finite_send_timeout_met_in_time(cpus: int) -> None:
    """A finite send timeout longer than the receiver's delay: the message gets through."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - compute: 5000
                  - recv: {{from: s}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - send: {{to: r, words: [4], timeout: 200000}}
        """,
        cpus,
    )
    _ok(results(s, "s")[0], "send")
    assert results(s, "r")[0]["words"] == [4]
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_receive_timeout_from_remote_sender(cpus: int, policy: str) -> None:
    """A closed receive from a remote thread that never sends times out, then one succeeds."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: 1
                program:
                  - recv: {{from: s, timeout: 0}}
                  - recv: {{from: s, timeout: 4000}}
                  - recv: {{from: s}}
          - name: st
            threads:
              - name: s
                cpu: {cpus}
                program:
                  - compute: 15000
                  - send: {{to: r, words: [9]}}
        """,
        cpus,
        policy,
    )
    r0, r1, r2 = results(s, "r")
    assert r0["error"] == "timeout" and r1["error"] == "timeout"
    _ok(r2, "recv")
    assert r2["words"] == [9] and r2["from"] == "s"
    _all_inactive(s, "r", "s")
    assert_mailboxes_clean(s)


# --- not_exist and xp_fault --------------------------------------------------------------------


@pytest.mark.parametrize("cpus", CPUS)
def test_not_exist_cross_cpu(cpus: int) -> None:
    """A thread of a task not yet created: send, receive and call get not_exist. `task_new`
    creates its first thread on the creator's CPU (§7.1) — here a remote one — and then a
    call to it works across CPUs."""
    s = xp_run(
        f"""
        tasks:
          - name: late
            start: false
            threads:
              - name: ghost
                cpu: 1
                program:
                  - recv: {{from: any}}
                  - reply_wait: {{words: [42], timeout: 0, recv_timeout: 0}}
          - name: maker
            threads:
              - name: mk
                cpu: {cpus}
                program:
                  - recv: {{from: s}}
                  - task_new: late
                  - send: {{to: s, words: [7]}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - send: {{to: ghost, words: [1]}}
                  - recv: {{from: ghost, timeout: 1000}}
                  - call: {{to: ghost, words: [2], xp_fault: true}}
                  - call: {{to: mk, words: [0]}}
                  - call: {{to: ghost, words: [3]}}
        """,
        cpus,
    )
    assert s.ended == "end"
    r_send, r_recv, r_call, r_mk, r_ok = results(s, "s")
    assert r_send["ok"] is False and r_send["error"] == "not_exist"
    assert r_recv["ok"] is False and r_recv["error"] == "not_exist"
    assert r_call["ok"] is False and r_call["error"] == "not_exist"  # checked before DD 4
    _ok(r_mk, "call")
    assert r_mk["words"] == [7]
    assert run_summary(s)["threads"]["ghost"]["cpu"] == cpus  # the creator's CPU
    _ok(r_ok, "call")
    assert r_ok["words"] == [42] and r_ok["from"] == "ghost"
    (g0, g1) = results(s, "ghost")
    _ok(g0, "recv")
    assert g0["words"] == [3]
    assert g1["op"] == "reply_wait" and g1["error"] == "timeout"
    _all_inactive(s, "s", "mk", "ghost")
    assert counters(s)["xp_ipc"] == 4
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("op", ["send", "call"])
@pytest.mark.parametrize("cpus", CPUS)
def test_xp_fault_aborts_cross_cpu(cpus: int, op: str) -> None:
    """DD 4: the send word's xp bit aborts a cross-CPU IPC with error 7 and the target's CPU;
    no IPC happens, the receiver still waits."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - recv: {{from: any}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - {op}: {{to: r, words: [1, 2], xp_fault: true}}
                  - read_kip
        """,
        cpus,
    )
    assert s.ended == "end"
    ra, rk = results(s, "s")
    assert ra["op"] == op
    assert ra["ok"] is False and ra["error"] == "xp_abort" and ra["cpu"] == cpus, ra
    assert ra["xp"] is True
    assert rk["op"] == "read_kip"
    assert results(s, "r") == []
    assert state(s, "r") == "waiting"
    assert state(s, "s") == "inactive"
    c = counters(s)
    assert c["ipc"] == 0 and c["xp_ipc"] == 0
    assert c["ipis_sent"] == 0  # nothing went across
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_xp_fault_same_cpu_proceeds(cpus: int) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - recv: {{from: any}}
                  - reply_wait: {{words: [8], timeout: 0, recv_timeout: 0}}
          - name: st
            threads:
              - name: s
                cpu: {cpus}
                program:
                  - call: {{to: r, words: [1], xp_fault: true}}
        """,
        cpus,
    )
    r = results(s, "s")[0]
    _ok(r, "call", xp=False)
    assert r["words"] == [8] and r["cpu"] is None
    assert results(s, "r")[0]["words"] == [1]
    assert counters(s)["xp_ipc"] == 0
    assert_mailboxes_clean(s)
