"""Kernel invariants at every kernel exit, for the demo scripts and random scenarios (DESIGN.md §1).

Each scenario is stepped by hand (`machine.step()`); after every step that
leaves the kernel — an `Iret` to user mode or an `InterruptExit` — the
invariants of `kernel.invariants.check` must hold (each thread in its own
CPU's structures only, consistent lists, states agreeing with queues, at most
one IPC set up to a receiver, APIC slots ≤ 2). A hypothesis test generates
small single-CPU scenarios whose timeouts are all finite or zero, so every
run must end with every thread inactive.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.scenario import load_scenario
from kernel.system import System
from l4tui.explore import Explorer
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import run_checked, scenario

SCRIPTS = sorted((Path(__file__).parent.parent / "scripts").glob("*.yaml"))
M1 = "machine: {profile: p3-dual-450, cpus: 1}"


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_scripts_keep_invariants(path: Path) -> None:
    s = System(load_scenario(path))
    why, exits = run_checked(s)
    assert why == "end"
    assert exits > 0
    summary = run_summary(s)
    assert all(e["ok"] for e in summary["expect"]), summary["expect"]
    s.kernel.spaces.mapdb.check()


SCENARIOS = {
    "server-loop": f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                priority: 120
                program:
                  - recv: {{from: any}}
                  - loop:
                      - compute: 300
                      - reply_wait: {{words: [1, 2, 3, 4, 5]}}
          - name: clients
            threads:
              - name: c1
                program:
                  - repeat: 4
                    do:
                      - call: {{to: srv, words: [1]}}
              - name: c2
                program:
                  - repeat: 4
                    do:
                      - call: {{to: srv, words: [2, 3, 4, 5]}}
                      - thread_switch: nil
        """,
    "send-queue-and-timeouts": f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:
          - name: t
            threads:
              - name: r
                program:
                  - sleep: 8000
                  - recv: {{from: any}}
                  - recv: {{from: s2, timeout: 3000}}
                  - recv: {{from: any, timeout: 0}}
                  - recv: {{from: any, timeout: 5000}}
              - name: s1
                program:
                  - send: {{to: r, words: [1]}}
              - name: s2
                program:
                  - send: {{to: r, words: [2], timeout: 2000}}
                  - sleep: 3000
                  - send: {{to: r, words: [3], timeout: 0}}
              - name: s3
                program:
                  - send: {{to: r, words: [4], timeout: 20000}}
        """,
    "round-robin": f"""
        {M1}
        kernel: {{tick: 1000}}
        tasks:
          - name: t
            threads:
              - name: a
                timeslice: 2000
                program:
                  - repeat: 3
                    do:
                      - compute: 5000
                      - send: {{to: c, words: [1], timeout: 0}}
              - name: b
                timeslice: 2000
                program:
                  - compute: 9000
                  - sleep: 3000
                  - compute: 4000
              - name: c
                priority: 150
                program:
                  - repeat: 5
                    do:
                      - recv: {{from: any, timeout: 6000}}
        """,
    "ex-regs": f"""
        {M1}
        tasks:
          - name: app
            threads:
              - name: w
                program:
                  - recv: {{from: any}}
                  - send: {{to: x, words: [1]}}
                  - read_kip
              - name: ctl
                program:
                  - compute: 1000
                  - ex_regs: {{thread: w}}
                  - compute: 1000
                  - ex_regs: {{thread: w}}
          - name: other
            threads:
              - name: x
                program:
                  - sleep: 50000
                  - recv: {{from: any, timeout: 0}}
        """,
    "map-grant-unmap": f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - touch: {{addr: 0x301000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 4096}}}}
                  - send: {{to: b, grant: {{addr: 0x301000, size: 4096}}}}
                  - recv: {{from: b}}
                  - unmap: {{addr: 0x300000, size: 4096, mode: ro}}
                  - unmap: {{addr: 0x300000, size: 4096, mode: flush}}
                  - send: {{to: b}}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a, window: {{addr: 0x500000, size: 4096}}}}
                  - recv: {{from: a, window: {{addr: 0x600000, size: 4096}}}}
                  - touch: {{addr: 0x500000}}
                  - send: {{to: a}}
                  - recv: {{from: a}}
                  - touch: {{addr: 0x500000, write: true}}
                  - touch: {{addr: 0x600000, write: true}}
        """,
    "long-ipc-faults": f"""
        {M1}
        tasks:
          - name: pager
            threads:
              - name: pgr
                priority: 150
                program:
                  - serve_faults
          - name: server
            threads:
              - name: srv
                pager: pgr
                program:
                  - recv: {{from: cli, strings: [{{addr: 0x200000, size: 12288}}]}}
                  - recv: {{from: cli, strings: [{{addr: 0x400000, size: 4096}}]}}
          - name: client
            threads:
              - name: cli
                program:
                  - send: {{to: srv, strings: [{{addr: 0x100000, size: 10000}}]}}
                  - touch: {{addr: 0x180000, write: true}}
                  - send: {{to: srv, strings: [{{addr: 0x180000, size: 4096}}]}}
        """,
    "task-new-and-halt": f"""
        {M1}
        tasks:
          - name: parent
            threads:
              - name: p
                program:
                  - task_new: child
                  - call: {{to: kid, words: [1]}}
                  - halt
          - name: child
            start: false
            threads:
              - name: kid
                program:
                  - recv: {{from: p}}
                  - reply_wait: {{to: p, words: [2], timeout: 0, recv_timeout: 0}}
        """,
    "deadlock": f"""
        {M1}
        tasks:
          - name: ta
            threads:
              - name: a
                program:
                  - call: {{to: b}}
          - name: tb
            threads:
              - name: b
                program:
                  - compute: 100
                  - call: {{to: a}}
        """,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios_keep_invariants(name: str) -> None:
    s = System(scenario(SCENARIOS[name]))
    why, exits = run_checked(s)
    assert why == ("deadlock" if name == "deadlock" else "end")
    assert exits > 0
    s.kernel.spaces.mapdb.check()


