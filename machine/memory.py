"""Physical memory: 4 KB frames of 32-bit words (thesis §2.2).

Memory is sparse — only words ever written are stored — so a checkpoint
copies what the run touched, not 64 MB. Caches (cache.py) model *where* a
line is and what accessing it costs; the values always live here, which is
exactly what MESI coherence guarantees a program observes (§3.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from machine.errors import MachineError

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
WORD_MASK = 0xFFFF_FFFF


@dataclass(slots=True)
class Memory:
    """Physical memory of `size` bytes and a frame allocator over it."""

    size: int
    words: dict[int, int] = field(default_factory=dict)
    next_frame: int = 1  # frame 0 is never handed out: a zero PTE means "not present"
    free_frames: list[int] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.size >> PAGE_SHIFT

    def check(self, paddr: int) -> None:
        if not 0 <= paddr < self.size:
            raise MachineError(f"physical address {paddr:#x} outside memory ({self.size:#x} bytes)")
        if paddr & 3:
            raise MachineError(f"unaligned word access at {paddr:#x}")

    def read(self, paddr: int) -> int:
        return self.words.get(paddr & ~3, 0)

    def write(self, paddr: int, value: int) -> None:
        self.words[paddr & ~3] = value & WORD_MASK

    def alloc_frame(self) -> int:
        """Physical address of a fresh zeroed frame."""
        if self.free_frames:
            frame = self.free_frames.pop()
            base = frame << PAGE_SHIFT
            for a in range(base, base + PAGE_SIZE, 4):
                self.words.pop(a, None)
            return base
        if self.next_frame >= self.frames:
            raise MachineError("out of physical frames")
        # A frame never handed out was never written: every access to memory above the
        # kernel's fixed areas goes to a frame from here, so it needs no zeroing.
        frame = self.next_frame
        self.next_frame += 1
        return frame << PAGE_SHIFT

    def free_frame(self, paddr: int) -> None:
        self.free_frames.append(paddr >> PAGE_SHIFT)

    def frames_left(self) -> int:
        return self.frames - self.next_frame + len(self.free_frames)
