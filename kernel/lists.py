"""Bounded walks of the kernel's TCB lists, for views and reports (§8.7.2, §8.3.2).

The ready lists and the send queues are doubly linked rings through TCB
fields (`ready_next`, `send_next`), the wakeup queues lists ended by 0
(`wakeup_next`), all in simulated memory. A kernel path relinks them one
micro-op at a time — `sched.ring_remove` writes `prev.next`, then
`next.prev`, then the head — and a debugger stops between any two micro-ops,
so a view may meet a list half-way through a change: a TCB whose link points
to itself while the head is another (`stepi 439` on client-server), a ring
that ends in 0, a link to a word that is no TCB. Following links until the
walk is back at the head would then never end.

`walk` follows each TCB at most once — it stops at the first repeat, so it
takes at most one step per TCB plus one — and says why it stopped when the
list is not whole. Every view of these lists (the `info` views, the monitor's
panes, the `run --json` summary) reads them through here. It reads memory
directly: no micro-op, no cache line moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from kernel.sched import BITMAP, HEADS, PRIORITIES, WAKEUP_HEAD
from machine.ops import kaddr

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData
    from kernel.thread import Thread


class Break(StrEnum):
    """Where a walk found a list not whole; `WHOLE` (false) if it is."""

    WHOLE = ""
    # a TCB met again that is not the ring's head: the walk would go round forever
    CYCLE = "cycle"
    STRAY = "stray"  # a link to a word that is no TCB
    OPEN = "open"  # a ring that ends in 0 before it is back at its head


@dataclass(frozen=True, slots=True)
class Walk:
    """The TCBs of one list in link order, and, if the list is not whole, where it breaks."""

    names: tuple[str, ...] = ()
    tcbs: tuple[int, ...] = ()  # their TCB addresses (keys of `Kernel.by_tcb`), in order
    broken: Break = Break.WHOLE
    at: int = 0  # the link where it broke: the TCB met again (CYCLE) or the stray word (STRAY)
    again: str = ""  # CYCLE: the name of the TCB met again

    def tail(self, arrow: str = "->", dots: str = "...") -> str:
        """What follows the names when the list is not whole, e.g.
        `-> srv ... (cycle: the list is mid-update)`; "" for a whole list."""
        if self.broken == Break.CYCLE:
            return f"{arrow} {self.again} {dots} (cycle: the list is mid-update)"
        if self.broken == Break.STRAY:
            return f"{arrow} ?{self.at:#x} (not a TCB)"
        if self.broken == Break.OPEN:
            return f"{arrow} 0 (the ring does not close: the list is mid-update)"
        return ""

    def text(self, arrow: str = "->", dots: str = "...") -> str:
        """The list as one line: `a -> b -> c`, its break at the end if it has one."""
        return " ".join(x for x in (f" {arrow} ".join(self.names), self.tail(arrow, dots)) if x)


def walk(k: Kernel, head: int, nxt: str, ring: bool) -> Walk:
    """The list whose first TCB is `head`, linked through field `nxt`.

    A ring (`ring=True`) ends when its link is back at `head`; a list ends at 0.
    Ends in at most len(k.by_tcb) + 1 steps, whatever the links hold.
    """
    names: list[str] = []
    tcbs: list[int] = []
    seen: set[int] = set()  # each TCB is followed once: at most len(k.by_tcb) steps
    cur = head
    while cur:
        if cur in seen:
            if ring and cur == head:
                return Walk(tuple(names), tuple(tcbs))
            return Walk(tuple(names), tuple(tcbs), Break.CYCLE, cur, k.by_tcb[cur].name)
        t = k.by_tcb.get(cur)
        if t is None:
            return Walk(tuple(names), tuple(tcbs), Break.STRAY, cur)
        seen.add(cur)
        tcbs.append(cur)
        names.append(t.name)
        cur = k.field(t, nxt)
    return Walk(tuple(names), tuple(tcbs), Break.OPEN if ring and names else Break.WHOLE)


def ready_lists(k: Kernel, cd: CpuData) -> list[tuple[int, Walk]]:
    """A CPU's non-empty ready rings, highest priority first, as (priority, walk).

    The rings the bitmap marks, as the dispatcher finds them (§8.7.2): eight
    words read, not 256 heads — the monitor shows this after every step.
    """
    mem = k.machine.memory
    base = cd.page - kaddr(0)
    out = []
    for word in range(PRIORITIES // 32 - 1, -1, -1):
        bits = mem.read(base + BITMAP + 4 * word)
        while bits:
            prio = 32 * word + bits.bit_length() - 1
            bits &= ~(1 << (prio & 31))
            head = mem.read(base + HEADS + 4 * prio)
            if head:
                out.append((prio, walk(k, head, "ready_next", ring=True)))
    return out


def wakeup_queue(k: Kernel, cd: CpuData) -> Walk:
    """A CPU's wakeup queue, earliest deadline first (§8.7.2)."""
    head = k.machine.memory.read(cd.page - kaddr(0) + WAKEUP_HEAD)
    return walk(k, head, "wakeup_next", ring=False)


def send_queue(k: Kernel, receiver: Thread) -> Walk:
    """The senders queued (polling) on `receiver`, in queue order (§8.3.2)."""
    return walk(k, k.field(receiver, "send_queue"), "send_next", ring=True)
