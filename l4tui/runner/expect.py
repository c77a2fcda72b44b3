"""Judging a scenario's expectations against a run (DESIGN.md §2, "Scenario file").

The kernel reads the ``expect:`` section as plain data (`kernel.expectations`);
here each `Expect` is held against the finished run: a thread's state, CPU or
priority, one of its syscall results, a counter's bound, or whether the run
deadlocked.
"""

from __future__ import annotations

from typing import Any

from kernel.expectations import Expect
from kernel.system import System
from l4tui.runner.figures import counters, thread_view


def check(system: System, e: Expect) -> bool:
    """Whether expectation `e` holds now."""
    f = e.fields
    if "deadlock" in f:
        return bool(system.wait_cycle()) is f["deadlock"]
    if "counter" in f:
        name = f["counter"]
        got = counters(system)
        value = got["mesi"].get(name[5:], 0) if name.startswith("mesi.") else got[name]
        if "equals" in f and value != f["equals"]:
            return False
        if "min" in f and value < f["min"]:
            return False
        return not ("max" in f and value > f["max"])
    assert e.thread is not None  # every check but deadlock and counter names its thread
    t = system.kernel.by_name[e.thread]
    if e.result is not None:
        try:
            r = t.results[e.result]
        except IndexError:
            return False
        return all(r.get(key) == want for key, want in f.items())
    view = thread_view(system, t)
    return all(view.get(key) == want for key, want in f.items())


def verdicts(system: System) -> list[dict[str, Any]]:
    """Each expectation of the scenario with whether it holds: the summary's `expect` list."""
    return [{"check": e.check, "ok": check(system, e)} for e in system.scenario.expect]


def failures(system: System) -> list[str]:
    """The checks of the expectations that do not hold, in file order."""
    return [e.check for e in system.scenario.expect if not check(system, e)]
