"""The search: breadth first by preemptions, level by level (issue 8; issue 15, points 4 and 6).

Level 0 is the timed order; level k+1 holds, for each run of level k in
order, its branch points after its last choice, each with one CPU that could
have gone instead, less those already scheduled from the same state with as
many preemptions left (`seen`). A level's runs go to a pool in units (one
parent and some of its children, units.py) and come back in the level's
order, and everything the search decides — the failure (the first in that
order, so one with the fewest preemptions), the children, the counts — it
decides from them in that order, here. So the report is the same whether
the runs forked or replayed, and whatever the pool and its size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kernel.scenario import Scenario
from l4tui.explore.groups import cpu_groups, group_of, word_buckets
from l4tui.explore.pool import Pool, make_pool
from l4tui.explore.units import Job, Unit, make_job, run_unit
from l4tui.explore.walk import RUN_LIMIT, Choice, Run, Shown, run_schedule

UNIT_MAX = 16  # children per unit at most: progress (and Ctrl-C's result) stays fresh


@dataclass(slots=True)
class Report:
    """What an exploration found (the keys of DESIGN.md §2 `explore --json`)."""

    scenario: str
    preemptions: int
    schedules: int = 0
    states: int = 0
    pruned: int = 0  # preemptions not run: from a state and CPU already scheduled
    exhausted: bool = False  # every schedule within the bound was run
    interrupted: bool = False  # stopped by Ctrl-C: the result so far
    preemptions_now: int = 0  # the level being explored, and how far through it
    level_done: int = 0
    level_size: int = 1
    queue: int = 1  # schedules known and not run yet
    jobs: int = 1
    failure: Run | None = None
    seconds: float = 0.0  # host time: for the human report and the benchmark, not --json

    def data(self) -> dict[str, Any]:
        f = self.failure
        return {
            "scenario": self.scenario,
            "schedules": self.schedules,
            "states": self.states,
            "pruned": self.pruned,
            "preemptions": self.preemptions,
            "exhausted": self.exhausted,
            "interrupted": self.interrupted,
            "found": f is not None,
            "kind": f.kind if f else None,
            "message": f.message if f else "",
            "schedule": [s.data() for s in f.shown] if f else [],
            "steps": f.steps if f else 0,
        }


class Explorer:
    """Runs a scenario under every schedule within the preemption bound, breadth first."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        preemptions: int = 2,
        max_schedules: int | None = None,
        run_limit: int = RUN_LIMIT,
        jobs: int | None = 1,
        pool: Pool | None = None,
        fork: bool = True,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.preemptions = preemptions
        self.max_schedules = max_schedules
        self.run_limit = run_limit
        self.jobs = jobs  # None: all cores
        self.pool = pool  # given: used and left open; else one of `jobs` is made and closed
        self.fork = fork
        self.sharers: dict[int, int] = {}  # kernel physical address -> mask of CPUs seen there
        self.seen: dict[tuple[int, int], int] = {}  # (state, CPU to go) -> preemptions left
        self.links: set[int] = set()  # masks of a CPU and the CPUs it sent an IPI to
        self.groups: tuple[int, ...] = ()  # the level's independent groups (groups.py), if several
        self.states: set[int] = set()
        self.report = Report(scenario.name, preemptions)

    def job(self) -> Job:
        return make_job(self.scenario, self.seed, self.run_limit, self.preemptions)

    # --- one schedule ----------------------------------------------------------------

    def run(self, choices: tuple[Choice, ...]) -> Run:
        """Run the scenario from the start under `choices`; its outcome and its branch points."""
        return run_schedule(self.scenario, self.seed, choices, self.run_limit)

    def children(self, run: Run) -> tuple[list[tuple[Choice, ...]], int]:
        """The schedules with one more preemption, each after the last of `run`'s.

        The words `run` saw CPUs touch are added to what the search knows
        first. A branch from a state already branched from (with as many
        preemptions left) is left out; the count of those comes back too.
        """
        sharers, seen = self.sharers, self.seen
        for addr, mask in run.sharers.items():
            sharers[addr] = sharers.get(addr, 0) | mask
        self.links |= run.links
        left = self.preemptions - len(run.choices) - 1
        if left < 0:
            return [], 0
        out, pruned = [], 0
        groups = self.groups if not run.crossed else ()
        for pos, cpu, where, mask, state in run.candidates:
            if where >= 0 and (sharers.get(where, 0) & (sharers.get(where, 0) - 1)) == 0:
                continue  # a word only one CPU ever touched: no other order can matter
            if run.crossed:
                state = None  # (named by a grouping that did not hold: no pruning by it)
            elif groups:
                # Another group's CPU going ahead reorders nothing this CPU depends on.
                own = groups[group_of(groups, cpu - 1) - 1]
                pruned += (mask & ~own).bit_count()
                mask &= own
            if state is not None:
                self.states.add(state)
            for other in range(1, mask.bit_length() + 1):
                if not mask >> (other - 1) & 1:
                    continue
                if state is not None:  # (unnamed: a word first seen shared in this level)
                    key = (state, other)
                    if seen.get(key, -1) >= left:
                        pruned += 1
                        continue
                    seen[key] = left
                out.append((*run.choices, Choice(pos, other, cpu, run.focus)))
        return out, pruned

    def _group_roots(self, job: Job, root: Run) -> list[Run]:
        """The roots to branch from: the timed order's, or one per group if its words show
        several independent groups.

        A group's root runs the scenario with that group's CPUs first (walk.Walk's
        `focus`), naming the group's states only: its children, and all their
        descendants, step the group first too, so a schedule's steps are mostly its
        own group's (the others share nothing with it) and it joins a known state
        before the other groups have run. Run here, whatever the pool (the same
        runs everywhere); not counted as schedules (the root was).
        """
        for addr, mask in root.sharers.items():
            self.sharers[addr] = self.sharers.get(addr, 0) | mask
        self.links |= root.links
        grouped = self._grouped(job)
        if not grouped.groups:
            if root.named:
                return [root]
            (again,) = run_unit(grouped, Unit((), ((),)), self.fork)  # one group: named now
            return [again]
        grouped = replace(grouped, shared=frozenset(self.sharers_known()))  # as its children's
        roots = []
        for focus in grouped.groups:
            (again,) = run_unit(grouped, Unit((), ((),), focus=focus), self.fork)
            if again.kind is not None:  # (a failure the timed order did not show: reported)
                return [again]
            roots.append(again)
        return roots

    def _grouped(self, job: Job) -> Job:
        """`job` with the CPUs' independent groups as the runs so far show them (groups.py)."""
        ncpus = self.scenario.profile.cpus
        groups = cpu_groups(ncpus, [*self.sharers.values(), *self.links])
        if len(groups) < 2:
            self.groups = ()
            return replace(job, groups=(), buckets=None)
        self.groups = groups
        return replace(job, groups=groups, buckets=word_buckets(self.sharers, groups))

    def sharers_known(self) -> list[int]:
        """The kernel words two CPUs were seen to touch."""
        return [a for a, mask in self.sharers.items() if mask & (mask - 1)]

    # --- the search --------------------------------------------------------------------

    def explore(self, progress: Callable[[Report], None] | None = None) -> Report:
        """Breadth first by preemptions, until a failure, the bound, `max_schedules` or Ctrl-C.

        Ctrl-C (KeyboardInterrupt) stops it with the result so far
        (`interrupted`); the pool's processes are ended either way.
        """
        report = self.report = Report(self.scenario.name, self.preemptions)
        start = time.perf_counter()
        pool = self.pool
        try:
            if pool is None:
                pool = make_pool(self.jobs, self.fork)
            report.jobs = pool.jobs
            self._levels(pool, report, start, progress)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            report.seconds = time.perf_counter() - start
            if pool is not None and self.pool is None:
                pool.close()
        return report

    def _levels(
        self,
        pool: Pool,
        report: Report,
        start: float,
        progress: Callable[[Report], None] | None,
    ) -> None:
        job = self.job()
        level: list[tuple[Choice, ...]] = [()]
        chains: dict[tuple[int, tuple[Choice, ...]], tuple[frozenset[int], ...]] = {}
        while level:
            cut = False
            if self.max_schedules is not None:
                budget = self.max_schedules - report.schedules
                if budget < len(level):
                    level, cut = level[: max(budget, 0)], True
                if not level:
                    return
            following: list[tuple[Choice, ...]] = []
            report.preemptions_now, report.level_size = len(level[0]), len(level)
            report.level_done = 0
            if report.schedules:  # after the root: the words known shared so far
                job = replace(job, shared=frozenset(self.sharers_known()))
                job = self._grouped(job)
            todo = split_level(level, pool.jobs, chains)
            if level == [()] and self.scenario.profile.cpus > 2:
                # More than two CPUs may fall into groups, whose own roots name their
                # states: the root names none (its words and verdict), unless one group.
                todo = [Unit((), ((),), named=False)]
            chains = {}  # the next level's: each parent's timed-order states and its ancestors'
            for unit, runs in zip(todo, pool.map(job, todo), strict=False):
                for run in runs:
                    report.schedules += 1
                    report.level_done += 1
                    if run.kind is not None:
                        report.failure = run
                        report.queue = 0
                        return
                    for parent in self._group_roots(job, run) if not run.choices else [run]:
                        if parent.kind is not None:
                            report.failure = parent
                            report.queue = 0
                            return
                        more, pruned = self.children(parent)
                        if more:
                            following.extend(more)
                            timed = frozenset(parent.timed) if not parent.crossed else frozenset()
                            chains[parent.focus, parent.choices] = (*unit.known, timed)
                        report.pruned += pruned
                    report.states = len(self.states)
                report.queue = report.level_size - report.level_done + len(following)
                if progress is not None:
                    report.seconds = time.perf_counter() - start
                    progress(report)
            if cut:
                return
            level = following
        report.exhausted = True


