"""Helpers of the APIC tests: a machine with no kernel, handlers that record
what arrived where and when, and the thesis's delivery time (thesis §3.3).

The machine runs bare micro-op programs: a test installs `Recorder` handlers
for its vectors, and `program` feeds ops to a CPU one at a time.
"""

from __future__ import annotations

from typing import Any

from machine import Machine, load_profile
from machine.ops import EOI, ApicWrite, Compute

PROFILE = load_profile("p3-dual-450")


def machine(cpus: int = 2, seed: int = 1) -> Machine:
    return Machine(PROFILE, seed=seed, cpus=cpus)


class Recorder:
    """Vector handlers that record (cpu number, vector, tick the handler starts) and EOI."""

    def __init__(self, m: Machine, *vectors: int, work: float = 0) -> None:
        self.m = m
        self.log: list[tuple[int, int, int]] = []
        self.work = work
        for v in vectors:
            m.vector_handlers[v] = self.handler

    def handler(self, cpu: Any, vector: int) -> Any:
        self.log.append((cpu.number, vector, cpu.clock))
        if self.work:
            yield Compute(self.work)
        yield EOI()

    @property
    def cpus(self) -> list[int]:
        return [c for c, _, _ in self.log]


def program(*ops: Any) -> Any:
    """Code that yields `ops` in order (a plain loop: results are sent back to it)."""
    for op in ops:  # noqa: UP028 - `yield from` a tuple cannot take a sent result
        yield op


def delivery_ticks(m: Machine, mode: str = "fixed") -> int:
    """Ticks from the start of SendIPI to its arrival at an idle APIC bus."""
    a = m.apics
    return a.t_icr + a.t_state + (a.t_lowest if mode == "lowest" else a.t_fixed)


def set_tprs(m: Machine, tprs: dict[int, int]) -> None:
    """Set the task priority register of each CPU in `tprs` (cpu -> TPR)."""
    for cpu, tpr in tprs.items():
        m.start(cpu, program(ApicWrite("tpr", tpr)))
    m.run()
