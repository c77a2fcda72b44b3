"""`ipi_policy: when_needed` never compares two CPUs' clocks (thesis §8.3.4, issue 16).

The thesis sends an IPI only when the target's next mailbox check is later
than the IPI would take, and notes that knowing the next check "needs to have
a synchronous clock of all processors", which Pentiums lack. The rule here
uses durations and what the target publishes: a tick period shorter than the
IPI latency, or the target's `IN_KERNEL` word (inside a system call, whose
kernel exit checks the flags).
"""

from __future__ import annotations

from typing import Any

import pytest

from kernel import sched
from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from machine.ops import Rdtsc, Write, kaddr
from tests.kernel_helpers import results, run_checked, system

# The `always` run is made once, on one worker (an xdist_group
# runs on one worker under `--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ipi-policy")]


# CPU 2 is busy with a same-CPU conversation (mostly in the kernel) while the
# client on CPU 1 calls the server on CPU 2 now and then.
BUSY = """
machine: {{profile: p3-dual-450, cpus: 2}}
kernel: {{xp_ipc: proxy, ipi_policy: {policy}, tick: {tick}}}
tasks:
  - name: server
    threads:
      - name: srv
        cpu: 2
        program:
          - recv: {{from: any}}
          - loop:
              - compute: 200
              - reply_wait: {{words: [7, 8]}}
      - name: lsrv
        cpu: 2
        program:
          - recv: {{from: any}}
          - loop:
              - reply_wait: {{words: [1]}}
      - name: lcli
        cpu: 2
        program:
          - repeat: 600
            do:
              - call: {{to: lsrv, words: [1]}}
  - name: client
    threads:
      - name: cli
        cpu: 1
        program:
          - repeat: 6
            do:
              - compute: 3000
              - call: {{to: srv, words: [1, 2, 3]}}
"""


def _run(policy: str, tick: int = 50_000) -> tuple[System, list[Any]]:
    """The run, and the phases in which a CPU read a clock. Every write of a CPU's
    `IN_KERNEL` word is counted on the system as `in_kernel_writes`."""
    s = system(BUSY.format(policy=policy, tick=tick))
    clock_reads: list[Any] = []
    words = {cd.page + sched.IN_KERNEL for cd in s.kernel.cpus}
    s.in_kernel_writes = 0  # type: ignore[attr-defined]
    step = s.machine.step

    def watched(number: int | None = None) -> Any:
        op = step(number)
        if type(op) is Rdtsc:
            clock_reads.append(s.machine.last_cpu.phase)
        elif type(op) is Write and op.addr in words:
            s.in_kernel_writes += 1  # type: ignore[attr-defined]
        return op

    s.machine.step = watched  # type: ignore[method-assign]
    ended, _ = run_checked(s, max_steps=400_000)
    assert ended == "end"
    assert [r["words"] for r in results(s, "cli")] == [[7, 8]] * 6
    return s, clock_reads


@pytest.fixture(scope="module")
def always() -> System:
    """The `always` run, shared: two tests read it and neither changes it."""
    return _run("always")[0]


def test_a_target_inside_a_system_call_is_not_interrupted(always: System) -> None:
    needed, clock_reads = _run("when_needed")
    sent = {
        p: run_summary(s)["counters"]["ipis_sent"]
        for p, s in (("always", always), ("when_needed", needed))
    }
    assert 0 < sent["when_needed"] < sent["always"], sent
    assert clock_reads == []  # no CPU read a clock to decide


def test_a_tick_shorter_than_an_ipi_means_no_ipi() -> None:
    s, _ = _run("when_needed", tick=1_000)  # p3-dual-450's IPI latency is 1,211 cycles
    assert s.kernel.tick <= s.kernel.ipi_latency
    assert run_summary(s)["counters"]["ipis_sent"] == 0


def test_other_policies_do_not_publish_the_word(always: System) -> None:
    # Only `when_needed` writes the word (xcpu.announce); at the end every run has it 0.
    assert always.in_kernel_writes == 0  # type: ignore[attr-defined]
    assert _run("when_needed")[0].in_kernel_writes > 0  # type: ignore[attr-defined]
    for cd in always.kernel.cpus:
        assert always.kernel.machine.memory.read(cd.page + sched.IN_KERNEL - kaddr(0)) == 0