def split_level(
    level: list[tuple[Choice, ...]],
    jobs: int,
    chains: dict[tuple[int, tuple[Choice, ...]], tuple[frozenset[int], ...]] | None = None,
) -> list[Unit]:
    """A level's schedules as units: consecutive children of one parent, cut for `jobs` workers.

    A parent's children are cut in pieces of at most `UNIT_MAX`, so every
    worker has work and the progress line moves (each piece replays the path
    again, up to its last child; most children run from the start anyway,
    units.py). The cut does not depend on `jobs`: a child may end where an
    earlier sibling of its unit went on (units.py), so the pieces are part of
    the result.
    """
    if level == [()]:
        return [Unit((), ((),))]

    def unit(parent: tuple[Choice, ...], focus: int, group: list[tuple[Choice, ...]]) -> Unit:
        known = chains.get((focus, parent), ()) if chains else ()
        return Unit(parent, tuple(group), known, focus)

    size = UNIT_MAX  # whatever the pool: siblings join each other's states within a unit
    out: list[Unit] = []
    group: list[tuple[Choice, ...]] = []
    parent: tuple[Choice, ...] = ()
    focus = 0
    for child in level:
        # (the children of the groups' roots share the parent () but not its path)
        if not group or child[:-1] != parent or child[-1].focus != focus or len(group) >= size:
            if group:
                out.append(unit(parent, focus, group))
            parent, focus, group = child[:-1], child[-1].focus, []
        group.append(child)
    if group:
        out.append(unit(parent, focus, group))
    return out


__all__ = ["Explorer", "Report", "Shown", "split_level"]
