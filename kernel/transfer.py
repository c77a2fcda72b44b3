"""The transmit path of thesis §8.3.2: register words, strings, and map/grant items.

The sender is the active partner (on one CPU it does not matter which; §8.3.5
moves the copy to the receiver's CPU for cross-processor IPC). Up to three
words travel in registers — the receiver finds them in its TCB's
`ipc_buffer` (Table 3) — and more in the UTCB's message registers. Strings
are copied through the comm space, faulting in either space; map and grant
items copy page-table entries into the receiver's window (space.py).
A fault in the sender's space during a copy is resolved by the sender's
pager (pager.py, reached through the kernel: it is an IPC itself); one in
the receiver's space is redone in the receiver's context (§8.3.2).

The message reaches the receiver as its `inbox` when the transfer runs on
the receiver's CPU — a local IPC, or the proxy's (§8.3.5). In the `naive`
design the sender transmits from its own CPU (§8.3.3): it must not touch the
receiver's kernel data there, so it leaves the message's tag in the
receiver's TCB (`msg_tag`, `msg_map`) next to the words (`ipc_buffer`, the
UTCB), and the receiver reads them when it finishes its receive path
(`collect`). Likewise an ex_regs abort (§8.4.3) is read from the TCB's
`abort` when the transfer runs on another CPU than the aborted thread.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import sched, space
from kernel.errors import XP_CODES, XP_ERRORS, ErrorCode, IpcError
from kernel.program import Ipc
from kernel.space import physical, receive_buffers
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    WAKE_NONE,
    WAKE_PARTNER,
    WAKE_REDO_FAULT,
    WAKE_TIMEOUT,
    Message,
    Space,
    Thread,
    space_of,
)
from machine.memory import PAGE_SIZE, Memory
from machine.ops import Compute, Invlpg, LoadCR3, Op, Phase, Read, Write, kaddr

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]
REGISTER_WORDS = 3
# msg_tag: a message transmitted from another CPU waits in the TCB (issue 15).
TAG_PENDING = 1 << 31
TAG_MAPPED = 1 << 30
TAG_WORDS = 0xFF  # the word count
TAG_ERROR_SHIFT = 16  # the transfer's error (errors.XP_CODES), 0 if none


def aborted(k: Kernel, copier: Thread, *parties: Thread) -> Path:
    """Has lthread_ex_regs aborted one of `parties`' IPC? (§8.4.3)

    Each thread's own CPU keeps a copy of the flag it writes with the TCB's;
    a transfer running elsewhere reads the TCB.
    """
    for t in parties:
        if t.cpu == copier.cpu:
            if t.abort:
                return True
        elif (yield Read(t.f["abort"])):
            return True
    return False


def deliver(
    k: Kernel, copier: Thread, b: Thread, msg: Message | None = None, error: ErrorCode | None = None
) -> Path:
    """Hand `b` the message (or the transfer's error): directly on its own CPU,
    else through its TCB's message tag (see the module docstring)."""
    if b.cpu == copier.cpu:
        if msg is not None:
            b.inbox = msg
        if error is not None:
            b.failed = error
        return
    tag = TAG_PENDING | (XP_CODES[error] << TAG_ERROR_SHIFT if error else 0)
    if msg is not None:
        tag |= len(msg.words) & TAG_WORDS
        if msg.mapped:
            base, size = msg.mapped[0]
            tag |= TAG_MAPPED
            yield Write(b.f["msg_map"], base | size.bit_length() - 1)
    yield Write(b.f["msg_tag"], tag)


def collect(k: Kernel, b: Thread) -> Path:
    """The receiver takes a message another CPU's transfer left in its TCB (the naive design)."""
    if k.xp_ipc != "naive":
        return  # every transfer to us ran on our CPU (implementation decision 2, §8.3.5)
    tag = yield Read(b.f["msg_tag"])
    if not tag & TAG_PENDING:
        return
    yield Phase("ipc.transfer.collect")
    yield Write(b.f["msg_tag"], 0)
    error = tag >> TAG_ERROR_SHIFT & 0xFF
    if error:
        b.failed = XP_ERRORS.get(error, "aborted")
    sender = k.by_word((yield Read(b.f["partner"])))
    count = tag & TAG_WORDS
    words = []
    for i in range(min(count, REGISTER_WORDS)):  # the receiver's registers, from its TCB
        words.append((yield Read(b.f["ipc_buffer"] + 4 * i)))
    if count > REGISTER_WORDS:
        dst = space.message_registers(k, b)
        for i in range(count - REGISTER_WORDS):
            words.append((yield Read(dst + 4 * i)))
    mapped = []
    if tag & TAG_MAPPED:
        m = yield Read(b.f["msg_map"])
        mapped.append((m & ~0xFFF, 1 << (m & 0xFFF)))
    if sender is not None:
        b.inbox = Message(sender, tuple(words), xp=True, mapped=mapped)


def transmit(k: Kernel, a: Thread, b: Thread, op: Ipc, copier: Thread | None = None) -> Path:
    """Move `op`'s message from `a` to `b`; raises IpcError (cut, timeout, aborted)."""
    words = op.words
    msg = Message(a, tuple(words), xp=a.cpu != b.cpu)
    yield Phase("ipc.transfer.short")
    for i, w in enumerate(words[:REGISTER_WORDS]):
        yield Write(b.f["ipc_buffer"] + 4 * i, w)
    if len(words) > REGISTER_WORDS:
        # The rest travels in the UTCBs' message registers (§8.9: the UTCB).
        yield Phase("ipc.transfer.registers")
        src, dst = space.message_registers(k, a), space.message_registers(k, b)
        for i, w in enumerate(words[REGISTER_WORDS:]):
            yield Read(src + 4 * i)
            yield Write(dst + 4 * i, w)
    if op.strings:
        yield Phase("ipc.transfer.string")
        yield from copy_strings(k, a, b, op, copier or a)
    fp = op.grant if op.grant is not None else op.map
    if fp is not None:
        yield Phase("ipc.transfer.map")
        msg.mapped = yield from space.map_items(k, a, b, fp, op.grant is not None, copier)
    if (yield from aborted(k, copier or a, a, b)):
        raise IpcError("aborted")
    yield from deliver(k, copier or a, b, msg)


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
        window = space.COMM_BASE + (copier.cpu - 1) * space.COMM_SIZE
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
                while not (yield from space.probe(k, asp, src, False)):
                    ok = yield from k.copy_fault(copier, a, src, op.xfer_timeout)
                    if not ok:
                        raise IpcError("aborted" if a.fault_error == "aborted" else "timeout")
                src_page = src >> 12
            if dst >> 12 != dst_page:
                while not (yield from space.probe(k, bsp, dst, True)):
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
            if (yield from aborted(k, copier, a, b)):
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
    first = space.COMM_PDE + 2 * (cpu - 1)
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
