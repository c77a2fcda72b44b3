"""TLB shootdown on unmap (thesis §3.1.1, §9.3, implementation decision 5).

The Pentium's TLBs are per CPU and no instruction invalidates another CPU's
entries, so an unmap must reach every TLB that may hold the translation.
"For the time being, a TLB flushing IPI is sent to all processors on an
unmap operation" (ID 5): the unmapping CPU writes the pages into the
shootdown area (one shootdown at a time, under the appendix-A spinlock),
sends the IPI to every other CPU and waits — with interrupts enabled, as a
second shooter waits for the lock, so neither misses the other's IPI — until
each has invalidated its entries and acknowledged by an atomic increment.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import memmap, xcpu
from kernel.thread import Space, Thread
from machine.cpu import Cpu
from machine.ops import (
    EOI,
    Atomic,
    Cli,
    Compute,
    Invlpg,
    LoadCR3,
    Op,
    Phase,
    Read,
    SendIPI,
    Sti,
    Write,
    kaddr,
)
from machine.spinlock import spin_trylock, spin_unlock

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]

VECTOR = 0xF8
AREA = memmap.SHOOTDOWN_AREA
LOCK, ACKS, COUNT, ENTRIES = 0, 32, 36, 64  # lock and ack in lines of their own
MAX_ENTRIES = 256
SPIN_CYCLES = 10


def shoot(k: Kernel, t: Thread, pages: list[tuple[Space, int]]) -> Path:
    """Invalidate `pages` in every other CPU's TLB and wait until all have done so.

    Two CPUs shooting at once: the one waiting for the lock takes the holder's
    IPI (interrupts enabled while it spins), or the holder would wait for its
    acknowledgement forever. The holder, waiting with interrupts enabled, is
    not switched away (`preempt_off`): a thread preempted with the lock held
    stopped every later shootdown — one on its own CPU for good (both found by
    the random kernel fuzzer).
    """
    n = len(k.machine.cpus)
    if n == 1 or not pages:
        return
    yield Phase("tlb.shootdown")
    k.counters.tlb_shootdowns += 1
    base = kaddr(AREA)
    started = t.cpu
    while not (yield from spin_trylock(base + LOCK)):
        yield from xcpu.announce(k, k.cpus[t.cpu - 1], False)  # an IPI is taken while we wait
        yield Sti()  # take the holder's shootdown while we wait
        while (yield Read(base + LOCK)) != 0:
            yield Compute(SPIN_CYCLES)
        yield Cli()
    cpu = t.cpu  # where we are now: a waiter may have been preempted, and migrated
    cd = k.cpus[cpu - 1]
    cd.preempt_off += 1
    if cpu != started:  # the unmap invalidated the CPU we left; the IPI goes there now
        c = k.machine.cpu(cpu)
        for sp, vaddr in pages:
            if c.cr3 == sp.pdbr:
                yield Invlpg(vaddr)
    entries = pages[:MAX_ENTRIES]
    for j, (sp, vaddr) in enumerate(entries):
        yield Write(base + ENTRIES + 8 * j, sp.pdbr)
        yield Write(base + ENTRIES + 8 * j + 4, vaddr)
    yield Write(base + COUNT, len(entries) if len(pages) <= MAX_ENTRIES else 0)  # 0: flush all
    yield Write(base + ACKS, 0)
    if n <= 8:
        mask, expected = ((1 << n) - 1) & ~(1 << (cpu - 1)), n - 1
    else:
        mask, expected = (1 << n) - 1, n  # above 8 CPUs: all of them, ourselves too (§3.3)
    yield SendIPI(mask, VECTOR)
    yield from xcpu.announce(k, cd, False)  # an IPI is taken while we wait
    yield Sti()  # take our own IPI above 8 CPUs, and other interrupts, while we wait
    while (yield Read(base + ACKS)) < expected:
        yield Compute(SPIN_CYCLES)
    yield Cli()
    cd.preempt_off -= 1
    yield from spin_unlock(base + LOCK)


def handler(k: Kernel) -> Any:
    return functools.partial(_flush, k)  # not a closure: checkpoints copy what it binds


def _flush(k: Kernel, c: Cpu, vector: int) -> Path:
    """The shootdown IPI: drop the listed pages of the space this CPU has loaded."""
    yield EOI()
    yield Phase("tlb.shootdown.flush")
    k.counters.tlb_remote_flushes += 1
    base = kaddr(AREA)
    count = yield Read(base + COUNT)
    if not count:
        yield LoadCR3(c.cr3)  # too many pages: flush everything
    for j in range(count):
        pdbr = yield Read(base + ENTRIES + 8 * j)
        vaddr = yield Read(base + ENTRIES + 8 * j + 4)
        if pdbr == c.cr3:
            yield Invlpg(vaddr)
    yield Atomic("xadd", base + ACKS, 1)
