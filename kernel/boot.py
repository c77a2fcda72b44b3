"""Bootstrapping an SMP (thesis §8.2): the BSP brings up the application processors.

"When the processor starts up, one processor, the bootstrap processor, wins
... At this point, the kernel sends a startup inter-processor interrupt to
all the other processors" (§8.2.1). Each application processor switches to
protected mode with the BSP's tables, then "spin[s] for [its] processor
number using an atomic exchange and add instruction" and programs its local
APIC so that its address matches that number. All meet at a barrier; then
the APs idle, waiting for threads to be migrated to them, while the BSP
starts the first user thread. A processor that never reaches the barrier
is detected: the BSP gives up waiting and reports it missing (the thesis's
kernel panics; we name the CPU and go on without it).
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import memmap
from machine.cpu import Cpu
from machine.ops import EOI, Atomic, Compute, Op, Phase, Rdtsc, Read, SendIPI, Write, kaddr

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]

VECTOR = 0xF9  # the startup IPI (a real one is an INIT/SIPI pair; one message here)
AREA = memmap.BOOT_AREA
NEXT_NUMBER, ARRIVED = 0, 64  # processor-number counter and barrier, lines of their own
BSP_INIT_CYCLES = 20_000  # protected mode, paging, the IDT, the memory pool
AP_INIT_CYCLES = 8_000  # an AP: real to protected mode with the BSP's tables
APIC_PROGRAM_CYCLES = 200
BARRIER_TIMEOUT = 200_000  # cycles the BSP waits before declaring a CPU missing
SPIN_CYCLES = 20


def bsp(k: Kernel, c: Cpu) -> Path:
    """The bootstrap processor's part; starts the threads when every AP is in."""
    base = kaddr(AREA)
    n = len(k.machine.cpus)
    yield Phase("boot.bsp_init")
    yield Compute(BSP_INIT_CYCLES)
    yield Write(base + NEXT_NUMBER, 2)  # the BSP is processor 1
    yield Write(base + ARRIVED, 1)
    if n > 1:
        yield Phase("boot.startup_ipi")
        yield SendIPI(((1 << n) - 1) & ~1 if n <= 8 else (1 << n) - 1, VECTOR)
    yield Phase("boot.barrier")
    start = yield Rdtsc()
    while (yield Read(base + ARRIVED)) < n:
        if (yield Rdtsc()) - start > BARRIER_TIMEOUT:
            arrived = yield Read(base + ARRIVED)
            yield Phase("boot.missing_cpu")
            k.boot_report["missing"] = n - arrived
            break
        yield Compute(SPIN_CYCLES)
    yield Phase("boot.done")
    k.boot_report["cycles"] = c.clock // k.machine.tpc
    k.finish_boot()


def ap_handler(k: Kernel) -> Any:
    return functools.partial(_ap, k)  # not a closure: checkpoints copy what it binds


def _ap(k: Kernel, c: Cpu, vector: int) -> Path:
    """An application processor: its number by xadd, its APIC programmed, the barrier."""
    yield EOI()
    if c.number == 1:
        return  # above 8 CPUs the startup IPI goes to all, the BSP too: not for it
    base = kaddr(AREA)
    yield Phase("boot.ap_start")
    yield Compute(AP_INIT_CYCLES)
    yield Phase("boot.ap_number")
    number = yield Atomic("xadd", base + NEXT_NUMBER, 1)
    k.boot_report.setdefault("numbers", {})[c.number] = number
    yield Compute(APIC_PROGRAM_CYCLES)  # APIC id := processor number (§8.2.1)
    yield Atomic("xadd", base + ARRIVED, 1)
    yield Phase("boot.ap_idle")  # idle until a thread is migrated here
