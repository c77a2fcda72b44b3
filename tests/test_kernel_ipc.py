"""Short IPC on one CPU: send, receive, call, reply_wait, timeouts, deadlock (thesis §8.3.2).

Every test is a scenario (DESIGN.md §2) run headless with `System`; it looks
only at what `run --json` reports — results, states, the end of the run —
and at the IPC wait-for graph. All threads are on CPU 1.
"""

from __future__ import annotations

import pytest

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import froms, log_words, results, run, state, system

M1 = "machine: {profile: p3-dual-450, cpus: 1}"


def _ok(r: dict, op: str) -> None:
    assert r["op"] == op
    assert r["ok"] is True, r
    assert r["error"] is None
    assert r["xp"] is False


# --- send and receive -----------------------------------------------------------------


@pytest.mark.parametrize("source", ["a", "any"])
@pytest.mark.parametrize("receiver_first", [True, False], ids=["recv-waits", "send-polls"])
def test_send_recv(source: str, receiver_first: bool) -> None:
    """A send reaches a closed or open receive, whichever side comes first."""
    # receiver_first: b is already waiting when a sends; else a polls in b's send queue.
    a_delay, b_delay = (2000, 0) if receiver_first else (0, 2000)
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - compute: {a_delay + 1}
                  - send: {{to: b, words: [11, 22]}}
          - name: t2
            threads:
              - name: b
                program:
                  - compute: {b_delay + 1}
                  - recv: {{from: {source}}}
        """)
    assert s.ended == "end"
    (ra,) = results(s, "a")
    _ok(ra, "send")
    (rb,) = results(s, "b")
    _ok(rb, "recv")
    assert rb["words"] == [11, 22]
    assert rb["from"] == "a"
    assert state(s, "a") == state(s, "b") == "inactive"
    assert run_summary(s)["counters"]["ipc"] == 1


def test_closed_receive_ignores_other_senders() -> None:
    """A receive from b is not satisfied by c, even if c sent first."""
    s = run(f"""
        {M1}
        tasks:
          - name: t
            threads:
              - name: r
                program:
                  - sleep: 20000
                  - recv: {{from: b}}
                  - recv: {{from: any}}
              - name: c
                program:
                  - send: {{to: r, words: [3]}}
              - name: b
                program:
                  - compute: 500
                  - send: {{to: r, words: [2]}}
        """)
    assert froms(s, "r") == ["b", "c"]
    assert log_words(s, "r") == [2, 3]
    assert all(r["ok"] for r in results(s, "c") + results(s, "b"))


def test_call_and_reply_wait_server_loop() -> None:
    """A server loop: recv, then reply_wait forever; each call gets its own reply."""
    s = run(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - loop:
                      - compute: 100
                      - reply_wait: {{words: [7, 8]}}
          - name: client
            threads:
              - name: cli
                program:
                  - call: {{to: srv, words: [1]}}
                  - call: {{to: srv, words: [2]}}
                  - call: {{to: srv, words: [3]}}
        """)
    assert s.ended == "end"
    assert not run_summary(s)["deadlock"]
    calls = results(s, "cli")
    assert len(calls) == 3
    for r in calls:
        _ok(r, "call")
        assert r["words"] == [7, 8]
        assert r["from"] == "srv"
    srv = results(s, "srv")
    assert [r["op"] for r in srv] == ["recv", "reply_wait", "reply_wait"]
    assert log_words(s, "srv") == [1, 2, 3]
    assert all(r["from"] == "cli" for r in srv)
    assert state(s, "cli") == "inactive"
    assert state(s, "srv") == "waiting"  # idle in its open receive
    assert run_summary(s)["counters"]["ipc"] == 6