# --- random scenarios -----------------------------------------------------------------

TIMEOUT = st.one_of(st.just(0), st.integers(1, 20_000))
WORDS = st.lists(st.integers(0, 2**32 - 1), max_size=6)


@st.composite
def _op(draw: st.DrawFn, me: str, names: list[str]) -> str:
    others = [n for n in names if n != me]
    peer = st.sampled_from(others)
    kind = draw(
        st.sampled_from(["compute", "send", "recv", "call", "reply_wait", "sleep", "thread_switch"])
    )
    if kind == "compute":
        return f"compute: {draw(st.integers(1, 3000))}"
    if kind == "sleep":
        return f"sleep: {draw(st.integers(1, 5000))}"
    if kind == "thread_switch":
        return f"thread_switch: {draw(st.sampled_from(others + ['nil']))}"
    words = draw(WORDS)
    if kind == "send":
        return f"send: {{to: {draw(peer)}, words: {words}, timeout: {draw(TIMEOUT)}}}"
    if kind == "recv":
        src = draw(st.sampled_from(others + ["any"]))
        return f"recv: {{from: {src}, timeout: {draw(TIMEOUT)}}}"
    if kind == "call":
        return f"call: {{to: {draw(peer)}, words: {words}, timeout: {draw(TIMEOUT)}}}"
    to = draw(st.one_of(st.none(), peer))
    fields = [] if to is None else [f"to: {to}"]
    fields += [
        f"words: {words}",
        f"timeout: {draw(TIMEOUT)}",
        f"recv_timeout: {draw(TIMEOUT)}",
    ]
    return f"reply_wait: {{{', '.join(fields)}}}"


