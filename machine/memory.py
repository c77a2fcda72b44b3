"""Physical memory: 4 KB frames of 32-bit words (thesis §2.2).

Memory is sparse — only words ever written are stored — so a checkpoint
copies what the run touched, not 64 MB. Caches (cache.py) model *where* a
line is and what accessing it costs; the values always live here, which is
exactly what MESI coherence guarantees a program observes (§3.1.2).

The race explorer names states by a digest of memory (`track`): the sum of a
64-bit mix of each non-zero word and its address, kept up to date by every
write, so naming a state costs nothing however much memory the run touched.
It is plain integer arithmetic (no `hash()` of strings, which differs between
processes), so worker processes and cluster workers agree on it. Untracked,
a write pays one attribute test.

Where the CPUs fall into independent groups (no kernel word touched by two
groups: l4tui/explore/groups.py), `track(buckets)` also keeps one such sum
per group (`parts`, indexed by the bucket a word is assigned to; 0 for every
word not assigned, which belongs to all groups), so the explorer can name
one group's share of the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from machine.errors import MachineError

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
WORD_MASK = 0xFFFF_FFFF
MASK64 = (1 << 64) - 1


def mix(paddr: int, value: int) -> int:
    """A word's share of the memory digest: 0 for a zero word (absent and 0 are alike)."""
    if not value:
        return 0
    h = ((paddr << 32 | value) * 0x9E37_79B9_7F4A_7C15) & MASK64  # splitmix64's finaliser
    h = ((h ^ h >> 30) * 0xBF58_476D_1CE4_E5B9) & MASK64
    h = ((h ^ h >> 27) * 0x94D0_49BB_1331_11EB) & MASK64
    return h ^ h >> 31


@dataclass(slots=True)
class Memory:
    """Physical memory of `size` bytes and a frame allocator over it."""

    size: int
    words: dict[int, int] = field(default_factory=dict)
    next_frame: int = 1  # frame 0 is never handed out: a zero PTE means "not present"
    free_frames: list[int] = field(default_factory=list)
    tracking: bool = False  # keep `digest` up to date (the race explorer's state key)
    digest: int = 0  # sum of mix(address, value) over the words, modulo 2**64, when tracking
    buckets: dict[int, int] | None = None  # word address -> its group's bucket (absent: 0)
    parts: list[int] = field(default_factory=list)  # the digest's share of each bucket

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
        a, v = paddr & ~3, value & WORD_MASK
        if self.tracking:
            d = mix(a, v) - mix(a, self.words.get(a, 0))
            self.digest = (self.digest + d) & MASK64
            if self.buckets is not None:
                b = self.buckets.get(a, 0)
                self.parts[b] = (self.parts[b] + d) & MASK64
        self.words[a] = v

    def track(
        self,
        buckets: dict[int, int] | None = None,
        n: int = 0,
        start: tuple[int, list[int]] | None = None,
    ) -> int:
        """Keep the digest of memory from now on (computed once here, then by each write).

        With `buckets` (word address -> 1..`n`), also the share of each bucket
        in `parts` (bucket 0: the words not assigned). `start`: the digest and
        parts a memory with the same words had, if known (not computed again).
        """
        self.tracking = True
        self.buckets = buckets
        if start is not None:
            self.digest, parts = start
            self.parts = list(parts)
            return self.digest
        if buckets is None:
            self.digest = sum(mix(a, v) for a, v in self.words.items()) & MASK64
            return self.digest
        parts = [0] * (n + 1)
        for a, v in self.words.items():
            b = buckets.get(a, 0)
            parts[b] += mix(a, v)
        self.parts = [x & MASK64 for x in parts]
        self.digest = sum(parts) & MASK64
        return self.digest

    def alloc_frame(self) -> int:
        """Physical address of a fresh zeroed frame."""
        if self.free_frames:
            frame = self.free_frames.pop()
            base = frame << PAGE_SHIFT
            words = self.words
            for a in range(base, base + PAGE_SIZE, 4):
                v = words.pop(a, 0)
                if v and self.tracking:
                    self.digest = (self.digest - mix(a, v)) & MASK64
                    if self.buckets is not None:
                        b = self.buckets.get(a, 0)
                        self.parts[b] = (self.parts[b] - mix(a, v)) & MASK64
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
