"""Units of exploration: one parent schedule's path, replayed once, forked at each child (issue 15).

The search (search.py) is breadth first by preemptions; level k+1 holds the
children of level k's runs. A `Unit` is one parent schedule and some of its
children, which all share the parent's path up to their own branch points.
`run_unit` replays that path once and at each child's position `os.fork()`s:
the child process takes its one new choice, runs its suffix to the end and
sends its `Run` back over a pipe (pickled), then leaves by `os._exit`; the
parent goes on along the path. So a schedule costs its new suffix, not its
whole length — the fork is the checkpoint (as gdb's `checkpoint` and rr do),
since the kernel's paths are generators, which cannot be copied. A child
whose branch point is near the start (`FORK_AFTER`) is cheaper to run from
the start than to fork, and where `os.fork` does not exist every child runs
from the start: the same `Run`s either way (tests/test_explore_units.py).
Either way the path before the branch point is not checked again (its
parent's run checked the invariants along it) and notes no branch points.

**The root** (level 0, the timed order) is the unit `Unit((), ((),))`: a child
equal to its parent is run whole.

Everything a worker needs is in the `Job` (the scenario's text, the seed, the
limits): small and picklable, so a local process pool and a Dask cluster
(l4tui/cluster.py) run the same `run_unit`. A `Run` comes back without its
input log unless it failed (only a failure's log is ever used): that is most
of its size.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import signal
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from kernel.scenario import Scenario, parse_scenario
from l4tui.explore.walk import RUN_LIMIT, Choice, Run, Walk, run_schedule

# A branch point before this many micro-ops runs from the start instead of forked: on the
# 2-core host of issue 15 a fork, and the copy-on-write faults of the child's run (CPython
# writes reference counts all over the heap), cost as much as replaying about 1,500 micro-ops
# of path without checks or branch points (measured for issue 15: see its report).
# With more CPUs a fresh machine costs more to build (its idle threads, 15 ms at 8 CPUs
# against 4 at 2) and each step more (28 us against 13), so the threshold falls with the
# CPUs: FORK_AFTER * 2 / CPUs (issue 15, point 5).
FORK_AFTER = 1_500
HAVE_FORK = hasattr(os, "fork")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to run units: picklable and small."""

    scenario_text: str  # YAML (or JSON) the one scenario loader reads
    scenario_file: str | None  # its name in messages
    seed: int | None
    run_limit: int = RUN_LIMIT
    preemptions: int = 2
    # kernel words two CPUs were seen to touch before this level (None: none known yet, the
    # root): a branch point at another kernel word gets no state key (search.py)
    shared: frozenset[int] | None = None
    # independent groups of CPUs (masks, groups.py) and each kernel word seen -> its group's
    # bucket (1-based): states are named by group; () and None with one group
    groups: tuple[int, ...] = ()
    buckets: dict[int, int] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Unit:
    """One parent schedule and the children to run off its path (each one choice longer)."""

    parent: tuple[Choice, ...]
    children: tuple[tuple[Choice, ...], ...]
    # the timed-order states of the parent's run and its ancestors' (Run.timed): a child
    # that gets to one of them ends there, "joined" (search.py)
    known: tuple[frozenset[int], ...] = ()
    # the independent group whose CPUs step first (walk.Choice.focus): the parent's, which
    # its choices carry; a root run (no choices) takes it from here
    focus: int = 0
    named: bool = True  # the root unnamed: its words and verdict only (walk.Walk)


class WorkerError(RuntimeError):
    """A child or worker process failed for a reason of the explorer's own (not the kernel's)."""


_SCENARIOS: dict[tuple[str, str | None], Scenario] = {}


def make_job(
    scenario: Scenario, seed: int | None, run_limit: int = RUN_LIMIT, preemptions: int = 2
) -> Job:
    """The job for `scenario`: its file's text when that reads back the same, else its data."""
    text = None
    path = Path(scenario.file) if scenario.file else None
    if path is not None and path.is_file():
        try:
            candidate = path.read_text(encoding="utf-8")
            if parse_scenario(candidate, scenario.file) == scenario:
                text = candidate  # the same positions in messages as the original
        except Exception:  # changed or unreadable since: use the data
            text = None
    if text is None:
        text = json.dumps(scenario.source.data)  # JSON is YAML
    job = Job(text, scenario.file, seed, run_limit, preemptions)
    _SCENARIOS[job.scenario_text, job.scenario_file] = scenario  # this process: no re-parse
    return job


def job_scenario(job: Job) -> Scenario:
    """The job's scenario, parsed once per process."""
    key = (job.scenario_text, job.scenario_file)
    scenario = _SCENARIOS.get(key)
    if scenario is None:
        if len(_SCENARIOS) > 8:
            _SCENARIOS.clear()
        scenario = _SCENARIOS[key] = parse_scenario(job.scenario_text, job.scenario_file or "<job>")
    return scenario


