"""Per-CPU L1 and L2 caches kept coherent by bus-snooping MESI (thesis §3.1.2, §3.2).

Each CPU has a set-associative L1 and L2 with LRU replacement; L2 includes
L1. A line's MESI state is kept per CPU (the state of that CPU's caches, as
the thesis describes it); the values themselves live in `Memory`.

Every transition of §3.1.2 is modelled: a read miss fills E, or S when
another cache holds the line, whose E copy becomes S (the snooper's HIT#
stall); a modified copy elsewhere is first written back to memory — the 440BX
cannot snoop the data in flight — then read (M->S). A write to an E line is
silent (E->M); to an S line or a missing line it is a read-for-ownership that
invalidates every other copy (S->I, E->I, M->I after its write-back).

Costs are in engine ticks, derived from the profile's hardware parameters;
running the thesis's loops on this model reproduces Tables 1 and 2.
Transitions are counted in total (``E->S`` …) and per line, an eviction for
space (M->I, E->I, S->I of the victim) as well as a snoop's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from machine.bus import Bus
from machine.profile import Profile

I, S, E, M = 0, 1, 2, 3  # noqa: E741 - the states are named as the thesis names them
STATE_NAMES = "ISEM"
READ, WRITE, LOCKED = "read", "write", "locked"


def transition_name(old: int, new: int) -> str:
    return f"{STATE_NAMES[old]}->{STATE_NAMES[new]}"


TRANSITIONS = [transition_name(a, b) for a in range(4) for b in range(4) if a != b]


@dataclass(slots=True)
class CacheStats:
    """Hit and miss counts of one CPU's caches."""

    l1_hits: int = 0
    l1_misses: int = 0
    l2_hits: int = 0
    l2_misses: int = 0
    writebacks: int = 0
    evictions: int = 0


class Sets(dict[int, list[int]]):
    """One cache level's sets, indexed by set number, each made on first use.

    A list per set made up front would cost memory proportional to the
    configured size (a 64 MB L2 of 4-byte lines on 16 CPUs: hundreds of
    millions of lists); only the sets a run touches exist here. Indexing
    works as on a list of sets (`sets[i]`, an empty set if never used), and
    iterating gives the sets in set order, as a list would — without the
    sets never used, which are empty.
    """

    __slots__ = ()

    def __missing__(self, index: int) -> list[int]:
        s: list[int] = []
        self[index] = s
        return s

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]  # a list's iteration
        return (dict.__getitem__(self, i) for i in sorted(dict.keys(self)))


@dataclass(slots=True)
class CpuCaches:
    """One CPU's L1 and L2: per set, the line numbers held, least recently used first."""

    l1: Sets = field(default_factory=Sets)
    l2: Sets = field(default_factory=Sets)
    state: dict[int, int] = field(default_factory=dict)  # line -> MESI, for lines in L2
    stats: CacheStats = field(default_factory=CacheStats)


@dataclass(frozen=True, slots=True)
class LineAccess:
    """The last access to a line: which CPU (0-based), what kind, at which tick."""

    cpu: int
    kind: str
    tick: int


