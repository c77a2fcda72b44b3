"""Address spaces: tasks, sigma0, map/grant/unmap, faults as IPC, long IPC (§2.2, §8.3.2, §8.8).

Each task has a two-level page table in simulated memory (machine/paging.py)
and a number in the mapping database (mapdb.py). sigma0 owns every free frame
(§2.2: "we construct an initial address space called sigma 0 and establish a
mapping to all available frames ... by hand"); it is a real thread that
answers page-fault IPCs by mapping a fresh frame. A page fault becomes an IPC
from the faulting thread to its pager (§2.2.2); a user-level pager
(`serve_faults`) receives it, touches the page in its own space — faulting to
*its* pager in turn — and replies with a map item.

Map and grant copy page-table entries into the receiver's window and record
the mapping; unmap walks the mapping database and edits every derived entry,
invalidating the local TLB (other CPUs' TLBs are the shootdown's business).
The database is kernel data in simulated memory (mapdb.py); each of these
holds its lock while it changes the database and the page-table entries
that follow from it (§6: mapping data "has to be protected against
cross-processor access"), and drops it before anything that waits for
another CPU (the receiver's buffers, the shootdown of §3.1.1).
A long IPC copies strings through the comm space: the receiver's page
directory entries are copied into the sender's, so the copy runs in the
sender's address space (§8.3.2, §8.8.2); a fault there is redone in the
receiver's context.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import ipc, mapdb, sched, shootdown
from kernel.errors import IpcError
from kernel.mapdb import MapDbError, MappingDb
from kernel.memmap import (
    KIP_FRAME,
    KIP_VADDR,
    UTCB_CPU,
    UTCB_PAGES,
    UTCB_SIZE,
    UTCB_VADDR,
)
from kernel.program import Fpage, Ipc, ProgramCounter, ServeFaults, TaskNew, Unmap, result
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    RUNNING,
    WAKE_NONE,
    WAKE_PARTNER,
    WAKE_REDO_FAULT,
    WAKE_TIMEOUT,
    Space,
    Task,
    Thread,
    space_of,
)
from machine import paging
from machine.cpu import Cpu
from machine.memory import PAGE_SIZE, Memory
from machine.ops import Compute, Invlpg, LoadCR3, Op, Phase, Read, Write, kaddr

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


# --- page faults ----------------------------------------------------------------


def fault_handler(k: Kernel) -> Any:
    return functools.partial(page_fault, k)  # not a closure: checkpoints copy what it binds


def page_fault(k: Kernel, c: Cpu, addr: int, write: bool, reason: str) -> Path:
    """A user access faulted: send the fault to the thread's pager and wait (§2.2.2)."""
    cd = k.cpus[c.index]
    t = cd.current
    yield Phase("pf.raise")
    k.counters.hardware_page_faults += 1
    resolved = t.task is not None and reason != "supervisor"
    if resolved:
        resolved = yield from page_fault_ipc(k, t, addr, write)
    if not resolved:
        cd = k.cpus[t.cpu - 1]  # it may have been migrated while it waited (§8.7.3)
        yield Phase("pf.kill")  # no pager could resolve it: the thread cannot go on
        t.results.append(
            {
                "op": "page_fault",
                "ok": False,
                "error": "unresolved",
                "xp": False,
                "cpu": None,
                "words": [addr, int(write)],
            }
        )
        yield from sched.exit_thread(k, cd, t)


def page_fault_ipc(
    k: Kernel, t: Thread, addr: int, write: bool, timeout: int | None = None
) -> Path:
    """The fault IPC: a call to `t`'s pager with (address, write), receiving a mapping."""
    pager = t.pager
    if pager is None or pager is t:
        return False
    yield Phase("pf.ipc")
    k.counters.page_faults += 1
    state = yield Read(t.f["thread_state"])
    partner = yield Read(t.f["partner"])
    nested = state in (LOCKED_RUNNING, LOCKED_WAITING)  # a fault inside a long IPC
    wake = (yield Read(t.f["wake"])) if nested else WAKE_NONE
    saved = (t.window, t.buffers, t.inbox)
    page = addr - addr % PAGE_SIZE
    t.window = (page, PAGE_SIZE)
    t.buffers = ()
    t.fault = (addr, write)
    yield from publish_buffers(k, t)
    op = Ipc(
        "call",
        to=pager.name,
        source=pager.name,
        words=(addr, int(write)),
        timeout=timeout,
        recv_timeout=timeout,
    )
    try:
        yield from ipc.send(k, t, pager, op)
        yield from ipc.receive(k, t, pager, timeout)
        ok = True
    except IpcError as e:
        ok = False
        t.fault_error = e.error  # aborted (ex_regs) or timeout: the outer IPC says which
    t.window, t.buffers, t.inbox = saved
    t.fault = None
    yield from publish_buffers(k, t)  # the outer IPC's again
    if nested:  # back to the long IPC, as it was
        yield Write(t.f["thread_state"], state)
        yield Write(t.f["partner"], partner)
        yield Write(t.f["wake"], wake)
    return ok


