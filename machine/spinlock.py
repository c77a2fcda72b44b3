"""The test-and-test-and-set spinlock of the thesis's appendix A, as micro-ops.

    spinlock(lock)
        lock bts [lock],1
        jc spin            ; the appendix prints "js": bts reports the old bit
                           ; in the carry flag, so the branch is jc (we follow the text)
    critical_section: ...
    spin:
        cmp [lock],0
        jne spin
        lock bts [lock],1
        jc spin
        jmp critical_section

While the lock is held, waiters spin on plain reads, which hit their own
shared copy of the line; only when a read sees the lock free do they try the
bus-locked `bts` again. Spinning with `bts` would move the line to M on every
iteration and invalidate it everywhere else (the appendix's point).

Use with ``yield from spin_lock(addr)`` inside code running on a CPU.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from machine.ops import Atomic, Compute, Op, Read, Write

LOCK_BIT = 1  # the appendix's `bts [lock],1`
SPIN_LOOP_CYCLES = 1  # cmp + jne around the read


def spin_lock(addr: int) -> Generator[Op, Any, int]:
    """Acquire the lock word at `addr`; returns how many spin reads it took."""
    spins = 0
    while True:
        old = yield Atomic("bts", addr, LOCK_BIT)
        if not old >> LOCK_BIT & 1:  # carry clear: we set the bit, the lock is ours
            return spins
        while (yield Read(addr)) != 0:
            spins += 1
            yield Compute(SPIN_LOOP_CYCLES)


def spin_unlock(addr: int) -> Generator[Op, Any, None]:
    """Release the lock word at `addr` (a plain store, as on the Pentium)."""
    yield Write(addr, 0)


def spin_trylock(addr: int) -> Generator[Op, Any, bool]:
    """One `lock bts`: True if the lock was free and is now ours."""
    old = yield Atomic("bts", addr, LOCK_BIT)
    return not old >> LOCK_BIT & 1
