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
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import sched
from kernel.ids import NIL
from kernel.thread import LOCKED_RUNNING, WAITING, WAKE_PARTNER, Message, Thread
from machine.cpu import Cpu
from machine.ops import EOI, Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]

IRQS = 16
VECTOR_BASE = 0x30


def vector(irq: int) -> int:
    return VECTOR_BASE + irq


def associate(k: Kernel, hw: Thread, owner: Thread) -> None:
    """`owner` receives from `hw`: route the line to the owner's CPU."""
    irq = hw.tid.lthread - 1
    if k.irq_owner.get(irq) is not owner or k.irq_cpu.get(irq) != owner.cpu:
        k.irq_owner[irq] = owner
        k.irq_cpu[irq] = owner.cpu
        k.machine.apics.route_irq(irq, vector(irq), "fixed", 1 << (owner.cpu - 1))


def take_pending(k: Kernel, b: Thread, source: Thread | None) -> Thread | None:
    """A pending interrupt `b` may receive now (from `source`, or any it handles)."""
    for irq, count in k.irq_pending.items():
        if count and k.irq_owner.get(irq) is b:
            hw = k.hardware[irq]
            if source is None or source is hw:
                k.irq_pending[irq] -= 1
                b.inbox = Message(hw, (irq,))
                return hw
    return None


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
    owner = k.irq_owner.get(irq)
    if owner is None:
        k.irq_pending[irq] = k.irq_pending.get(irq, 0) + 1
        return
    if owner.cpu != c.number:
        yield Phase("irq.reroute")  # the owner was migrated: its CPU takes the interrupt
        associate(k, hw, owner)
        k.machine.raise_irq(irq)
        return
    state = yield Read(owner.f["thread_state"])
    partner = yield Read(owner.f["partner"])
    # A migrating owner (between B's delete and C's insert, §8.7.2) is in no CPU's
    # lists: the interrupt waits, as for an owner not receiving.
    if state != WAITING or partner not in (hw.word, NIL) or (yield Read(owner.f["migrating"])):
        k.irq_pending[irq] = k.irq_pending.get(irq, 0) + 1
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
