"""What the kernel keeps at a physical address, named (§8.2's memory map, §8.6's TCBs).

The debugger's `x ADDR` and its access log name each word: a TCB field of any
thread (proxies too, Table 3), a mailbox word (§8.3.4), a CPU's flag line or
per-CPU page, the KIP, a page directory or page table entry, a UTCB, a user
page. The decoding of the kernel's physical layout belongs here, beside the
layout (memmap.py), not in the debugger. Reading changes nothing: words come
from `Memory.read` and `paging.lookup` — no cache line moves, no TLB fill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel import xcpu
from kernel.layout import FIELDS
from kernel.memmap import KIP_FRAME, PERCPU_BASE, TCB_AREA, UTCB_SIZE, UTCB_VADDR
from kernel.thread import STATE_NAMES
from machine import paging
from machine.memory import PAGE_SIZE

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.thread import Thread

THREAD_FIELDS = frozenset(
    (
        "myself",
        "partner",
        "proxy",
        "pager",
        "ready_prev",
        "ready_next",
        "wakeup_prev",
        "wakeup_next",
        "send_queue",
        "send_prev",
        "send_next",
        "present_prev",
        "present_next",
    )
)
"""TCB fields that hold a thread (its id word or its TCB address)."""
MAILBOX_FIELDS = ("lock", "op", "sender", "dest", "param", "target", "next", "error")


class Owners:
    """Names what the kernel keeps at a physical address (built once per `x`)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.ncpus = len(k.cpus)
        self.tcb_size = k.layout.size
        self.tcb_end = TCB_AREA + len(k.threads) * self.tcb_size
        self.line = k.mailboxes.line
        self.fields = sorted(k.layout.offsets.items(), key=lambda kv: kv[1])
        self.tables: dict[int, tuple[str, str, int]] = {}  # frame -> (space, PDE|PTE, vbase)
        self.pages: dict[int, tuple[str, int]] = {}  # frame -> (space, vaddr), first mapping
        self.utcbs: dict[int, Thread] = {}  # UTCB physical start -> thread
        self._built = False

    def _build(self) -> None:
        """The page tables, user pages and UTCBs — only when an address needs them."""
        if self._built:
            return
        self._built = True
        k, mem = self.k, self.k.machine.memory
        for sp in k.spaces.spaces:
            self.tables[sp.pdbr & paging.FRAME_MASK] = (sp.name, "PDE", 0)
            for i in range(1024):
                pde = mem.read((sp.pdbr & paging.FRAME_MASK) + 4 * i)
                if pde & paging.PTE_PRESENT:
                    self.tables.setdefault(pde & paging.FRAME_MASK, (sp.name, "PTE", i << 22))
            for node in k.spaces.mapdb.pages(sp.number):
                self.pages.setdefault(node.frame, (sp.name, node.vaddr))
        for t in k.threads:
            if t.task is None or t.task.space is None:
                continue
            vaddr = UTCB_VADDR + (t.tid.lthread - 1) * UTCB_SIZE
            tr = paging.lookup(mem, t.task.space.pdbr, vaddr)
            if tr is not None:
                self.utcbs[tr.frame + vaddr % PAGE_SIZE] = t

    def thread(self, value: int, holds_thread: bool) -> str:
        """The thread a word's value stands for — a TCB address, or an id word that
        only one thread has (the proxies share theirs) — or ""."""
        if not holds_thread or not value:
            return ""
        t = self.k.by_tcb.get(value)
        if t is None:
            same = [t for t in self.k.threads if t.word == value and t.name in self.k.by_name]
            t = same[0] if len(same) == 1 else None
        return t.name if t is not None else ""

    def holds_thread(self, paddr: int) -> bool:
        """Whether the word at `paddr` holds a thread: a TCB link field (partner, a
        queue link...), a mailbox's sender, dest or target."""
        if TCB_AREA <= paddr < self.tcb_end:
            return self._field(paddr)[1] in THREAD_FIELDS
        if xcpu.MAILBOX_BASE <= paddr < xcpu.MAILBOX_BASE + xcpu.MAILBOXES * self.line:
            return (paddr - xcpu.MAILBOX_BASE) % self.line in (xcpu.SENDER, xcpu.DEST, xcpu.TARGET)
        return False

    def _field(self, paddr: int) -> tuple[Thread, str | None, int]:
        t = self.k.threads[(paddr - TCB_AREA) // self.tcb_size]
        off = (paddr - TCB_AREA) % self.tcb_size
        for name, at in self.fields:
            if at <= off < at + FIELDS[name]:
                return t, name, off - at
        return t, None, off

    def name(self, paddr: int, user: bool = False) -> str:
        """What the kernel keeps at `paddr`: ``srv.partner``, ``mailbox 3 target``, or ""."""
        if TCB_AREA <= paddr < self.tcb_end:
            t, field, off = self._field(paddr)
            if field is None:
                return f"{t.name} TCB+{off:#x}"
            return f"{t.name}.{field}" + (f"+{off}" if off else "")
        mail_end = xcpu.MAILBOX_BASE + xcpu.MAILBOXES * self.line
        if xcpu.MAILBOX_BASE <= paddr < mail_end:
            i, off = divmod(paddr - xcpu.MAILBOX_BASE, self.line)
            word = off // 4
            return f"mailbox {i} " + (
                MAILBOX_FIELDS[word] if word < len(MAILBOX_FIELDS) else f"+{off:#x}"
            )
        if xcpu.FLAGS_BASE <= paddr < xcpu.FLAGS_BASE + self.ncpus * self.line:
            cpu, off = divmod(paddr - xcpu.FLAGS_BASE, self.line)
            if off // 4 < xcpu.FLAG_WORDS:
                return f"cpu{cpu + 1} flags word {off // 4}"
            return f"cpu{cpu + 1} flag line +{off:#x}"
        if PERCPU_BASE <= paddr < PERCPU_BASE + self.ncpus * PAGE_SIZE:
            cpu, off = divmod(paddr - PERCPU_BASE, PAGE_SIZE)
            return f"cpu{cpu + 1} per-CPU page +{off:#x}"
        if KIP_FRAME <= paddr < KIP_FRAME + PAGE_SIZE:
            return f"KIP+{paddr - KIP_FRAME:#x}"
        self._build()
        frame, off = paddr & paging.FRAME_MASK, paddr & (PAGE_SIZE - 1)
        table = self.tables.get(frame)
        if table is not None:
            space, kind, vbase = table
            covers = (off // 4) << (22 if kind == "PDE" else 12)
            return f"{space} {kind} for {vbase + covers:#010x}"
        utcb = paddr - paddr % UTCB_SIZE
        if utcb in self.utcbs:
            return f"{self.utcbs[utcb].name} UTCB+{paddr - utcb:#x}"
        page = self.pages.get(frame)
        if page is not None and not user:
            return f"{page[0]}:{page[1] + off:#010x}"
        return ""


def meaning(k: Kernel, paddr: int, value: int, owners: Owners | None = None) -> str:
    """What a kernel word's value stands for: the thread it names (a partner, a queue
    link, a mailbox's sender) or the state a `thread_state` holds; "" otherwise."""
    owners = owners or Owners(k)
    if owners.name(paddr).endswith(".thread_state"):
        return STATE_NAMES.get(value, "")
    return owners.thread(value, owners.holds_thread(paddr))
