"""Micro-ops: what code running on a simulated CPU yields to the engine.

Kernel and user code are Python generators: ``value = yield Read(addr)``.
The engine executes each op on the hardware model, charges its cycles from
the profile, and sends the result back (DESIGN.md §1). Shared state is
touched only through these ops, so the engine sees every access.

Addresses at or above `KERNEL_BASE` are the kernel window: the upper 512 MB
of every address space map physical memory 1:1 from there (thesis §8.8), with
global 4 MB pages whose TLB entries are not modelled. Addresses below it are
user virtual addresses, translated by the CPU's TLB and page tables (§2.2).

`InterruptEntry` and `InterruptExit` are never yielded by code: the engine
inserts them when a CPU takes an interrupt or fault and when the handler
returns, so entering and leaving the kernel are steps of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KERNEL_BASE = 0xE000_0000


def kaddr(paddr: int) -> int:
    """The kernel-window address of physical address `paddr`."""
    return KERNEL_BASE + paddr


@dataclass(slots=True)
class Read:
    """Load one 32-bit word. Result: its value."""

    addr: int


@dataclass(slots=True)
class Write:
    """Store one 32-bit word. Result: None."""

    addr: int
    value: int


ATOMIC_KINDS = ("xadd", "bts", "btr", "xchg", "cmpxchg")


@dataclass(slots=True)
class Atomic:
    """A lock-prefixed read-modify-write; the line is held across it.

    Result: the old word. ``xadd`` adds `operand`; ``bts``/``btr`` set/clear
    bit `operand` (test the old bit with ``old >> operand & 1``: the carry
    flag); ``xchg`` stores `operand`; ``cmpxchg`` stores `operand` only if
    the old word equals `expected`.
    """

    kind: str
    addr: int
    operand: int = 0
    expected: int = 0


@dataclass(slots=True)
class Compute:
    """Work that touches no shared state, for `cycles` CPU cycles (may be fractional).

    An interrupt that arrives in the middle cuts it; the rest resumes after
    the handler returns.
    """

    cycles: float


@dataclass(slots=True)
class Cli:
    """Disable interrupts on this CPU."""


@dataclass(slots=True)
class Sti:
    """Enable interrupts on this CPU."""


@dataclass(slots=True)
class Hlt:
    """Halt until an interrupt is taken (needs IF set to ever wake)."""


@dataclass(slots=True)
class Rdtsc:
    """Read this CPU's cycle counter. Result: whole cycles."""


@dataclass(slots=True)
class SendIPI:
    """Write the ICR: an inter-processor interrupt (§3.3).

    `dest` is a bit mask of CPUs, bit 0 = CPU 1; above 8 CPUs it must be
    one CPU or all of them. `mode` is ``fixed`` or ``lowest`` (lowest
    priority: one of `dest` gets it).

    The CPU goes on once the ICR is written (§8.3.4: "the source processor
    can continue"). A message that finds the target's two slots full is
    rejected and resent by the sender's APIC when an EOI frees a slot; until
    then the ICR stays busy and a CPU writing it again blocks ("the source
    processor blocks resending the IPI until one slot gets free"). With
    `wait`, the CPU polls the delivery status right away: it blocks until
    every target has accepted the IPI. Result: None.
    """

    dest: int
    vector: int
    mode: str = "fixed"
    wait: bool = False


@dataclass(slots=True)
class EOI:
    """End of interrupt: retire the highest in-service vector, freeing its slot."""


@dataclass(slots=True)
class ApicRead:
    """Read a local APIC register: ``irr``, ``isr``, ``tpr``, ``id``, ``timer``.

    Result: an int (IRR/ISR are 256-bit masks, bit n = vector n; ``timer`` is
    the current count).
    """

    reg: str


@dataclass(slots=True)
class ApicWrite:
    """Write a local APIC register: ``tpr``, or the timer: ``timer`` (initial
    count in bus cycles, 0 stops it), ``timer_vector``, ``timer_periodic``."""

    reg: str
    value: int


@dataclass(slots=True)
class LoadCR3:
    """Load the page-directory base (physical): flushes this CPU's TLB."""

    pdbr: int


@dataclass(slots=True)
class Invlpg:
    """Drop the TLB entry of one user virtual address on this CPU only."""

    addr: int


@dataclass(slots=True)
class Trap:
    """Enter the kernel from user mode (a system call): costs the kernel entry."""


@dataclass(slots=True)
class Iret:
    """Return from a `Trap` to user mode: costs the kernel exit."""


@dataclass(slots=True)
class SwitchContext:
    """Switch this CPU to another kernel stack (a `machine.cpu.Context`).

    The yielding code is suspended with its context; it resumes (receiving
    None) when some CPU switches to that context again. Costs nothing by
    itself: the kernel charges its register save and restore as it sees fit.
    """

    context: Any


@dataclass(slots=True)
class Phase:
    """Mark the start of a phase of a kernel path (e.g. ``ipc.send.check_target``). Free."""

    label: str


@dataclass(slots=True)
class InterruptEntry:
    """Engine-inserted: this CPU takes interrupt `vector` (or a page fault)."""

    vector: int
    kind: str = "interrupt"  # "interrupt" | "fault"


@dataclass(slots=True)
class InterruptExit:
    """Engine-inserted: the handler returned; iret to the interrupted code."""

    vector: int


Op = (
    Read
    | Write
    | Atomic
    | Compute
    | Cli
    | Sti
    | Hlt
    | Rdtsc
    | SendIPI
    | EOI
    | ApicRead
    | ApicWrite
    | LoadCR3
    | Invlpg
    | Trap
    | Iret
    | Phase
    | SwitchContext
    | InterruptEntry
    | InterruptExit
)

PAGE_FAULT_VECTOR = 14
