"""The shared memory bus (thesis §3.1, §3.2; §5.2 on bus contention).

Only one transaction holds the bus at a time. A transaction asked for while
another holds it waits, so four CPUs missing at once slow each other down —
the contention the thesis warns about in §6.1.1. Durations are in engine
ticks; the caller converts bus cycles with the profile's clocks.

CPUs' clocks are not in lock step (each runs ahead until another one is
lower, and by hand they can be far apart), so the bus keeps the intervals it
is booked for and gives a request the first gap at or after its time, not
merely "after the last transaction".
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# "writeback": a line evicted for space written back (its own transaction). A snoop's
# write-back (another CPU reads or takes an M line: M->S, M->I) is part of the read or
# read-for-ownership that caused it, and counted in "snoop_writeback" too.
BUS_KINDS = ("read", "rfo", "invalidate", "writeback", "snoop_writeback", "locked")
_KEEP = 64  # bookings kept before old ones are forgotten


@dataclass(slots=True)
class Bus:
    """Bookings of the memory bus and a count of its transactions."""

    booked: list[tuple[int, int]] = field(default_factory=list)  # (start, end), sorted
    busy_ticks: int = 0
    transactions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUS_KINDS, 0))

    def acquire(self, now: int, duration: int, kind: str) -> int:
        """Hold the bus for `duration` ticks from the first free gap at or after `now`.

        Returns the tick the transaction ends.
        """
        booked = self.booked
        start = now
        i = bisect.bisect_left(booked, (now, now))
        if i and booked[i - 1][1] > start:
            start = booked[i - 1][1]
        while i < len(booked):
            s, e = booked[i]
            if s >= start + duration:
                break
            if e > start:
                start = e
            i += 1
        booked.insert(i, (start, start + duration))
        if len(booked) > _KEEP:
            del booked[: _KEEP // 2]
        self.busy_ticks += duration
        self.transactions[kind] += 1
        return start + duration

    @property
    def free_at(self) -> int:
        """The end of the latest booking."""
        return self.booked[-1][1] if self.booked else 0
