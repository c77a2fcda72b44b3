"""Short IPC on one CPU: send, receive, call, reply_wait and the send queue
(thesis §8.3.2).

Every test is a scenario (DESIGN.md §2) run headless with `System`; it looks
only at what `run --json` reports — results, states, the end of the run.
All threads are on CPU 1.
"""

from __future__ import annotations

import pytest

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import M1, _ok, froms, log_words, results, run, state

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
