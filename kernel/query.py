"""What a debugger may ask the kernel, and the one thing it may tell it (issue 17).

The debugger (l4tui/) asks the kernel through these functions rather than
walking its structures: who runs on a CPU and what that thread does next, the
per-CPU queues the dispatcher keeps (ready rings and the wakeup queue,
§8.7.2), the per-CPU mailbox flag words and the busy proxies of the
cross-processor IPC (§8.3.4–8.4), and which kernel words the race explorer
must treat as shared between CPUs. Every query is a pure read: no micro-op,
no cache line moves (as kernel/lists.py). The one command is `inject`: an
operation put before a thread's program, as a debugger's `call` is. What the kernel
keeps at a physical address, named, is kernel/owners.py's.

CPUs are numbered from 1 here, as the user and the thesis number them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel import lists, memmap, xcpu
from kernel.kernel import MAX_THREADS
from kernel.lists import Walk
from machine.ops import KERNEL_BASE

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.thread import Thread

ALWAYS = -1  # `SharedWords.where`: a word every CPU may touch (a lock, a flag, a mailbox)


def current(k: Kernel, cpu: int) -> Thread:
    """The thread CPU `cpu` runs now (its idle thread when it has nothing to run)."""
    return k.cpus[cpu - 1].current


def current_name(k: Kernel, cpu: int) -> str:
    """The name of the thread CPU `cpu` runs now."""
    return k.cpus[cpu - 1].current.name


def is_idle(k: Kernel, cpu: int) -> bool:
    """Whether CPU `cpu` runs its idle thread."""
    cd = k.cpus[cpu - 1]
    return cd.current is cd.idle


def idle_threads(k: Kernel) -> set[Thread]:
    """The CPUs' idle threads."""
    return {cd.idle for cd in k.cpus}


def idle_names(k: Kernel) -> set[str]:
    """The names of the CPUs' idle threads."""
    return {t.name for t in idle_threads(k)}


def next_op(t: Thread) -> Any:
    """What `t` runs next: an injected op first, else its program's; None for a thread
    that runs no program (an idle thread, a proxy)."""
    if t.pc is None:
        return None
    return t.injected[0] if t.injected else t.pc.op


def inject(k: Kernel, t: Thread, op: Any) -> bool:
    """Run `op` as `t`'s next operation, before the rest of its program (the debugger's
    `THREAD: OP`). False, changing nothing, for an inactive thread: it runs no more ops."""
    if k.state(t) == "inactive":
        return False
    t.injected.append(op)
    return True


@dataclass(frozen=True, slots=True)
class CpuQueues:
    """One CPU's scheduling queues (§8.7.2), walked bounded: a list may be mid-update."""

    ready: tuple[tuple[int, Walk], ...]  # (priority, its ring), highest first
    wakeup: Walk  # earliest deadline first
    deadlines: tuple[tuple[str, int], ...]  # (name, `ipc_timeout` in cycles) per wakeup entry


def queues(k: Kernel, cpu: int) -> CpuQueues:
    """CPU `cpu`'s ready rings and wakeup queue."""
    cd = k.cpus[cpu - 1]
    wakeup = lists.wakeup_queue(k, cd)
    due = tuple((t.name, k.field(t, "ipc_timeout")) for t in (k.by_tcb[x] for x in wakeup.tcbs))
    return CpuQueues(tuple(lists.ready_lists(k, cd)), wakeup, due)


def ready_names(k: Kernel, cpu: int) -> list[str]:
    """CPU `cpu`'s ready threads as the run summary lists them."""
    return [name for _, w in lists.ready_lists(k, k.cpus[cpu - 1]) for name in w.names]


def senders(k: Kernel, receiver: Thread) -> tuple[list[tuple[str, str, int]], Walk]:
    """The threads polling to send to `receiver` (§8.3.2), in queue order, as (name, state,
    CPU), and the walk of its send queue (bounded: mid-update the ring need not close)."""
    queue = lists.send_queue(k, receiver)
    out = [(a.name, k.state(a), a.cpu) for a in (k.by_tcb[x] for x in queue.tcbs)]
    return out, queue


def busy_proxies(k: Kernel, cpu: int) -> list[tuple[str, str]]:
    """(name, state) of CPU `cpu`'s proxies and control thread that have work (§8.4)."""
    return [
        (p.name, k.state(p))
        for p in [*k.proxies.values(), k.ctl[cpu]]
        if p.cpu == cpu and k.state(p) not in ("waiting", "inactive")
    ]


def mailbox_flags(k: Kernel, cpu: int) -> int:
    """Flag word 0 of CPU `cpu`'s mailbox-flag line (§8.4.1)."""
    return k.machine.memory.read(k.mailboxes.flags(cpu) - KERNEL_BASE)


def mailbox_target(k: Kernel, i: int) -> Thread | None:
    """The thread mailbox `i` is set up for: its TARGET word, or None."""
    return k.by_tcb.get(k.machine.memory.read(k.mailboxes.addr(i, xcpu.TARGET) - KERNEL_BASE))


def mailbox_paddr(k: Kernel, i: int) -> int:
    """The physical address of mailbox `i`'s first word."""
    return k.mailboxes.addr(i) - KERNEL_BASE


class SharedWords:
    """Which kernel words CPUs share, for the race explorer's branch points.

    Decoded from the kernel's physical memory map (memmap.py): the mailbox
    flag lines and the mailboxes are shared by design (§8.4); a word of a
    TCB is shared when the TCB's thread lives on another CPU than the one
    touching it (§8.6: its global lines). Anything else is the CPU's own
    until the explorer sees another CPU touch it.
    """

    __slots__ = ("_k", "_mail_end", "_tcb_end", "_tcb_size")

    def __init__(self, k: Kernel) -> None:
        self._k = k
        self._tcb_size = k.layout.size
        self._tcb_end = memmap.TCB_AREA + MAX_THREADS * k.layout.size
        self._mail_end = memmap.MAILBOX_BASE + xcpu.MAILBOXES * k.mailboxes.line

    def where(self, paddr: int, cpu: int) -> int:
        """`ALWAYS` for a word every CPU may touch or a TCB word of another CPU's thread
        (touched by CPU `cpu`); else `paddr` itself, a word shared only if seen so."""
        if memmap.FLAGS_BASE <= paddr < self._mail_end:
            return ALWAYS
        if memmap.TCB_AREA <= paddr < self._tcb_end:
            size = self._tcb_size
            base = memmap.TCB_AREA + (paddr - memmap.TCB_AREA) // size * size
            owner = self._k.by_tcb.get(KERNEL_BASE + base)
            if owner is not None and owner.cpu != cpu:
                return ALWAYS
        return paddr
