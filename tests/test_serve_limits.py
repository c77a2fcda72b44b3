"""`l4tui serve` limits count connections from authentication (issue 14): one user held
200 connections that opened no channel under `--max-sessions 2 --per-user 1`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import asyncssh
import pytest
from test_serve import connect, disconnect_reason, lab, open_monitor  # noqa: F401 - lab: fixture

from tests.waiting import await_until


@pytest.mark.slow
async def test_a_connection_without_a_channel_holds_a_place(lab) -> None:  # noqa: F811
    server, port, bob = lab  # max_sessions 2, per_user 1
    async with connect(port) as first:
        await await_until(lambda: len(server.connections) == 1)
        for _ in range(20):  # alice again and again: each refused as it logs in
            told = await disconnect_reason(port)
            assert told.startswith("l4tui: you already have 1 session open")
        assert len(server.connections) == 1
        async with connect(port, "bob", client_keys=[bob]):
            await await_until(lambda: len(server.connections) == 2)
            told = await disconnect_reason(port, "bob", client_keys=[bob])
            assert told.startswith("l4tui: the lab is full (2 sessions); try again later")
        # Her first connection still opens its session, in the place it held.
        screen = await open_monitor(first)
        await screen.wait_for("CPUs")
        assert server.held("alice") == 1
        screen.proc.close()
    await await_until(lambda: not server.connections and not server.sessions)


async def test_a_connection_that_opens_no_session_is_closed_at_the_login_timeout(
    lab,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, port, _ = lab
    server.limits = dataclasses.replace(server.limits, login_timeout=0.5)
    with caplog.at_level(logging.INFO, logger="l4tui.serve"):
        conn = await connect(port)
        await asyncio.wait_for(conn.wait_closed(), 30)
    assert not server.connections
    assert any("closed alice from" in r.getMessage() for r in caplog.records)
    assert any("no session in 0 s" in r.getMessage() for r in caplog.records)
    async with connect(port) as conn:  # her place is free again
        assert conn.get_extra_info("username") == "alice"


@pytest.mark.slow
async def test_a_connection_whose_session_ended_gets_the_login_timeout_again(
    lab,  # noqa: F811
) -> None:
    server, port, _ = lab
    async with connect(port) as conn:
        screen = await open_monitor(conn)
        await screen.wait_for("CPUs")
        # (idle_timeout as before the fixture's was raised: should the terminal read ESC q as
        # Alt+q on a loaded machine, the session still ends.)
        server.limits = dataclasses.replace(server.limits, login_timeout=0.5, idle_timeout=4.0)
        assert server.held("alice") == 1
        screen.proc.stdin.write(b"\x1b")
        await asyncio.sleep(0.2)
        screen.proc.stdin.write(b"q")  # she quits the monitor but keeps the connection
        await asyncio.wait_for(conn.wait_closed(), 30)  # closed a moment later
    assert not server.connections and not server.sessions


async def test_a_refused_second_channel_holds_no_place(lab) -> None:  # noqa: F811
    server, port, bob = lab
    async with connect(port) as conn:
        first = await open_monitor(conn)
        await first.wait_for("CPUs")
        second = await open_monitor(conn)
        await second.wait_for("you already have 1 session open")
        await asyncio.wait_for(second.proc.wait_closed(), 30)
        assert server.held() == 1 and server.held("alice") == 1
        async with connect(port, "bob", client_keys=[bob]) as other:  # the second place is free
            b1 = await open_monitor(other)
            await b1.wait_for("CPUs")
            assert server.held() == 2
            b1.proc.close()
        first.proc.close()
    await await_until(lambda: not server.sessions)


async def test_exec_on_an_authenticated_connection_still_refused(lab) -> None:  # noqa: F811
    _, port, _ = lab
    async with connect(port) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("true", check=False)


async def test_a_broken_authorized_keys_file_refuses_and_says_why(
    lab,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, port, bob = lab
    (Path(server.keys_dir) / "carol").write_text("not a key at all\n")
    with (
        caplog.at_level(logging.INFO, logger="l4tui.serve"),
        pytest.raises(asyncssh.PermissionDenied),
    ):
        async with connect(port, "carol", client_keys=[bob]):
            pass
    assert any("cannot read carol's authorized_keys" in r.getMessage() for r in caplog.records)
    async with connect(port, "bob", client_keys=[bob]):  # the others still log in
        pass
