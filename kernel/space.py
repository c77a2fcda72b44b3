"""Address spaces: tasks, sigma0's space, page tables, map/grant/unmap (§2.2, §8.8).

Each task has a two-level page table in simulated memory (machine/paging.py)
and a number in the mapping database (mapdb.py). sigma0 owns every free frame
(§2.2: "we construct an initial address space called sigma 0 and establish a
mapping to all available frames ... by hand"). Page faults, and the pagers
that answer them by IPC, are pager.py's; the long IPC's copy through the comm
space (§8.3.2, §8.8.2) is transfer.py's, on the page tables kept here.

Map and grant copy page-table entries into the receiver's window and record
the mapping; unmap walks the mapping database and edits every derived entry,
invalidating the local TLB (other CPUs' TLBs are the shootdown's business).
The database is kernel data in simulated memory (mapdb.py); each of these
holds its lock while it changes the database and the page-table entries
that follow from it (§6: mapping data "has to be protected against
cross-processor access"), and drops it before anything that waits for
another CPU (the receiver's buffers, the shootdown of §3.1.1).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import mapdb, sched, shootdown
from kernel.errors import IpcError
from kernel.mapdb import MapDbError
from kernel.mapdb_direct import MappingDb
from kernel.memmap import (
    KIP_FRAME,
    KIP_VADDR,
    UTCB_CPU,
    UTCB_PAGES,
    UTCB_SIZE,
    UTCB_VADDR,
)
from kernel.program import Fpage, ProgramCounter, ServeFaults, TaskNew, Unmap, result
from kernel.thread import (
    RUNNING,
    Space,
    Task,
    Thread,
    space_of,
)
from machine import paging
from machine.memory import PAGE_SIZE, Memory
from machine.ops import Compute, Invlpg, Op, Phase, Read, Write, kaddr

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]

MR_OFFSET = 16  # message registers after the UTCB header
# Buffer registers (§8.9's UTCB): the receive window (address, size), the number of
# string buffers, then each buffer's (address, size). Written only in the naive design.
BR_OFFSET = 256
MAX_BUFFERS = (UTCB_SIZE - BR_OFFSET - 12) // 8
COMM_BASE = 0xC000_0000  # per CPU two 4 MB slots, between user space and the kernel window
COMM_SIZE = 8 << 20
COMM_PDE = COMM_BASE >> 22
SIGMA0_TASK = 2
PT_ALLOC_CYCLES = 200  # taking a zeroed frame from the kernel pool for a page table


class Spaces:
    """All address spaces and the mapping database."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.mapdb = MappingDb(k.machine.memory)  # the database in memory, for views
        self.spaces: list[Space] = []

    def new_space(self, name: str) -> Space:
        mem = self.k.machine.memory
        sp = Space(len(self.spaces) + 1, paging.new_directory(mem), name)
        self.spaces.append(sp)
        return sp

    def create_task_space(self, task: Task) -> Space:
        """A fresh space for `task`, with the kernel info page and its UTCBs mapped."""
        mem = self.k.machine.memory
        sp = self.new_space(task.name)
        task.space = sp
        paging.map_page(mem, sp.pdbr, KIP_VADDR, KIP_FRAME, writable=False)
        for i in range(UTCB_PAGES):
            frame = mem.alloc_frame()
            if i == 0:
                task.utcb_frame = frame
            paging.map_page(mem, sp.pdbr, UTCB_VADDR + i * PAGE_SIZE, frame)
        return sp

    def name_of(self, number: int) -> str:
        return self.spaces[number - 1].name

    def create_sigma0(self) -> Thread:
        """sigma0, the root pager, as thread 2.1 on CPU 1 (§2.2)."""
        k = self.k
        task = Task("sigma0", SIGMA0_TASK)
        k.tasks.append(task)
        self.create_task_space(task)
        t = k.add_thread(task, "sigma0", (), cpu=1, priority=255)
        t.sigma0 = True
        t.pc = ProgramCounter.start((ServeFaults(),))
        return t


def utcb_paddr(k: Kernel, t: Thread) -> int:
    """Physical address of `t`'s UTCB."""
    i = t.tid.lthread - 1
    vaddr = UTCB_VADDR + i * UTCB_SIZE
    return physical(k.machine.memory, space_of(t), vaddr)


def physical(mem: Memory, sp: Space, vaddr: int) -> int:
    """Physical address of `vaddr` in `sp`, which the caller knows is mapped."""
    tr = paging.lookup(mem, sp.pdbr, vaddr)
    if tr is None:
        raise AssertionError(f"{vaddr:#x} is not mapped in {sp.name}")
    return tr.frame + vaddr % PAGE_SIZE


def message_registers(k: Kernel, t: Thread) -> int:
    """Kernel address of `t`'s message registers (beyond the three in registers)."""
    return kaddr(utcb_paddr(k, t) + MR_OFFSET)


