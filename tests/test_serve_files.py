"""Over `l4tui serve` a student's file commands stay in their own directory, STATE/files/USER
(issue 14: Alice's `save ../../bob.json` overwrote Bob's saved session)."""

from __future__ import annotations

import stat

import pytest
from test_serve import connect, lab, open_monitor  # noqa: F401 - lab: the fixture

from l4tui.serve.server import LabServer
from tests.waiting import await_until


async def _pool_ready(server: LabServer) -> None:
    await await_until(server.pool_ready, 60, "the warm pool never got ready")


@pytest.mark.slow
@pytest.mark.parametrize("warm", [0, 1], ids=["forked-at-login", "warm-slot"])
async def test_file_commands_stay_in_the_students_directory(lab, warm: int) -> None:  # noqa: F811
    server, port, _ = lab
    if warm:
        server.warm = 1
        server.fill_pool()
        await _pool_ready(server)
    bob = server.state_dir / "bob.json"
    bob.write_text("{}")
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        if warm:
            assert not server.pool or server.pool[0].pid != next(iter(server.sessions)).pid
        screen.proc.stdin.write(b"save ../x.json\r")
        await screen.wait_for("outside your directory")
        screen.proc.stdin.write(b"save ../../bob.json\r")
        await screen.wait_for("bob.json: outside your directory")
        screen.proc.stdin.write(b"save mine.json\r")
        await screen.wait_for("mine.json")
        mine = server.state_dir / "files" / "alice" / "mine.json"
        await await_until(mine.exists, 30, "save mine.json never wrote")
        screen.proc.close()
    assert not (server.state_dir / "files" / "x.json").exists()
    assert not (server.state_dir / "x.json").exists()
    assert bob.read_text() == "{}"  # Bob's work untouched
    for made in (server.state_dir / "files", server.state_dir / "files" / "alice"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
