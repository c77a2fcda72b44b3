"""Shared helpers for the kernel behaviour tests (tests/test_kernel_*.py).

Scenarios are YAML text parsed with `parse_scenario` and run headless with
`kernel.system.System`, as every front end does (DESIGN.md §2). The helpers
here only build, run and read back; they assert nothing about the kernel
except where named so (`run_checked` checks the invariants at kernel exits).
"""

from __future__ import annotations

import textwrap
from typing import Any

from kernel import invariants
from kernel.scenario import Scenario, parse_scenario
from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from machine import paging
from machine.ops import Hlt, InterruptExit, Iret

#: A guard against a run that never ends (a kernel bug): far above any test's need.
STEP_BUDGET = 100_000
#: The machine line of the one-CPU scenarios.
M1 = "machine: {profile: p3-dual-450, cpus: 1}"
#: Steps between quiescence checks while stepping by hand (System.run does the same).
CHECK_EVERY = 256


def scenario(text: str, file: str = "<test>") -> Scenario:
    """Parse a scenario written as an indented YAML string."""
    return parse_scenario(textwrap.dedent(text), file)


def system(text: str, seed: int | None = None) -> System:
    return System(scenario(text), seed=seed)


def run(text: str, max_steps: int = STEP_BUDGET, **kw: Any) -> System:
    """Build and run a scenario to its end (or the step budget); returns the System."""
    s = system(text)
    s.run(max_steps=max_steps, **kw)
    return s


def results(s: System, name: str) -> list[dict[str, Any]]:
    """The syscall results of thread `name`, as `run --json` reports them."""
    return run_summary(s)["threads"][name]["results"]


def state(s: System, name: str) -> str:
    return run_summary(s)["threads"][name]["state"]


def froms(s: System, name: str) -> list[str | None]:
    """The senders of `name`'s receives, in order (its log, when it logs)."""
    return [r.get("from") for r in results(s, name)]


def log_words(s: System, name: str) -> list[int]:
    """The first word of each message `name` received (a logger's record)."""
    return [r["words"][0] for r in results(s, name) if r["ok"] and r["words"]]


def space_of(s: System, thread: str) -> Any:
    return s.kernel.by_name[thread].task.space


def translation(s: System, thread: str, vaddr: int) -> paging.Translation | None:
    """The present translation of `vaddr` in `thread`'s address space, or None."""
    sp = space_of(s, thread)
    return paging.lookup(s.machine.memory, sp.pdbr, vaddr)


def read_virtual(s: System, thread: str, vaddr: int, size: int) -> list[int | None]:
    """The words at `vaddr`.. in `thread`'s space (None for a word on an absent page)."""
    mem = s.machine.memory
    out: list[int | None] = []
    for a in range(vaddr, vaddr + size, 4):
        tr = translation(s, thread, a)
        out.append(None if tr is None else mem.read(tr.frame + a % 4096))
    return out


def write_virtual(s: System, thread: str, vaddr: int, words: list[int]) -> None:
    """Fill `thread`'s (present) pages at `vaddr` with `words`, outside simulated time."""
    mem = s.machine.memory
    for i, w in enumerate(words):
        a = vaddr + 4 * i
        tr = translation(s, thread, a)
        assert tr is not None, f"{thread}: {a:#x} is not mapped"
        mem.write(tr.frame + a % 4096, w)


def step_until(s: System, done: Any, max_steps: int = STEP_BUDGET) -> None:
    """Step `s` until `done()` holds (asserting it does within `max_steps`)."""
    for _ in range(max_steps):
        if done():
            return
        assert s.machine.step() is not None, "the machine stopped before the condition held"
    raise AssertionError("condition not reached within the step budget")


def mapping_node(s: System, thread: str, vaddr: int) -> Any:
    """The mapping database node of `vaddr` in `thread`'s space, or None."""
    return s.kernel.spaces.mapdb.lookup(space_of(s, thread).number, vaddr - vaddr % 4096)


def is_kernel_exit(op: Any) -> bool:
    """A quiescent point: the return to user mode, or the end of an interrupt handler."""
    return type(op) in (Iret, InterruptExit)


def run_checked(s: System, max_steps: int = STEP_BUDGET) -> tuple[str, int]:
    """Step `s` by hand, checking the kernel invariants after every kernel exit.

    Returns (why it stopped, kernel exits checked): "end" when nothing can run
    or the system is quiescent, "max_steps" at the budget. Raises
    AssertionError with the violations and the step at the first bad exit.
    """
    m = s.machine
    exits = 0
    since = 0
    for n in range(max_steps):
        op = m.step()
        if op is None:
            s.ended = "end"
            return "end", exits
        if is_kernel_exit(op) and s.settled():  # no other CPU half-way through a path
            exits += 1
            bad = invariants.check(s.kernel)
            assert bad == [], f"step {n} ({type(op).__name__} on cpu{m.last_cpu.number}): {bad}"
        since += 1
        if type(op) is Hlt or since >= CHECK_EVERY:
            since = 0
            if s.quiescent():
                s.ended = "deadlock" if s.wait_cycle() else "end"
                return s.ended, exits
    s.ended = "max_steps"
    return "max_steps", exits


Log = dict[str, list[tuple[str, int, int]]]


def watch(s: System, names: list[str]) -> Log:
    """Note, for each thread in `names`, (op, CPU, cycle) of every result it records."""
    m = s.machine
    inner = m.step
    threads = [s.kernel.by_name[n] for n in names]
    seen = dict.fromkeys(names, 0)
    log: Log = {n: [] for n in names}

    def step(number: int | None = None) -> Any:
        op = inner(number)
        for t in threads:
            if len(t.results) > seen[t.name]:
                for r in t.results[seen[t.name] :]:
                    log[t.name].append((r["op"], m.last_cpu.number, m.last_start // m.tpc))
                seen[t.name] = len(t.results)
        return op

    m.step = step  # type: ignore[method-assign]
    return log


# A high-priority thread that receives one message per event: its results list who sent
# what, in order (the scheduling tests observe orders through it).
LOGGER = """
          - name: logger
            threads:
              - name: log
                priority: 250
                program:
                  - loop:
                      - recv: {from: any}
"""


def _ops(s, name: str) -> list[str]:
    """The ops of `name`'s results, in order."""
    return [r["op"] for r in results(s, name)]


def _ok(r: dict, op: str, xp: bool = False) -> None:
    """`r` is a successful result of `op`, cross-processor or not as `xp` says."""
    assert r["op"] == op, r
    assert r["ok"] is True, r
    assert r["error"] is None, r
    assert r["xp"] is xp, r


def _pattern(n: int, salt: int = 0) -> list[int]:
    """`n` distinct message words (a multiplicative hash of the index): a copy that
    loses or reorders a word shows."""
    return [(0x9E3779B1 * (i + 1) + salt) & 0xFFFF_FFFF for i in range(n)]