def publish_buffers(k: Kernel, t: Thread) -> Path:
    """Put `t`'s receive window and string buffers where another CPU can read them.

    Only the naive design transmits from the sender's CPU (§8.3.3); there the
    sender reads the receive descriptor from the receiver's buffer registers
    in its UTCB — simulated memory — not from the receiver's kernel data.
    Elsewhere every transfer to `t` runs on `t`'s CPU (§8.3.5), and reads them there.
    """
    if k.xp_ipc != "naive" or t.task is None or t.task.space is None:
        return
    if t.registers == (t.window, t.buffers):
        return  # as the last IPC left them: buffer registers are kept between IPCs
    t.registers = (t.window, t.buffers)
    br = kaddr(utcb_paddr(k, t) + BR_OFFSET)
    addr, size = t.window if t.window is not None else (0, 0)
    yield Write(br, addr)
    yield Write(br + 4, size)
    yield Write(br + 8, len(t.buffers))
    for i, d in enumerate(t.buffers[:MAX_BUFFERS]):
        yield Write(br + 12 + 8 * i, d.addr)
        yield Write(br + 16 + 8 * i, d.size)


def receive_window(k: Kernel, copier: Thread, b: Thread) -> Path:
    """`b`'s receive window (vaddr, size) or None, as the transfer on `copier`'s CPU sees it."""
    if b.cpu == copier.cpu:
        return b.window
    br = kaddr(utcb_paddr(k, b) + BR_OFFSET)
    size = yield Read(br + 4)
    return ((yield Read(br)), size) if size else None


def receive_buffers(k: Kernel, copier: Thread, b: Thread) -> Path:
    """`b`'s string buffers, as the transfer on `copier`'s CPU sees them."""
    if b.cpu == copier.cpu:
        return b.buffers
    br = kaddr(utcb_paddr(k, b) + BR_OFFSET)
    out = []
    for i in range(min((yield Read(br + 8)), MAX_BUFFERS)):
        out.append(Fpage((yield Read(br + 12 + 8 * i)), (yield Read(br + 16 + 8 * i))))
    return tuple(out)


# --- page tables through micro-ops ----------------------------------------------


def set_pte(k: Kernel, sp: Space, vaddr: int, frame: int, writable: bool) -> Path:
    """Enter `frame` at `vaddr` in `sp`'s page table, allocating the table if needed."""
    pda = paging.pde_addr(sp.pdbr, vaddr)
    pde = yield Read(kaddr(pda))
    if not pde & paging.PTE_PRESENT:
        table = k.machine.memory.alloc_frame()
        yield Compute(PT_ALLOC_CYCLES)
        pde = table | paging.PTE_PRESENT | paging.PTE_WRITABLE | paging.PTE_USER
        yield Write(kaddr(pda), pde)
    flags = paging.PTE_PRESENT | paging.PTE_USER | (paging.PTE_WRITABLE if writable else 0)
    yield Write(kaddr(paging.pte_addr(pde, vaddr)), (frame & paging.FRAME_MASK) | flags)


def edit_pte(k: Kernel, sp: Space, vaddr: int, remove: bool) -> Path:
    """Remove (flush) or write-protect (ro) the entry of `vaddr` in `sp`."""
    pde = yield Read(kaddr(paging.pde_addr(sp.pdbr, vaddr)))
    if not pde & paging.PTE_PRESENT:
        return
    pta = kaddr(paging.pte_addr(pde, vaddr))
    pte = yield Read(pta)
    yield Write(pta, 0 if remove else pte & ~paging.PTE_WRITABLE)


def probe(k: Kernel, sp: Space, vaddr: int, write: bool) -> Path:
    """Walk `sp`'s page tables as the kernel's copy routine does: is the page usable?"""
    pde = yield Read(kaddr(paging.pde_addr(sp.pdbr, vaddr)))
    if not pde & paging.PTE_PRESENT:
        return False
    pte = yield Read(kaddr(paging.pte_addr(pde, vaddr)))
    return bool(pte & paging.PTE_PRESENT) and (not write or bool(pte & paging.PTE_WRITABLE))


def invalidate_local(k: Kernel, t: Thread, sp: Space, vaddr: int) -> Path:
    """Drop `vaddr` from this CPU's TLB if `sp` is the space it has loaded (§3.1.1)."""
    c = k.machine.cpu(t.cpu)
    if c.cr3 == sp.pdbr:
        yield Invlpg(vaddr)


# --- map, grant, unmap ------------------------------------------------------------