def test_reply_wait_without_to_replies_to_last_sender() -> None:
    """reply_wait with no `to` answers whoever sent the message just received."""
    s = run(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - reply_wait: {{words: [10]}}
                  - reply_wait: {{words: [11]}}
          - name: clients
            threads:
              - name: c1
                program:
                  - call: {{to: srv, words: [1]}}
              - name: c2
                program:
                  - compute: 3000
                  - call: {{to: srv, words: [2]}}
        """)
    assert froms(s, "srv")[:2] == ["c1", "c2"]
    (r1,) = results(s, "c1")
    (r2,) = results(s, "c2")
    _ok(r1, "call")
    _ok(r2, "call")
    assert r1["words"] == [10] and r1["from"] == "srv"
    assert r2["words"] == [11] and r2["from"] == "srv"


def test_reply_wait_with_to_replies_to_that_thread() -> None:
    """`to` overrides the last sender (c2 here): the reply goes to c1."""
    s = run(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - recv: {{from: any}}
                  - send: {{to: c2, words: [20], timeout: 0}}
                  - reply_wait: {{to: c1, words: [10], timeout: 0, recv_timeout: 0}}
          - name: clients
            threads:
              - name: c1
                program:
                  - call: {{to: srv, words: [1]}}
              - name: c2
                program:
                  - compute: 2000
                  - call: {{to: srv, words: [2]}}
        """)
    assert froms(s, "srv")[:2] == ["c1", "c2"]
    assert results(s, "c1")[0]["words"] == [10]
    assert results(s, "c2")[0]["words"] == [20]
    assert state(s, "c1") == state(s, "c2") == "inactive"
    last = results(s, "srv")[-1]
    assert last["op"] == "reply_wait" and last["error"] == "timeout"  # recv_timeout 0


def test_send_queue_is_fifo() -> None:
    """Three senders to one open receiver are served in the order they queued."""
    s = run(f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:
          - name: rt
            threads:
              - name: r
                program:
                  - sleep: 30000
                  - repeat: 3
                    do:
                      - recv: {{from: any}}
          - name: st
            threads:
              - name: s3
                program:
                  - sleep: 9000
                  - send: {{to: r, words: [3]}}
              - name: s1
                program:
                  - sleep: 3000
                  - send: {{to: r, words: [1]}}
              - name: s2
                program:
                  - sleep: 6000
                  - send: {{to: r, words: [2]}}
        """)
    assert froms(s, "r") == ["s1", "s2", "s3"]
    assert log_words(s, "r") == [1, 2, 3]
    for name in ("s1", "s2", "s3"):
        _ok(results(s, name)[0], "send")
        assert state(s, name) == "inactive"


@pytest.mark.parametrize("how", ["timeout", "ex_regs"])
def test_sender_that_gave_up_leaves_the_send_queue(how: str) -> None:
    """s1 heads r's send queue but gives up (its send timeout, or ex_regs by ctl) in the
    tick that r wakes; r runs before s1 and must get s2's message."""
    s1_send = "{to: r, words: [1], timeout: 5000}" if how == "timeout" else "{to: r, words: [1]}"
    ctl = (
        ""
        if how == "timeout"
        else """
              - name: ctl
                priority: 250
                program:
                  - sleep: 5000
                  - ex_regs: {thread: s1}"""
    )
    s = run(f"""
        {M1}
        kernel: {{tick: 10000}}
        tasks:
          - name: t
            threads:
              - name: r
                priority: 200
                program:
                  - sleep: 5000
                  - recv: {{from: any}}
              - name: s1
                program:
                  - send: {s1_send}
              - name: s2
                program:
                  - send: {{to: r, words: [2]}}{ctl}
        """)
    assert froms(s, "r") == ["s2"]
    assert log_words(s, "r") == [2]
    (r1,) = results(s, "s1")
    assert r1["ok"] is False and r1["error"] == ("timeout" if how == "timeout" else "aborted")
    _ok(results(s, "s2")[0], "send")
    assert {state(s, n) for n in ("r", "s1", "s2")} == {"inactive"}


def test_send_to_unstarted_task_is_not_exist() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - send: {{to: ghost, words: [1]}}
                  - call: {{to: ghost, words: [1], timeout: 0}}
                  - recv: {{from: ghost, timeout: 0}}
                  - read_kip
          - name: later
            start: false
            threads:
              - name: ghost
                program:
                  - recv: {{from: any}}
        """)
    r = results(s, "a")
    assert [x["op"] for x in r] == ["send", "call", "recv", "read_kip"]
    for x in r[:3]:
        assert x["ok"] is False
        assert x["error"] == "not_exist"
    assert state(s, "a") == "inactive"
    assert state(s, "ghost") == "inactive"
    assert run_summary(s)["counters"]["ipc"] == 0


def test_send_timeout_zero_when_receiver_not_waiting() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - send: {{to: b, words: [1], timeout: 0}}
              - name: b
                program:
                  - compute: 5000
                  - recv: {{from: any, timeout: 0}}
        """)
    (ra,) = results(s, "a")
    assert ra["op"] == "send" and ra["ok"] is False and ra["error"] == "timeout"
    (rb,) = results(s, "b")
    assert rb["ok"] is False and rb["error"] == "timeout"  # nothing was queued for b
    assert run_summary(s)["counters"]["ipc"] == 0


