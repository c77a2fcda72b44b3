"""Set-associative caches with LRU replacement; L2 includes L1 (thesis §3.1, §3.2.1).

The p3-dual-450 L1 is 16 KB 4-way with 32-byte lines (128 sets): lines 4 KB
apart fall into the same L1 set. The L2 is 512 KB 4-way (4096 sets): lines
128 KB apart fall into the same L2 set, and also into the same L1 set.
"""

from __future__ import annotations

from typing import Any

import pytest

from machine import Machine, load_profile
from machine.cache import E, I, M
from machine.ops import Read, Write, kaddr

PROFILE = load_profile("p3-dual-450")
BASE = 0x40000


@pytest.fixture
def m() -> Machine:
    return Machine(PROFILE, seed=1)


def run(m: Machine, cpu: int, *ops: Any) -> list[Any]:
    """Run `ops` in order on CPU `cpu`; the results."""
    out: list[Any] = []

    def code() -> Any:
        for op in ops:
            out.append((yield op))

    m.start(cpu, code())
    m.run()
    return out


def reads(*paddrs: int) -> list[Read]:
    return [Read(kaddr(p)) for p in paddrs]


def l1_stride(m: Machine) -> int:
    return m.coherence.l1_sets * m.coherence.line_size


def l2_stride(m: Machine) -> int:
    return m.coherence.l2_sets * m.coherence.line_size


def test_geometry(m: Machine) -> None:
    assert m.coherence.l1_sets == 128 and m.coherence.l1_ways == 4
    assert m.coherence.l2_sets == 4096 and m.coherence.l2_ways == 4
    assert l1_stride(m) == 4096
    assert l2_stride(m) == 128 * 1024


def test_fifth_line_in_an_l1_set_evicts_the_least_recently_used(m: Machine) -> None:
    a, b, c, d, e = (BASE + k * l1_stride(m) for k in range(5))
    run(m, 1, *reads(a, b, c, d))
    assert all(m.coherence.level(0, x) == "L1" for x in (a, b, c, d))
    run(m, 1, *reads(a))  # a is now the most recently used; b the least
    run(m, 1, *reads(e))
    assert m.coherence.level(0, b) == "L2", "the LRU line leaves L1 but stays in L2"
    for x in (a, c, d, e):
        assert m.coherence.level(0, x) == "L1"
    # The next victim is c, then d.
    f = BASE + 5 * l1_stride(m)
    run(m, 1, *reads(f))
    assert m.coherence.level(0, c) == "L2"
    assert m.coherence.level(0, d) == "L1"


def test_write_counts_as_a_use_for_lru(m: Machine) -> None:
    a, b, c, d, e = (BASE + k * l1_stride(m) for k in range(5))
    run(m, 1, *reads(a, b, c, d))
    run(m, 1, Write(kaddr(a), 1))  # E->M, and a becomes the most recently used
    run(m, 1, *reads(e))
    assert m.coherence.level(0, a) == "L1"
    assert m.coherence.level(0, b) == "L2"


def test_l1_eviction_is_silent_and_refill_hits_l2(m: Machine) -> None:
    a, *others = (BASE + k * l1_stride(m) for k in range(5))
    run(m, 1, Write(kaddr(a), 77))
    run(m, 1, *reads(*others))
    assert m.coherence.level(0, a) == "L2"
    assert m.coherence.state(0, a) == M, "leaving L1 keeps the line modified in L2"
    stats = m.coherence.cpus[0].stats
    before = (stats.l2_hits, stats.l2_misses, stats.writebacks, stats.evictions)
    assert run(m, 1, *reads(a)) == [77]
    assert stats.l2_hits == before[0] + 1
    assert stats.l2_misses == before[1]
    assert (stats.writebacks, stats.evictions) == before[2:]
    assert m.coherence.level(0, a) == "L1"


def test_fifth_line_in_an_l2_set_evicts_the_lru_line_from_both_levels(m: Machine) -> None:
    a, b, c, d, e = (BASE + k * l2_stride(m) for k in range(5))
    run(m, 1, *reads(a, b, c, d))
    run(m, 1, *reads(e))
    assert m.coherence.level(0, a) is None
    assert m.coherence.state(0, a) == I
    assert m.coherence.cpus[0].stats.evictions == 1
    assert m.coherence.cpus[0].stats.writebacks == 0  # a was clean (E)
    assert m.bus.transactions["writeback"] == 0


def test_l2_eviction_drops_the_line_from_l1_too(m: Machine) -> None:
    """Inclusion: a line that is recent in L1 but the LRU of its L2 set still goes."""
    a, b, c, d, e = (BASE + k * l2_stride(m) for k in range(5))
    run(m, 1, *reads(a, b, c, d))
    # L1 hits do not reach the L2, so a stays the L2's least recently used line.
    run(m, 1, *reads(a))
    assert m.coherence.cpus[0].stats.l1_hits == 1
    run(m, 1, *reads(e))
    assert m.coherence.level(0, a) is None
    caches = m.coherence.cpus[0]
    line = m.coherence.line_of(a)
    assert all(line not in s for s in caches.l1)
    assert all(line not in s for s in caches.l2)
    assert m.coherence.holders.get(line, 0) == 0


def test_evicting_a_modified_line_from_l2_writes_it_back(m: Machine) -> None:
    a, b, c, d, e = (BASE + k * l2_stride(m) for k in range(5))
    run(m, 1, Write(kaddr(a), 5), *reads(b, c, d))
    assert m.coherence.state(0, a) == M
    stats = m.coherence.cpus[0].stats
    assert stats.writebacks == 0
    run(m, 1, *reads(e))
    assert m.coherence.level(0, a) is None
    assert stats.writebacks == 1
    assert stats.evictions == 1
    assert m.bus.transactions["writeback"] == 1
    # The value survives the write-back: the next read misses and finds it.
    misses = stats.l2_misses
    assert run(m, 1, *reads(a)) == [5]
    assert stats.l2_misses == misses + 1


def test_eviction_in_one_cpu_leaves_other_copies_alone() -> None:
    m = Machine(PROFILE, seed=1)
    a, b, c, d, e = (BASE + k * l2_stride(m) for k in range(5))
    run(m, 1, *reads(a))
    run(m, 2, *reads(a))  # shared by CPUs 1 and 2
    run(m, 1, *reads(b, c, d, e))  # CPU 1 evicts a
    assert m.coherence.level(0, a) is None
    assert m.coherence.level(1, a) == "L1"
    assert m.coherence.holders[m.coherence.line_of(a)] == 0b10
    # A later write by CPU 2 must not try to invalidate CPU 1's dropped copy.
    transitions = dict(m.coherence.transitions)
    run(m, 2, Write(kaddr(a), 1))
    assert m.coherence.transitions["S->I"] == transitions["S->I"]
    assert m.coherence.transitions["S->M"] == transitions["S->M"] + 1
    assert m.coherence.state(1, a) == M


def test_eviction_frees_ownership_for_another_cpu() -> None:
    """A line CPU 1 evicted is no longer its: CPU 2 reads it exclusive."""
    m = Machine(PROFILE, seed=1)
    a, b, c, d, e = (BASE + k * l2_stride(m) for k in range(5))
    run(m, 1, Write(kaddr(a), 9), *reads(b, c, d, e))
    assert run(m, 2, *reads(a)) == [9]
    assert m.coherence.state(1, a) == E  # nobody else holds it
    assert m.coherence.cpus[0].stats.writebacks == 1
