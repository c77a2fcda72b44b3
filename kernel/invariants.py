"""Kernel invariants, checked at quiescent points — each kernel exit (DESIGN.md §1, §8.3.3).

What must hold whenever no kernel path is half-way through on a CPU:

- every thread is in the scheduling structures of its own CPU only (design
  decision 1), at most once each: ready lists, wakeup queue;
- every list's links are consistent (next/prev agree, rings close, the
  wakeup queue is ordered by time);
- states agree with the queues: a thread in a wakeup queue is waiting or
  polling (or locked: a receiver dequeues itself once it runs); a polling
  thread is in its partner's send queue; a ready thread
  that is not running is in its CPU's ready list (a *blocked* thread may
  still be in one: Liedtke's lazy dequeueing, §8.7.3; a migrating thread is
  in none between B's delete and C's insert, §8.7.2);
- at most one IPC is set up to any receiver (§8.3.3's first guideline);
- no APIC holds more than its two IPI slots (§8.3.4);
- the mapping database's trees, lists and hash table agree
  (`mapdb_direct.MappingDb.check`, §2.2.1) and its lock is free (§6, appendix A);
- no TLB holds a translation its CPU's page tables do not (§3.1.1: a removed
  entry is invalidated in "all TLBs. Even those of the other processors"):
  each entry names the frame of a present PTE, and is writable only if the
  PTE is (TLBs are untagged, and loading CR3 flushes them) — unless a
  shootdown is under way (its lock held): the shooter waits, with interrupts
  enabled, for the others to flush, and an interrupt's exit there is checked.

`check` reads memory directly (no micro-ops) and returns the violations as
readable lines; an empty list means all is well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel import mapdb, shootdown
from kernel.ids import NIL
from kernel.sched import BITMAP, HEADS, WAKEUP_HEAD
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    POLLING,
    RUNNING,
    STATE_NAMES,
    WAITING,
    Thread,
)
from machine import paging
from machine.memory import PAGE_SHIFT
from machine.ops import kaddr

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData

LIMIT = 4096  # a list longer than this is a loop


def _ring(k: Kernel, head: int, nxt: str, prv: str, what: str, out: list[str]) -> list[Thread]:
    """The members of a ring of TCBs starting at `head`, checking its links."""
    members: list[Thread] = []
    cur = head
    while cur:
        t = k.by_tcb.get(cur)
        if t is None:
            out.append(f"{what}: link to {cur:#x}, which is no TCB")
            break
        members.append(t)
        n = k.field(t, nxt)
        if not n:
            out.append(f"{what}: {t.name} has no {nxt} in a ring")
            break
        if k.field(k.by_tcb[n], prv) != cur:
            out.append(f"{what}: {k.by_tcb[n].name}.{prv} does not point back to {t.name}")
        cur = n
        if cur == head or len(members) > LIMIT:
            break
    return members


def stale_tlb_entries(k: Kernel) -> list[str]:
    """The TLB entries no present PTE of their CPU's space stands behind (none while a
    shootdown is under way: see the module docstring)."""
    mem = k.machine.memory
    if mem.read(shootdown.AREA + shootdown.LOCK):
        return []
    out = []
    for c in k.machine.cpus:
        for vpn, entry in c.tlb.entries.items():
            vaddr = vpn << PAGE_SHIFT
            now = paging.lookup(mem, c.cr3, vaddr)
            if now is None or now.frame != entry.frame or (entry.writable and not now.writable):
                what = "no PTE" if now is None else f"the PTE says {now.frame:#x}"
                out.append(
                    f"cpu{c.number}: TLB entry {vaddr:#x} -> {entry.frame:#x}"
                    f"{' (writable)' if entry.writable else ''}, but {what}"
                )
    return out


def check(k: Kernel) -> list[str]:
    """Every violation of the kernel invariants, as text."""
    out: list[str] = []
    where_ready: dict[str, int] = {}
    where_wakeup: dict[str, int] = {}
    for cd in k.cpus:
        _ready_lists(k, cd, where_ready, out)
        _wakeup_queue(k, cd, where_wakeup, out)
    in_sendq: dict[str, str] = {}
    for b in k.threads:
        if b.task is None:
            continue
        for a in _ring(
            k, k.field(b, "send_queue"), "send_next", "send_prev", f"{b.name} send queue", out
        ):
            in_sendq[a.name] = b.name
    locked_to: dict[int, list[str]] = {}
    for t in k.threads:
        if t.task is None and not t.proxy_kind:
            continue
        _thread(k, t, where_ready, where_wakeup, in_sendq, out)
        # A thread locked_running towards a locked receiver is an IPC set up to it —
        # unless its own message has arrived: a receiver woken locked_running after
        # its transfer (§8.3.2, it unlocks itself when it runs) names its *sender*
        # as partner. A pager answering faults from several CPUs leaves several
        # such receivers naming it while it is locked in its next reply; counting
        # them reported "more than one IPC set up to sigma0" (the random fuzzer).
        # (A message from another CPU waits in the TCB's tag, the naive design.)
        state = k.field(t, "thread_state")
        if state == LOCKED_RUNNING and t.inbox is None and not k.field(t, "msg_tag"):
            partner = k.field(t, "partner")
            if partner != NIL:
                locked_to.setdefault(partner, []).append(t.name)
    for receiver_word, senders in locked_to.items():
        receiver = next((x for x in k.threads if x.task and x.word == receiver_word), None)
        if (
            receiver is not None
            and k.field(receiver, "thread_state") == LOCKED_WAITING
            and len(senders) > 1
        ):
            out.append(f"more than one IPC set up to {receiver.name}: {', '.join(senders)}")
    nslots = k.machine.apics.nslots
    for apic in k.machine.apics.apics:
        if len(apic.slots) > nslots:
            out.append(f"cpu{apic.cpu + 1}: {len(apic.slots)} IPIs in {nslots} slots")
    out += stale_tlb_entries(k)
    if k.machine.memory.read(mapdb.AREA + mapdb.LOCK):
        out.append("the mapping-database lock is held with no kernel path under way")
    try:
        k.spaces.mapdb.check()
    except mapdb.MapDbError as e:
        out.append(f"mapping database: {e}")
    return out


def _ready_lists(k: Kernel, cd: CpuData, where: dict[str, int], out: list[str]) -> None:
    """CPU `cd`'s ready lists: heads agree with the bitmap, each thread once, its own."""
    mem = k.machine.memory
    base = cd.page - kaddr(0)
    for prio in range(256):
        head = mem.read(base + HEADS + 4 * prio)
        bit = mem.read(base + BITMAP + 4 * (prio >> 5)) >> (prio & 31) & 1
        if bool(head) != bool(bit):
            out.append(f"cpu{cd.number}: priority {prio} head and bitmap disagree")
        for t in _ring(k, head, "ready_next", "ready_prev", f"cpu{cd.number} ready", out):
            if t.name in where:
                out.append(
                    f"{t.name} is in the ready lists of cpu{where[t.name]} and cpu{cd.number}"
                )
            where[t.name] = cd.number
            if t.cpu != cd.number:
                out.append(f"{t.name} (on cpu{t.cpu}) is in cpu{cd.number}'s ready list")
            if k.field(t, "priority") != prio:
                out.append(
                    f"{t.name} is in the list of priority {prio} but has {k.field(t, 'priority')}"
                )


