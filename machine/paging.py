"""Two-level x86 page tables: 10 bits directory, 10 bits table, 12 bits offset (§2.2).

Page tables live in simulated physical memory, so the MMU's walk on a TLB
miss reads page-directory and page-table entries through the caches like any
other data (§3.1: "the page table entries itself are cached in the L1 and L2
cache"). The functions here edit tables directly — what boot code does
before any CPU runs; a kernel running on the machine edits entries with
Write micro-ops so their cache lines move.
"""

from __future__ import annotations

from dataclasses import dataclass

from machine.memory import PAGE_SHIFT, Memory

PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PTE_USER = 1 << 2
PTE_ACCESSED = 1 << 5
PTE_DIRTY = 1 << 6
FRAME_MASK = 0xFFFF_F000


def pde_index(vaddr: int) -> int:
    return (vaddr >> 22) & 0x3FF


def pte_index(vaddr: int) -> int:
    return (vaddr >> PAGE_SHIFT) & 0x3FF


def pde_addr(pdbr: int, vaddr: int) -> int:
    """Physical address of the page-directory entry for `vaddr`."""
    return (pdbr & FRAME_MASK) + 4 * pde_index(vaddr)


def pte_addr(pde: int, vaddr: int) -> int:
    """Physical address of the page-table entry for `vaddr`, given its PDE."""
    return (pde & FRAME_MASK) + 4 * pte_index(vaddr)


@dataclass(frozen=True, slots=True)
class Translation:
    """A present mapping of one page."""

    frame: int  # physical address of the frame
    writable: bool
    user: bool


def new_directory(memory: Memory) -> int:
    """A fresh, empty page directory; returns its physical address (a CR3 value)."""
    return memory.alloc_frame()


def map_page(memory: Memory, pdbr: int, vaddr: int, frame: int, writable: bool = True) -> None:
    """Map the page of `vaddr` to `frame`, creating the page table if needed."""
    pda = pde_addr(pdbr, vaddr)
    pde = memory.read(pda)
    if not pde & PTE_PRESENT:
        table = memory.alloc_frame()
        pde = table | PTE_PRESENT | PTE_WRITABLE | PTE_USER
        memory.write(pda, pde)
    flags = PTE_PRESENT | PTE_USER | (PTE_WRITABLE if writable else 0)
    memory.write(pte_addr(pde, vaddr), (frame & FRAME_MASK) | flags)


def unmap_page(memory: Memory, pdbr: int, vaddr: int) -> bool:
    """Remove the mapping of `vaddr`; True if there was one. (TLBs are not touched.)"""
    pde = memory.read(pde_addr(pdbr, vaddr))
    if not pde & PTE_PRESENT:
        return False
    pta = pte_addr(pde, vaddr)
    had = bool(memory.read(pta) & PTE_PRESENT)
    memory.write(pta, 0)
    return had


def protect_page(memory: Memory, pdbr: int, vaddr: int, writable: bool) -> bool:
    """Change the write permission of a present mapping; True if it was present."""
    pde = memory.read(pde_addr(pdbr, vaddr))
    if not pde & PTE_PRESENT:
        return False
    pta = pte_addr(pde, vaddr)
    pte = memory.read(pta)
    if not pte & PTE_PRESENT:
        return False
    memory.write(pta, (pte | PTE_WRITABLE) if writable else (pte & ~PTE_WRITABLE))
    return True


def lookup(memory: Memory, pdbr: int, vaddr: int) -> Translation | None:
    """The current translation of `vaddr` in these tables, read without side effects."""
    pde = memory.read(pde_addr(pdbr, vaddr))
    if not pde & PTE_PRESENT:
        return None
    pte = memory.read(pte_addr(pde, vaddr))
    if not pte & PTE_PRESENT:
        return None
    return Translation(pte & FRAME_MASK, bool(pte & PTE_WRITABLE), bool(pte & PTE_USER))
