"""An idle `l4tui serve` session sleeps, and a session ends when its zygote, its terminal or
(a warm slot) its pool socket goes (issue 14: orphaned warm sessions spun on a hung-up pty,
each burning 9% of a CPU).

Idle means asleep: Textual's own keyboard thread woke ten times a second to poll; the
session's driver (l4tui/serve/driver.py) waits for a key with no timeout. The tests count
the process's context switches, not time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
from pathlib import Path

import pytest
from test_serve import connect, lab, open_monitor  # noqa: F401 - lab: the fixture
from test_serve_orphans import gone

from tests.waiting import await_until


@pytest.mark.slow
async def test_a_session_ends_when_its_zygote_dies(lab) -> None:  # noqa: F811
    server, port, _ = lab
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        (session,) = server.sessions
        os.kill(server._zygote.pid, signal.SIGKILL)
        await await_until(lambda: gone(session.pid))
        await await_until(lambda: not server.sessions)  # it said its end on the pty
    async with connect(port) as conn:  # the next login starts another zygote
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        screen.proc.close()


async def test_a_session_ends_when_its_terminal_goes(lab) -> None:  # noqa: F811
    server, port, _ = lab
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        (session,) = server.sessions
        pid, master = session.pid, session.master
        asyncio.get_running_loop().remove_reader(master)
        session.master = -1
        os.close(master)  # the server's end of the pty, and nothing else: a hang-up
        await await_until(lambda: gone(pid))
        server.sessions.discard(session)


@pytest.mark.slow
async def test_a_warm_slot_ends_when_its_pool_socket_closes(lab) -> None:  # noqa: F811
    server, _, _ = lab
    server.warm = 1
    server.fill_pool()
    await await_until(server.pool_ready, 60)
    slot = server.pool.pop()
    server.warm = 0
    loop = asyncio.get_running_loop()
    loop.remove_reader(slot.master)
    loop.remove_reader(slot.control)
    os.close(slot.control)  # as if the server had gone; its pty stays open
    await await_until(lambda: gone(slot.pid))
    os.close(slot.master)


def _wakeups(pid: int) -> int:
    """Context switches of every thread of `pid` so far: a thread that polls keeps adding."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            status = (task / "status").read_text()
            total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", status))
    return total


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _costs(pids: list[int]) -> list[tuple[int, int]]:
    return [(_wakeups(pid), _cpu_ticks(pid)) for pid in pids]


async def _idle_cost(pids: list[int], seconds: float) -> list[tuple[int, int]]:
    """Wake-ups and CPU ticks of each of `pids` over `seconds` (a span observed, not a wait)."""
    before = _costs(pids)
    await asyncio.sleep(seconds)
    return [(w - w0, t - t0) for (w, t), (w0, t0) in zip(_costs(pids), before, strict=True)]


async def _settled(pids: list[int], timeout: float = 30.0) -> None:
    """Until a second passes with `pids` asleep: their first frames are drawn (a fresh session
    paints a few times as its panes fill, for a second or two)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while any(w > 1 for w, _ in await _idle_cost(pids, 1.0)):
        assert asyncio.get_running_loop().time() < deadline, "never settled"


@pytest.mark.slow
async def test_an_idle_session_and_a_warm_slot_sleep(lab) -> None:  # noqa: F811
    server, port, _ = lab
    server.limits = dataclasses.replace(server.limits, idle_timeout=600.0)
    server.warm = 2
    server.fill_pool()
    await await_until(server.pool_ready, 60)
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        (session,) = server.sessions  # in one of the slots
        (slot,) = server.pool  # the other, still waiting for a student
        pids = [session.pid, slot.pid]
        await _settled(pids)
        # Textual's own input thread woke ten times a second: 20 in 2 s at least.
        for pid, (wakeups, ticks) in zip(pids, await _idle_cost(pids, 2.0), strict=True):
            assert wakeups <= 2, (pid, wakeups)
            assert ticks <= 1, (pid, ticks)
        screen.proc.stdin.write(b"print cpu1.steps\r")  # and it still answers at once
        await screen.wait_for("cpu1.steps = ")
        screen.proc.close()