def run_unit(job: Job, unit: Unit, fork: bool = True) -> list[Run]:
    """One `Run` per child of `unit`, in its order (see the module docstring).

    The children run in the order of their branch points (the unit's order);
    each may join the timed-order states of the earlier ones that did not fail
    as well as the ancestors' (`Unit.known`): a sibling's continuation from a
    state, with as many preemptions left, covers this one's. The units of a
    level do not depend on the pool (search.py), so neither does this. After
    a failure the rest are not run (`ended` "skipped"): the search stops at
    the first failure in the level's order.
    """
    scenario = job_scenario(job)
    parent, children, known = unit.parent, unit.children, unit.known
    out: list[Run] = [Run(c) for c in children]
    walk: Walk | None = None
    siblings: set[int] = set()
    order = sorted(range(len(children)), key=lambda i: children[i][-1].at if children[i] else -1)
    in_order = order == list(range(len(children)))  # as the search makes units
    fork_after = FORK_AFTER * 2 // max(2, scenario.profile.cpus)
    for i in order:
        child = children[i]
        knows = (*known, frozenset(siblings)) if siblings else known
        if len(child) != len(parent) + 1 or child[: len(parent)] != parent:
            if child == parent:  # the root: the parent itself
                out[i] = _from_start(job, scenario, child, (), unit.focus, unit.named)
                continue
            raise WorkerError(f"schedule {child} is not a child of {parent}")
        choice = child[-1]
        if parent and choice.at <= parent[-1].at:
            raise WorkerError(f"schedule {child} branches before its parent's last choice")
        if not (fork and HAVE_FORK) or choice.at < fork_after:
            run = _from_start(job, scenario, child, knows)
        else:
            if walk is None:
                walk = Walk(
                    scenario,
                    job.seed,
                    parent,
                    job.run_limit,
                    known,
                    job.shared,
                    groups=job.groups,
                    buckets=job.buckets,
                    focus=choice.focus,
                )
            if walk.go(choice.at, record=False):
                # The path ended before the branch point (not one of its own): from the start.
                run = _from_start(job, scenario, child, knows)
            else:
                walk.known, walk.leaf = knows, len(child) >= job.preemptions
                run = _fork(walk, choice)
        out[i] = run
        if run.kind is None and not run.crossed:
            siblings.update(run.timed)
        elif in_order:
            # The search stops at the first failure in the level's order: the rest of the
            # unit would never be looked at (one may be a livelock run to the limit).
            for j in order[order.index(i) + 1 :]:
                out[j].ended = "skipped"
            break
    return [_strip(job, run) for run in out]


def _from_start(
    job: Job,
    scenario: Scenario,
    choices: tuple[Choice, ...],
    known: tuple[frozenset[int], ...],
    focus: int = 0,
    named: bool = True,
) -> Run:
    checked = choices[-1].at if choices else 0  # the parent's path was checked when it ran
    leaf = len(choices) >= job.preemptions
    return run_schedule(
        scenario,
        job.seed,
        choices,
        job.run_limit,
        known,
        job.shared,
        checked,
        leaf,
        job.groups,
        job.buckets,
        focus,
        named,
    )


def _strip(job: Job, run: Run) -> Run:
    """What the search uses of a run: a failure's log, and branch points if it may branch."""
    if run.kind is None:
        run.log = []
    if len(run.choices) >= job.preemptions:
        run.candidates, run.timed = [], []  # the bound: it has no children
    return run


def _unlogged(run: Run) -> Run:
    if run.kind is None:
        run.log = []  # only a failure's input log is ever used
    return run


def _fork(walk: Walk, choice: Choice) -> Run:
    """Run `walk` on from here with one more choice, in a child process; its `Run`."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, write the outcome, leave without any cleanup of the parent's
        try:
            os.close(read)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends it if it must
            gc.disable()  # a short life: a collection would only copy pages of the parent's
            walk.branch(choice)
            walk.go()
            data = pickle.dumps(("ok", _unlogged(walk.out)), pickle.HIGHEST_PROTOCOL)
        except BaseException as e:  # reported to the parent, whatever it is
            data = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(write, view) :]
        finally:
            os._exit(0)
    os.close(write)
    chunks: list[bytes] = []
    done = False
    try:
        while True:
            chunk = os.read(read, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        done = True
    finally:
        os.close(read)
        if not done:  # interrupted: no process is left behind
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    try:
        status, value = pickle.loads(b"".join(chunks))
    except Exception:  # it died before it could say anything
        raise WorkerError(f"the process running schedule at {choice} died") from None
    if status != "ok":
        raise WorkerError(f"the process running the schedule at {choice} failed: {value}")
    return value