def pager_loop_step(k: Kernel, t: Thread, serve: Any) -> Path:
    """One step of a pager: receive a fault, resolve it, reply with the page.

    `serve(fault_addr, write)` is a path that makes the page present in the
    pager's own space and returns the page's address there.
    """
    st = t.op_state
    if "fault" not in st:
        yield from k.trap(t)
        yield Phase("pager.wait")
        yield from publish_buffers(k, t)  # no window, no buffers (see do_ipc)
        try:
            sender = yield from ipc.receive(k, t, None, None)
        except IpcError:
            return
        msg, t.inbox = t.inbox, None
        words = tuple(msg.words) + (0, 0) if msg is not None else (0, 0)
        st["fault"] = (sender.name, words[0], bool(words[1]))
        return
    faulter_name, addr, write = st["fault"]
    src = yield from serve(addr, write)
    yield from k.trap(t)
    yield Phase("pager.reply")
    faulter = k.by_name[faulter_name]
    reply = Ipc("send", to=faulter_name, timeout=0, map=Fpage(src, PAGE_SIZE))
    del st["fault"]
    st["served"] = st.get("served", 0) + 1
    with contextlib.suppress(IpcError):  # the faulter gave up (timeout, abort)
        yield from ipc.send(k, t, faulter, reply)


def sigma0_step(k: Kernel, t: Thread) -> Path:
    """sigma0 maps a fresh frame for every fault, from its own idempotent space."""

    def serve(addr: int, write: bool) -> Path:
        mem = k.machine.memory
        yield Phase("sigma0.grant_frame")
        frame = mem.alloc_frame()  # after the first op: priming a path changes nothing (peek)
        paging.map_page(mem, space_of(t).pdbr, frame, frame)  # sigma0 owns it "by hand" (§2.2)
        yield Compute(50)  # its root in the mapping database: when the kernel maps it on
        return frame

    yield from pager_loop_step(k, t, serve)


def serve_faults_step(k: Kernel, t: Thread, op: ServeFaults) -> Path:
    """A user-level pager (scenario op `serve_faults`): touch the page in its own space."""

    def serve(addr: int, write: bool) -> Path:
        page = addr - addr % PAGE_SIZE
        c = k.machine.cpu(t.cpu)
        if c.mode == "kernel":
            yield from k.exit_to_user(c)
        yield Phase("pager.touch")
        if write:
            yield Write(page, (yield Read(page)))
        else:
            yield Read(page)
        return page

    yield from pager_loop_step(k, t, serve)
    st = t.op_state
    if op.count is not None and st.get("served", 0) >= op.count and "fault" not in st:
        t.op_state.clear()
        t.pc.advance()


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


# --- long IPC -------------------------------------------------------------------------


