"""IPC deadlocks on one CPU, found from the IPC wait-for graph, and the XP-IPC
detection that lets a same-CPU partner proceed (thesis §8.3.2, §8.4).

Every test is a scenario run headless with `System`, looking at what
`run --json` reports. All threads are on CPU 1.
"""

from __future__ import annotations

from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import M1, _ok, log_words, results, run, state, system

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
