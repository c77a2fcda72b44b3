"""Per-CPU scheduling: ready lists, wakeup queues, dispatcher, timer (§2.1.1, §6.1.1, §8.7).

Design decision 1: fine-grain scheduling is processor local, so every CPU
has its own ready lists and wakeup queue in its own kernel page (§8.8.3).
The ready lists are "a processor local array [with] a head pointer per
priority", each a doubly linked round-robin ring through the TCBs'
`ready_next`/`ready_prev` fields (§8.7.2); a bitmap of non-empty priorities
spares the dispatcher a scan of all 256 heads. A thread that blocks stays in
its ready list: the dispatcher skips and unlinks threads that are not ready
when it meets them (Liedtke's lazy trick, §8.7.3). The wakeup queue is a
list through `wakeup_next`/`wakeup_prev`, ordered by wakeup time; threads
waiting with an infinite timeout are not in it.

Every access to these structures is a micro-op on simulated memory.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.thread import INACTIVE, RUNNABLE, RUNNING, Thread
from machine.ops import Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]

PRIORITIES = 256
# Offsets in a CPU's kernel page.
HEADS = 0  # 256 head pointers
BITMAP = 1024  # 8 words, bit p%32 of word p//32: priority p non-empty
GROUPS = 1056  # bit g: bitmap word g non-empty
WAKEUP_HEAD = 1060
CURRENT = 1064
IN_KERNEL = 1068  # in a system call whose kernel exit checks the mailboxes (when_needed, §8.3.4)
IPI_PENDING = 1072  # an IPI was sent here and no check_n_ack has run since


@dataclass(eq=False, slots=True)
class CpuData:
    """One CPU's kernel data: where its scheduling structures live, and who runs."""

    number: int
    page: int  # kernel address of this CPU's local page
    idle: Thread
    current: Thread
    dispatches: int = 0
    ticks: int = 0
    fpu_owner: Thread | None = None
    # A kernel path holding a spinlock with interrupts enabled (the shootdown's wait):
    # interrupts are taken, but no handler switches away from it (see shootdown.shoot).
    preempt_off: int = 0

    def head(self, prio: int) -> int:
        return self.page + HEADS + 4 * prio


def _bsr(x: int) -> int:
    return x.bit_length() - 1


def ring_append(k: Kernel, head_addr: int, t: Thread, nxt: str, prv: str) -> Path:
    """Link `t` at the tail of the TCB ring whose head pointer is at `head_addr`.

    Returns True when the ring was empty. The caller checks `t` is in no ring.
    """
    head = yield Read(head_addr)
    if not head:
        yield Write(t.f[nxt], t.tcb)
        yield Write(t.f[prv], t.tcb)
        yield Write(head_addr, t.tcb)
        return True
    h = k.by_tcb[head]
    tail = yield Read(h.f[prv])
    yield Write(t.f[nxt], head)
    yield Write(t.f[prv], tail)
    yield Write(k.by_tcb[tail].f[nxt], t.tcb)
    yield Write(h.f[prv], t.tcb)
    return False


def ring_remove(
    k: Kernel,
    head_addr: int,
    t: Thread,
    nxt: str,
    prv: str,
    after: int,
    emptied: Callable[[], Path] | None = None,
) -> Path:
    """Unlink `t` (whose `nxt` link is `after`) from the ring at `head_addr`.

    `emptied` runs when `t` was the ring's only member, right after the head is cleared.
    """
    if after == t.tcb:
        yield Write(head_addr, 0)
        if emptied is not None:
            yield from emptied()
    else:
        prev = yield Read(t.f[prv])
        yield Write(k.by_tcb[prev].f[nxt], after)
        yield Write(k.by_tcb[after].f[prv], prev)
        if (yield Read(head_addr)) == t.tcb:
            yield Write(head_addr, after)
    yield Write(t.f[nxt], 0)
    yield Write(t.f[prv], 0)


def enqueue_ready(k: Kernel, cd: CpuData, t: Thread) -> Path:
    """Link `t` at the tail of its priority's round-robin ring, if it is not in one."""
    if (yield Read(t.f["ready_next"])):
        return  # already in a ready list (perhaps lazily, while it was blocked)
    prio = yield Read(t.f["priority"])
    if (yield from ring_append(k, cd.head(prio), t, "ready_next", "ready_prev")):
        word_addr = cd.page + BITMAP + 4 * (prio >> 5)
        word = yield Read(word_addr)
        yield Write(word_addr, word | 1 << (prio & 31))
        if not word:
            groups = yield Read(cd.page + GROUPS)
            yield Write(cd.page + GROUPS, groups | 1 << (prio >> 5))


def dequeue_ready(k: Kernel, cd: CpuData, t: Thread, prio: int | None = None) -> Path:
    """Unlink `t` from its ready ring (a no-op if it is in none).

    `prio` is the priority whose ring `t` is in, when the caller knows it
    better than `t`'s TCB (a migration's B: A may already have written the new one).
    """
    nxt = yield Read(t.f["ready_next"])
    if not nxt:
        return
    if prio is None:
        prio = yield Read(t.f["priority"])

    def priority_now_empty() -> Path:
        word_addr = cd.page + BITMAP + 4 * (prio >> 5)
        word = (yield Read(word_addr)) & ~(1 << (prio & 31))
        yield Write(word_addr, word)
        if not word:
            groups = yield Read(cd.page + GROUPS)
            yield Write(cd.page + GROUPS, groups & ~(1 << (prio >> 5)))

    yield from ring_remove(k, cd.head(prio), t, "ready_next", "ready_prev", nxt, priority_now_empty)