def _wakeup_queue(k: Kernel, cd: CpuData, where: dict[str, int], out: list[str]) -> None:
    """CPU `cd`'s wakeup queue: well linked, ordered by deadline, of its own threads."""
    cur = k.machine.memory.read(cd.page - kaddr(0) + WAKEUP_HEAD)
    prev_tcb, last = 0, -1
    n = 0
    while cur and n <= LIMIT:
        t = k.by_tcb[cur]
        n += 1
        if t.name in where:
            out.append(f"{t.name} is twice in wakeup queues")
            break
        where[t.name] = cd.number
        if t.cpu != cd.number:
            out.append(f"{t.name} (on cpu{t.cpu}) is in cpu{cd.number}'s wakeup queue")
        if k.field(t, "wakeup_prev") != prev_tcb:
            out.append(f"cpu{cd.number} wakeup queue: {t.name}.wakeup_prev is wrong")
        if t.deadline is None or t.deadline < last:
            out.append(f"cpu{cd.number} wakeup queue is not ordered at {t.name}")
        last = t.deadline if t.deadline is not None else last
        prev_tcb, cur = cur, k.field(t, "wakeup_next")


def _thread(
    k: Kernel,
    t: Thread,
    where_ready: dict[str, int],
    where_wakeup: dict[str, int],
    in_sendq: dict[str, str],
    out: list[str],
) -> None:
    """`t`'s state agrees with the queues it is in: wakeup, send and ready."""
    state = k.field(t, "thread_state")
    cd = k.cpus[t.cpu - 1]
    # A receiver locked by its sender stays queued until it runs and dequeues
    # itself (§8.3.2: "dequeueWakeup (B)" after switchTo).
    if t.name in where_wakeup and state not in (WAITING, POLLING, LOCKED_RUNNING, LOCKED_WAITING):
        out.append(f"{t.name} is {STATE_NAMES[state]} but in a wakeup queue")
    if t.deadline is not None and t.name not in where_wakeup:
        out.append(f"{t.name} has a timeout but is in no wakeup queue")
    proxy_tcb = k.field(t, "proxy")
    if state == POLLING and not t.proxy_kind:
        partner = k.field(t, "partner")
        owner = in_sendq.get(t.name)
        if owner is None or k.by_name[owner].word != partner:
            out.append(f"{t.name} is polling but not in its partner's send queue")
    elif t.name in in_sendq and not (state == LOCKED_WAITING and proxy_tcb):
        # A cross-processor sender waits locked while its proxy polls for it (§8.3.5).
        out.append(f"{t.name} is {STATE_NAMES[state]} but in {in_sendq[t.name]}'s send queue")
    if (
        state in (RUNNING, LOCKED_RUNNING)
        and cd.current is not t
        and t.name not in where_ready
        and not k.field(t, "migrating")  # between B's delete and C's insert (§8.7.2)
    ):
        out.append(f"{t.name} is ready but in no ready list")
