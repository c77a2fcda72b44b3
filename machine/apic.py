"""Local APICs, the APIC bus and the IO-APIC (thesis §3.3, §3.3.1, §8.3.4).

Each CPU's local APIC has an IRR and ISR (bit n = vector n), a task-priority
register, a programmable timer clocked by the memory bus, and exactly
`slots` (two on the Pentium) places for inter-processor interrupts that have
been accepted but not yet retired by an EOI. An IPI that finds both slots
busy is rejected; the sender's APIC keeps it and resends it once an EOI at
the target frees a slot, and until then the sender's ICR stays busy — a CPU
that writes the ICR again waits (§8.3.3: "the third IPI would never go
through" while neither of the first two is acknowledged).

Messages cross the three-wire APIC bus at its own clock (16 MHz on the
thesis machine): after the local APIC's state machine has prepared it, a
fixed-destination message takes 21 bus cycles and a lowest-priority one 34,
one message at a time. A lowest-priority message goes to the destination
whose processor priority is lowest, ties decided by the seeded RNG
(arbitration). The IO-APIC sends external IRQs the same way, fixed or
lowest priority.

Destination masks: bit 0 is CPU 1. Up to 8 CPUs any subset can be named;
above 8 CPUs only one CPU or all of them (§3.3).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from machine.errors import MachineError
from machine.profile import Profile

MODES = ("fixed", "lowest")


@dataclass(slots=True)
class IpiSlot:
    """An accepted IPI: pending in the IRR, then in service until EOI."""

    vector: int
    sender: int  # 0-based CPU
    accepted_at: int
    in_service: bool = False


@dataclass(slots=True)
class Message:
    """An interrupt message on (or waiting for) the APIC bus."""

    seq: int
    sender: int | None  # 0-based CPU, None for the IO-APIC
    dests: list[int]  # 0-based CPUs still to accept it
    vector: int
    mode: str
    sent_at: int
    arrival: int = 0
    retries: int = 0


@dataclass(slots=True)
class LocalApic:
    """One CPU's local APIC."""

    cpu: int  # 0-based
    slots: list[IpiSlot] = field(default_factory=list)
    irr_other: int = 0  # pending vectors from the timer and external IRQs
    isr: int = 0
    tpr: int = 0
    outgoing: Message | None = None  # the ICR's message until every target accepted it
    waiting_retry: list[Message] = field(default_factory=list)  # rejected here, to resend on EOI
    timer_initial: int = 0  # bus cycles, 0 = stopped
    timer_vector: int = 0xEF
    timer_periodic: bool = False
    timer_start: int = 0
    timer_deadline: int = 0
    timer_gen: int = 0
    ipis_sent: int = 0  # destinations addressed (a broadcast to three counts three)
    icr_writes: int = 0  # IPIs sent: writes of this APIC's ICR (a broadcast counts one)
    ipis_received: int = 0  # IPIs accepted into this APIC's slots (delivered)
    ipi_rejected: int = 0
    interrupts: int = 0

    @property
    def irr(self) -> int:
        irr = self.irr_other
        for slot in self.slots:
            if not slot.in_service:
                irr |= 1 << slot.vector
        return irr

    def processor_priority(self) -> int:
        isr_class = (self.isr.bit_length() - 1) >> 4 if self.isr else 0
        return max(self.tpr >> 4, isr_class)


@dataclass(slots=True)
class Redirection:
    """An IO-APIC redirection-table entry."""

    vector: int
    mode: str = "fixed"
    dest: int = 1
    masked: bool = False


