"""Hardware interrupts delivered as IPC from hardware threads (thesis §2.4).

"L4 installs an internal interrupt handler for each line, that translates
the interrupt into an IPC from a 'hardware thread' to the handling routine,
that waits for that interrupt (receive from hardware thread)." A thread
becomes an interrupt's handler by receiving from its hardware thread
(``recv: {from: irq3}``); the IO-APIC then routes the line to that thread's
CPU. An interrupt that finds its handler not waiting is kept pending and
delivered at the handler's next receive.

The handler runs on the CPU the line is routed to, the owner's when it last
received; an owner migrated since (§8.7) is on another CPU, whose lists and
threads only that CPU touches (design decision 1, implementation decision
3): the line is routed to the owner's new CPU and asserted again there.
Whether the owner is between a migration's delete and insert is its TCB's
`migrating` word.

The line table is kernel data in simulated memory (issue 15): per line, in a
cache line of its own, the owner's TCB address (0: none), the CPU the line is
routed to and the count of pending interrupts. The owner's CPU touches its
line's words, except when a thread on another CPU takes the line over
(`associate`) or an interrupt comes in for a line without an owner: then two
CPUs touch them, with micro-ops that move the cache lines and are choice
points of the race explorer. Counts change by `xadd` (§6, Pentium: only
reads and writes are atomic, read-modify-writes need the bus lock). A
receive reads the entries of the lines its thread took over only (the
thread's `irq_lines`, a hint its own paths keep): a thread that handles no
interrupt pays nothing, and CPUs that share no line share no word of the
table (the race explorer's independent groups).
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import memmap, sched
from kernel.ids import NIL
from kernel.thread import LOCKED_RUNNING, WAITING, WAKE_PARTNER, Message, Thread
from machine.cpu import Cpu
from machine.ops import EOI, Atomic, Op, Phase, Read, Write, kaddr

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]

IRQS = 16
VECTOR_BASE = 0x30
AREA = memmap.INTERRUPT_AREA  # the line table: a line of its own per interrupt line
STRIDE = 64
OWNER, CPU, PENDING = 0, 4, 8  # per line: owner's TCB (0: none), routed CPU, pending count
END = IRQS * STRIDE


def line_addr(irq: int, field: int = 0) -> int:
    """Kernel address of word `field` of line `irq`'s table entry."""
    return kaddr(AREA + irq * STRIDE + field)


def vector(irq: int) -> int:
    return VECTOR_BASE + irq


def associate(k: Kernel, hw: Thread, owner: Thread) -> Path:
    """`owner` receives from `hw`: route the line to the owner's CPU.

    Runs in the owner's receive path, or on the CPU an interrupt came to
    after the owner was migrated (a reroute: the owner stays the same).
    """
    irq = hw.tid.lthread - 1
    if (yield Read(line_addr(irq, OWNER))) != owner.tcb or (
        yield Read(line_addr(irq, CPU))
    ) != owner.cpu:
        yield Write(line_addr(irq, OWNER), owner.tcb)
        yield Write(line_addr(irq, CPU), owner.cpu)
        k.machine.apics.route_irq(irq, vector(irq), "fixed", 1 << (owner.cpu - 1))


def take_pending(k: Kernel, b: Thread, source: Thread | None) -> Path:
    """A pending interrupt `b` may receive now (from `source`, or any it handles), or None.

    Runs in `b`'s receive path, on `b`'s CPU.
    """
    if source is not None and source.hardware:
        irq = source.tid.lthread - 1
        if irq not in b.irq_lines:
            b.irq_lines = (*b.irq_lines, irq)  # `associate` just made it ours
        lines: tuple[int, ...] = (irq,)
    elif source is not None:
        return None
    else:
        lines = b.irq_lines
    for irq in lines:
        if (yield Read(line_addr(irq, OWNER))) != b.tcb:
            b.irq_lines = tuple(i for i in b.irq_lines if i != irq)  # taken over since
            continue
        if (yield Read(line_addr(irq, PENDING))) > 0:
            yield Atomic("xadd", line_addr(irq, PENDING), -1)
            hw = k.hardware[irq]
            b.inbox = Message(hw, (irq,))
            return hw
    return None


def _add_pending(irq: int) -> Path:
    """One more interrupt pending on line `irq`."""
    yield Atomic("xadd", line_addr(irq, PENDING), 1)


def owner_of(k: Kernel, irq: int) -> Thread | None:
    """The thread line `irq` is delivered to, read without a micro-op (for views and tests)."""
    tcb = k.machine.memory.read(AREA + irq * STRIDE + OWNER)
    return k.by_tcb.get(tcb) if tcb else None


def pending(k: Kernel, irq: int) -> int:
    """Interrupts pending on line `irq`, read without a micro-op (for views and tests)."""
    return k.machine.memory.read(AREA + irq * STRIDE + PENDING)


def handler(k: Kernel) -> Any:
    # A partial, not a closure: a checkpoint's copy must bind its own kernel.
    return functools.partial(_handle, k)


def _handle(k: Kernel, c: Cpu, vec: int) -> Path:
    return _interrupt(k, c, vec - VECTOR_BASE)


def _interrupt(k: Kernel, c: Cpu, irq: int) -> Path:
    """The kernel's handler of line `irq`: an IPC from the hardware thread to its handler."""
    yield EOI()
    yield Phase("irq.deliver")
    hw = k.hardware[irq]
    tcb = yield Read(line_addr(irq, OWNER))
    if not tcb:
        yield from _add_pending(irq)
        return
    owner = k.by_tcb[tcb]
    if owner.cpu != c.number:
        yield Phase("irq.reroute")  # the owner was migrated: its CPU takes the interrupt
        yield from associate(k, hw, owner)
        k.machine.raise_irq(irq)
        return
    state = yield Read(owner.f["thread_state"])
    partner = yield Read(owner.f["partner"])
    # A migrating owner (between B's delete and C's insert, §8.7.2) is in no CPU's
    # lists: the interrupt waits, as for an owner not receiving.
    if state != WAITING or partner not in (hw.word, NIL) or (yield Read(owner.f["migrating"])):
        yield from _add_pending(irq)
        return
    owner.inbox = Message(hw, (irq,))
    yield Write(owner.f["wake"], WAKE_PARTNER)
    k.counters.ipc += 1
    cd = k.cpus[owner.cpu - 1]
    yield from sched.make_ready(k, cd, owner, LOCKED_RUNNING)
    cur = cd.current
    if cd.preempt_off:
        return  # the interrupted path holds a spinlock: the owner runs after it
    if cur is cd.idle or (yield Read(owner.f["priority"])) > (yield Read(cur.f["priority"])):
        yield from k.switch_to(cd, owner)
