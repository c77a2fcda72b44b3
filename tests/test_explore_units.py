"""The explorer's suffix runs, pools and state keys (issue 15, points 4, 5 and 6).

A schedule run as a suffix off a forked replay of its parent's path is the
same `Run` as the schedule run from the start; the report is the same with
one worker or two; the state keys are the same in any process (workers
return them to the coordinator); a Python exception in the kernel is a
finding, not a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kernel.invariants
import kernel.xcpu
from kernel.scenario import load_scenario, parse_scenario
from l4tui.cli import main
from l4tui.explore import (
    Explorer,
    Job,
    Unit,
    make_job,
    run_schedule,
    run_unit,
    split_level,
)
from l4tui.explore import units as units_module
from machine.memory import Memory, mix

ROOT = Path(__file__).parent.parent
RACES = ROOT / "scripts" / "races"
NAIVE, PROXY = str(RACES / "uhlig-naive.yaml"), str(RACES / "uhlig-proxy.yaml")


def _level1(path: str) -> tuple[Job, list]:
    """The job and the first level's schedules of a scenario."""
    ex = Explorer(load_scenario(path))
    root = ex.run(())
    more, _ = ex.children(root)
    return ex.job(), more


def _strip_logs(runs: list) -> list:
    for run in runs:
        if run.kind is None:
            run.log = []
    return runs


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here: every child replays anyway")
def test_forked_suffixes_are_the_runs_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units_module, "FORK_AFTER", 0)  # fork at every branch point
    job, level = _level1(PROXY)
    picked = tuple(level[::4][:8])
    unit = Unit((), picked)
    forked = run_unit(job, unit, fork=True)
    replayed = run_unit(job, unit, fork=False)
    assert forked == replayed
    scenario = load_scenario(PROXY)
    alone = [run_unit(job, Unit((), (c,)), fork=True)[0] for c in picked]  # no sibling to join
    assert alone == _strip_logs([run_schedule(scenario, None, c) for c in picked])
    assert all(r.ended == "end" and r.candidates for r in alone)
    # A level-2 unit: the parent's own path replayed, then each child forked off it.
    parent = picked[0]
    ex = Explorer(scenario)
    kids, _ = ex.children(run_schedule(scenario, None, parent))
    unit2 = Unit(parent, tuple(kids[:5]))
    assert run_unit(job, unit2, fork=True) == run_unit(job, unit2, fork=False)


def test_fork_or_not_the_same_exploration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units_module, "FORK_AFTER", 0)
    scenario = load_scenario(PROXY)
    a = Explorer(scenario, preemptions=1, fork=True).explore()
    b = Explorer(scenario, preemptions=1, fork=False).explore()
    assert a.data() == b.data() and a.exhausted
    assert (a.schedules, a.states, a.pruned) == (b.schedules, b.states, b.pruned)


def test_one_worker_or_two_the_same_report() -> None:
    scenario = load_scenario(PROXY)
    one = Explorer(scenario, preemptions=1, jobs=1).explore()
    two = Explorer(scenario, preemptions=1, jobs=2).explore()
    assert one.exhausted and two.exhausted and two.jobs == 2
    assert one.data() == two.data()
    assert (one.schedules, one.states, one.pruned) == (two.schedules, two.states, two.pruned)
    naive = load_scenario(NAIVE)
    found = [Explorer(naive, jobs=n).explore() for n in (1, 2)]
    assert found[0].failure is not None and found[0].failure.kind == "deadlock"
    assert found[0].data() == found[1].data()
    assert found[0].failure.log == found[1].failure.log


def test_units_cut_a_level_for_more_workers_without_changing_it() -> None:
    _, level = _level1(PROXY)
    for jobs in (1, 2, 3):
        cut = split_level(level, jobs)
        assert [c for u in cut for c in u.children] == level
        assert all(c[:-1] == u.parent for u in cut for c in u.children)
    assert split_level(level, 1) == split_level(level, 3)  # the pool does not cut them
    assert all(len(u.children) <= 16 for u in split_level(level, 1))
    assert split_level([()], 2) == [Unit((), ((),))]


KEYS = """
import json, sys
from kernel.scenario import load_scenario
from l4tui.explore import run_schedule
run = run_schedule(load_scenario(sys.argv[1]), None, ())
print(json.dumps([c[4] for c in run.candidates] + run.timed))
"""


def test_state_keys_are_the_same_in_any_process() -> None:
    here = run_schedule(load_scenario(PROXY), None, ())
    mine = [c[4] for c in here.candidates] + here.timed
    assert len(set(mine)) > 10
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", KEYS, PROXY],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == mine


def test_the_memory_digest_follows_every_write() -> None:
    m = Memory(1 << 20)
    m.write(0x100, 7)
    m.write(0x104, 9)
    assert m.track() == (mix(0x100, 7) + mix(0x104, 9)) % (1 << 64)
    m.write(0x100, 0)  # a zero word is no word
    m.write(0x108, 3)
    fresh = Memory(1 << 20, words=dict(m.words))
    assert m.digest == fresh.track()
    frame = m.alloc_frame()
    m.write(frame, 5)
    m.free_frame(frame)
    assert m.alloc_frame() == frame  # reused: zeroed, and the digest with it
    assert m.digest == Memory(1 << 20, words=dict(m.words)).track()


def test_a_python_exception_in_the_kernel_is_an_invariant_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(*args: object) -> object:
        raise KeyError("no such mailbox")
        yield  # a generator, as kernel paths are

    monkeypatch.setattr(kernel.xcpu, "setup", broken)
    run = Explorer(load_scenario(PROXY)).run(())
    assert (run.kind, run.ended) == ("invariant", "kernel")
    assert run.message == "the kernel raised KeyError: 'no such mailbox'"

    saved = tmp_path / "s.json"
    assert main(["explore", PROXY, "--jobs", "1", "--json", "--save", str(saved)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "invariant" and data["message"].startswith("the kernel raised")
    assert saved.exists()


def test_a_job_reads_back_as_its_scenario(tmp_path: Path) -> None:
    scenario = load_scenario(PROXY)
    job = make_job(scenario, 3)
    assert job.scenario_file == scenario.file and job.seed == 3
    assert Path(PROXY).read_text() == job.scenario_text  # the file's own text

    made = parse_scenario(Path(PROXY).read_text(), str(tmp_path / "gone.yaml"))
    again = parse_scenario(make_job(made, None).scenario_text)  # no file: its data
    assert again.threads() != () and [t.program for t in again.threads()] == [
        t.program for t in made.threads()
    ]
    assert [e.check for e in again.expect] == [e.check for e in made.expect]


def test_a_broken_invariant_is_found_though_states_are_checked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = kernel.invariants.check
    calls: list[int] = []

    def check(k: object) -> list[str]:
        calls.append(1)
        # Broken once the receiver has its message: a state only some schedules reach late.
        rcv = k.by_name["rcv"]  # type: ignore[attr-defined]
        return ["rcv got it"] if rcv.results else real(k)

    monkeypatch.setattr(kernel.invariants, "check", check)
    report = Explorer(load_scenario(PROXY), jobs=1).explore()
    assert report.failure is not None and report.failure.kind == "invariant"
    assert report.failure.message.startswith("rcv got it (at the kernel exit, cycle ")
    assert report.schedules == 1  # the timed order itself
    assert calls
