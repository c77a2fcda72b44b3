"""Short IPC on one CPU against the clock: send and receive timeouts, sleep,
and messages of more than three words (thesis §8.3.2).

Every test is a scenario run headless with `System`, looking at what
`run --json` reports. All threads are on CPU 1.
"""

from __future__ import annotations

import pytest

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import M1, _ok, results, run, state


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