def copy_strings(k: Kernel, a: Thread, b: Thread, op: Ipc, copier: Thread) -> Path:
    """Copy `op`'s strings into `b`'s buffers through the comm space (§8.3.2, §8.8.2).

    The copy goes a cache line at a time (``rep movsd``): one load and one
    store micro-op move the two lines; the rest of the line's bytes move
    with them. A chunk never crosses a line or a page on either side, so
    each page is probed — and faulted in — before it is used. `copier` is
    the thread doing it: the sender, or its proxy on the receiver's CPU; each
    CPU has a comm window of its own (§8.8.2).
    """
    line = k.machine.profile.cache.line_size
    mem = k.machine.memory
    asp, bsp = space_of(a), space_of(b)
    buffers = yield from receive_buffers(k, copier, b)
    for i, s in enumerate(op.strings):
        if i >= len(buffers) or s.size > buffers[i].size:
            raise IpcError("cut")  # "the message exceeds the receive window"
        d = buffers[i]
        slot = d.addr >> 22
        window = COMM_BASE + (copier.cpu - 1) * COMM_SIZE
        yield from _map_comm(k, a, bsp, slot, copier.cpu)
        src_page = dst_page = -1
        fresh: set[int] = set()  # comm pages invalidated since the window last changed
        pos = 0
        while pos < s.size:
            src, dst = s.addr + pos, d.addr + pos
            n = min(
                s.size - pos,
                line - src % line,
                PAGE_SIZE - src % PAGE_SIZE,
                PAGE_SIZE - dst % PAGE_SIZE,
            )
            if src >> 12 != src_page:
                while not (yield from probe(k, asp, src, False)):
                    if copier is not a:
                        from kernel import proxy

                        ok = yield from proxy.sender_fault(k, copier, a, src, op.xfer_timeout)
                    else:
                        ok = yield from page_fault_ipc(k, a, src, False, op.xfer_timeout)
                    if not ok:
                        raise IpcError("aborted" if a.fault_error == "aborted" else "timeout")
                src_page = src >> 12
            if dst >> 12 != dst_page:
                while not (yield from probe(k, bsp, dst, True)):
                    yield from receiver_fault(k, copier, b, dst, op.xfer_timeout)
                    yield from _map_comm(k, a, bsp, slot, copier.cpu)
                    fresh.clear()
                dst_page = dst >> 12
            c = k.machine.cpu(copier.cpu)
            if c.cr3 != asp.pdbr:  # a fault switched stacks: the copy runs in A's space
                yield LoadCR3(asp.pdbr)
            comm = window + (dst - (slot << 22))
            if comm >> 12 not in fresh:
                yield Invlpg(comm)  # the comm window may have pointed elsewhere
                fresh.add(comm >> 12)
            yield Read(src & ~3)
            dst_paddr = physical(mem, bsp, dst)
            _copy_bytes(mem, physical(mem, asp, src), dst_paddr, n)
            yield Write(comm & ~3, mem.read(dst_paddr & ~3))
            if n > 4:
                yield Compute((n - 1) // 4)
            from kernel import transfer  # transfer imports this module

            if (yield from transfer.aborted(k, copier, a, b)):
                raise IpcError("aborted")
            pos += n


def _copy_bytes(mem: Memory, src: int, dst: int, n: int) -> None:
    """Byte-exact copy between physical addresses of word-granular memory."""
    for i in range(n):
        sa, da = src + i, dst + i
        byte = mem.read(sa & ~3) >> (8 * (sa & 3)) & 0xFF
        word = mem.read(da & ~3)
        shift = 8 * (da & 3)
        mem.write(da & ~3, word & ~(0xFF << shift) | byte << shift)


def _map_comm(k: Kernel, a: Thread, bsp: Space, slot: int, cpu: int) -> Path:
    """Point CPU `cpu`'s comm window in the sender's space at the receiver's 8 MB."""
    yield Phase("ipc.transfer.comm_map")
    asp = space_of(a)
    first = COMM_PDE + 2 * (cpu - 1)
    for j in range(2):
        pde = yield Read(kaddr(bsp.pdbr + 4 * (slot + j)))
        yield Write(kaddr(asp.pdbr + 4 * (first + j)), pde)


def receiver_fault(k: Kernel, a: Thread, b: Thread, vaddr: int, timeout: int | None) -> Path:
    """A fault in the receiver's space: redo it in the receiver's context (§8.3.2).

    "the kernel page fault handler ... temporarily switches to the receiver
    thread's context and invokes the pagefault again"; the receiver's pager
    resolves it and the receiver switches back to the sender.
    """
    yield Phase("ipc.transfer.receiver_fault")
    cd = k.cpus[a.cpu - 1]
    # The request lives in b's TCB: in the naive design b is on another CPU (§8.3.3).
    yield Write(b.f["redo_fault"], vaddr)
    yield Write(b.f["redo_sender"], a.tcb)
    yield Write(a.f["wake"], WAKE_NONE)  # before b can answer
    yield Write(b.f["wake"], WAKE_REDO_FAULT)
    yield from sched.make_ready(k, k.cpus[b.cpu - 1], b, LOCKED_RUNNING)
    yield Write(a.f["thread_state"], LOCKED_WAITING)
    yield from k.switch_to(cd, b if b.cpu == a.cpu else None)
    why = yield Read(a.f["wake"])
    if why != WAKE_PARTNER:
        raise IpcError("timeout" if why == WAKE_TIMEOUT else "aborted")
    yield Write(a.f["thread_state"], LOCKED_RUNNING)


def redo_fault(k: Kernel, b: Thread, timeout: int | None) -> Path:
    """The receiver's side of `receiver_fault`: fault, then hand the CPU back."""
    a = k.by_tcb[(yield Read(b.f["redo_sender"]))]
    addr = yield Read(b.f["redo_fault"])
    ok = yield from page_fault_ipc(k, b, addr, True, timeout)
    cd = k.cpus[b.cpu - 1]
    yield Write(b.f["wake"], WAKE_NONE)  # before a can ask again
    yield Write(a.f["wake"], WAKE_PARTNER if ok else WAKE_TIMEOUT)
    yield Write(b.f["thread_state"], LOCKED_WAITING)
    # a's CPU: another one in the naive design, whose lists are its own (design decision 1).
    yield from sched.make_ready(k, k.cpus[a.cpu - 1], a, LOCKED_RUNNING)
    yield from k.switch_to(cd, a if a.cpu == b.cpu else None)