class ApicSystem:
    """All local APICs, the APIC bus they share, and the IO-APIC.

    `schedule(tick, kind, payload)` puts an event on the engine's queue;
    `notify(cpu, tick)` tells the engine CPU `cpu` may now have an interrupt
    to take (it wakes a halted CPU or cuts a long Compute).
    """

    def __init__(
        self,
        profile: Profile,
        ncpus: int,
        rng: random.Random,
        schedule: Callable[[int, str, object], None],
        notify: Callable[[int, int], None],
    ) -> None:
        tpc = profile.ticks_per_cycle
        a = profile.apic
        apic_cycle = tpc * profile.clock.cpu_mhz // profile.clock.apic_bus_mhz
        self.bus_cycle = tpc * profile.clock.cpu_mhz // profile.clock.bus_mhz
        self.t_icr = round(a.icr_write * tpc)
        self.t_state = round(a.state_machine * apic_cycle)
        self.t_fixed = round(a.fixed_message * apic_cycle)
        self.t_lowest = round(a.lowest_priority_message * apic_cycle)
        self.t_read = round(a.register_read * tpc)
        self.t_eoi = round(a.eoi * tpc)
        self.nslots = a.slots
        self.ncpus = ncpus
        self.rng = rng
        self.schedule = schedule
        self.notify = notify
        self.apics = [LocalApic(i) for i in range(ncpus)]
        self.bus_free_at = 0
        self.in_flight: list[Message] = []
        self.redirections: dict[int, Redirection] = {}
        self._dests: dict[int, list[int]] = {}  # checked masks: the same few, every IPI
        self.seq = 0

    # --- addressing ---------------------------------------------------------

    def check_dest(self, dest: int) -> list[int]:
        """The 0-based CPUs a destination mask names, or MachineError."""
        dests = self._dests.get(dest)
        if dests is not None:
            return dests
        full = (1 << self.ncpus) - 1
        if dest <= 0 or dest & ~full:
            raise MachineError(
                f"IPI destination mask {dest:#x} names no CPU or a CPU above {self.ncpus}"
            )
        if self.ncpus > 8 and dest != full and dest & (dest - 1):
            raise MachineError(
                f"with {self.ncpus} CPUs an IPI goes to one CPU or all of them, not mask {dest:#x}"
            )
        dests = self._dests[dest] = [i for i in range(self.ncpus) if dest >> i & 1]
        return dests

    # --- sending ------------------------------------------------------------

    def icr_busy(self, cpu: int) -> bool:
        return self.apics[cpu].outgoing is not None

    def send_ipi(self, cpu: int, dest: int, vector: int, mode: str, now: int) -> int:
        """Write the ICR of CPU `cpu` at `now`; returns the cost in ticks."""
        if mode not in MODES:
            raise MachineError(f"IPI mode must be one of {', '.join(MODES)}, not {mode!r}")
        if not 16 <= vector <= 255:
            raise MachineError(f"IPI vector must be 16..255, not {vector}")
        dests = self.check_dest(dest)
        apic = self.apics[cpu]
        msg = self._message(cpu, dests, vector, mode, now)
        apic.outgoing = msg
        apic.ipis_sent += 1 if mode == "lowest" else len(dests)
        apic.icr_writes += 1
        self._transmit(msg, now + self.t_icr + self.t_state)
        return self.t_icr

    def _message(
        self, sender: int | None, dests: list[int], vector: int, mode: str, now: int
    ) -> Message:
        self.seq += 1
        return Message(self.seq, sender, list(dests), vector, mode, now)

    def _transmit(self, msg: Message, ready: int) -> None:
        start = max(ready, self.bus_free_at)
        msg.arrival = start + (self.t_lowest if msg.mode == "lowest" else self.t_fixed)
        self.bus_free_at = msg.arrival
        self.in_flight.append(msg)
        self.schedule(msg.arrival, "apic.arrive", msg)

    # --- receiving ----------------------------------------------------------

    def arrive(self, msg: Message, now: int) -> None:
        """A message reaches its destinations: each accepts it or rejects it."""
        self.in_flight.remove(msg)
        if msg.mode == "lowest":
            lowest = min(self.apics[d].processor_priority() for d in msg.dests)
            candidates = [d for d in msg.dests if self.apics[d].processor_priority() == lowest]
            msg.dests = [candidates[0] if len(candidates) == 1 else self.rng.choice(candidates)]
        rejected = []
        for d in msg.dests:
            apic = self.apics[d]
            if msg.sender is None:  # external IRQ: not an IPI, no slot
                apic.irr_other |= 1 << msg.vector
                self.notify(d, now)
            elif len(apic.slots) < self.nslots:
                apic.slots.append(IpiSlot(msg.vector, msg.sender, now))
                apic.ipis_received += 1
                self.notify(d, now)
            else:
                apic.ipi_rejected += 1
                rejected.append(d)
        if rejected:
            msg.dests = rejected
            msg.retries += 1
            for d in rejected:
                self.apics[d].waiting_retry.append(msg)
        elif msg.sender is not None:
            self.apics[msg.sender].outgoing = None
            self.notify(msg.sender, now)  # a CPU waiting to write its ICR may go on

    # --- taking and retiring interrupts -------------------------------------

    def pending_vector(self, cpu: int) -> int | None:
        """The vector CPU `cpu` would take now if interrupts were enabled."""
        apic = self.apics[cpu]
        irr = apic.irr_other  # `LocalApic.irr` and `processor_priority`, inlined: a hot path
        for slot in apic.slots:
            if not slot.in_service:
                irr |= 1 << slot.vector
        if not irr:
            return None
        vector = irr.bit_length() - 1
        isr = apic.isr
        if vector >> 4 <= max(apic.tpr >> 4, (isr.bit_length() - 1) >> 4 if isr else 0):
            return None
        return vector

    def acknowledge(self, cpu: int, vector: int) -> None:
        """The CPU takes `vector`: IRR -> ISR."""
        apic = self.apics[cpu]
        apic.isr |= 1 << vector
        apic.interrupts += 1
        if apic.irr_other >> vector & 1:
            apic.irr_other &= ~(1 << vector)
            return
        for slot in apic.slots:
            if slot.vector == vector and not slot.in_service:
                slot.in_service = True
                return

    def eoi(self, cpu: int, now: int) -> int:
        """Retire the highest in-service vector; a freed slot lets a retry go out."""
        apic = self.apics[cpu]
        if apic.isr:
            vector = apic.isr.bit_length() - 1
            apic.isr &= ~(1 << vector)
            for i, slot in enumerate(apic.slots):
                if slot.in_service and slot.vector == vector:
                    del apic.slots[i]
                    break
            if apic.waiting_retry and len(apic.slots) < self.nslots:
                # The sender's APIC resends to every target that still owes an
                # acceptance; a target still full rejects it again.
                msg = apic.waiting_retry[0]
                for other in self.apics:
                    if msg in other.waiting_retry:
                        other.waiting_retry.remove(msg)
                self._transmit(msg, now + self.t_eoi)
            self.notify(cpu, now)
        return self.t_eoi

    # --- registers and the timer --------------------------------------------

    def read(self, cpu: int, reg: str, now: int) -> int:
        apic = self.apics[cpu]
        if reg == "irr":
            return apic.irr
        if reg == "isr":
            return apic.isr
        if reg == "tpr":
            return apic.tpr
        if reg == "id":
            return cpu + 1
        if reg == "timer":
            if not apic.timer_initial or now >= apic.timer_deadline:
                return 0
            return (apic.timer_deadline - now) // self.bus_cycle
        raise MachineError(f"no readable APIC register {reg!r} (irr, isr, tpr, id, timer)")

    def write(self, cpu: int, reg: str, value: int, now: int) -> None:
        apic = self.apics[cpu]
        if reg == "tpr":
            if not 0 <= value <= 255:
                raise MachineError(f"TPR must be 0..255, not {value}")
            apic.tpr = value
            self.notify(cpu, now)
        elif reg == "timer_vector":
            if not 16 <= value <= 255:
                raise MachineError(f"timer vector must be 16..255, not {value}")
            apic.timer_vector = value
        elif reg == "timer_periodic":
            apic.timer_periodic = bool(value)
        elif reg == "timer":
            if value < 0:
                raise MachineError(f"timer count must be >= 0, not {value}")
            apic.timer_gen += 1
            apic.timer_initial = value
            if value:
                apic.timer_start = now
                apic.timer_deadline = now + value * self.bus_cycle
                self.schedule(apic.timer_deadline, "apic.timer", (cpu, apic.timer_gen))
        else:
            raise MachineError(
                f"no writable APIC register {reg!r} (tpr, timer, timer_vector, timer_periodic)"
            )

    def timer_fires(self, cpu: int, gen: int, now: int) -> None:
        apic = self.apics[cpu]
        if gen != apic.timer_gen or not apic.timer_initial:
            return  # reprogrammed or stopped since
        apic.irr_other |= 1 << apic.timer_vector
        if apic.timer_periodic:
            apic.timer_start = now
            apic.timer_deadline = now + apic.timer_initial * self.bus_cycle
            self.schedule(apic.timer_deadline, "apic.timer", (cpu, gen))
        else:
            apic.timer_initial = 0
        self.notify(cpu, now)

    # --- IO-APIC ------------------------------------------------------------

    def route_irq(self, irq: int, vector: int, mode: str = "fixed", dest: int = 1) -> None:
        """Program the IO-APIC redirection entry of external interrupt `irq`."""
        if not 0 <= irq < 24:
            raise MachineError(f"IO-APIC has IRQs 0..23, not {irq}")
        if mode not in MODES:
            raise MachineError(f"IRQ mode must be one of {', '.join(MODES)}, not {mode!r}")
        if not 16 <= vector <= 255:
            raise MachineError(f"IRQ vector must be 16..255, not {vector}")
        self.check_dest(dest)
        self.redirections[irq] = Redirection(vector, mode, dest)

    def raise_irq(self, irq: int, now: int) -> None:
        """A device asserts `irq`: the IO-APIC sends it over the APIC bus."""
        entry = self.redirections.get(irq)
        if entry is None or entry.masked:
            return
        msg = self._message(None, self.check_dest(entry.dest), entry.vector, entry.mode, now)
        self._transmit(msg, now)