def test_send_timeout_zero_succeeds_when_receiver_waits() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: b
                program:
                  - recv: {{from: a}}
              - name: a
                program:
                  - send: {{to: b, words: [5], timeout: 0}}
        """)
    _ok(results(s, "a")[0], "send")
    assert results(s, "b")[0]["words"] == [5]


@pytest.mark.parametrize("timeout", [20000, 45000])
def test_finite_receive_timeout(timeout: int) -> None:
    tick = 5000
    s = run(f"""
        {M1}
        kernel: {{tick: {tick}}}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - recv: {{from: b, timeout: {timeout}}}
              - name: b
                program:
                  - compute: 100
        """)
    (r,) = results(s, "a")
    assert r["op"] == "recv" and r["ok"] is False and r["error"] == "timeout"
    cycles = run_summary(s)["cycles"]
    assert cycles >= timeout
    assert cycles <= timeout + 2 * tick + 5000  # "about" the timeout: within a tick or two
    assert state(s, "a") == "inactive"
    assert s.ended == "end"


def test_finite_send_timeout() -> None:
    s = run(f"""
        {M1}
        kernel: {{tick: 5000}}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - send: {{to: b, words: [1], timeout: 30000}}
              - name: b
                program:
                  - sleep: 100000
                  - recv: {{from: any, timeout: 0}}
        """)
    (r,) = results(s, "a")
    assert r["ok"] is False and r["error"] == "timeout"
    (rb,) = results(s, "b")
    # a left b's send queue when it timed out: b finds nobody.
    assert rb["ok"] is False and rb["error"] == "timeout"


@pytest.mark.parametrize("source", ["b", "any"])
def test_infinite_receive_without_sender_ends_waiting(source: str) -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - recv: {{from: {source}}}
              - name: b
                program:
                  - compute: 1000
        """)
    assert s.ended == "end"
    summary = run_summary(s)
    assert summary["deadlock"] is False
    assert "waits" not in summary
    assert state(s, "a") == "waiting"
    assert results(s, "a") == []
    assert state(s, "b") == "inactive"


def test_sleep() -> None:
    s = run(f"""
        {M1}
        kernel: {{tick: 2000}}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - sleep: 30000
                  - send: {{to: b, words: [9]}}
              - name: b
                program:
                  - recv: {{from: a}}
        """)
    (ra,) = results(s, "a")  # sleep adds no result
    _ok(ra, "send")
    assert results(s, "b")[0]["words"] == [9]
    assert run_summary(s)["cycles"] >= 30000
    assert state(s, "a") == "inactive"


def test_sleep_lets_others_run() -> None:
    """A sleeping thread gives up the CPU: a lower-priority thread runs meanwhile."""
    s = run(f"""
        {M1}
        kernel: {{tick: 2000}}
        tasks:
          - name: app
            threads:
              - name: hi
                priority: 200
                program:
                  - sleep: 20000
                  - recv: {{from: lo, timeout: 0}}
              - name: lo
                priority: 50
                program:
                  - send: {{to: hi, words: [4]}}
        """)
    # lo could only run while hi slept, and then it polled in hi's send queue.
    (r,) = results(s, "hi")
    assert r["ok"] is True and r["words"] == [4]


