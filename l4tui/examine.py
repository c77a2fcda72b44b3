"""`x ADDR [N]`: examine memory as Fiasco's JDB and kdb do — N words in hex, each one named.

ADDR is a physical address (``0x41000``, decimal too), a kernel virtual address
(at or above ``KERNEL_BASE``: the kernel's window onto physical memory, §8.2),
``THREAD`` (its TCB), ``THREAD.FIELD`` (one TCB field, Table 3) or
``THREAD:VADDR`` (a user address, translated through the page tables of the
thread's task, §2.2). Each word is named by what the kernel keeps there: a TCB
field of any thread (proxies too), a mailbox word (§8.3.4), a CPU's flag line,
the KIP, a page directory or page table entry, a UTCB, a user page (the names
are kernel/owners.py's: the kernel decodes its own memory map).

Reading changes nothing: words come straight from simulated physical memory
(`Memory.read`, a dictionary look-up) and translation walks the tables with
`paging.lookup` — no cache line moves, no TLB entry is filled, no access counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.owners import Owners, meaning
from l4tui.grammar import MAX_NUMBER, CommandError, shown, suggest
from l4tui.views import thread
from machine import paging
from machine.memory import PAGE_SIZE
from machine.ops import KERNEL_BASE, Atomic, Read, Write

if TYPE_CHECKING:
    from kernel.thread import Thread
    from l4tui.session import Session

DEFAULT_WORDS = 4
MAX_WORDS = 256
USAGE = "usage: x ADDR [N]; ADDR: 0xPHYS | 0xKERNEL_VIRT | THREAD | THREAD.FIELD | THREAD:VADDR"
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|\d+")


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
