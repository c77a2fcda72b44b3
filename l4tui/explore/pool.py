"""Where units run: in this process, or on a pool of worker processes (issue 15, point 6).

A `Pool` maps a level's units to their runs, in the units' order, whatever
order they finish in; the search decides everything from the runs in that
order, so the report does not depend on the pool or on its size. Three
implement it: `InlinePool` (this process, `--jobs 1`), `ProcessPool` (`--jobs
N`: N worker processes, each running `run_unit`, which forks its children)
and `l4tui.cluster.DaskPool` (`--cluster ADDRESS`).

Workers ignore SIGINT: a Ctrl-C reaches the whole process group, and the
coordinator, which keeps the result so far, ends them by `close()` (SIGTERM,
which makes a worker kill the child it is waiting for; then SIGKILL for any
that lingers). No process is left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait
from typing import Any, Protocol

from l4tui.explore.units import HAVE_FORK, Job, Unit, WorkerError, run_unit
from l4tui.explore.walk import Run
from machine.errors import ConfigError, MachineError

AHEAD = 2  # units in flight per worker: the next is there when one finishes


class Pool(Protocol):
    """Runs units; `map` yields each unit's runs in the units' order."""

    jobs: int

    def map(self, job: Job, units: Sequence[Unit]) -> Iterator[list[Run]]: ...

    def close(self) -> None: ...


def default_jobs() -> int:
    """All the cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def make_pool(jobs: int | None = None, fork: bool = True) -> Pool:
    """`jobs` workers (default: all cores): this process for one, worker processes for more."""
    n = default_jobs() if jobs is None else jobs
    if n < 1:
        raise ConfigError(f"--jobs must be at least 1, not {n}")
    return InlinePool(fork) if n == 1 else ProcessPool(n, fork)


class InlinePool:
    """One job: the units run here, one after the other (their children still fork)."""

    def __init__(self, fork: bool = True) -> None:
        self.jobs = 1
        self.fork = fork

    def map(self, job: Job, units: Sequence[Unit]) -> Iterator[list[Run]]:
        for unit in units:
            yield run_unit(job, unit, self.fork)

    def close(self) -> None:
        pass


def _worker(conn: Any, fork: bool) -> None:
    """A worker process: run the units it is sent until it is told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)  # run_unit's cleanup kills the child it waits for

    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        tag, job, unit = message
        reply: tuple[Any, str, Any]
        try:
            reply = (tag, "ok", run_unit(job, unit, fork))
        except (ConfigError, MachineError) as e:
            reply = (tag, "raise", e)  # the simulation's own errors, raised as one process would
        except Exception as e:  # the coordinator says what failed, in one line
            reply = (tag, "error", f"{type(e).__name__}: {e}")
        conn.send(reply)


class ProcessPool:
    """`jobs` worker processes (forked where the platform can), each running units."""

    def __init__(self, jobs: int, fork: bool = True) -> None:
        self.jobs = jobs
        ctx: Any = multiprocessing.get_context("fork" if HAVE_FORK else "spawn")
        self._workers: list[tuple[Any, Any]] = []
        self._busy = [0] * jobs  # units sent to each worker and not answered yet
        self._batch = 0
        try:
            for _ in range(jobs):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(theirs, fork), daemon=True)
                proc.start()
                theirs.close()
                self._workers.append((proc, mine))
        except BaseException:
            self.close()
            raise

    def map(self, job: Job, units: Sequence[Unit]) -> Iterator[list[Run]]:
        self._batch += 1
        batch, busy = self._batch, self._busy
        conns = [conn for _, conn in self._workers]
        owner = {conn: w for w, conn in enumerate(conns)}
        done: dict[int, list[Run]] = {}
        sent = 0
        for want in range(len(units)):
            while want not in done:
                for w, conn in enumerate(conns):  # keep every worker busy
                    while busy[w] < AHEAD and sent < len(units):
                        conn.send(((batch, sent), job, units[sent]))
                        busy[w] += 1
                        sent += 1
                ready: list[Any] = wait([c for w, c in enumerate(conns) if busy[w]])
                for conn in ready:
                    try:
                        (got, index), status, value = conn.recv()
                    except EOFError:
                        raise WorkerError("a worker process died") from None
                    busy[owner[conn]] -= 1
                    if got != batch:
                        continue  # a unit of a search given up (a failure was found first)
                    if status == "raise":
                        raise value
                    if status != "ok":
                        raise WorkerError(f"a worker failed on a unit: {value}")
                    done[index] = value
            yield done.pop(want)

    def close(self) -> None:
        """End the workers (and the children they wait for); none is left behind."""
        workers, self._workers = self._workers, []
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: it kills its child, then exits
        for proc, conn in workers:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()

    def __del__(self) -> None:
        if self._workers:
            self.close()
