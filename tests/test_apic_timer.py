"""The local APIC timer and the IO-APIC's routing of device interrupts (thesis §3.3).

The timer fires periodically or once; an IO-APIC IRQ goes to a fixed CPU or to
the lowest-priority one, and an unrouted IRQ is dropped.
"""

from __future__ import annotations

from typing import Any

import pytest

from machine import MachineError
from machine.ops import ApicRead, ApicWrite, Compute
from tests.apic_helpers import Recorder, machine, set_tprs

# --- the APIC timer ----------------------------------------------------------------


def test_apic_timer_fires_periodically() -> None:
    m = machine()
    rec = Recorder(m, 0x30)
    period_bus = 1000
    period = period_bus * m.apics.bus_cycle  # ticks
    stop_at: list[int] = []
    c = m.cpu(1)

    def code() -> Any:
        yield ApicWrite("timer_vector", 0x30)
        yield ApicWrite("timer_periodic", 1)
        yield ApicWrite("timer", period_bus)
        yield Compute(20 * m.cycles(period))
        yield ApicWrite("timer", 0)
        stop_at.append(c.clock)
        yield Compute(10 * m.cycles(period))

    m.start(1, code())
    m.run()
    times = [t for _, _, t in rec.log]
    assert len(times) >= 20
    assert all(b - a == period for a, b in zip(times, times[1:], strict=False))
    assert all(t < stop_at[0] for t in times), "a stopped timer does not fire"
    assert rec.cpus == [1] * len(times)
    assert m.apics.apics[1].interrupts == 0


def test_one_shot_timer_fires_once() -> None:
    m = machine()
    rec = Recorder(m, 0x31)
    counts: list[int] = []

    def code() -> Any:
        yield ApicWrite("timer_vector", 0x31)
        yield ApicWrite("timer", 100)
        counts.append((yield ApicRead("timer")))
        yield Compute(5000)
        counts.append((yield ApicRead("timer")))

    m.start(1, code())
    m.run()
    assert len(rec.log) == 1
    assert 0 < counts[0] <= 100
    assert counts[1] == 0


# --- the IO-APIC -----------------------------------------------------------------------


@pytest.mark.parametrize("dest", [1, 2, 3, 4])
def test_io_apic_fixed_irq_reaches_its_cpu(dest: int) -> None:
    m = machine(4)
    rec = Recorder(m, 0x50)
    m.apics.route_irq(5, 0x50, "fixed", 1 << (dest - 1))
    m.raise_irq(5, cycle=100)
    m.run()
    assert rec.cpus == [dest]
    # External interrupts use no IPI slot.
    assert all(a.ipis_received == 0 for a in m.apics.apics)


def test_io_apic_lowest_priority_irq() -> None:
    m = machine(4)
    rec = Recorder(m, 0x50)
    set_tprs(m, {1: 0x30, 2: 0x30, 3: 0x10, 4: 0x30})
    m.apics.route_irq(7, 0x50, "lowest", 0b1111)
    m.raise_irq(7)
    m.run()
    assert rec.cpus == [3]


def test_unrouted_irq_is_ignored() -> None:
    m = machine(2)
    rec = Recorder(m, 0x50)
    m.raise_irq(9)
    m.run()
    assert rec.log == []


def test_route_irq_validates() -> None:
    m = machine(10)
    with pytest.raises(MachineError):
        m.apics.route_irq(24, 0x50)
    with pytest.raises(MachineError):
        m.apics.route_irq(1, 0x50, "broadcast")
    with pytest.raises(MachineError):
        m.apics.route_irq(1, 0x05)
    with pytest.raises(MachineError):
        m.apics.route_irq(1, 0x50, "fixed", 0b11)  # above 8 CPUs: one or all
