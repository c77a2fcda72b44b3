"""A translation removed or replaced by map or grant leaves no TLB entry behind (issue 16).

Thesis §3.1.1: a removed page-table entry must be invalidated in "all TLBs.
Even those of the other processors" — implementation decision 5's shootdown.
Unmap did so (tests/test_smp_shootdown.py); map and grant did only on the
CPU that ran them, and in the cross-processor case — run by the proxy on the
receiver's CPU — not even there. Each case below has a CPU that caches the
old translation: its next touch must fault (and get a fresh page from
sigma0), not write through the stale entry into a page that is now another's.
"""

from __future__ import annotations

import pytest

from kernel import invariants
from kernel.system import System
from tests.kernel_helpers import read_virtual, results, system, translation

PAGE, WINDOW = 0x300000, 0x600000
STEPS = 400_000


def run_ok(s: System) -> System:
    ended = s.run(max_steps=STEPS, check_invariants=True)
    assert ended == "end", (ended, s.violations)
    return s


def grant(b_cpu: int, cpus: int = 3) -> str:
    """a (CPU 1) touches PAGE, grants it to b, touches it again at +8."""
    return f"""
        machine: {{cpus: {cpus}}}
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: {PAGE:#x}, write: true}}
                  - send: {{to: b, words: [1], grant: {{addr: {PAGE:#x}, size: 4096}}}}
                  - touch: {{addr: {PAGE + 8:#x}, write: true}}
          - name: t2
            threads:
              - name: b
                cpu: {b_cpu}
                program:
                  - recv: {{from: a, window: {{addr: {WINDOW:#x}, size: 4096}}}}
        """


@pytest.mark.parametrize("b_cpu", [1, 2], ids=["same-cpu", "cross-cpu"])
def test_the_granter_faults_on_the_page_it_granted(b_cpu: int) -> None:
    s = run_ok(system(grant(b_cpu)))
    assert results(s, "b")[0]["ok"]
    # b has the page a wrote first; a's second write went to a fresh page of its own.
    assert read_virtual(s, "b", WINDOW, 12) == [1, 0, 0]
    mine, theirs = translation(s, "a", PAGE), translation(s, "b", WINDOW)
    assert mine is not None and theirs is not None and mine.frame != theirs.frame
    assert read_virtual(s, "a", PAGE, 12) == [0, 0, 1]


def test_a_sibling_on_a_third_cpu_faults_on_the_granted_page() -> None:
    s = run_ok(
        system(f"""
        machine: {{cpus: 3}}
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - recv: {{from: a2}}
                  - touch: {{addr: {PAGE:#x}, write: true}}
                  - send: {{to: b, words: [1], grant: {{addr: {PAGE:#x}, size: 4096}}}}
                  - send: {{to: a2, words: [2]}}
              - name: a2
                cpu: 3
                program:
                  - touch: {{addr: {PAGE + 4:#x}, write: true}}
                  - send: {{to: a, words: [3]}}
                  - recv: {{from: a}}
                  - touch: {{addr: {PAGE + 12:#x}, write: true}}
          - name: t2
            threads:
              - name: b
                cpu: 2
                program:
                  - recv: {{from: a, window: {{addr: {WINDOW:#x}, size: 4096}}}}
        """)
    )
    # The sibling's last write did not land in b's page (its CPU's TLB had the page).
    assert read_virtual(s, "b", WINDOW, 16) == [1, 1, 0, 0]
    assert read_virtual(s, "a2", PAGE, 16) == [0, 0, 0, 1]


@pytest.mark.parametrize("c_cpu", [2, 3], ids=["same-cpu", "cross-cpu"])
def test_a_map_over_a_mapping_replaces_it_in_the_receivers_tlb(c_cpu: int) -> None:
    s = run_ok(
        system(f"""
        machine: {{cpus: 3}}
        tasks:
          - name: t2
            threads:
              - name: b
                cpu: 2
                program:
                  - touch: {{addr: {WINDOW:#x}, write: true}}
                  - send: {{to: c, words: [1]}}
                  - recv: {{from: c, window: {{addr: {WINDOW:#x}, size: 4096}}}}
                  - touch: {{addr: {WINDOW + 16:#x}, write: true}}
          - name: t3
            threads:
              - name: c
                cpu: {c_cpu}
                program:
                  - touch: {{addr: {PAGE + 8:#x}, write: true}}
                  - recv: {{from: b}}
                  - send: {{to: b, words: [2], map: {{addr: {PAGE:#x}, size: 4096}}}}
        """)
    )
    assert results(s, "b")[1]["ok"]
    # b's write after the map went to c's page, through the new translation.
    assert read_virtual(s, "c", PAGE, 20) == [0, 0, 1, 0, 1]
    assert read_virtual(s, "b", WINDOW, 20) == [0, 0, 1, 0, 1]


def test_the_invariant_sees_a_tlb_entry_without_its_pte() -> None:
    s = system(grant(2))
    s.run(max_steps=STEPS)
    m = s.machine
    a = s.kernel.by_name["a"]
    c = m.cpus[0]
    c.cr3 = a.task.space.pdbr  # as if CPU 1 still ran a, with a stale entry for PAGE
    frame = translation(s, "b", WINDOW).frame
    c.tlb.insert(PAGE, frame, True)
    bad = invariants.check(s.kernel)
    assert any("TLB" in v and "cpu1" in v for v in bad), bad
