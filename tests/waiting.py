"""Waiting on a condition, never for a fixed time.

A test that needs something to have happened (a process gone, a pool ready, a
machine running) polls the condition itself, with a deadline: it goes on the
moment the condition holds, and fails with a message instead of hanging when
it never does. The deadlines are generous because the machine running the
tests may be loaded; they bound a failure, they are not what a test waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL = 0.02  # seconds between looks: short against any deadline here


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Until `condition()` is true; an AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never held within {timeout} s: {what or condition}"
        time.sleep(POLL)


async def await_until(
    condition: Callable[[], object], timeout: float = 30.0, what: str = ""
) -> None:
    """`wait_until` for a test on an event loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never held within {timeout} s: {what or condition}"
        await asyncio.sleep(POLL)
