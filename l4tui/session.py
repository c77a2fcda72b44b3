"""The debugger session: one machine and kernel, stepped and inspected (DESIGN.md §1 l4tui/).

A `Session` owns a `System` built from a scenario, the breakpoints and the
focus, and answers the views every front end shows as plain data. It
imports no UI library: the line console and the TUI drive the same object.
Stepping goes through `System.advance`, so a session and `l4tui run` agree
on when a run is over.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from kernel.scenario import Scenario
from kernel.system import System
from machine.ops import Phase

LIMIT = 5_000_000  # micro-ops a single continue may take before it pauses


@dataclass(frozen=True, slots=True)
class CpuView:
    """Where one CPU is."""

    number: int
    cycle: int
    thread: str
    mode: str
    phase: str
    halted: bool


@dataclass(frozen=True, slots=True)
class ThreadView:
    """One thread, as `info threads` shows it."""

    name: str
    id: str
    cpu: int
    state: str
    priority: int
    partner: str
    results: int


@dataclass(slots=True)
class Breakpoint:
    number: int
    glob: str
    hits: int = 0


class Session:
    """A scenario being debugged."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.system = System(scenario, seed=seed)
        self.breakpoints: list[Breakpoint] = []
        self._next_bp = 1
        self.focus_cpu = 1
        self.focus_thread: str | None = None
        self.stop_reason = "start"

    # --- stepping ------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.system.ended is not None

    def _advance(self) -> Any:
        if self.ended:
            return None
        op = self.system.advance()
        if op is None:
            self.stop_reason = f"run ended: {self.system.ended}"
        return op

    def stepi(self, n: int = 1) -> str:
        for _ in range(n):
            if self._advance() is None:
                return self.stop_reason
        self.stop_reason = "stepped"
        return self.stop_reason

    def step(self, n: int = 1) -> str:
        """Run until `n` phase labels have started (a phase step)."""
        seen = 0
        while seen < n:
            op = self._advance()
            if op is None:
                return self.stop_reason
            if type(op) is Phase:
                seen += 1
        self.stop_reason = f"phase {self.system.machine.last_op.label}"
        return self.stop_reason

    def cont(self, limit: int = LIMIT) -> str:
        for _ in range(limit):
            op = self._advance()
            if op is None:
                return self.stop_reason
            if type(op) is Phase:
                for bp in self.breakpoints:
                    if fnmatch.fnmatchcase(op.label, bp.glob):
                        bp.hits += 1
                        cpu = self.system.machine.last_cpu.number
                        self.stop_reason = f"breakpoint {bp.number}: {op.label} on cpu{cpu}"
                        return self.stop_reason
        self.stop_reason = f"paused after {limit} micro-ops"
        return self.stop_reason

    def run_cycles(self, cycles: int) -> str:
        m = self.system.machine
        limit = m.now + m.ticks(cycles)
        while True:
            got = m.peek()
            if got is None or got[0].clock >= limit:
                self.stop_reason = f"ran {cycles} cycles"
                return self.stop_reason
            if self._advance() is None:
                return self.stop_reason

    def set_policy(self, policy: str) -> None:
        self.system.machine.set_policy(policy)

    # --- breakpoints -----------------------------------------------------------------

    def add_break(self, glob: str) -> Breakpoint:
        bp = Breakpoint(self._next_bp, glob)
        self._next_bp += 1
        self.breakpoints.append(bp)
        return bp

    def delete_break(self, number: int | None) -> int:
        before = len(self.breakpoints)
        keep = [] if number is None else [b for b in self.breakpoints if b.number != number]
        self.breakpoints = keep
        return before - len(self.breakpoints)

    # --- views -------------------------------------------------------------------------

    def cpus(self) -> list[CpuView]:
        k, m = self.system.kernel, self.system.machine
        out = []
        for cd in k.cpus:
            c = m.cpu(cd.number)
            name = "idle" if cd.current is cd.idle else cd.current.name
            out.append(
                CpuView(
                    cd.number, c.clock // m.tpc, name, c.mode, c.phase or "-", c.waiting is not None
                )
            )
        return out

    def threads(self) -> list[ThreadView]:
        k = self.system.kernel
        out = []
        for spec in self.scenario.threads():
            t = k.by_name[spec.name]
            partner = k.by_word(k.field(t, "partner"))
            out.append(
                ThreadView(
                    t.name,
                    str(t.tid),
                    t.cpu,
                    k.state(t),
                    k.field(t, "priority"),
                    partner.name if partner is not None else "-",
                    len(t.results),
                )
            )
        return out

    def ready(self) -> dict[int, list[str]]:
        return {cd.number: self.system.ready_list(cd) for cd in self.system.kernel.cpus}
