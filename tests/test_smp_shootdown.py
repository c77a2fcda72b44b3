"""TLB shootdown on unmap (thesis §3.1.1, §9.3, implementation decision 5).

The owner `own` (CPU 1) maps a page to `user` on another CPU, which touches
it — its CPU's TLB now caches the translation. `own` unmaps the page and
tells `user`, whose next touch must fault (sigma0 then maps a fresh page)
instead of going through the stale TLB entry. The unmap sends one shootdown
IPI round, to every other CPU — or, above 8 CPUs, to all of them (§3.3) —
and a single CPU needs none. A control run with the shootdown switched off
shows that the stale entry would otherwise be used.
"""

from __future__ import annotations

from typing import Any

import pytest

from kernel import shootdown
from kernel.system import System
from l4tui.runner.figures import counters
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import mapping_node, results, system, translation

MAX_STEPS = 400_000
OWN_PAGE, USER_PAGE = 0x400000, 0x800000


def scenario(n: int, user_cpu: int, mode: str = "flush", write: bool = False) -> str:
    w = ", write: true" if write else ""
    return f"""
        machine: {{cpus: {n}}}
        tasks:
          - name: owner
            threads:
              - name: own
                cpu: 1
                program:
                  - touch: {{addr: {OWN_PAGE:#x}, write: true}}
                  - send: {{to: user, map: {{addr: {OWN_PAGE:#x}, size: 4096}}}}
                  - recv: {{from: user}}
                  - unmap: {{addr: {OWN_PAGE:#x}, size: 4096, mode: {mode}}}
                  - send: {{to: user, words: [1]}}
          - name: users
            threads:
              - name: user
                cpu: {user_cpu}
                program:
                  - recv: {{from: own, window: {{addr: {USER_PAGE:#x}, size: 4096}}}}
                  - touch: {{addr: {USER_PAGE:#x}{w}}}
                  - send: {{to: own}}
                  - recv: {{from: own}}
                  - touch: {{addr: {USER_PAGE:#x}{w}}}
        """


def flush_counter(s: System) -> dict[int, int]:
    """Count, per CPU, the shootdown IPIs it handled (wrapping the vector's handler)."""
    seen: dict[int, int] = {}
    handlers = s.machine.vector_handlers
    inner = handlers[shootdown.VECTOR]

    def handle(c: Any, vector: int) -> Any:
        seen[c.number] = seen.get(c.number, 0) + 1
        return inner(c, vector)

    handlers[shootdown.VECTOR] = handle
    return seen


def run_ok(s: System) -> System:
    ended = s.run(max_steps=MAX_STEPS, check_invariants=True)
    assert ended == "end", (ended, s.violations, run_summary(s).get("waits"))
    return s


def check_unmapped_then_refaulted(s: System) -> None:
    """The unmap took one mapping; user's second touch faulted in a fresh page."""
    (unmap,) = [r for r in results(s, "own") if r["op"] == "unmap"]
    assert (unmap["ok"], unmap["value"]) == (True, 1)
    # own's first touch, and user's touch after the unmap: two faults, not one.
    assert counters(s)["page_faults"] == 2
    old = translation(s, "own", OWN_PAGE)
    new = translation(s, "user", USER_PAGE)
    assert old is not None and new is not None
    assert new.frame != old.frame  # no longer the owner's page
    node = mapping_node(s, "user", USER_PAGE)
    assert node is not None and node.frame == new.frame
    assert run_summary(s)["threads"]["user"]["state"] == "inactive"


@pytest.mark.parametrize(("n", "user_cpu"), [(2, 2), (3, 2), (3, 3), (4, 3), (4, 4)])
def test_remote_tlb_entry_is_shot_down(n: int, user_cpu: int) -> None:
    s = system(scenario(n, user_cpu))
    seen = flush_counter(s)
    run_ok(s)
    check_unmapped_then_refaulted(s)
    assert counters(s)["tlb_shootdowns"] == 1
    # ID 5: the IPI goes to every other CPU (the unmapping CPU 1 needs none).
    assert seen == {cpu: 1 for cpu in range(2, n + 1)}
    # The user's CPU TLB does not hold the owner's frame for the page any more.
    entry = s.machine.cpus[user_cpu - 1].tlb.entries.get(USER_PAGE >> 12)
    assert entry is None or entry.frame == translation(s, "user", USER_PAGE).frame


