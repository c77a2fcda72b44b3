"""Cross-processor IPC through proxies and mailboxes: call and reply_wait, a receiver
not yet waiting (the proxy polls, §8.3.5), open receive over senders on several
CPUs, several senders of one CPU, messages of more than three words (thesis §8.3.4-8.3.5).

Each test is a scenario run headless with `System` (tests/xp_helpers.py), looking
at what `run --json` reports and at the kernel's memory where the thesis names
the structure; the invariants are checked at every quiescent kernel exit, and
after every run the mailbox flags are all clear, every mailbox is free and no
thread has a mailbox hooked — except where a sender stays blocked for good.
"""

from __future__ import annotations

import textwrap

import pytest

from kernel import invariants
from kernel.thread import LOCKED_WAITING, POLLING
from l4tui.runner.figures import counters
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import results, state, step_until
from tests.xp_helpers import (
    CPUS,
    LATE_RECEIVER,
    PINGPONG,
    POLICIES,
    STEPS,
    _all_inactive,
    _ok,
    assert_mailboxes_clean,
    checked,
    finish,
    xp_run,
    xp_system,
)

# --- call and reply_wait ------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_call_reply_wait_cross_cpu(cpus: int, policy: str) -> None:
    s = xp_run(PINGPONG.format(srv=cpus), cpus, policy)
    assert s.ended == "end"
    calls = results(s, "cli")
    assert len(calls) == 3
    for r in calls:
        _ok(r, "call")
        assert r["words"] == [7, 8]
        assert r["from"] == "srv"
    srv = results(s, "srv")
    assert [r["op"] for r in srv] == ["recv", "reply_wait", "reply_wait"]
    for r in srv:
        _ok(r, r["op"])
        assert r["words"] == [1, 2, 3]
        assert r["from"] == "cli"
    assert state(s, "cli") == "inactive"
    assert state(s, "srv") == "waiting"  # idle in its open receive: not a deadlock
    assert run_summary(s)["deadlock"] is False
    c = counters(s)
    assert c["ipc"] == 6  # three calls, three replies
    assert c["xp_ipc"] == 6
    assert c["page_faults"] == 0
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_many_clients_on_every_cpu_call_one_server(cpus: int) -> None:
    """A client on each CPU (one local to the server): every call gets its own reply."""
    clients = "".join(
        f"""
          - name: c{n}
            cpu: {n}
            program:
              - repeat: 2
                do:
                  - call: {{to: srv, words: [{n}]}}
                  - compute: {100 * n}"""
        for n in range(1, cpus + 1)
    )
    s = xp_run(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: 1
                priority: 120
                program:
                  - recv: {{from: any}}
                  - loop:
                      - reply_wait: {{words: [99]}}
          - name: clients
            threads:{textwrap.indent(textwrap.dedent(clients), " " * 12)}
        """,
        cpus,
    )
    assert s.ended == "end"
    for n in range(1, cpus + 1):
        rs = results(s, f"c{n}")
        assert len(rs) == 2
        for r in rs:
            _ok(r, "call", xp=n != 1)
            assert r["words"] == [99] and r["from"] == "srv"
    assert sorted(r["words"][0] for r in results(s, "srv")) == sorted(
        [n for n in range(1, cpus + 1)] * 2
    )
    c = counters(s)
    assert c["ipc"] == 4 * cpus
    assert c["xp_ipc"] == 4 * (cpus - 1)
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_reply_wait_to_remote_caller_takes_a_queued_sender(cpus: int, policy: str) -> None:
    """c1 (the server's CPU) polls in srv's send queue while srv waits for c2 (remote). srv's
    reply_wait to c2 crosses CPUs; its receive phase must find c1 in its send queue — not
    wait in an open receive with c1 polling on it for ever (a lost wakeup)."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: srv
                cpu: 1
                program:
                  - recv: {{from: c2}}
                  - reply_wait: {{words: [9]}}
              - name: c1
                cpu: 1
                program:
                  - send: {{to: srv, words: [1]}}
              - name: c2
                cpu: {cpus}
                program:
                  - compute: 3000
                  - call: {{to: srv, words: [2]}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    r0, r1 = results(s, "srv")
    assert r0["from"] == "c2" and r0["words"] == [2]
    _ok(r1, "reply_wait", xp=True)
    assert r1["from"] == "c1" and r1["words"] == [1]
    _ok(results(s, "c2")[0], "call")
    assert results(s, "c2")[0]["words"] == [9]
    _ok(results(s, "c1")[0], "send", xp=False)
    _all_inactive(s, "srv", "c1", "c2")
    assert_mailboxes_clean(s)


# --- a receiver not yet waiting: the proxy polls -------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("source", ["s", "any"])
@pytest.mark.parametrize("cpus", CPUS)
def test_send_to_receiver_not_yet_waiting(cpus: int, source: str, policy: str) -> None:
    """The proxy polls on the receiver's CPU; the *sender* sits in the receiver's send queue."""
    s = xp_system(LATE_RECEIVER.format(r=cpus, src=source), cpus, policy)
    q = checked(s)
    k = s.kernel
    a, b = k.by_name["s"], k.by_name["r"]
    step_until(s, lambda: k.field(a, "proxy") != 0, max_steps=STEPS)
    p = k.by_tcb[k.field(a, "proxy")]  # the proxy the sender claimed on r's CPU
    step_until(
        s,
        lambda: k.field(p, "thread_state") == POLLING and q.settled(),
        max_steps=STEPS,
    )
    # The thesis's state while the receiver is busy (§8.3.5), at a quiescent point:
    assert k.field(b, "send_queue") == a.tcb  # the sender, not its proxy, is queued
    assert k.field(a, "thread_state") == LOCKED_WAITING
    assert k.field(a, "proxy") == p.tcb
    assert k.field(p, "partner") == b.word
    assert state(s, "s") == "locked_waiting"
    assert results(s, "r") == []
    assert invariants.check(k) == []
    assert finish(s, q) == "end"
    (rs, rk) = results(s, "s")
    _ok(rs, "send")
    assert rk["op"] == "read_kip"
    rr = results(s, "r")[0]
    _ok(rr, "recv")
    assert rr["words"] == [5, 6] and rr["from"] == "s"
    _all_inactive(s, "s", "r")
    assert k.field(b, "send_queue") == 0
    assert counters(s)["xp_ipc"] == 1
    assert_mailboxes_clean(s)


# --- open receive: FIFO over senders on three CPUs -------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "cpus,placement",
    [(3, (1, 2, 3)), (4, (2, 3, 4)), (4, (4, 1, 3))],
    ids=["3cpus-one-local", "4cpus-all-remote", "4cpus-mixed"],
)
def test_open_receive_fifo_across_cpus(cpus: int, placement: tuple, policy: str) -> None:
    """Three senders on three CPUs queue while the receiver sleeps; served in queue order."""
    s1, s2, s3 = placement
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: 1
                program:
                  - sleep: 40000
                  - repeat: 3
                    do:
                      - recv: {{from: any}}
          - name: st
            threads:
              - name: first
                cpu: {s1}
                program:
                  - compute: 100
                  - send: {{to: r, words: [1]}}
              - name: second
                cpu: {s2}
                program:
                  - compute: 6000
                  - send: {{to: r, words: [2]}}
              - name: third
                cpu: {s3}
                program:
                  - compute: 12000
                  - send: {{to: r, words: [3]}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    rr = results(s, "r")
    assert [r["from"] for r in rr] == ["first", "second", "third"]
    assert [r["words"] for r in rr] == [[1], [2], [3]]
    for name, cpu in zip(("first", "second", "third"), placement, strict=True):
        _ok(results(s, name)[0], "send", xp=cpu != 1)
    for r, cpu in zip(rr, placement, strict=True):
        _ok(r, "recv", xp=cpu != 1)
    _all_inactive(s, "r", "first", "second", "third")
    assert counters(s)["xp_ipc"] == sum(1 for c in placement if c != 1)
    assert_mailboxes_clean(s)


# --- one proxy, several senders of one CPU ----------------------------------------------------


@pytest.mark.parametrize("y_timeout", ["", ", timeout: 0"], ids=["y-waits", "y-timeout-0"])
@pytest.mark.parametrize("cpus", CPUS)
def test_send_not_held_up_behind_a_blocked_send_from_the_same_cpu(
    cpus: int, y_timeout: str
) -> None:
    """x and y on CPU 1 both send to z on another CPU; z first receives from y only.

    x's send blocks until z turns to it; y's must not wait behind it (§8.4.4: a proxy
    that blocks must not hold up the other requests) — by L4 semantics z gets y's
    message, then x's, and every thread finishes.
    """
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: x
                cpu: 1
                program:
                  - send: {{to: z, words: [1]}}
              - name: y
                cpu: 1
                program:
                  - compute: 3000
                  - send: {{to: z, words: [2]{y_timeout}}}
              - name: z
                cpu: {cpus}
                program:
                  - recv: {{from: y}}
                  - recv: {{from: x}}
        """,
        cpus,
    )
    assert s.ended == "end", (s.ended, run_summary(s).get("stuck"), run_summary(s).get("waits"))
    assert [r["from"] for r in results(s, "z")] == ["y", "x"]
    assert [r["words"] for r in results(s, "z")] == [[2], [1]]
    _ok(results(s, "x")[0], "send")
    _ok(results(s, "y")[0], "send")
    _all_inactive(s, "x", "y", "z")
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_closed_receive_not_served_by_the_proxy_of_another_sender(cpus: int) -> None:
    """x and y on CPU 1 share the proxy serving CPU 1 on r's CPU. x's send polls on r through
    it; y's request (to z) waits behind x's. r's closed receive from y must not take the
    proxy for y's: y never sent to r, so r's receive times out and x's message stays x's."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: x
                cpu: 1
                program:
                  - send: {{to: r, words: [1], timeout: 50000}}
              - name: y
                cpu: 1
                program:
                  - compute: 500
                  - send: {{to: z, words: [3], timeout: 0}}
              - name: r
                cpu: {cpus}
                program:
                  - compute: 8000
                  - recv: {{from: y, timeout: 0}}
                  - recv: {{from: x, timeout: 0}}
              - name: z
                cpu: {cpus}
                program:
                  - compute: 100
        """,
        cpus,
    )
    r_y, r_x = results(s, "r")
    assert r_y["ok"] is False and r_y["error"] == "timeout", r_y
    _ok(r_x, "recv")
    assert r_x["from"] == "x" and r_x["words"] == [1]
    _ok(results(s, "x")[0], "send")
    assert results(s, "y")[0]["error"] == "timeout"
    _all_inactive(s, "x", "y", "r", "z")
    assert_mailboxes_clean(s)


# --- more than three words ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_more_than_three_words_cross_cpu(cpus: int, policy: str) -> None:
    """Beyond the three register words, the message registers of the UTCBs (both ways)."""
    words = [0xFFFF_FFFF, 0, 1, 0xDEAD_BEEF, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    reply = list(range(100, 164))  # the most a message holds
    s = xp_run(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: {cpus}
                program:
                  - recv: {{from: cli}}
                  - reply_wait: {{words: {reply}, timeout: 0, recv_timeout: 0}}
          - name: client
            threads:
              - name: cli
                cpu: 1
                program:
                  - call: {{to: srv, words: {words}}}
        """,
        cpus,
        policy,
    )
    (rc,) = results(s, "cli")
    _ok(rc, "call")
    assert rc["words"] == reply
    r0, r1 = results(s, "srv")
    _ok(r0, "recv")
    assert r0["words"] == words
    assert r1["op"] == "reply_wait" and r1["error"] == "timeout"  # nobody sends again
    assert counters(s)["xp_ipc"] == 2
    assert_mailboxes_clean(s)
