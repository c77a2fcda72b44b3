"""Per-CPU untagged TLBs, page walks through the caches, page faults (thesis §2.2, §3.1, §3.1.1).

User addresses (below the kernel window) are translated through the CPU's
TLB; on a miss the MMU walks the two-level tables in simulated memory, reading
the entries through the caches. `mov cr3` flushes the TLB and `invlpg` drops
one entry, on the executing CPU only — which is why unmapping needs a TLB
shootdown on an SMP.
"""

from __future__ import annotations

from typing import Any

import pytest

from machine import Machine, PageFault, load_profile, paging
from machine.cache import I, M
from machine.memory import PAGE_SHIFT
from machine.ops import Invlpg, Iret, LoadCR3, Read, Trap, Write, kaddr

PROFILE = load_profile("p3-dual-450")

U1 = 0x0040_0000  # user pages
U2 = 0x0040_1000
U3 = 0x0080_3000  # another page table


class Space:
    """A machine with one address space: U1 -> frame f1 (writable), U2 -> f2 (read-only)."""

    def __init__(self, cpus: int = 2) -> None:
        self.m = Machine(PROFILE, seed=1, cpus=cpus)
        mem = self.m.memory
        self.pd = paging.new_directory(mem)
        self.f1, self.f2, self.f3 = mem.alloc_frame(), mem.alloc_frame(), mem.alloc_frame()
        paging.map_page(mem, self.pd, U1, self.f1)
        paging.map_page(mem, self.pd, U2, self.f2, writable=False)
        mem.write(self.f1, 11)
        mem.write(self.f2, 22)
        mem.write(self.f3 + 4, 33)

    def run(self, cpu: int, *ops: Any, user: bool = True) -> list[Any]:
        """Run `ops` on CPU `cpu`, in user mode unless told; the results (PageFault caught)."""
        out: list[Any] = []
        self.m.cpu(cpu).mode = "user" if user else "kernel"

        def code() -> Any:
            for op in ops:
                try:
                    out.append((yield op))
                except PageFault as fault:
                    out.append(fault)

        self.m.start(cpu, code())
        self.m.run()
        return out

    def enter(self, cpu: int) -> None:
        """Load this space's CR3 on CPU `cpu` (in kernel mode) and return to user mode."""
        self.run(cpu, LoadCR3(self.pd), Iret(), user=False)
        assert self.m.cpu(cpu).mode == "user"
        assert self.m.cpu(cpu).cr3 == self.pd

    def tlb(self, cpu: int) -> set[int]:
        """The virtual pages CPU `cpu`'s TLB holds."""
        return {vpn << PAGE_SHIFT for vpn in self.m.cpu(cpu).tlb.entries}


@pytest.fixture
def space() -> Space:
    return Space()


def test_user_access_walks_once_then_hits_the_tlb(space: Space) -> None:
    space.enter(1)
    tlb = space.m.cpu(1).tlb
    assert tlb.entries == {}
    assert space.run(1, Read(U1)) == [11]
    assert (tlb.misses, tlb.hits) == (1, 0)
    assert space.tlb(1) == {U1}
    assert tlb.entries[U1 >> PAGE_SHIFT].frame == space.f1
    assert space.run(1, Read(U1 + 8), Write(U1 + 4, 5), Read(U1 + 4)) == [0, None, 5]
    assert (tlb.misses, tlb.hits) == (1, 3)
    assert space.m.memory.read(space.f1 + 4) == 5


def test_walk_costs_more_than_a_hit(space: Space) -> None:
    space.enter(1)
    c = space.m.cpu(1)
    # Warm the data and page-table lines, then compare a TLB miss with a hit.
    space.run(1, Read(U1))
    space.run(1, Invlpg(U1), user=False)
    t0 = c.clock
    space.run(1, Read(U1))
    walk = c.clock - t0
    t0 = c.clock
    space.run(1, Read(U1))
    hit = c.clock - t0
    assert walk > hit


def test_page_walk_reads_go_through_the_caches(space: Space) -> None:
    space.enter(1)
    mem = space.m.memory
    pde = paging.pde_addr(space.pd, U1)
    pte = paging.pte_addr(mem.read(pde), U1)
    coh = space.m.coherence
    assert coh.level(0, pde) is None and coh.level(0, pte) is None
    space.run(1, Read(U1))
    assert coh.level(0, pde) == "L1"
    assert coh.level(0, pte) == "L1"
    # The MMU set the accessed bit: the PTE line was written, so it is modified here.
    assert mem.read(pte) & paging.PTE_ACCESSED
    assert coh.state(0, pte) == M
    assert coh.level(1, pte) is None  # only the walking CPU caches it


