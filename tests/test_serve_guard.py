"""Password guessing against `l4tui serve` (issue 14): a failure budget per user and per
address across connections with lockouts on an injected clock, one scrypt whether the
name exists or not, and user names checked whole."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import asyncssh
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serve import connect, lab  # noqa: F401 - `lab` is the fixture used below

from l4tui.serve.auth import (
    USER,
    authorized_keys,
    check_password,
    hash_password,
    load_users,
    unknown_hash,
)
from l4tui.serve.guard import Guard
from machine.errors import ConfigError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(guard: Guard, user: str, peer: str, ok: bool = False) -> bool:
    """One password try as the server makes it: allowed or refused unchecked."""
    if not guard.begin(user, peer):
        return False
    guard.end(user, peer, ok)
    return True


def test_a_users_budget_holds_across_connections_and_its_lockout_ends() -> None:
    clock = Clock()
    guard = Guard(per_user=5, per_peer=100, window=300, lockout=60, clock=clock)
    assert [attempt(guard, "alice", f"10.0.0.{i}") for i in range(7)] == [True] * 5 + [False] * 2
    assert guard.locked("alice", "10.0.0.9") == 60  # from any address
    assert attempt(guard, "bob", "10.0.0.1")  # another user is not locked out
    clock.now += 59
    assert not attempt(guard, "alice", "10.0.0.1", ok=True)  # even the right password waits
    clock.now += 1
    assert attempt(guard, "alice", "10.0.0.1", ok=True)


def test_lockouts_double_while_guessing_goes_on_and_are_forgiven_after_a_quiet_window() -> None:
    clock = Clock()
    guard = Guard(per_user=3, per_peer=100, window=300, lockout=60, longest=200, clock=clock)
    spans = []
    for _ in range(4):
        while attempt(guard, "alice", "10.0.0.1"):
            pass
        spans.append(guard.locked("alice", "10.0.0.1"))
        clock.now += spans[-1]
    assert spans == [60, 120, 200, 200]  # doubling, up to `longest`
    clock.now += 301  # a whole quiet window after the last lockout ended
    while attempt(guard, "alice", "10.0.0.1"):
        pass
    assert guard.locked("alice", "10.0.0.1") == 60


def test_an_address_has_a_budget_of_its_own_over_many_names() -> None:
    clock = Clock()
    guard = Guard(per_user=5, per_peer=8, clock=clock)
    allowed = [attempt(guard, f"user{i}", "10.0.0.1") for i in range(10)]
    assert allowed == [True] * 8 + [False] * 2
    assert attempt(guard, "user99", "10.0.0.2")  # another address is not locked out


def test_checks_in_flight_count_so_parallel_guesses_cannot_overrun_the_budget() -> None:
    guard = Guard(per_user=3, per_peer=100, clock=Clock())
    started = [guard.begin("alice", f"10.0.0.{i}") for i in range(10)]
    assert started == [True] * 3 + [False] * 7
    for i in range(3):
        guard.end("alice", f"10.0.0.{i}", False)
    assert not guard.begin("alice", "10.0.0.1")  # spent: locked out


def test_a_login_forgets_the_users_failures_but_not_the_addresss() -> None:
    clock = Clock()
    guard = Guard(per_user=3, per_peer=5, clock=clock)
    for _ in range(2):
        attempt(guard, "alice", "10.0.0.1")
    attempt(guard, "alice", "10.0.0.1", ok=True)
    assert attempt(guard, "alice", "10.0.0.1") and attempt(guard, "alice", "10.0.0.1")
    assert attempt(guard, "bob", "10.0.0.1")  # the address's fifth failure: its last
    assert not attempt(guard, "carol", "10.0.0.1")


def test_each_lockout_is_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(per_user=2, per_peer=3, clock=Clock())
    with caplog.at_level(logging.INFO, logger="l4tui.serve"):
        for name in ("alice", "alice", "bob"):
            attempt(guard, name, "10.0.0.7")
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "locked out user alice for 60 s: 2 bad passwords in 300 s",
        "locked out address 10.0.0.7 for 60 s: 3 bad passwords in 300 s",
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob", "carol"]),
            st.sampled_from(["10.0.0.1", "10.0.0.2"]),
            st.floats(min_value=0, max_value=100),
        ),
        max_size=120,
    )
)
def test_guessing_never_gets_more_than_the_budget_per_lockout_span(tries) -> None:
    """However guesses are spread over names, addresses and time, no name and no address
    gets more bad passwords checked in any span as long as a lockout than its budget."""
    clock = Clock()
    guard = Guard(per_user=4, per_peer=6, window=300, lockout=60, clock=clock)
    checked: list[tuple[float, str, str]] = []
    for user, peer, later in tries:
        clock.now += later
        if attempt(guard, user, peer):
            checked.append((clock.now, user, peer))
    for t, user, peer in checked:
        span = [c for c in checked if t - 60 < c[0] <= t]
        assert sum(1 for c in span if c[1] == user) <= 4
        assert sum(1 for c in span if c[2] == peer) <= 6


def test_memory_stays_bounded_over_many_names() -> None:
    clock = Clock()
    guard = Guard(window=10, clock=clock)
    for i in range(20000):
        clock.now += 0.01
        attempt(guard, f"u{i}", f"10.{i % 250}.0.1")
    assert len(guard._records) < 6000


def test_user_names_are_checked_whole(tmp_path: Path) -> None:
    assert USER.fullmatch("alice") and not USER.fullmatch("alice\n")
    users = tmp_path / "users.yaml"
    users.write_text(f'users: {{"alice\\n": "{hash_password("wonderland")}"}}\n')
    with pytest.raises(ConfigError, match="not a user name"):
        load_users(str(users))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "alice").write_text("")
    assert authorized_keys(str(keys), "alice") and authorized_keys(str(keys), "alice\n") is None


def test_a_users_file_entry_must_be_a_whole_hash(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text('users:\n  alice: "scrypt$not base64$!"\n')
    with pytest.raises(ConfigError, match=r"users.yaml:2:10: a password entry is a scrypt\$"):
        load_users(str(users))


def test_every_refusal_costs_one_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = hashlib.scrypt

    def counted(*args: object, **kwargs: object) -> bytes:
        calls.append(kwargs.get("n"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    stored = hash_password("wonderland")
    monkeypatch.setattr(hashlib, "scrypt", counted)
    for stored_hash in (stored, unknown_hash(), "scrypt$broken", ""):
        calls.clear()
        assert not check_password("guess", stored_hash)
        assert len(calls) == 1 and calls[0] == 2**14, stored_hash


async def guesses(port: int, user: str, passwords: list[str]) -> bool:
    """One connection that tries `passwords` in turn (as a person retyping); whether it got in."""

    class Guesser(asyncssh.SSHClient):
        def __init__(self) -> None:
            self.left = list(passwords)

        def password_auth_requested(self) -> str | None:
            return self.left.pop(0) if self.left else None

    try:
        conn = await asyncssh.connect(
            "127.0.0.1",
            port,
            username=user,
            known_hosts=None,
            client_keys=None,
            client_factory=Guesser,
            preferred_auth="password",
        )
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError):
        return False
    conn.close()
    await conn.wait_closed()
    return True


async def test_over_ssh_a_known_and_an_unknown_name_cost_the_same(
    lab,  # noqa: F811 - the server fixture of test_serve
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, port, _ = lab
    server.guard = Guard(per_user=100)  # no lockout: every try reaches the check
    calls = []
    real = hashlib.scrypt

    def counted(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counted)
    counts = []
    for user in ("alice", "mallory", "Not-A-Name", "alice+fresh"):
        calls.clear()
        assert not await guesses(port, user, ["wrong-1", "wrong-2", "wrong-3"])
        counts.append(len(calls))
    assert counts == [3, 3, 3, 3]  # three tries a connection, one scrypt each


async def test_over_ssh_reconnecting_does_not_reset_the_budget(
    lab,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, port, _ = lab
    clock = Clock()
    server.guard = Guard(per_user=5, per_peer=100, lockout=60, clock=clock)
    with caplog.at_level(logging.INFO, logger="l4tui.serve"):
        for _ in range(4):  # 12 guesses over 4 connections: 5 are checked
            assert not await guesses(port, "alice", ["wrong-1", "wrong-2", "wrong-3"])
        assert not await guesses(port, "alice", ["wonderland"])  # it waits out the lockout
        clock.now += 60
        assert await guesses(port, "alice", ["wonderland"])  # after it, alice logs in
    said = [r.getMessage() for r in caplog.records]
    assert sum("bad password (" in line for line in said) == 5
    assert sum(line.startswith("locked out user alice for 60 s") for line in said) == 1
    assert sum("refused alice from" in line and "locked out" in line for line in said) == 8
