"""Cross-processor deadlocks: cycles of two and three senders through proxies, mixed
local and remote cycles, and a sender blocked for good that is not stuck (thesis §8.3.5).

Each test is a scenario run headless with `System` (tests/xp_helpers.py), looking
at what `run --json` reports and at the kernel's memory where the thesis names
the structure; the invariants are checked at every quiescent kernel exit, and
after every run the mailbox flags are all clear, every mailbox is free and no
thread has a mailbox hooked — except where a sender stays blocked for good.
"""

from __future__ import annotations

import re

import pytest

from kernel.system import System
from l4tui.runner.figures import counters
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import results, state
from tests.xp_helpers import CPUS, POLICIES, assert_mailboxes_clean, xp_run

# --- deadlock ------------------------------------------------------------------------------------


WAIT_RE = re.compile(r"(\S+) (polling on|waiting for) (\S+)")


def _chain(s: System, proxies: set[str]) -> list[str]:
    """The wait-for cycle of `summary()["waits"]` as the threads in it, proxies left out
    (a cross-CPU sender may be shown waiting for the proxy that polls for it), starting
    at the alphabetically first."""
    lines = run_summary(s).get("waits", [])
    names = []
    for line in lines:
        m = WAIT_RE.fullmatch(line)
        assert m is not None, lines
        names.append(m.group(1))
    # Consecutive edges chain: each one starts where the previous ended.
    ons = [WAIT_RE.fullmatch(line).group(3) for line in lines]
    assert names and ons[-1] == names[0], lines
    assert all(on == nxt for on, nxt in zip(ons, names[1:], strict=False)), lines
    users = [n for n in names if n not in proxies]
    i = users.index(min(users))
    return users[i:] + users[:i]


def _proxies(s: System) -> set[str]:
    return {t.name for t in s.kernel.threads if t.proxy_kind}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_cross_cpu_deadlock_two(cpus: int, policy: str) -> None:
    """a calls b, b calls a, on two CPUs: a cycle in the wait-for graph, through the proxies."""
    s = xp_run(
        f"""
        tasks:
          - name: ta
            threads:
              - name: a
                cpu: 1
                program:
                  - call: {{to: b, words: [1]}}
          - name: tb
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - compute: 100
                  - call: {{to: a, words: [2]}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "deadlock", (s.ended, run_summary(s).get("stuck"))
    summary = run_summary(s)
    assert summary["deadlock"] is True
    assert _chain(s, _proxies(s)) == ["a", "b"], summary["waits"]
    assert results(s, "a") == results(s, "b") == []
    assert counters(s)["ipc"] == 0
    assert_mailboxes_clean(s, pending_ok=True)


@pytest.mark.parametrize("cpus", [3, 4])
def test_cross_cpu_deadlock_chain_of_three(cpus: int) -> None:
    """a -> b -> c -> a, each on its own CPU: the summary names the whole chain."""
    s = xp_run(
        """
        tasks:
          - name: t
            threads:
              - name: a
                cpu: 1
                program:
                  - call: {to: b}
              - name: b
                cpu: 2
                program:
                  - compute: 100
                  - call: {to: c}
              - name: c
                cpu: 3
                program:
                  - compute: 200
                  - call: {to: a}
        """,
        cpus,
    )
    assert s.ended == "deadlock", (s.ended, run_summary(s).get("stuck"))
    assert run_summary(s)["deadlock"] is True
    assert _chain(s, _proxies(s)) == ["a", "b", "c"], run_summary(s)["waits"]
    assert_mailboxes_clean(s, pending_ok=True)


@pytest.mark.parametrize("cpus", CPUS)
def test_mixed_local_and_remote_deadlock(cpus: int) -> None:
    """a (CPU 1) calls b (remote); b receives only from c (CPU 1), c waits for a."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: a
                cpu: 1
                program:
                  - call: {{to: b}}
              - name: b
                cpu: {cpus}
                program:
                  - recv: {{from: c}}
              - name: c
                cpu: 1
                program:
                  - recv: {{from: a}}
        """,
        cpus,
    )
    assert s.ended == "deadlock", (s.ended, run_summary(s).get("stuck"))
    assert _chain(s, _proxies(s)) == ["a", "b", "c"], run_summary(s)["waits"]
    assert_mailboxes_clean(s, pending_ok=True)


@pytest.mark.parametrize("cpus", CPUS)
def test_cross_cpu_sender_blocked_for_good_is_not_stuck(cpus: int) -> None:
    """A send with no timeout to a remote thread that never receives: the sender polls (through
    its proxy) forever. That is blocked for good, like a local polling sender — the run ends
    ("end"), it is not "stuck" (a thread left locked by a kernel fault)."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: a
                cpu: 1
                program:
                  - send: {{to: b, words: [1]}}
              - name: b
                cpu: {cpus}
                program:
                  - compute: 100
        """,
        cpus,
    )
    assert s.ended == "end", (s.ended, run_summary(s).get("stuck"))
    assert run_summary(s)["deadlock"] is False
    assert state(s, "b") == "inactive"
    assert results(s, "a") == []
    assert_mailboxes_clean(s, pending_ok=True)
