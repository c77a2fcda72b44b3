"""`x ADDR [N]`: examine memory as Fiasco's JDB and kdb do — N words in hex, each one named.

ADDR is a physical address (``0x41000``, decimal too), a kernel virtual address
(at or above ``KERNEL_BASE``: the kernel's window onto physical memory, §8.2),
``THREAD`` (its TCB), ``THREAD.FIELD`` (one TCB field, Table 3) or
``THREAD:VADDR`` (a user address, translated through the page tables of the
thread's task, §2.2). Each word is named by what the kernel keeps there: a TCB
field of any thread (proxies too), a mailbox word (§8.3.4), a CPU's flag line,
the KIP, a page directory or page table entry, a UTCB, a user page.

Reading changes nothing: words come straight from simulated physical memory
(`Memory.read`, a dictionary look-up) and translation walks the tables with
`paging.lookup` — no cache line moves, no TLB entry is filled, no access counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel import xcpu
from kernel.layout import FIELDS
from kernel.memmap import KIP_FRAME, PERCPU_BASE, TCB_AREA, UTCB_SIZE, UTCB_VADDR
from kernel.thread import STATE_NAMES
from l4tui.grammar import MAX_NUMBER, CommandError, shown, suggest
from l4tui.views import thread
from machine import paging
from machine.memory import PAGE_SIZE
from machine.ops import KERNEL_BASE, Atomic, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.thread import Thread
    from l4tui.session import Session

DEFAULT_WORDS = 4
MAX_WORDS = 256
USAGE = "usage: x ADDR [N]; ADDR: 0xPHYS | 0xKERNEL_VIRT | THREAD | THREAD.FIELD | THREAD:VADDR"
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|\d+")
_THREAD_FIELDS = frozenset(
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
_MAILBOX_FIELDS = ("lock", "op", "sender", "dest", "param", "target", "next", "error")


@dataclass(frozen=True, slots=True)
class Word:
    """One examined word: the address as asked for, where it lives, its value and owner."""

    addr: int  # physical, kernel virtual or user virtual, as the user gave the start
    paddr: int
    value: int
    owner: str  # what the kernel keeps there ("srv.partner"), or ""
    names: str = ""  # the thread a TCB field's value names, or ""
    user: bool = False  # `addr` is a user virtual address (THREAD:VADDR)


def _number(text: str, what: str) -> int:
    if len(text) > MAX_NUMBER or not _NUMBER.fullmatch(text):
        raise CommandError(f"{what} must be a number (0x1234 or 4660), not {shown(text)}")
    return int(text, 0)


def _count(text: str | None) -> int:
    if text is None:
        return DEFAULT_WORDS
    n = _number(text, "N")
    if not 1 <= n <= MAX_WORDS:
        raise CommandError(f"N must be 1..{MAX_WORDS} words, not {n}")
    return n


def _check_physical(s: Session, paddr: int, n: int, shown: int) -> None:
    size = s.system.machine.memory.size
    if not 0 <= paddr < size:
        if shown >= KERNEL_BASE:
            raise CommandError(
                f"{shown:#x} maps no memory: the kernel window is "
                f"{KERNEL_BASE:#x}..{KERNEL_BASE + size - 1:#x}"
            )
        raise CommandError(f"physical address {shown:#x} is outside memory ({size:#x} bytes)")
    if paddr + 4 * n > size:
        raise CommandError(f"{n} words from {shown:#x} run past the end of memory ({size:#x})")


def _space_of(s: Session, t: Thread) -> int:
    """The page directory of `t`'s task (CommandError if it has none)."""
    if t.task is None:
        raise CommandError(f"{t.name} is a kernel thread: it has no user address space")
    if t.task.space is None:
        raise CommandError(f"{t.name}'s task {t.task.name} has no address space yet")
    return t.task.space.pdbr


