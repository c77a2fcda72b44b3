"""`Machine.peek` is pure (issue 15, point 3): it reports what the next step runs, changes nothing.

Peek used to apply the events due and mark a CPU with nothing to run idle; a peek of
one CPU carried a waiting CPU forward to the event that woke it. Extra peeks then
changed a run's op trace and its end clocks (on the kernel fuzzer's scenarios, peeking
every CPU now and then ended runs hundreds of thousands of cycles later), so the session
logged its peeks as inputs. Now peek saves what it touches and restores it, and the
session's input log holds only steps, policy changes and injections.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.scenario import parse_scenario
from kernel.system import System
from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.inputs import Idle, Inject, OnCpu, SetPolicy, Timed
from l4tui.session import Session, op_text
from tests.kernel_fuzz import generate

BUDGET = 2500  # steps of each run: past boot, into the IPCs and page faults


def _run(text: str, peeks: list[tuple[int, int | None]] | None, look: str = "peek") -> Any:
    """Run a scenario, peeking where `peeks` says (step, CPU or None for timed); the op trace,
    the end clocks and the fingerprint. With peeks, each peek's answer is checked against
    what the step then runs, and the fingerprint is unchanged by a peek."""
    s = System(parse_scenario(text, "<fuzz>"))
    m = s.machine
    todo = sorted(peeks or [], key=lambda p: p[0])
    trace = []
    n = 0
    while s.ended is None and n < BUDGET:
        expect = None
        while todo and todo[0][0] == n:
            _, cpu = todo.pop(0)
            before = m.fingerprint() if n % 7 == 0 and look == "peek" else None
            got = getattr(m, look)(cpu)
            if before is not None:
                assert m.fingerprint() == before, f"peek({cpu}) at step {n} changed the machine"
            if cpu is None and look == "peek":
                expect = got
        op = s.advance()
        if op is None:
            assert expect is None, "peek saw an op where step found none"
            break
        if expect is not None:
            assert expect[0] is m.last_cpu and expect[1] == op, "peek told another op"
        trace.append((m.last_cpu.number, op_text(op)))  # contexts by name
        n += 1
    return trace, [c.clock for c in m.cpus], m.fingerprint(), s.ended


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), data=st.data())
def test_peeks_anywhere_change_no_trace_and_no_end(seed: int, data: st.DataObject) -> None:
    d = generate(random.Random(seed), seed)
    text = d.text()
    cpus = st.one_of(st.none(), st.integers(1, d.cpus))
    peeks = data.draw(st.lists(st.tuples(st.integers(0, BUDGET), cpus), max_size=60))
    plain = _run(text, None)
    assert _run(text, peeks) == plain


def test_peeking_every_cpu_often_ends_the_run_where_it_ends_without() -> None:
    """The issue's case: extra peeks left the op trace equal but the end clocks not (53,754
    against 99,999 cycles). Here the old peek (`_look`, what step does) shows it, the pure
    one does not."""
    d = generate(random.Random(0), 0)
    text = d.text()
    rng = random.Random(5)
    peeks = [(n, c) for n in range(BUDGET) if rng.random() < 0.3 for c in [*range(1, d.cpus + 1)]]
    plain = _run(text, None)
    assert _run(text, peeks) == plain
    trace, clocks, _, _ = _run(text, peeks, look="_look")  # the impure peek of before
    assert (trace, clocks) != (plain[0], plain[1])


def test_the_session_logs_no_peeks_and_cycles_end_alike() -> None:
    a, b = Session(demo_scenario()), Session(demo_scenario())
    for _ in range(40):
        a.run_cycles(500)
        b.run_cycles(500)
        b.system.machine.peek()  # extra peeks, timed and of each CPU
        for n in range(1, len(b.system.machine.cpus) + 1):
            b.system.machine.peek(n)
    assert all(isinstance(e, (Timed, OnCpu, Idle, SetPolicy, Inject)) for e in a.log)
    assert a.log == b.log
    assert a.system.machine.fingerprint() == b.system.machine.fingerprint()
    assert [c.clock for c in a.system.machine.cpus] == [c.clock for c in b.system.machine.cpus]
    twin = a.rerun(lambda system: lambda op: None)  # the log alone re-creates the state
    assert twin.system.machine.fingerprint() == b.system.machine.fingerprint()


def test_a_saved_session_with_old_peek_entries_loads(tmp_path: Path) -> None:
    s = Session(demo_scenario())
    execute(s, "stepi 30")
    path = tmp_path / "s.json"
    execute(s, f"save {path}")
    data = json.loads(path.read_text())
    data["log"] = data["log"][:10] + [["peek"]] + data["log"][10:] + [["peek"]]
    path.write_text(json.dumps(data))
    t = Session(demo_scenario())
    out = execute(t, f"load {path}")
    assert not out.startswith("error"), out
    assert t.position == 30 and ["peek"] not in t.log
    assert t.system.machine.fingerprint() == s.system.machine.fingerprint()
