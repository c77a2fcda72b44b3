"""What each micro-op does to the hardware and what it costs (DESIGN.md §1).

One function per op kind: ``handler(machine, cpu, op) -> (result, ticks)``.
The engine loop (machine.py) picks the CPU and the op; these functions only
apply it. Memory ops translate user addresses through the TLB and, on a
miss, walk the page tables through the caches (§3.1); a fault is left on
the CPU for the engine to deliver as the next step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from machine.cpu import Cpu, PendingFault
from machine.errors import MachineError
from machine.memory import WORD_MASK
from machine.ops import (
    ATOMIC_KINDS,
    EOI,
    KERNEL_BASE,
    ApicRead,
    ApicWrite,
    Atomic,
    Cli,
    Compute,
    Hlt,
    InterruptEntry,
    InterruptExit,
    Invlpg,
    Iret,
    LoadCR3,
    Phase,
    Rdtsc,
    Read,
    SendIPI,
    Sti,
    SwitchContext,
    Trap,
    Write,
)
from machine.paging import (
    FRAME_MASK,
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_USER,
    PTE_WRITABLE,
    pde_addr,
    pte_addr,
)

if TYPE_CHECKING:
    from machine.machine import Machine

Handler = Callable[["Machine", Cpu, Any], tuple[Any, int]]
FAULTED = object()  # result of an access that raised a page fault


def translate(m: Machine, c: Cpu, addr: int, write: bool) -> tuple[int, int]:
    """Physical address of `addr` for CPU `c` and the ticks spent translating it.

    Returns ``(-1, ticks)`` after leaving a PendingFault on the CPU.
    """
    if addr >= KERNEL_BASE:
        if c.mode != "kernel":
            c.fault = PendingFault(addr, write, "supervisor")
            return -1, 0
        return addr - KERNEL_BASE, 0
    if not c.cr3:
        return addr, 0
    entry = c.tlb.lookup(addr)
    if entry is not None and (not write or entry.dirty):
        return entry.frame | (addr & 0xFFF), 0
    # A TLB miss — or the first write through an entry loaded clean: the MMU
    # walks again to check the permission and set the PTE's dirty bit (x86).
    now = c.clock
    cost = 0
    coh, mem, i = m.coherence, m.memory, c.index
    pda = pde_addr(c.cr3, addr)
    cost += coh.read(i, pda, now)
    pde = mem.read(pda)
    if not pde & PTE_PRESENT:
        c.fault = PendingFault(addr, write, "not present")
        return -1, cost
    pta = pte_addr(pde, addr)
    cost += coh.read(i, pta, now + cost)
    pte = mem.read(pta)
    if not pte & PTE_PRESENT:
        c.fault = PendingFault(addr, write, "not present")
        return -1, cost
    if write and not pte & PTE_WRITABLE:
        c.fault = PendingFault(addr, write, "read-only")
        return -1, cost
    if c.mode == "user" and not pte & PTE_USER:
        c.fault = PendingFault(addr, write, "supervisor")
        return -1, cost
    new = pte | PTE_ACCESSED | (PTE_DIRTY if write else 0)
    if new != pte:  # the MMU writes the accessed/dirty bits back (a real cache-line write)
        cost += coh.write(i, pta, now + cost)
        mem.write(pta, new)
    c.tlb.insert(addr, pte & FRAME_MASK, bool(pte & PTE_WRITABLE), bool(new & PTE_DIRTY))
    return (pte & FRAME_MASK) | (addr & 0xFFF), cost


def _physical(m: Machine, c: Cpu, addr: int, write: bool) -> tuple[int, int]:
    if addr & 3:
        raise MachineError(f"unaligned word access at {addr:#x}")
    paddr, cost = translate(m, c, addr, write)
    if paddr >= 0 and paddr >= m.memory.size:
        raise MachineError(f"address {addr:#x} is outside physical memory")
    return paddr, cost


def do_read(m: Machine, c: Cpu, op: Read) -> tuple[Any, int]:
    addr = op.addr
    if addr >= KERNEL_BASE and c.mode == "kernel" and not addr & 3:
        paddr = addr - KERNEL_BASE  # the common kernel case, without the general path
        if paddr < m.memory.size:
            return m.memory.words.get(paddr, 0), m.coherence.read(c.index, paddr, c.clock)
    paddr, cost = _physical(m, c, addr, False)
    if paddr < 0:
        return FAULTED, cost
    cost += m.coherence.read(c.index, paddr, c.clock + cost)
    return m.memory.read(paddr), cost


def do_write(m: Machine, c: Cpu, op: Write) -> tuple[Any, int]:
    paddr, cost = _physical(m, c, op.addr, True)
    if paddr < 0:
        return FAULTED, cost
    cost += m.coherence.write(c.index, paddr, c.clock + cost)
    m.memory.write(paddr, op.value)
    return None, cost


def do_atomic(m: Machine, c: Cpu, op: Atomic) -> tuple[Any, int]:
    if op.kind not in ATOMIC_KINDS:
        raise MachineError(f"atomic op must be one of {', '.join(ATOMIC_KINDS)}, not {op.kind!r}")
    paddr, cost = _physical(m, c, op.addr, True)
    if paddr < 0:
        return FAULTED, cost
    cost += m.coherence.locked(c.index, paddr, c.clock + cost)
    old = m.memory.read(paddr)
    kind = op.kind
    if kind == "xadd":
        new = old + op.operand
    elif kind == "bts":
        new = old | (1 << op.operand)
    elif kind == "btr":
        new = old & ~(1 << op.operand)
    elif kind == "xchg":
        new = op.operand
    else:  # cmpxchg
        new = op.operand if old == op.expected else old
    m.memory.write(paddr, new & WORD_MASK)
    return old, cost


def do_compute(m: Machine, c: Cpu, op: Compute) -> tuple[Any, int]:
    if op.cycles < 0:
        raise MachineError(f"compute needs a non-negative cycle count, not {op.cycles}")
    c.compute_from = c.clock
    c.compute_frame = c.frames[-1] if c.frames else None
    return None, round(op.cycles * m.tpc)


def do_cli(m: Machine, c: Cpu, op: Cli) -> tuple[Any, int]:
    c.if_flag = False
    return None, m.t_cli


def do_sti(m: Machine, c: Cpu, op: Sti) -> tuple[Any, int]:
    c.if_flag = True
    # The interrupt shadow: interrupts are recognised only after the next
    # instruction, so `sti; hlt` cannot lose a wake-up between the two.
    c.sti_shadow = True
    return None, m.t_sti


def do_hlt(m: Machine, c: Cpu, op: Hlt) -> tuple[Any, int]:
    if c.if_flag and m.apics.pending_vector(c.index) is not None:
        return None, 0  # an interrupt is already pending: it ends the halt at once
    c.waiting = "hlt"
    return None, 0


def do_rdtsc(m: Machine, c: Cpu, op: Rdtsc) -> tuple[Any, int]:
    return c.clock // m.tpc, m.t_rdtsc


def do_send_ipi(m: Machine, c: Cpu, op: SendIPI) -> tuple[Any, int]:
    cost = m.apics.send_ipi(c.index, op.dest, op.vector, op.mode, c.clock)
    if op.wait and m.apics.apics[c.index].outgoing is not None:
        c.waiting = "icr"  # polling the delivery status until the IPI is accepted
    return None, cost


def do_eoi(m: Machine, c: Cpu, op: EOI) -> tuple[Any, int]:
    return None, m.apics.eoi(c.index, c.clock)


def do_apic_read(m: Machine, c: Cpu, op: ApicRead) -> tuple[Any, int]:
    return m.apics.read(c.index, op.reg, c.clock), m.apics.t_read


def do_apic_write(m: Machine, c: Cpu, op: ApicWrite) -> tuple[Any, int]:
    m.apics.write(c.index, op.reg, op.value, c.clock)
    return None, m.apics.t_read


def do_load_cr3(m: Machine, c: Cpu, op: LoadCR3) -> tuple[Any, int]:
    if op.pdbr & 0xFFF or not 0 <= op.pdbr < m.memory.size:
        raise MachineError(f"CR3 must be a page-aligned physical address, not {op.pdbr:#x}")
    c.cr3 = op.pdbr
    c.tlb.flush()
    return None, m.t_cr3


def do_invlpg(m: Machine, c: Cpu, op: Invlpg) -> tuple[Any, int]:
    c.tlb.invalidate(op.addr)
    return None, m.t_invlpg


def do_trap(m: Machine, c: Cpu, op: Trap) -> tuple[Any, int]:
    if c.mode != "user":
        raise MachineError(f"CPU {c.number}: trap into the kernel from kernel mode")
    c.mode = "kernel"
    c.if_flag = False  # L4 enters through an interrupt gate
    return None, m.t_entry


def do_iret(m: Machine, c: Cpu, op: Iret) -> tuple[Any, int]:
    if c.mode != "kernel":
        raise MachineError(f"CPU {c.number}: iret from user mode")
    c.mode = "user"
    c.if_flag = True
    return None, m.t_exit


def do_phase(m: Machine, c: Cpu, op: Phase) -> tuple[Any, int]:
    c.phase = op.label
    return None, 0


def do_switch(m: Machine, c: Cpu, op: SwitchContext) -> tuple[Any, int]:
    return None, 0  # the stacks are exchanged by the engine (Machine._advance)


def do_entry(m: Machine, c: Cpu, op: InterruptEntry) -> tuple[Any, int]:
    # The frame itself is pushed by the engine; an interrupt in the kernel changes no ring.
    return None, m.t_entry if c.mode == "user" else m.t_entry_k


def do_exit(m: Machine, c: Cpu, op: InterruptExit) -> tuple[Any, int]:
    frame = c.exit_pending  # set while an exit is pending (Machine._next_op)
    return None, m.t_exit if frame is None or frame.saved_mode == "user" else m.t_exit_k


HANDLERS: dict[type, Handler] = {
    Read: do_read,
    Write: do_write,
    Atomic: do_atomic,
    Compute: do_compute,
    Cli: do_cli,
    Sti: do_sti,
    Hlt: do_hlt,
    Rdtsc: do_rdtsc,
    SendIPI: do_send_ipi,
    EOI: do_eoi,
    ApicRead: do_apic_read,
    ApicWrite: do_apic_write,
    LoadCR3: do_load_cr3,
    Invlpg: do_invlpg,
    Trap: do_trap,
    Iret: do_iret,
    Phase: do_phase,
    SwitchContext: do_switch,
    InterruptEntry: do_entry,
    InterruptExit: do_exit,
}
