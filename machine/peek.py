"""What the next step runs, found without changing anything: `Machine.peek`'s two ways.

DESIGN.md §1 and STYLE.md (SimPy's `peek()` is a pure read): the common case is
read off the run queue and the top frame (`plain_next`); otherwise `peek` looks
the way `step` would on a save of exactly the state that touches (`Undo`),
restored after. Neither is on the step path: `step` never calls them.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.machine import Machine
    from machine.ops import Op


def plain_next(m: Machine, number: int | None) -> tuple[Cpu, Op] | None | Literal[False]:
    """`peek`'s common case without copying: the answer, or False (look the long way)."""
    events = m.events
    if number is None:
        runq, cpus = m._runq, m.cpus
        while runq:
            _, index, ticket = runq[0]
            c = cpus[index]
            if ticket == c.ticket and c.waiting is None:
                break
            heapq.heappop(runq)  # a stale entry: step drops it too
        else:
            return None if not events else False
        if events and events[0][0] <= runq[0][0]:
            return False
    else:
        c = m.cpu(number)
        if c.waiting is not None or (events and events[0][0] <= c.clock):
            return False
    frames = c.frames
    apic = m._apics[c.index]
    if (
        frames
        and c.exit_pending is None
        and c.fault is None
        and not ((apic.slots or apic.irr_other) and c.if_flag and not c.sti_shadow)
    ):
        frame = frames[-1]
        if frame.op is not None and frame.resume is None:
            return c, frame.op
    return False


class Undo:
    """A save of what applying events and deciding the next op may change (`Machine.peek`).

    Events touch the event queue, the run queue, the RNG (lowest-priority
    arbitration), the local APICs and the APIC bus, the messages on it, and the
    CPUs' scheduling fields (a wake-up, a Compute cut by an interrupt);
    `_next_op` retires ended frames, notes a pending iret and pushes the idle
    handler's frame. Each CPU's and APIC's fields are saved one by one (lists
    copied), so the same objects hold the old values again after `restore`.
    """

    __slots__ = (
        "apic",
        "apics",
        "cpus",
        "events",
        "m",
        "messages",
        "resume",
        "rng",
        "runq",
        "vals",
    )

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.events = list(m.events)
        self.runq = list(m._runq)
        self.vals = (m.event_seq, m.event_time)
        self.rng = m.rng.getstate()
        self.cpus = [_fields(c) for c in m.cpus]
        self.resume = [(c.compute_frame, c.compute_frame.resume) for c in m.cpus if c.compute_frame]
        a = m.apics
        self.apics = [_fields(x) for x in a.apics]
        self.apic = (a.bus_free_at, list(a.in_flight), a.seq)
        self.messages = [
            (e[3], list(e[3].dests), e[3].retries) for e in m.events if e[2] == "apic.arrive"
        ]

    def restore(self) -> None:
        m = self.m
        m.events[:] = self.events
        m._runq[:] = self.runq
        m.event_seq, m.event_time = self.vals
        m.rng.setstate(self.rng)
        for c, saved in zip(m.cpus, self.cpus, strict=True):
            _restore(c, saved)
        for frame, resume in self.resume:
            frame.resume = resume
        a = m.apics
        for x, saved in zip(a.apics, self.apics, strict=True):
            _restore(x, saved)
        a.bus_free_at, in_flight, a.seq = self.apic
        a.in_flight[:] = in_flight
        for msg, dests, retries in self.messages:
            msg.dests, msg.retries = dests, retries


def _fields(obj: Any) -> list[tuple[str, Any]]:
    """A slotted object's fields, lists copied (restored into the same list objects)."""
    out = []
    for name in obj.__slots__:
        value = getattr(obj, name)
        out.append((name, list(value) if type(value) is list else value))
    return out


def _restore(obj: Any, saved: list[tuple[str, Any]]) -> None:
    for name, value in saved:
        if type(value) is list:
            getattr(obj, name)[:] = value  # the same list: a CPU's frames are its context's
        else:
            setattr(obj, name, value)