@st.composite
def random_scenario(draw: st.DrawFn) -> str:
    n = draw(st.integers(2, 4))
    names = [f"t{i}" for i in range(n)]
    # Threads grouped into 1..n tasks, in order.
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    groups = [names[i:j] for i, j in zip([0, *cuts], [*cuts, n], strict=True)]
    tick = draw(st.sampled_from([1000, 5000, 20000]))
    lines = [M1, f"kernel: {{tick: {tick}}}", "tasks:"]
    for g, members in enumerate(groups):
        lines += [f"  - name: task{g}", "    threads:"]
        for name in members:
            lines += [
                f"      - name: {name}",
                f"        priority: {draw(st.sampled_from([50, 100, 100, 150]))}",
            ]
            if draw(st.booleans()):
                lines.append(f"        timeslice: {draw(st.sampled_from([1000, 3000, 10000]))}")
            lines.append("        program:")
            ops = draw(st.lists(_op(name, names), min_size=1, max_size=6))
            if draw(st.booleans()) and len(ops) > 1:
                k = draw(st.integers(1, len(ops)))
                body = "\n".join(f"              - {o}" for o in ops[:k])
                lines.append(f"          - repeat: {draw(st.integers(1, 3))}\n            do:")
                lines.append(body)
                ops = ops[k:]
            lines += [f"          - {o}" for o in ops]
    return "\n".join(lines) + "\n"


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_scenario())
def test_random_scenarios_keep_invariants_and_end(text: str) -> None:
    s = System(scenario(text))
    why, _ = run_checked(s, max_steps=150_000)
    assert why == "end", textwrap.indent(text, "  ")
    summary = run_summary(s)
    assert summary["deadlock"] is False
    # Every timeout is finite or zero: every thread finishes its program.
    states = {name: t["state"] for name, t in summary["threads"].items()}
    assert set(states.values()) == {"inactive"}, states
    # One result per syscall op executed; each either ok or with an error name.
    for t in summary["threads"].values():
        for r in t["results"]:
            assert (r["ok"] is True) == (r["error"] is None), r
            assert r["op"] != "page_fault", r


# --- the races the random kernel fuzzer found (issue 14), under `l4tui explore` ----------

RACES = Path(__file__).parent.parent / "scripts" / "races"
LONG = os.environ.get("L4TUI_FUZZ") == "long"
# name -> (preemption bound, schedules explored in CI: None = the whole bound). Each
# exhausts its bound (`l4tui explore --preemptions K`) in under 40 s of one core (at 2
# preemptions priority-remote in 5 s); CI explores the first schedules of each (breadth
# first: the timed order, then every single preemption in turn) and L4TUI_FUZZ=long all.
FOUND_RACES = {
    "priority-remote": (1, None),
    "migrate-priority": (1, 40),
    "migrate-in-timer": (1, 20),
    "migrate-waiting-receiver": (1, 20),
    "migrate-restart-sender": (1, 100),
    "migrate-twice": (1, 10),
    "exregs-migrate": (1, 10),
    "pager-replies": (1, 20),
    "shootdown-concurrent": (1, 10),
    "xp-send-migrate": (1, 20),
}


@pytest.mark.parametrize("name", sorted(FOUND_RACES))
def test_races_the_fuzzer_found_hold_under_exploration(name: str) -> None:
    """Each scenario failed on the kernel before issue 14 (its header says how); now no
    interleaving within the bound breaks an invariant, deadlocks, loses a message or fails
    an expectation."""
    path = RACES / f"{name}.yaml"
    assert path.read_text().startswith("# "), "a header saying what it reproduced"
    # The timed order ends: a livelock (two CPUs spinning for each other) is no failure
    # the explorer reports, as reaching a run limit is none.
    system = System(load_scenario(str(path)))
    assert system.run(max_steps=200_000, check_invariants=True) == "end", system.violations
    assert all(e["ok"] for e in run_summary(system)["expect"])
    bound, limit = FOUND_RACES[name]
    report = Explorer(
        load_scenario(str(path)), preemptions=bound, max_schedules=None if LONG else limit
    ).explore()
    assert report.failure is None, (report.failure.kind, report.failure.message)
    assert report.exhausted or report.schedules == limit
    assert report.schedules >= 10