def test_without_the_shootdown_the_stale_entry_would_be_used(monkeypatch: Any) -> None:
    """Control: with shoot() a no-op, user's second touch hits its TLB — no fault — and
    the kernel invariants name the stale entry (issue 16)."""

    def no_shootdown(k: Any, cpu: int, pages: Any) -> Any:
        return
        yield

    monkeypatch.setattr(shootdown, "shoot", no_shootdown)
    s = system(scenario(2, 2))
    s.run(max_steps=MAX_STEPS)
    assert s.ended == "end"
    assert counters(s)["page_faults"] == 1
    assert counters(s)["tlb_shootdowns"] == 0
    s = system(scenario(2, 2))
    assert s.run(max_steps=MAX_STEPS, check_invariants=True) == "invariant"
    assert any(f"TLB entry {USER_PAGE:#x}" in v and "no PTE" in v for v in s.violations)


@pytest.mark.parametrize("user_cpu", [10, 5])
def test_ten_cpus_the_ipi_goes_to_all(user_cpu: int) -> None:
    """Above 8 CPUs the shootdown IPI reaches every CPU, the unmapping one too (§3.3)."""
    s = system(scenario(10, user_cpu, write=user_cpu == 5))
    seen = flush_counter(s)
    run_ok(s)
    check_unmapped_then_refaulted(s)
    assert counters(s)["tlb_shootdowns"] == 1
    assert seen == {cpu: 1 for cpu in range(1, 11)}


@pytest.mark.parametrize(("n", "user_cpu"), [(2, 2), (3, 2), (4, 4)])
def test_read_only_unmap_makes_remote_write_fault(n: int, user_cpu: int) -> None:
    s = system(scenario(n, user_cpu, mode="ro", write=True))
    seen = flush_counter(s)
    run_ok(s)
    # The unmap's, from CPU 1; and the write fault's new mapping replaced the read-only
    # one, which the user's CPU shoots down in its turn (§3.1.1, issue 16).
    assert counters(s)["tlb_shootdowns"] == 2
    flushes = {cpu: (cpu != 1) + (cpu != user_cpu) for cpu in range(1, n + 1)}
    assert seen == {cpu: times for cpu, times in flushes.items() if times}
    # The write after the write-protection faulted (own's touch was the first fault).
    assert counters(s)["page_faults"] == 2
    (unmap,) = [r for r in results(s, "own") if r["op"] == "unmap"]
    assert (unmap["ok"], unmap["value"]) == (True, 1)
    new = translation(s, "user", USER_PAGE)
    assert new is not None and new.writable
    assert new.frame != translation(s, "own", OWN_PAGE).frame


def test_read_only_unmap_lets_remote_reader_go_on() -> None:
    """A reader of a write-protected page keeps reading it: no fault, same frame."""
    s = run_ok(system(scenario(3, 2, mode="ro", write=False)))
    assert counters(s)["tlb_shootdowns"] == 1
    assert counters(s)["page_faults"] == 1
    tr = translation(s, "user", USER_PAGE)
    assert tr is not None and not tr.writable
    assert tr.frame == translation(s, "own", OWN_PAGE).frame


@pytest.mark.parametrize("mode", ["flush", "ro"])
def test_single_cpu_needs_no_shootdown(mode: str) -> None:
    s = system(scenario(1, 1, mode=mode, write=True))
    seen = flush_counter(s)
    run_ok(s)
    assert counters(s)["tlb_shootdowns"] == 0
    assert counters(s)["ipis_sent"] == 0
    assert seen == {}
    # The local TLB was invalidated all the same: the next write faulted.
    assert counters(s)["page_faults"] == 2
