"""Interrupts meet running code: they are taken between micro-ops, an interrupt
arriving inside a long `Compute` cuts it (the work done is kept), and a halted
CPU wakes on one (thesis §3.3).
"""

from __future__ import annotations

from typing import Any

import pytest

from machine.ops import Cli, Compute, Hlt, Iret, Rdtsc, SendIPI, Sti
from tests.apic_helpers import Recorder, delivery_ticks, machine, program

# --- interrupts cut long computations; halted CPUs wake -----------------------------------


# Python code between two yields runs when the earlier op completes, so these
# tests observe the time after a Compute with an op (Rdtsc), not with Python.


def test_ipi_cuts_a_long_compute_and_total_work_is_preserved() -> None:
    m = machine()
    handler_work = 100
    rec = Recorder(m, 0x40, work=handler_work)
    work = 100_000
    ends: list[int] = []

    def target() -> Any:
        yield Compute(work)
        ends.append((yield Rdtsc()))

    m.start(2, target())
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    [(cpu, _, handler_start)] = rec.log
    arrival = delivery_ticks(m)
    assert cpu == 2
    assert handler_start == arrival + m.t_entry_k, "the handler runs at arrival, not after the work"
    handler_ticks = m.t_entry_k + m.ticks(handler_work) + m.apics.t_eoi + m.t_exit_k
    assert ends == [(m.ticks(work) + handler_ticks) // m.tpc]


def test_ipi_cuts_the_last_compute_of_a_program() -> None:
    """The cut must not depend on whether more ops follow the Compute."""
    m = machine()
    rec = Recorder(m, 0x40)
    work = 100_000
    m.start(2, program(Compute(work)))
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    [(cpu, _, handler_start)] = rec.log
    assert cpu == 2
    assert handler_start == delivery_ticks(m) + m.t_entry_k, (
        "the handler runs at arrival, not after the work"
    )
    per_handler = m.t_entry_k + m.apics.t_eoi + m.t_exit_k
    assert m.cpu(2).clock == m.ticks(work) + per_handler


def test_an_interrupt_in_user_mode_pays_the_ring_change_both_ways() -> None:
    """Programs here run in the kernel; after an iret the same interrupt costs more."""
    m = machine()
    Recorder(m, 0x40)
    work = 100_000
    m.start(2, program(Iret(), Compute(work)))
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    per_handler = m.t_entry + m.apics.t_eoi + m.t_exit
    assert m.t_entry > m.t_entry_k and m.t_exit > m.t_exit_k
    assert m.cpu(2).clock == m.t_exit + m.ticks(work) + per_handler


def test_several_interrupts_cut_one_compute() -> None:
    m = machine()
    rec = Recorder(m, 0x40, 0x41)
    ends: list[int] = []

    def target() -> Any:
        yield Compute(50_000)
        ends.append((yield Rdtsc()))

    m.start(2, target())
    m.start(1, program(SendIPI(0b10, 0x40), Compute(20_000), SendIPI(0b10, 0x41)))
    m.run()
    assert len(rec.log) == 2
    per_handler = m.t_entry_k + m.apics.t_eoi + m.t_exit_k
    assert ends == [(m.ticks(50_000) + 2 * per_handler) // m.tpc]
    assert all(t < m.ticks(50_000) for _, _, t in rec.log)


def test_compute_with_interrupts_disabled_is_not_cut() -> None:
    m = machine()
    rec = Recorder(m, 0x40)
    m.start(2, program(Cli(), Compute(10_000), Sti()))
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    [(_, _, start)] = rec.log
    assert start >= m.ticks(10_000)


def test_halted_cpu_wakes_on_ipi() -> None:
    m = machine()
    rec = Recorder(m, 0x40)
    woke: list[int] = []
    c2 = m.cpu(2)

    def halter() -> Any:
        yield Sti()
        yield Hlt()
        woke.append((yield Rdtsc()))

    m.start(2, halter())
    m.run()
    assert c2.waiting == "hlt"
    send_at = 5000
    c1 = m.cpu(1)
    m.start(1, program(Compute(send_at), SendIPI(0b10, 0x40)))
    sent_from = c1.clock + m.ticks(send_at)
    m.run()
    assert c2.waiting != "hlt"
    [(cpu, _, start)] = rec.log
    assert cpu == 2
    assert start == sent_from + delivery_ticks(m) + m.t_entry_k
    assert len(woke) == 1
    assert woke[0] * m.tpc >= start


def test_sti_then_hlt_with_an_interrupt_already_pending_does_not_sleep() -> None:
    """The wake-up that arrived while interrupts were off is not lost by `sti; hlt`."""
    m = machine()
    rec = Recorder(m, 0x40)
    after: list[int] = []

    def target() -> Any:
        yield Cli()
        yield Compute(5000)  # the IPI arrives in here
        yield Sti()
        yield Hlt()
        after.append((yield Rdtsc()))

    m.start(2, target())
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    assert rec.cpus == [2]
    assert len(after) == 1
    assert m.cpu(2).waiting != "hlt"
    assert after[0] < 5000 + 1000, "the CPU did not sleep waiting for another interrupt"


@pytest.mark.parametrize("wait", [False, True])
def test_send_ipi_with_wait_blocks_until_accepted(wait: bool) -> None:
    m = machine()
    Recorder(m, 0x40)
    t: list[int] = []

    def sender() -> Any:
        yield SendIPI(0b10, 0x40, wait=wait)
        t.append((yield Rdtsc()))

    m.start(1, sender())
    m.run()
    if wait:
        assert t[0] == delivery_ticks(m) // m.tpc  # Rdtsc counts whole cycles
        assert m.cpu(1).stall_ticks > 0
    else:
        assert t[0] == m.apics.t_icr // m.tpc, "without wait the CPU goes on after the ICR write"


def test_halted_cpu_with_interrupts_disabled_stays_halted() -> None:
    m = machine()
    rec = Recorder(m, 0x40)
    after: list[str] = []

    def halter() -> Any:
        yield Cli()
        yield Hlt()
        yield Rdtsc()
        after.append("woke")

    m.start(2, halter())
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    assert after == []
    assert rec.log == []
    assert m.cpu(2).waiting == "hlt"
    assert m.apics.apics[1].irr == 1 << 0x40


def test_idle_cpu_takes_interrupts() -> None:
    m = machine()
    rec = Recorder(m, 0x40)
    m.start(1, program(SendIPI(0b10, 0x40)))
    m.run()
    assert rec.cpus == [2]
    assert m.cpu(2).frames == []