def words(s: Session, addr_text: str, count_text: str | None = None) -> list[Word]:
    """The words `x ADDR [N]` shows; CommandError for a bad address or count."""
    n = _count(count_text)
    k = s.system.kernel
    mem = s.system.machine.memory
    owners = Owners(k)
    user: tuple[Thread, int] | None = None  # (thread, page directory) for THREAD:VADDR
    names = [t.name for t in s.scenario.threads()]
    if _NUMBER.fullmatch(addr_text):
        start = _number(addr_text, "ADDR")
    elif addr_text in k.by_name:
        start = k.by_name[addr_text].tcb
    elif ":" in addr_text:
        name, _, vaddr_text = addr_text.partition(":")
        t = thread(s, name)
        start = _number(vaddr_text, f"the address in {shown(addr_text)}")
        if start < KERNEL_BASE:
            user = (t, _space_of(s, t))
    elif "." in addr_text:
        name, _, field = addr_text.rpartition(".")
        t = thread(s, name)
        if field not in t.f:
            raise CommandError(f"no TCB field {shown(field)}{suggest(field, list(t.f))}")
        start = t.f[field]
    else:
        hint = suggest(addr_text, names) or f"; {USAGE}"
        raise CommandError(f"no address or thread {shown(addr_text)}{hint}")
    if start > 0xFFFF_FFFF:
        raise CommandError(f"{start:#x} is not a 32-bit address")
    start &= ~3  # whole words, as the machine reads them
    if start + 4 * n > 0x1_0000_0000:
        raise CommandError(f"{n} words from {start:#x} run past the end of the address space")
    out: list[Word] = []
    if user is None:
        base = start - KERNEL_BASE if start >= KERNEL_BASE else start
        _check_physical(s, base, n, start)
        for i in range(n):
            paddr = base + 4 * i
            value = mem.read(paddr)
            owner, named = owners.name(paddr), owners.holds_thread(paddr)
            out.append(Word(start + 4 * i, paddr, value, owner, owners.thread(value, named)))
        return out
    t, pdbr = user
    for i in range(n):
        vaddr = start + 4 * i
        tr = paging.lookup(mem, pdbr, vaddr)
        if tr is None:
            if not out:
                raise CommandError(f"{vaddr:#x} is not mapped in {t.name}'s space")
            break  # the page after a mapped one is not mapped: show what there is
        paddr = tr.frame | (vaddr & (PAGE_SIZE - 1))
        if paddr >= mem.size:  # pragma: no cover - the kernel maps only frames it has
            break
        owner = owners.name(paddr, user=True)
        out.append(Word(vaddr, paddr, mem.read(paddr), owner, user=True))
    return out


def show(s: Session, args: tuple[str, ...]) -> str:
    """The text of `x ADDR [N]`: one word per line — address, value, whose it is.

    For a user address the third column is the physical address it translates to.
    """
    if not 1 <= len(args) <= 2:
        raise CommandError(USAGE)
    asked = _count(args[1] if len(args) == 2 else None)
    got = words(s, args[0], args[1] if len(args) == 2 else None)
    user = got[0].user
    notes = [
        (f"-> {w.paddr:#010x}" + (f" {w.owner}" if w.owner else "")) if user else w.owner
        for w in got
    ]
    width = max(len(n) for n in notes)
    lines = []
    for w, note in zip(got, notes, strict=True):
        text = f"{w.addr:#010x}  {w.value:#010x}"
        if w.names:
            text += f"  {note.ljust(width)}  = {w.names}"
        elif note:
            text += f"  {note}"
        lines.append(text)
    if len(got) < asked:  # a user range that ran into an unmapped page
        name = args[0].partition(":")[0]
        lines.append(f"{got[-1].addr + 4:#010x}  is not mapped in {name}'s space")
    return "\n".join(lines)


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
            return self._field(paddr)[1] in _THREAD_FIELDS
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
                _MAILBOX_FIELDS[word] if word < len(_MAILBOX_FIELDS) else f"+{off:#x}"
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


def access(s: Session, op: object, result: object) -> str:
    """A kernel memory access as a debugger says it: `Read snd.thread_state = 0x3 (polling)`.

    "" for an op that touches no kernel word (user memory goes through page tables
    that this does not walk: its address is shown as it is by the caller).
    """
    if not isinstance(op, Read | Write | Atomic) or op.addr < KERNEL_BASE:
        return ""
    k = s.system.kernel
    owners = Owners(k)
    paddr = op.addr - KERNEL_BASE
    where = owners.name(paddr) or f"{op.addr:#x}"
    if isinstance(op, Write):
        value = op.value
    elif isinstance(result, int):
        value = result
    else:
        return f"{type(op).__name__} {where}"
    said = meaning(k, paddr, value, owners)
    verb = "Atomic " + op.kind if isinstance(op, Atomic) else type(op).__name__
    arrow = "was" if isinstance(op, Atomic) else "="
    return f"{verb} {where} {arrow} {value:#x}" + (f" ({said})" if said else "")
