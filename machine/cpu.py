"""A simulated CPU: its cycle clock, mode, interrupt flag, TLB and what it is running.

What a CPU runs is a stack of frames, each a generator yielding micro-ops:
the bottom one is the code given to the CPU, an interrupt or fault pushes
its handler on top, and the handler's return pops it (x86's interrupt frames
on the kernel stack). Nested kernel paths inside one frame use ``yield from``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from machine.ops import Op
from machine.tlb import Tlb

Waiting = Literal["idle", "hlt", "icr"]
"""Why a CPU is off the run queue: nothing to run, `hlt` until an interrupt, or polling
the ICR until its IPI is accepted (§8.3.4)."""

Code = Generator[Op, Any, Any]


@dataclass(slots=True)
class Frame:
    """One generator running on a CPU and the op it yielded but has not had executed."""

    code: Code
    op: Op | None  # None once the code has ended
    kind: str = "code"  # "code" | "interrupt" | "fault"
    vector: int = -1
    saved_mode: str = "kernel"
    saved_if: bool = True
    resume: Op | None = None  # the rest of a Compute cut by an interrupt
    name: str = ""
    suspended: bool = False  # yielded SwitchContext: resumes when its context runs again


@dataclass(slots=True)
class Context:
    """A kernel stack: the frames of one thread of control (a thread, an idle loop).

    `SwitchContext` puts another context's frames on the CPU, so a kernel
    path that blocks (the thesis's ``switchTo(B)``) stays suspended on its
    thread's own stack until something switches back to it.
    """

    name: str
    frames: list[Frame] = field(default_factory=list)
    owner: Any = None  # whatever the kernel attaches (its thread)


@dataclass(slots=True)
class PendingFault:
    """A page fault raised by the last access, to be taken as the next step (CR2 and error code)."""

    addr: int
    write: bool
    reason: str  # "not present" | "read-only" | "supervisor"


@dataclass(slots=True)
class Cpu:
    """The architectural and scheduling state of one CPU (number = index + 1)."""

    index: int
    tlb: Tlb
    clock: int = 0  # ticks
    mode: str = "kernel"
    if_flag: bool = True
    sti_shadow: bool = False  # just executed sti: no interrupt before the next op
    cr3: int = 0  # 0: paging off, user addresses are physical
    context: Context = field(default_factory=lambda: Context("boot"))
    frames: list[Frame] = field(default_factory=list)  # always context.frames
    waiting: Waiting | None = "idle"  # None: runnable
    exit_pending: Frame | None = None  # a handler that returned: iret is the next step
    fault: PendingFault | None = None
    compute_from: int = 0  # start tick of the last op, if it was a Compute ...
    compute_frame: Frame | None = None  # ... run by this frame (else None)
    ticket: int = 0  # invalidates stale entries in the engine's run queue
    steps: int = 0
    stall_ticks: int = 0  # time spent waiting for the ICR
    phase: str = ""  # last Phase label passed

    def __post_init__(self) -> None:
        self.frames = self.context.frames

    @property
    def number(self) -> int:
        return self.index + 1