class Coherence:
    """All CPUs' caches and the snooping protocol between them."""

    def __init__(self, profile: Profile, ncpus: int, bus: Bus) -> None:
        c = profile.cache
        tpc = profile.ticks_per_cycle
        self.line_size = c.line_size
        self.shift = c.line_size.bit_length() - 1
        self.l1_sets = c.l1.size_kb * 1024 // c.line_size // c.l1.ways
        self.l2_sets = c.l2.size_kb * 1024 // c.line_size // c.l2.ways
        self.l1_ways, self.l2_ways = c.l1.ways, c.l2.ways
        self.l1_mask, self.l2_mask = self.l1_sets - 1, self.l2_sets - 1
        self.bus = bus
        b = profile.bus
        bc = tpc * profile.clock.cpu_mhz // profile.clock.bus_mhz  # ticks per bus cycle

        def ticks(cycles: float) -> int:
            return round(cycles * tpc)

        def bus_ticks(bus_cycles: float) -> int:
            return round(bus_cycles * bc)

        self.t_l1 = ticks(c.l1.latency)
        self.t_l2 = ticks(c.l2.latency)
        self.t_locked = ticks(profile.cpu.locked)
        self.b_read = bus_ticks(b.arbitration + b.read_line)
        self.b_writeback = bus_ticks(b.write_line)
        self.b_snoop_shared = bus_ticks(b.snoop_shared)
        self.b_snoop_inval = bus_ticks(b.snoop_invalidate)
        self.b_invalidate = bus_ticks(b.arbitration + b.invalidate)
        self.cpus = [CpuCaches() for _ in range(ncpus)]
        self.holders: dict[int, int] = {}  # line -> bit mask of CPUs holding it
        self.transitions: dict[str, int] = dict.fromkeys(TRANSITIONS, 0)
        self.line_transitions: dict[int, dict[str, int]] = {}
        self.last: dict[int, tuple[int, str, int]] = {}  # line -> (cpu, kind, tick)

    # --- queries ------------------------------------------------------------

    def line_of(self, paddr: int) -> int:
        return paddr >> self.shift

    def state(self, cpu: int, paddr: int) -> int:
        """MESI state of the line holding `paddr` in CPU `cpu`'s caches (0-based)."""
        return self.cpus[cpu].state.get(paddr >> self.shift, I)

    def last_access(self, paddr: int) -> LineAccess | None:
        """The last access any CPU made to the line holding `paddr`."""
        last = self.last.get(paddr >> self.shift)
        return LineAccess(*last) if last is not None else None

    def level(self, cpu: int, paddr: int) -> str | None:
        """``"L1"``, ``"L2"`` or None: where the line is in that CPU's caches."""
        line = paddr >> self.shift
        caches = self.cpus[cpu]
        if line in caches.l1[line & self.l1_mask]:
            return "L1"
        if line in caches.state:
            return "L2"
        return None

    # --- the protocol -------------------------------------------------------

    def _count(self, line: int, old: int, new: int) -> None:
        name = transition_name(old, new)
        self.transitions[name] += 1
        per = self.line_transitions.get(line)
        if per is None:
            per = self.line_transitions[line] = {}
        per[name] = per.get(name, 0) + 1

    def _set(self, cpu: int, line: int, new: int) -> None:
        caches = self.cpus[cpu]
        old = caches.state.get(line, I)
        if old == new:
            return
        self._count(line, old, new)
        if new == I:
            del caches.state[line]
            self.holders[line] &= ~(1 << cpu)
            if not self.holders[line]:
                del self.holders[line]
            s1 = caches.l1[line & self.l1_mask]
            if line in s1:
                s1.remove(line)
            caches.l2[line & self.l2_mask].remove(line)
        else:
            caches.state[line] = new
            if old == I:
                self.holders[line] = self.holders.get(line, 0) | (1 << cpu)

    def _fill(self, cpu: int, line: int, state: int, now: int) -> None:
        """Bring `line` into CPU `cpu`'s L2 and L1 in `state`, evicting LRU victims."""
        caches = self.cpus[cpu]
        s2 = caches.l2[line & self.l2_mask]
        if len(s2) >= self.l2_ways:
            victim = s2[0]
            old = caches.state[victim]
            if old == M:
                caches.stats.writebacks += 1
                # Written back through the write buffer: the bus is busy, the CPU is not.
                self.bus.acquire(now, self.b_writeback, "writeback")
            caches.stats.evictions += 1
            self._count(victim, old, I)
            del caches.state[victim]
            mask = self.holders[victim] & ~(1 << cpu)
            if mask:
                self.holders[victim] = mask
            else:
                del self.holders[victim]
            s2.pop(0)
            v1 = caches.l1[victim & self.l1_mask]
            if victim in v1:
                v1.remove(victim)
        s2.append(line)
        self._touch_l1(caches, line)
        self._count(line, I, state)
        caches.state[line] = state
        self.holders[line] = self.holders.get(line, 0) | (1 << cpu)

    def _touch_l1(self, caches: CpuCaches, line: int) -> None:
        s1 = caches.l1[line & self.l1_mask]
        if line in s1:
            if s1[-1] != line:
                s1.remove(line)
                s1.append(line)
            return
        if len(s1) >= self.l1_ways:
            s1.pop(0)
        s1.append(line)

    def _others(self, cpu: int, line: int) -> list[int]:
        mask = self.holders.get(line, 0) & ~(1 << cpu)
        out = []
        i = 0
        while mask:
            if mask & 1:
                out.append(i)
            mask >>= 1
            i += 1
        return out

    def read(self, cpu: int, paddr: int, now: int) -> int:
        """Cost in ticks of CPU `cpu` (0-based) loading the word at `paddr`."""
        line = paddr >> self.shift
        caches = self.cpus[cpu]
        self.last[line] = (cpu, READ, now)
        s1 = caches.l1[line & self.l1_mask]
        if line in s1:
            if s1[-1] != line:
                s1.remove(line)
                s1.append(line)
            caches.stats.l1_hits += 1
            return self.t_l1
        return self.l1_miss(cpu, caches, line, now)

    def l1_miss(self, cpu: int, caches: CpuCaches, line: int, now: int) -> int:
        """`read`'s cost after its L1 lookup missed (the engine's fast path calls it too)."""
        caches.stats.l1_misses += 1
        if line in caches.state:
            caches.stats.l2_hits += 1
            s2 = caches.l2[line & self.l2_mask]
            s2.remove(line)
            s2.append(line)
            self._touch_l1(caches, line)
            return self.t_l2
        caches.stats.l2_misses += 1
        others = self._others(cpu, line)
        duration = self.b_read
        new = E
        kind = "read"
        if others:
            new = S
            for o in others:
                ostate = self.cpus[o].state[line]
                if ostate == M:
                    duration += self.b_writeback
                    self.cpus[o].stats.writebacks += 1
                    self.bus.transactions["snoop_writeback"] += 1
                    self._set(o, line, S)
                elif ostate == E:
                    duration += self.b_snoop_shared
                    self._set(o, line, S)
        end = self.bus.acquire(now + self.t_l2, duration, kind)
        self._fill(cpu, line, new, now)
        return end - now

    def write(self, cpu: int, paddr: int, now: int, kind: str = WRITE) -> int:
        """Cost in ticks of CPU `cpu` storing to `paddr` (the line ends up M here)."""
        line = paddr >> self.shift
        caches = self.cpus[cpu]
        self.last[line] = (cpu, kind, now)
        state = caches.state.get(line, I)
        if state >= E:  # E or M: no bus transaction
            in_l1 = line in caches.l1[line & self.l1_mask]
            if in_l1:
                caches.stats.l1_hits += 1
            else:
                caches.stats.l1_misses += 1
                caches.stats.l2_hits += 1
                s2 = caches.l2[line & self.l2_mask]
                s2.remove(line)
                s2.append(line)
            self._touch_l1(caches, line)
            if state == E:
                self._set(cpu, line, M)
            return self.t_l1 if in_l1 else self.t_l2
        others = self._others(cpu, line)
        if state == S:
            # Upgrade: an invalidating transaction; the line's data stays.
            if line in caches.l1[line & self.l1_mask]:
                caches.stats.l1_hits += 1
            else:
                caches.stats.l1_misses += 1
                caches.stats.l2_hits += 1
            duration = self.b_invalidate + (self.b_snoop_inval if others else 0)
            for o in others:
                self._set(o, line, I)
            end = self.bus.acquire(now + self.t_l2, duration, "invalidate")
            self._touch_l1(caches, line)
            s2 = caches.l2[line & self.l2_mask]
            s2.remove(line)
            s2.append(line)
            self._set(cpu, line, M)
            return end - now
        caches.stats.l1_misses += 1
        caches.stats.l2_misses += 1
        duration = self.b_read
        for o in others:
            if self.cpus[o].state[line] == M:
                # HITM#: the owner writes the line back before we may read it.
                duration += self.b_writeback
                self.cpus[o].stats.writebacks += 1
                self.bus.transactions["snoop_writeback"] += 1
            self._set(o, line, I)
        if others and duration == self.b_read:
            duration += self.b_snoop_inval  # clean copies dropped: the snoop response
        end = self.bus.acquire(now + self.t_l2, duration, "rfo")
        self._fill(cpu, line, M, now)
        return end - now

    def locked(self, cpu: int, paddr: int, now: int) -> int:
        """Cost of a lock-prefixed read-modify-write: it holds the bus throughout."""
        cost = self.write(cpu, paddr, now, LOCKED)
        # LOCK# is held for the read-modify-write after the line is ours.
        end = self.bus.acquire(now + cost, self.t_locked, "locked")
        return end - now

    def flush_all(self) -> None:
        """wbinvd on every CPU: write back and drop every line (used to prepare experiments)."""
        for cpu, caches in enumerate(self.cpus):
            for line in list(caches.state):
                if caches.state[line] == M:
                    caches.stats.writebacks += 1
                self._set(cpu, line, I)
