"""reverse-continue replays once: the scout that finds the last stop leaves a keeper.

A scout (checkpoints.py `scan_stops`) replays a segment to find where the breakpoints and
watchpoints stop; it forks every `KEEPER_EVERY` micro-ops and keeps the newest fork at or
before its last stop. The `goto` to that stop hands the session to the keeper — not to the
segment's checkpoint, which would replay the segment again — and replays fewer than
`KEEPER_EVERY` micro-ops. The result must be exactly the in-process one (a replay from the
start), and no keeper may outlive its use or the client.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoints import _alive, _endless, _gone, remote, state  # noqa: F401 - remote: fixture

from l4tui import checkpoints
from l4tui import session as session_module
from l4tui.executor import outcome

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork checkpoints need fork")

EVERY = 37  # small: a keeper in every segment of 300 micro-ops


def took_over(s: Any) -> tuple[str, int] | None:
    return s.checkpoints.took_over


def _in_group(group: int) -> set[int]:
    """The live processes of process group `group`."""
    ours = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group and _alive(int(entry)):
                    ours.add(int(entry))
            except OSError:
                continue
    return ours


def _processes(r: Any) -> list[int]:
    return [r.engine_pid, *(p for _, p in r.checkpoint_list())]


@pytest.fixture(autouse=True)
def _keepers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "KEEPER_EVERY", EVERY)  # the engine is forked after
    # A continue that finds no stop pauses at the limit: `break cpu 1` never fires on the
    # endless ping-pong, and the default limit (5,000,000) ran for minutes, twice.
    monkeypatch.setattr(session_module, "LIMIT", 20_000)


@pytest.mark.slow(25)
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    brk=st.sampled_from(["xp.proxy.send", "sched.switch", "cpu 1"]),
    watch=st.booleans(),
    ahead=st.integers(700, 5000),
    back=st.integers(1, 3),
)
def test_reverse_continue_through_a_keeper_is_exact(
    remote: Any,  # noqa: F811 - the fixture
    brk: str,
    watch: bool,
    ahead: int,
    back: int,
) -> None:
    here, there = _endless(), remote(_endless())
    lines = [f"break {brk}"] + (["watch srv.partner"] if watch else []) + [f"stepi {ahead}"]
    for line in lines:
        assert outcome(here, line)[0] == there.call(outcome, line)[0], line
    for _ in range(back):
        before = there.engine_pid
        a, b = outcome(here, "reverse-continue")[0], there.call(outcome, "reverse-continue")[0]
        assert a == b
        assert there.call(state) == state(here)
        how = there.call(took_over)
        if "no earlier stop" not in a and how is not None and there.engine_pid != before:
            kind, at = how
            assert at <= here.position  # the machine where the goto replayed from
            if kind == "keeper":
                assert here.position - at < EVERY + 300  # a keeper's last fork + one step
    # On, and back again: history after a keeper's takeover is the same as in-process.
    for line in ("stepi 400", "reverse-stepi 150", "reverse-continue", "continue"):
        assert outcome(here, line)[0] == there.call(outcome, line)[0], line
    assert there.call(state) == state(here)
    pids = _processes(there)
    there.close()
    assert _gone(pids)


def test_a_keeper_takes_over_and_unused_keepers_go(remote: Any) -> None:  # noqa: F811
    here, there = _endless(), remote(_endless(), spacing=1000)
    for line in ("break xp.proxy.send", "stepi 5000"):
        assert outcome(here, line)[0] == there.call(outcome, line)[0]
    kinds = []
    for _ in range(4):
        assert outcome(here, "reverse-continue")[0] == there.call(outcome, "reverse-continue")[0]
        kinds.append(there.call(took_over))
        assert there.call(state) == state(here)
    assert any(k is not None and k[0] == "keeper" for k in kinds), kinds
    # Every process of the session is the engine or a listed checkpoint: no keeper is left.
    engine, listed = there.engine_pid, set(_processes(there))
    group = os.getpgid(engine)  # the first engine's: every process of the session is in it
    # A killed keeper is gone once the kernel has ended it: polled, with a deadline.
    deadline = time.monotonic() + 10
    while (extra := _in_group(group) - listed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not extra and engine in _in_group(group), extra
    pids = _processes(there)
    there.close()
    assert _gone(pids)