def test_write_sets_the_dirty_bit(space: Space) -> None:
    space.enter(1)
    mem = space.m.memory
    pte = paging.pte_addr(mem.read(paging.pde_addr(space.pd, U1)), U1)
    space.run(1, Read(U1))
    assert not mem.read(pte) & paging.PTE_DIRTY
    space.run(1, Invlpg(U1), user=False)
    space.run(1, Write(U1, 1))
    assert mem.read(pte) & paging.PTE_DIRTY


def test_first_write_through_an_entry_loaded_by_a_read_sets_the_dirty_bit(space: Space) -> None:
    """x86: a TLB entry remembers the D bit; the first write through a clean one sets it."""
    space.enter(1)
    mem = space.m.memory
    pte = paging.pte_addr(mem.read(paging.pde_addr(space.pd, U1)), U1)
    space.run(1, Read(U1))  # the walk sets A only; the entry is now in the TLB
    assert not mem.read(pte) & paging.PTE_DIRTY
    space.run(1, Write(U1, 1))
    assert space.tlb(1) == {U1}
    assert mem.read(pte) & paging.PTE_DIRTY, "the page was written: its PTE must say so"


def test_load_cr3_flushes_the_tlb(space: Space) -> None:
    space.enter(1)
    space.run(1, Read(U1), Read(U2))
    tlb = space.m.cpu(1).tlb
    assert space.tlb(1) == {U1, U2}
    flushes = tlb.flushes
    space.run(1, LoadCR3(space.pd), user=False)
    assert tlb.entries == {}
    assert tlb.flushes == flushes + 1
    misses = tlb.misses
    assert space.run(1, Read(U1)) == [11]
    assert tlb.misses == misses + 1


def test_load_cr3_switches_address_space(space: Space) -> None:
    mem = space.m.memory
    other = paging.new_directory(mem)
    paging.map_page(mem, other, U1, space.f3)
    space.enter(1)
    assert space.run(1, Read(U1)) == [11]
    space.run(1, LoadCR3(other), user=False)
    assert space.run(1, Read(U1 + 4)) == [33]


def test_invlpg_drops_one_entry_only(space: Space) -> None:
    space.enter(1)
    space.run(1, Read(U1), Read(U2))
    tlb = space.m.cpu(1).tlb
    space.run(1, Invlpg(U1 + 0x10), user=False)  # any address in the page
    assert space.tlb(1) == {U2}
    assert tlb.flushes == 1  # only the LoadCR3 of enter()
    misses, hits = tlb.misses, tlb.hits
    space.run(1, Read(U2), Read(U1))
    assert tlb.hits == hits + 1
    assert tlb.misses == misses + 1


def test_tlb_is_per_cpu_and_invalidation_is_local(space: Space) -> None:
    """The reason for TLB shootdowns (§3.1.1): CPU 2 keeps using a stale translation."""
    space.enter(1)
    space.enter(2)
    assert space.run(1, Read(U1)) == [11]
    # CPU 2 writes too, so its entry is loaded dirty: a later write needs no walk.
    assert space.run(2, Read(U1), Write(U1, 11)) == [11, None]
    assert space.tlb(1) == space.tlb(2) == {U1}
    # Unmap the page (the tables only) and invalidate on CPU 1 only.
    assert paging.unmap_page(space.m.memory, space.pd, U1)
    space.run(1, Invlpg(U1), user=False)
    assert space.tlb(1) == set()
    assert space.tlb(2) == {U1}
    # CPU 1 walks the tables and faults; CPU 2 still reaches the old frame.
    [fault] = space.run(1, Read(U1))
    assert isinstance(fault, PageFault) and fault.reason == "not present"
    assert space.run(2, Read(U1), Write(U1, 99)) == [11, None]
    assert space.m.memory.read(space.f1) == 99
    # Only CPU 2's own invlpg (what a shootdown IPI makes it run) ends that.
    space.run(2, Invlpg(U1), user=False)
    [fault] = space.run(2, Read(U1))
    assert isinstance(fault, PageFault)


def test_stale_translation_survives_a_remap_on_other_cpu(space: Space) -> None:
    space.enter(1)
    space.enter(2)
    space.run(2, Read(U1))
    paging.map_page(space.m.memory, space.pd, U1, space.f3)  # overwrite the PTE
    space.run(1, Invlpg(U1), user=False)
    assert space.run(1, Read(U1 + 4)) == [33]  # CPU 1 sees the new frame
    assert space.run(2, Read(U1 + 4)) == [0]  # CPU 2 still reads the old one


