"""IPI policies of cross-processor IPC (always, when_needed, poll_only) and
`System.run(check_invariants=True)` on the proxy scenarios (thesis §8.3.4).

Each test is a scenario run headless with `System` (tests/xp_helpers.py), looking
at what `run --json` reports and at the kernel's memory where the thesis names
the structure; the invariants are checked at every quiescent kernel exit, and
after every run the mailbox flags are all clear, every mailbox is free and no
thread has a mailbox hooked — except where a sender stays blocked for good.
"""

from __future__ import annotations

import pytest

from l4tui.runner.figures import counters
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import results
from tests.xp_helpers import (
    CPUS,
    LATE_RECEIVER,
    PINGPONG,
    POLICIES,
    STEPS,
    assert_mailboxes_clean,
    xp_run,
    xp_system,
)

# --- IPI policies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cpus", CPUS)
def test_ipi_policy_counts(cpus: int) -> None:
    """poll_only sends no IPI; always sends no fewer than when_needed, on the same scenario.

    Here the target is halted whenever a request comes: when_needed interrupts it
    too (tests/test_ipi_policy.py has a target busy in system calls).
    """
    got = {}
    runs = []
    for policy in POLICIES:
        s = xp_run(PINGPONG.format(srv=cpus), cpus, policy)
        assert s.ended == "end"
        assert [r["words"] for r in results(s, "cli")] == [[7, 8]] * 3
        assert counters(s)["xp_ipc"] == 6
        got[policy] = counters(s)["ipis_sent"]
        assert got[policy] == sum(c["ipis_received"] for c in run_summary(s)["cpus"])
        runs.append(s)
    assert got["poll_only"] == 0
    assert got["always"] >= got["when_needed"] > 0, got  # (equal here: few IPIs to save)
    for s in runs:
        assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_poll_only_waits_for_ticks(cpus: int) -> None:
    """Without IPIs a request is found at the target's next tick: a longer tick, a slower run."""
    cycles = {}
    runs = []
    for tick in (2000, 20000):
        s = xp_run(PINGPONG.format(srv=cpus), cpus, "poll_only", tick=tick)
        assert s.ended == "end"
        assert counters(s)["ipis_sent"] == 0
        assert counters(s)["xp_ipc"] == 6
        cycles[tick] = s.machine.cpu(1).clock // s.machine.tpc
        runs.append(s)
    assert cycles[20000] > cycles[2000]
    for s in runs:
        assert_mailboxes_clean(s)


# --- System.run(check_invariants=True) on the proxy scenarios ----------------------------------

CHECKED: dict[str, str] = {
    "pingpong": PINGPONG,
    "late-receiver": LATE_RECEIVER,
    "sleep-alone-on-the-last-cpu": """
        tasks:
          - name: t
            threads:
              - name: r
                cpu: {cpu}
                program:
                  - sleep: 20000
                  - recv: {{from: any, timeout: 0}}
        """,
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("name", list(CHECKED))
def test_run_check_invariants(name: str, cpus: int, policy: str) -> None:
    """`System.run(check_invariants=True)`: the invariants hold at every kernel exit it checks,
    while a sender polls through its proxy and all along an XP call."""
    text = CHECKED[name].format(srv=cpus, r=cpus, src="s", cpu=cpus)
    s = xp_system(text, cpus, policy)
    why = s.run(max_steps=STEPS, check_invariants=True)
    assert s.violations == []
    assert why == "end"
    if name == "late-receiver":
        assert results(s, "r")[0]["words"] == [5, 6]
    if name == "pingpong":
        assert [r["words"] for r in results(s, "cli")] == [[7, 8]] * 3
