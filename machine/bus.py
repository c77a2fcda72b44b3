"""The shared memory bus (thesis §3.1, §3.2; §5.2 on bus contention).

Only one transaction holds the bus at a time. A transaction asked for while
another holds it waits, so four CPUs missing at once slow each other down —
the contention the thesis warns about in §6.1.1. Durations are in engine
ticks; the caller converts bus cycles with the profile's clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUS_KINDS = ("read", "rfo", "invalidate", "writeback", "locked")


@dataclass(slots=True)
class Bus:
    """Occupancy of the memory bus and a count of its transactions."""

    free_at: int = 0
    last_start: int = 0
    busy_ticks: int = 0
    transactions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUS_KINDS, 0))

    def acquire(self, now: int, duration: int, kind: str) -> int:
        """Hold the bus for `duration` ticks from `now` or when it frees; return the end tick.

        A request dated before the last granted one (possible when CPUs are
        stepped by hand far apart in time) does not wait: its window is in
        the past of the bus's schedule, and there it did not collide.
        """
        start = now if now < self.last_start else max(now, self.free_at)
        self.last_start = start
        end = start + duration
        if end > self.free_at:
            self.free_at = end
        self.busy_ticks += duration
        self.transactions[kind] += 1
        return end