def test_unmapped_page_faults_without_handler(space: Space) -> None:
    space.enter(1)
    [fault] = space.run(1, Read(U3))
    assert isinstance(fault, PageFault)
    assert (fault.addr, fault.write, fault.reason) == (U3, False, "not present")
    assert space.tlb(1) == set()


def test_fault_handler_maps_the_page_and_the_access_is_retried(space: Space) -> None:
    m = space.m
    space.enter(1)
    faults: list[tuple[int, int, bool, str, str]] = []

    def handler(cpu: Any, addr: int, write: bool, reason: str) -> Any:
        faults.append((cpu.number, addr, write, reason, cpu.mode))
        paging.map_page(m.memory, space.pd, addr, space.f3)
        yield from ()

    m.fault_handler = handler
    assert space.run(1, Read(U3 + 4), Write(U3 + 8, 7), Read(U3 + 8)) == [33, None, 7]
    assert faults == [(1, U3 + 4, False, "not present", "kernel")]
    assert m.cpu(1).mode == "user", "the handler's return goes back to user mode"
    assert m.memory.read(space.f3 + 8) == 7


def test_fault_handler_runs_as_kernel_entry_and_exit(space: Space) -> None:
    m = space.m
    space.enter(1)
    steps: list[str] = []

    def handler(cpu: Any, addr: int, write: bool, reason: str) -> Any:
        paging.map_page(m.memory, space.pd, addr, space.f3)
        yield from ()

    m.fault_handler = handler
    m.cpu(1).mode = "user"

    def code() -> Any:
        yield Read(U3)

    m.start(1, code())
    while (op := m.step()) is not None:
        steps.append(type(op).__name__)
    assert steps == ["Read", "InterruptEntry", "InterruptExit", "Read"]


def test_write_to_read_only_page_faults(space: Space) -> None:
    m = space.m
    space.enter(1)
    assert space.run(1, Read(U2)) == [22]  # reading is fine and fills the TLB
    [fault] = space.run(1, Write(U2, 1))
    assert isinstance(fault, PageFault)
    assert (fault.addr, fault.write, fault.reason) == (U2, True, "read-only")
    assert m.memory.read(space.f2) == 22

    seen: list[str] = []

    def handler(cpu: Any, addr: int, write: bool, reason: str) -> Any:
        seen.append(reason)
        paging.protect_page(m.memory, space.pd, addr, writable=True)
        yield from ()

    m.fault_handler = handler
    assert space.run(1, Write(U2, 2)) == [None]
    assert seen == ["read-only"]
    assert m.memory.read(space.f2) == 2


def test_user_mode_cannot_touch_the_kernel_window(space: Space) -> None:
    space.enter(1)
    [fault] = space.run(1, Read(kaddr(0x1000)))
    assert isinstance(fault, PageFault) and fault.reason == "supervisor"
    assert space.run(1, Trap(), Read(kaddr(space.f1)), Iret()) == [None, 11, None]


def test_trap_and_iret_switch_modes(space: Space) -> None:
    space.enter(1)
    c = space.m.cpu(1)
    modes: list[str] = []

    def code() -> Any:
        modes.append(c.mode)
        yield Trap()
        modes.append(c.mode)
        yield Iret()
        modes.append(c.mode)

    space.m.start(1, code())
    space.m.run()
    assert modes == ["user", "kernel", "user"]


def test_tlb_capacity_evicts_least_recently_used() -> None:
    space = Space()
    m = space.m
    cap = m.cpu(1).tlb.capacity
    pages = [0x0100_0000 + k * 0x1000 for k in range(cap + 1)]
    for p in pages:
        paging.map_page(m.memory, space.pd, p, space.f1)
    space.enter(1)
    space.run(1, *(Read(p) for p in pages[:cap]))
    space.run(1, Read(pages[0]))  # pages[1] is now the least recently used
    space.run(1, Read(pages[cap]))
    held = space.tlb(1)
    assert len(held) == cap
    assert pages[1] not in held
    assert pages[0] in held and pages[cap] in held


def test_paging_off_means_physical_user_addresses() -> None:
    m = Machine(PROFILE, seed=1)
    m.memory.write(0x5000, 3)
    out: list[Any] = []
    m.cpu(1).mode = "user"

    def code() -> Any:
        out.append((yield Read(0x5000)))

    m.start(1, code())
    m.run()
    assert out == [3]
    assert m.cpu(1).tlb.entries == {}
    assert m.coherence.state(0, 0x5000) != I