def map_items(
    k: Kernel, a: Thread, b: Thread, fp: Fpage, grant: bool, copier: Thread | None = None
) -> Path:
    """Map or grant (`grant`) flexpage `fp` into `b`'s receive window (§2.2.1, §8.3.2).

    Every translation it removes or replaces — the mappings a map or grant
    cuts at the destination, and a grant's source — leaves every TLB (§3.1.1:
    "Even those of the other processors"): this CPU's by `invlpg`, the others'
    by the shootdown of ID 5, once the mapping database is unlocked. This CPU
    is the proxy's, on the receiver's CPU, when the sender is on another.
    """
    here = copier or a  # the thread whose CPU runs this
    window = yield from receive_window(k, here, b)
    if window is None:
        raise IpcError("cut")  # the receiver accepts no mappings
    waddr, wsize = window
    size = min(fp.size, wsize)
    dst_base = waddr + (fp.addr % wsize // size * size if fp.size < wsize else 0)
    asp, bsp = space_of(a), space_of(b)
    mem = k.machine.memory
    changed: list[tuple[Space, int]] = []
    for off in range(0, size, PAGE_SIZE):
        src, dst = fp.addr + off, dst_base + off
        if not (yield from probe(k, asp, src, False)):
            raise IpcError("not_mapped")  # "only present pages can be mapped"
        yield from mapdb.lock()
        if a.sigma0 and not (yield from mapdb.find(asp.number, src)):
            # sigma0 has every free frame "by hand" (§2.2), at the same address: the
            # frame's root is made when sigma0 first gives it out. A fresh frame from
            # the kernel's pool has no root yet, so the roots need no search.
            page = src - src % PAGE_SIZE
            yield from mapdb.add_root(mem, asp.number, page, page, check_frame=False)
        try:
            if grant:
                node, removed = yield from mapdb.grant(asp.number, src, bsp.number, dst)
            else:
                node, removed = yield from mapdb.map_page(mem, asp.number, src, bsp.number, dst)
        except MapDbError as e:
            yield from mapdb.unlock()
            if isinstance(e, mapdb.NotMappedError):
                raise IpcError("not_mapped") from None  # present, but not the sender's to give
            # onto the page itself, an ancestor of it, or a page sigma0 owns
            raise IpcError("map_failed") from None
        for r in removed:
            rsp = k.spaces.spaces[r.space - 1]
            yield from edit_pte(k, rsp, r.vaddr, remove=True)
            yield from invalidate_local(k, here, rsp, r.vaddr)
            changed.append((rsp, r.vaddr))
        yield from set_pte(k, bsp, dst, node.frame, node.writable)
        yield from invalidate_local(k, here, bsp, dst)
        if grant:
            yield from edit_pte(k, asp, src, remove=True)
            yield from invalidate_local(k, here, asp, src)
            changed.append((asp, src))
        yield from mapdb.unlock()
    yield from shootdown.shoot(k, here, changed)
    return [(dst_base, size)]


def unmap(k: Kernel, t: Thread, op: Unmap) -> Path:
    """fpage_unmap: flush or write-protect every mapping derived from the pages (§2.2.2)."""
    yield Phase("space.unmap")
    sp = space_of(t)
    changed: list[tuple[Space, int]] = []
    for off in range(0, op.fpage.size, PAGE_SIZE):
        vaddr = op.fpage.addr + off
        yield from mapdb.lock()
        for node in (yield from mapdb.unmap(sp.number, vaddr, op.mode, op.own)):
            nsp = k.spaces.spaces[node.space - 1]
            yield from edit_pte(k, nsp, node.vaddr, remove=op.mode == "flush")
            yield from invalidate_local(k, t, nsp, node.vaddr)
            changed.append((nsp, node.vaddr))
        yield from mapdb.unlock()
    yield from shootdown.shoot(k, t, changed)  # ID 5: every other CPU's TLB too
    return result("unmap", value=len(changed))


# --- tasks and threads --------------------------------------------------------------


def task_new(k: Kernel, t: Thread, op: TaskNew) -> Path:
    """task_new (§2.2.3): an empty space and its first thread, on the creator's CPU (§7.1)."""
    yield Phase("task.new")
    task = next(x for x in k.tasks if x.name == op.task)
    if task.started:
        return result("task_new", ok=False, error="exists")
    k.spaces.create_task_space(task)
    yield Compute(500)  # building the page directory and the UTCB area
    first = task.threads[0]
    first.cpu = t.cpu  # "created locally on the current processor of the creator"
    yield Write(first.f["cpu"], t.cpu)
    yield from start_thread(k, first)
    task.started = True
    return result("task_new", value=first.word)


def start_thread(k: Kernel, t: Thread) -> Path:
    """Make `t` present and ready on its CPU."""
    yield Write(t.f["myself"], t.word)
    yield Write(t.f["space"], space_of(t).pdbr)
    yield Write(kaddr(utcb_paddr(k, t) + UTCB_CPU), t.cpu)  # §7.2
    yield from sched.make_ready(k, k.cpus[t.cpu - 1], t, RUNNING)
