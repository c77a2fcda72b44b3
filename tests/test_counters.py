"""Counters count what their names say (issue 16; README "Counters").

An eviction for space is a MESI transition like any other (total and per
line); a snoop's write-back of a modified line shows on the bus; IPIs are
counted as ICR writes and as deliveries; shootdown rounds and the CPUs they
flush; hardware page faults and the fault IPCs to pagers.
"""

from __future__ import annotations

from test_cache_lru import BASE, PROFILE, l2_stride, reads, run

from l4tui.runner.figures import counters
from machine import Machine
from machine.ops import Write, kaddr
from tests.kernel_helpers import system
from tests.test_tlb_remote import grant


def machine() -> Machine:
    return Machine(PROFILE, seed=1)


def test_an_eviction_for_space_is_a_transition_in_total_and_per_line() -> None:
    m = machine()
    a, b, c, d, e = (BASE + k * l2_stride(m) for k in range(5))
    run(m, 1, *(Write(kaddr(x), 1) for x in (a, b, c, d, e)))  # five writes, one L2 set
    t = m.coherence.transitions
    assert t["I->M"] == 5 and t["M->I"] == 1  # a went, written back
    assert m.coherence.line_transitions[m.coherence.line_of(a)] == {"I->M": 1, "M->I": 1}
    assert m.bus.transactions["writeback"] == 1
    run(m, 1, *reads(a))  # a back (E), evicting b (M): one more of each
    assert (t["I->E"], t["M->I"]) == (1, 2)


def test_a_snoops_write_back_is_counted_on_the_bus() -> None:
    m = machine()
    run(m, 1, Write(kaddr(BASE), 7))
    run(m, 2, *reads(BASE))  # M->S on CPU 1: written back for CPU 2's read
    assert m.bus.transactions["snoop_writeback"] == 1
    assert m.bus.transactions["writeback"] == 0  # (no eviction)
    run(m, 1, Write(kaddr(BASE), 8))  # S->M here, S->I there: an upgrade, no write-back
    run(m, 2, Write(kaddr(BASE), 9))  # M->I on CPU 1 for CPU 2's read for ownership
    assert m.bus.transactions["snoop_writeback"] == 2
    assert m.coherence.transitions["M->S"] == 1 and m.coherence.transitions["M->I"] == 1


def test_ipis_shootdowns_and_faults_each_counted_as_named() -> None:
    """A grant across CPUs on 4 CPUs: one shootdown round, three CPUs flush, three
    deliveries of one ICR write; a's two touches fault once each (hardware), and each
    fault is one fault IPC to sigma0."""
    s = system(grant(2, cpus=4))  # a touches PAGE, grants it to b, touches it again
    assert s.run(max_steps=400_000, check_invariants=True) == "end"
    c = counters(s)
    assert c["tlb_shootdowns"] == 1 and c["tlb_remote_flushes"] == 3
    assert c["hardware_page_faults"] == 2
    assert c["fault_ipcs"] == c["page_faults"] == 2
    assert c["ipis_sent"] - c["icr_writes"] == 2  # the shootdown's broadcast: 1 write, 3 dests
    assert c["ipis_delivered"] == c["ipis_sent"]  # every IPI addressed was taken in the end
