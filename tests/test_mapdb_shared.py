"""The mapping database and the interrupt-line table are simulated state (issue 15, point 1).

Both are written by one CPU's kernel path and read by another's: a map on
one CPU and an unmap on another touch the same nodes (§2.2.1–§2.2.2), and a
thread on another CPU may take over an interrupt line (§2.4). They live in
kernel memory and are touched only with micro-ops, under the mapping
database's spinlock (§6, appendix A); `SharedStateGuard` records any write
into their areas made by a kernel path other than by a micro-op. The
planted writes below show that it does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel import interrupts, invariants, mapdb, space
from kernel.mapdb_direct import MappingDb
from kernel.scenario import load_scenario, parse_scenario
from kernel.system import System
from l4tui.runner.expect import check
from machine.memory import Memory
from machine.ops import Atomic, Read, Write, kaddr
from tests.shared_guard import SharedStateGuard
from tests.test_shared_state import guarded_run

ROOT = Path(__file__).resolve().parent.parent
SHOOTDOWN = ROOT / "scripts" / "races" / "shootdown-concurrent.yaml"

IRQ = """
machine: {profile: p3-dual-450, cpus: 2}
tasks:
  - name: t
    threads:
      - name: h
        cpu: 2
        program:
          - recv: {from: irq3}
          - recv: {from: irq3}
          - recv: {from: irq3}
interrupts:
  - {irq: 3, at: 1000}
  - {irq: 3, at: 1200}
  - {irq: 3, at: 300000}
"""


def _shootdown() -> System:
    return System(load_scenario(str(SHOOTDOWN)))


def test_map_and_unmap_on_two_cpus_go_through_memory_under_the_lock() -> None:
    s = _shootdown()
    ops: list[tuple[int, Any]] = []
    lock = kaddr(mapdb.AREA + mapdb.LOCK)
    pool = range(kaddr(mapdb.POOL), kaddr(mapdb.POOL_END))

    def observe(op: Any) -> None:
        if isinstance(op, Read | Write | Atomic) and (op.addr == lock or op.addr in pool):
            ops.append((s.machine.last_cpu.number, op))

    assert s.run(observer=observe) == "end"
    assert all(check(s, e) for e in s.scenario.expect)
    locks = [(cpu, op) for cpu, op in ops if op.addr == lock and isinstance(op, Atomic)]
    assert {cpu for cpu, _ in locks} == {1, 2}  # both CPUs mapped (faults) and unmapped
    assert any(isinstance(op, Write) and op.addr in pool for _, op in ops)
    # Both pages were unmapped with own=True: their roots stay, the mappings are gone.
    db = s.kernel.spaces.mapdb
    db.check()
    t = next(x for x in s.kernel.tasks if x.name == "t").space.number
    assert db.pages(t) == []
    assert len(db.roots()) == len(db) == 2


def test_the_database_is_all_in_memory() -> None:
    """A copy of memory alone gives the same database: nothing lives beside it."""
    s = _shootdown()
    s.run(max_steps=3000)  # after the faults, before the unmaps
    db = s.kernel.spaces.mapdb
    assert len(db) >= 2
    copy = Memory(s.machine.memory.size, dict(s.machine.memory.words))
    assert MappingDb(copy).render() == db.render() != []
    MappingDb(copy).check()


def test_the_interrupt_line_table_is_in_memory() -> None:
    s = System(parse_scenario(IRQ, "<irq>"))
    assert s.run() == "end"
    h = s.kernel.by_name["h"]
    assert [r["ok"] for r in h.results] == [True] * 3
    assert interrupts.owner_of(s.kernel, 3) is h
    assert interrupts.pending(s.kernel, 3) == 0
    mem = s.machine.memory
    assert mem.read(interrupts.AREA + 3 * interrupts.STRIDE + interrupts.CPU) == 2
    assert h.irq_lines == (3,)
    assert not hasattr(s.kernel, "irq_owner") and not hasattr(s.kernel, "irq_pending")


def test_guarded_runs_touch_both_tables_only_with_micro_ops() -> None:
    for s in (_shootdown(), System(parse_scenario(IRQ, "<irq>"))):
        g = guarded_run(s)
        assert g.checked > 0
        assert g.violations == [], [str(v) for v in g.violations]


def test_a_planted_python_side_write_to_the_mapping_database_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = space.map_items
    pages = iter(range(0x7000_0000, 0x8000_0000, 4096))

    def planted(k, a, b, fp, grant, copier=None):  # type: ignore[no-untyped-def]
        # The database operated on from outside simulated time, in a kernel path.
        page = next(pages)
        k.spaces.mapdb.add_root(99, page, page)
        return (yield from original(k, a, b, fp, grant, copier))

    monkeypatch.setattr(space, "map_items", planted)
    g = guarded_run(_shootdown())
    assert g.violations, "the planted write went unnoticed"
    v = g.violations[0]
    assert v.obj == "mapping database" and v.field.startswith("memory[")
    assert "written by cpu" in str(v) and "kernel data in memory" in str(v)


def test_a_planted_python_side_write_to_the_interrupt_table_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = interrupts.associate

    def planted(k, hw, owner):  # type: ignore[no-untyped-def]
        irq = hw.tid.lthread - 1
        k.machine.memory.write(interrupts.AREA + irq * interrupts.STRIDE, owner.tcb)
        return (yield from original(k, hw, owner))

    monkeypatch.setattr(interrupts, "associate", planted)
    g = guarded_run(System(parse_scenario(IRQ, "<irq>")))
    assert g.violations and g.violations[0].obj == "interrupt lines"
    assert g.violations[0].writer == 2 and "(receive)" in g.violations[0].where


def test_set_up_writes_are_not_judged() -> None:
    s = _shootdown()
    g = SharedStateGuard(s)
    with g.installed():
        s.kernel.spaces.mapdb.add_root(99, 0x7000_0000, 0x7000_0000)  # between steps
    assert g.violations == []


def test_the_kernel_invariants_check_the_database_in_memory() -> None:
    s = _shootdown()
    s.run(max_steps=3000)
    k = s.kernel
    assert invariants.check(k) == []
    count = mapdb.AREA + mapdb.COUNT
    s.machine.memory.write(count, s.machine.memory.read(count) + 1)  # a node that is nowhere
    assert any(v.startswith("mapping database: ") for v in invariants.check(k))
    s.machine.memory.write(mapdb.AREA + mapdb.LOCK, 2)
    assert "the mapping-database lock is held with no kernel path under way" in invariants.check(k)
