"""A group's schedules step their own group first (issue 15, point 5): walk.Walk's focus.

Each independent group of CPUs has its own root run, with the group's CPUs
stepping first, and every schedule of the group does the same
(`Choice.focus`), so a schedule runs its own group's micro-ops and joins
before the other groups have run: on 8 CPUs in four independent pairs a
schedule costs about what it costs on 2. The log names each step's CPU,
so a failure found this way replays in the debugger as it was found.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_explore_groups import NAIVE_AND_PAIRS, TWO_CONVERSATIONS

from kernel.scenario import load_scenario, parse_scenario
from kernel.system import System
from l4tui.bench.explore import conversation
from l4tui.executor import execute
from l4tui.explore import Explorer, schedule_data, write_schedule
from l4tui.explore import walk as walk_module
from l4tui.session import Session


def _runs(monkeypatch: pytest.MonkeyPatch, scenario: Any, **kw: Any) -> list[tuple[Any, Any]]:
    """Explore in this process; each finished run's (focus, choices, log)."""
    seen: list[Any] = []
    go = walk_module.Walk.go

    def record(self: Any, stop: int = walk_module.NEVER, record: bool = True) -> bool:
        over = go(self, stop, record)
        if record:
            seen.append((self.focus, self.out.choices, list(self.out.log)))
        return over

    monkeypatch.setattr(walk_module.Walk, "go", record)
    Explorer(scenario, jobs=1, fork=False, **kw).explore()
    return seen


def test_a_groups_schedules_step_its_own_cpus_and_cost_what_one_pair_costs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = _runs(monkeypatch, conversation(4), max_schedules=80)
    steps: Counter[str] = Counter()
    for focus, choices, log in runs:
        if not choices:
            continue
        assert focus and all(c.focus == focus for c in choices)
        for entry in log:
            if isinstance(entry, int):
                steps["own" if focus >> (entry - 1) & 1 else "other"] += 1
            elif entry is None:
                steps["timed"] += 1
    assert steps["other"] == 0  # (only a choice forces another CPU: none across groups)
    assert steps["timed"] <= 0.1 * steps["own"]
    one = [len(log) for _, choices, log in _runs(monkeypatch, conversation(1), max_schedules=80)]
    four = [len(log) for _, choices, log in runs if choices]
    # Before the groups' roots a schedule on 8 CPUs replayed the other pairs too (3.7x).
    assert sum(four) / len(four) <= 1.5 * sum(one) / len(one)


def test_a_groups_root_stops_once_its_group_is_quiescent() -> None:
    system = System(parse_scenario(TWO_CONVERSATIONS, "<two>"))
    assert not system.quiescent(0b11) and not system.quiescent(0b1100)
    m = system.machine
    while not system.quiescent(0b11):  # the first pair first, as its group's root runs it
        cpu = next((c.number for c in m.cpus if c.index < 2 and c.waiting is None), None)
        assert system.advance(False, cpu) is not None  # (timed while the pair waits)
    assert not system.quiescent() and not system.quiescent(0b1100)
    system.run()
    assert system.ended == "end" and system.quiescent(0b1100) and system.quiescent()


def test_a_failure_found_in_a_group_replays_in_the_debugger(tmp_path: Path) -> None:
    path = tmp_path / "naive-and-pairs.yaml"
    path.write_text(NAIVE_AND_PAIRS)
    scenario = load_scenario(str(path))
    report = Explorer(scenario, jobs=1).explore()
    failure = report.failure
    assert failure is not None and failure.choices[0].focus == 0b11
    assert any(isinstance(e, int) for e in failure.log)  # its group's steps, by CPU
    saved = tmp_path / "race.json"
    write_schedule(str(saved), schedule_data(scenario, None, report))
    s = Session(scenario)
    assert execute(s, f"load schedule {saved}").startswith("following ")
    while not s.ended:
        execute(s, "continue")
    assert s.system.ended == "deadlock" and s.position == failure.steps