@pytest.mark.parametrize("n", [4, 8, 64])
def test_send_more_than_three_words(n: int) -> None:
    words = [1000 + 17 * i for i in range(n)]
    reply = [9000 + i for i in range(n)]
    s = run(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - reply_wait: {{words: {reply}, timeout: 0}}
          - name: client
            threads:
              - name: cli
                program:
                  - call: {{to: srv, words: {words}}}
        """)
    assert results(s, "srv")[0]["words"] == words
    (r,) = results(s, "cli")
    _ok(r, "call")
    assert r["words"] == reply


def test_message_words_do_not_leak_between_messages() -> None:
    """A short message after a long one carries only its own words."""
    s = run(f"""
        {M1}
        tasks:
          - name: t
            threads:
              - name: r
                program:
                  - recv: {{from: any}}
                  - recv: {{from: any}}
                  - recv: {{from: any}}
              - name: a
                program:
                  - send: {{to: r, words: [1, 2, 3, 4, 5, 6]}}
                  - send: {{to: r, words: [7]}}
                  - send: {{to: r}}
        """)
    assert [r["words"] for r in results(s, "r")] == [[1, 2, 3, 4, 5, 6], [7], []]


# --- deadlock --------------------------------------------------------------------------


def test_deadlock_call_cycle() -> None:
    s = system(f"""
        {M1}
        tasks:
          - name: ta
            threads:
              - name: a
                program:
                  - call: {{to: b, words: [1]}}
          - name: tb
            threads:
              - name: b
                program:
                  - call: {{to: a, words: [2]}}
        """)
    assert s.run(max_steps=100_000) == "deadlock"
    summary = run_summary(s)
    assert summary["deadlock"] is True
    waits = summary["waits"]
    assert len(waits) == 2
    text = " ".join(waits)
    assert "a" in text.split() and "b" in text.split()
    assert {w.split()[0] for w in waits} == {"a", "b"}
    assert {w.split()[-1] for w in waits} == {"a", "b"}
    assert results(s, "a") == results(s, "b") == []


def test_closed_receive_cycle_is_a_deadlock() -> None:
    s = system(f"""
        {M1}
        tasks:
          - name: ta
            threads:
              - name: a
                program:
                  - recv: {{from: b}}
          - name: tb
            threads:
              - name: b
                program:
                  - recv: {{from: a}}
        """)
    assert s.run(max_steps=100_000) == "deadlock"
    summary = run_summary(s)
    assert summary["deadlock"] is True
    assert sorted(w.split()[0] for w in summary["waits"]) == ["a", "b"]
    assert all("waiting for" in w for w in summary["waits"])


def test_idle_server_is_not_a_deadlock() -> None:
    """A client waiting (closed) for a server idle in an open receive: no cycle."""
    s = run(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - recv: {{from: any}}
          - name: client
            threads:
              - name: cli
                program:
                  - send: {{to: srv, words: [1]}}
                  - recv: {{from: srv}}
        """)
    assert s.ended == "end"
    summary = run_summary(s)
    assert summary["deadlock"] is False
    assert "waits" not in summary
    assert state(s, "srv") == "waiting"
    assert state(s, "cli") == "waiting"


def test_timeouts_break_a_would_be_deadlock() -> None:
    s = run(f"""
        {M1}
        kernel: {{tick: 5000}}
        tasks:
          - name: ta
            threads:
              - name: a
                program:
                  - call: {{to: b, words: [1], timeout: 20000}}
          - name: tb
            threads:
              - name: b
                program:
                  - call: {{to: a, words: [2], timeout: 40000}}
        """)
    assert s.ended == "end"
    assert run_summary(s)["deadlock"] is False
    assert state(s, "a") == state(s, "b") == "inactive"
    (ra,) = results(s, "a")
    (rb,) = results(s, "b")
    # Both poll on each other; a's send times out first, then b's (a never receives).
    assert ra["ok"] is False and ra["error"] == "timeout"
    assert rb["ok"] is False and rb["error"] == "timeout"
    assert run_summary(s)["cycles"] >= 40000


# --- XP-IPC detection on one CPU -----------------------------------------------------


def test_xp_fault_on_same_cpu_proceeds() -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv: {{from: any}}
                  - recv: {{from: any}}
                  - reply_wait: {{words: [5], timeout: 0}}
          - name: client
            threads:
              - name: cli
                program:
                  - send: {{to: srv, words: [1], xp_fault: true}}
                  - call: {{to: srv, words: [2], xp_fault: true}}
        """)
    rs, rc = results(s, "cli")
    _ok(rs, "send")
    _ok(rc, "call")
    assert rc["words"] == [5]
    assert rc["cpu"] is None
    assert log_words(s, "srv")[:2] == [1, 2]
    assert all(r["xp"] is False for r in results(s, "srv"))
