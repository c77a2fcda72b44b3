"""Per-CPU translation lookaside buffers, untagged (thesis §3.1.1).

A TLB caches recent translations of user pages. Loading CR3 flushes it,
`invlpg` drops one entry, and nothing a CPU does reaches another CPU's TLB —
which is why an unmap needs a TLB shootdown by IPI on an SMP (§9.3, ID 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from machine.memory import PAGE_SHIFT


@dataclass(slots=True)
class TlbEntry:
    frame: int
    writable: bool
    dirty: bool  # the PTE's dirty bit was set when this entry was loaded


@dataclass(slots=True)
class Tlb:
    """One CPU's TLB: virtual page number -> entry, least recently used first."""

    capacity: int
    entries: dict[int, TlbEntry] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    flushes: int = 0

    def lookup(self, vaddr: int) -> TlbEntry | None:
        vpn = vaddr >> PAGE_SHIFT
        entry = self.entries.get(vpn)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        # Move to most-recently-used.
        del self.entries[vpn]
        self.entries[vpn] = entry
        return entry

    def insert(self, vaddr: int, frame: int, writable: bool, dirty: bool = False) -> None:
        vpn = vaddr >> PAGE_SHIFT
        self.entries.pop(vpn, None)
        if len(self.entries) >= self.capacity:
            del self.entries[next(iter(self.entries))]
        self.entries[vpn] = TlbEntry(frame, writable, dirty)

    def flush(self) -> None:
        self.entries.clear()
        self.flushes += 1

    def invalidate(self, vaddr: int) -> bool:
        return self.entries.pop(vaddr >> PAGE_SHIFT, None) is not None