def rotate(k: Kernel, cd: CpuData, t: Thread) -> Path:
    """Round robin: `t` goes to the tail of its priority's ring (its slice is over)."""
    yield from dequeue_ready(k, cd, t)
    yield from enqueue_ready(k, cd, t)


def dispatch(k: Kernel, cd: CpuData) -> Path:
    """The ready thread of highest priority on this CPU, or None (§2.1.1, §8.7.3)."""
    yield Phase("sched.dispatch")
    cd.dispatches += 1
    while True:
        groups = yield Read(cd.page + GROUPS)
        if not groups:
            return None
        g = _bsr(groups)
        word = yield Read(cd.page + BITMAP + 4 * g)
        prio = 32 * g + _bsr(word)
        t = k.by_tcb[(yield Read(cd.head(prio)))]
        if (yield Read(t.f["thread_state"])) in RUNNABLE:
            return t
        yield Phase("sched.skip_not_ready")  # the lazy trick: unlink it now
        yield from dequeue_ready(k, cd, t)


def enqueue_wakeup(k: Kernel, cd: CpuData, t: Thread, deadline: int) -> Path:
    """Insert `t` into the CPU's wakeup queue, ordered by `deadline` (ticks)."""
    t.deadline = deadline
    cycles = deadline // k.machine.tpc
    yield Write(t.f["ipc_timeout"], cycles)
    prev_addr = cd.page + WAKEUP_HEAD
    prev: Thread | None = None
    cur = yield Read(prev_addr)
    while cur:
        c = k.by_tcb[cur]
        yield Read(c.f["ipc_timeout"])
        if c.deadline is not None and c.deadline > deadline:
            break
        prev = c
        cur = yield Read(c.f["wakeup_next"])
    yield Write(t.f["wakeup_next"], cur)
    yield Write(t.f["wakeup_prev"], prev.tcb if prev else 0)
    if cur:
        yield Write(k.by_tcb[cur].f["wakeup_prev"], t.tcb)
    yield Write(prev.f["wakeup_next"] if prev else cd.page + WAKEUP_HEAD, t.tcb)


def dequeue_wakeup(k: Kernel, cd: CpuData, t: Thread) -> Path:
    """Remove `t` from the wakeup queue (a no-op if it is not queued)."""
    if t.deadline is None:
        return
    t.deadline = None
    nxt = yield Read(t.f["wakeup_next"])
    prev = yield Read(t.f["wakeup_prev"])
    yield Write(k.by_tcb[prev].f["wakeup_next"] if prev else cd.page + WAKEUP_HEAD, nxt)
    if nxt:
        yield Write(k.by_tcb[nxt].f["wakeup_prev"], prev)
    yield Write(t.f["wakeup_next"], 0)
    yield Write(t.f["wakeup_prev"], 0)


def expired(k: Kernel, cd: CpuData, now: int) -> Path:
    """Threads at the head of the wakeup queue whose time has come (taken off the queue)."""
    out: list[Thread] = []
    while True:
        head = yield Read(cd.page + WAKEUP_HEAD)
        if not head:
            return out
        t = k.by_tcb[head]
        yield Read(t.f["ipc_timeout"])
        if t.deadline is None or t.deadline > now:
            return out
        yield from dequeue_wakeup(k, cd, t)
        out.append(t)


def make_ready(k: Kernel, cd: CpuData, t: Thread, state: int = RUNNING) -> Path:
    yield Write(t.f["thread_state"], state)
    yield from enqueue_ready(k, cd, t)


def wait_for_partner(k: Kernel, t: Thread, partner: Thread | None, timeout: int | None) -> Path:
    """Enqueue for `timeout`, block, and report why we were resumed (§8.3.2 switchTo).

    The caller cleared `wake` before it wrote the state that lets others wake us.
    """
    cd = k.cpus[t.cpu - 1]
    if timeout is not None:
        c = k.machine.cpu(t.cpu)
        yield from enqueue_wakeup(k, cd, t, c.clock + timeout * k.machine.tpc)
    yield from block(k, cd, partner)
    return (yield Read(t.f["wake"]))


def block(k: Kernel, cd: CpuData, prefer: Thread | None) -> Path:
    """Release the CPU: to `prefer` if it can run here (a direct switch), else dispatch."""
    if (
        prefer is not None
        and prefer.cpu == cd.number
        and (yield Read(prefer.f["thread_state"])) in RUNNABLE
    ):
        yield from k.switch_to(cd, prefer)
        return
    yield from k.switch_to(cd, None)


def enqueue_sendq(k: Kernel, b: Thread, a: Thread) -> Path:
    """Append `a` to `b`'s send queue (a ring through send_next/send_prev)."""
    if (yield Read(a.f["send_next"])):
        return
    yield from ring_append(k, b.f["send_queue"], a, "send_next", "send_prev")


def dequeue_sendq(k: Kernel, b: Thread, a: Thread) -> Path:
    """Remove `a` from `b`'s send queue (a no-op if it is not in it)."""
    nxt = yield Read(a.f["send_next"])
    if nxt:
        yield from ring_remove(k, b.f["send_queue"], a, "send_next", "send_prev", nxt)


def exit_thread(k: Kernel, cd: CpuData, t: Thread) -> Path:
    """The program has ended: the thread becomes inactive and leaves the CPU."""
    yield Phase("thread.exit")
    t.pc.halt()
    yield Write(t.f["thread_state"], INACTIVE)
    if cd.fpu_owner is t:
        cd.fpu_owner = None
    yield from k.switch_to(cd, None)
