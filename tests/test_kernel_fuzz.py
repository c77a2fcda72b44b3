"""The random kernel fuzzer as a test, and the scenarios it found broken (issue 14).

`tests/kernel_fuzz.py` draws 2-8 CPU scenarios with migrations, priority
changes, timeouts 0/finite/infinite, IPC with and without `xp_fault`, page
faults, unmaps and ex_regs, and runs each with the kernel invariants checked
at every kernel exit; a run must end ("end" or "deadlock"), raise nothing,
leave no thread locked with nothing to unlock it, and no mailbox behind.
CI runs `COUNT` scenarios; `L4TUI_FUZZ=long` runs `LONG_COUNT`.

`FOUND` are the seeds of that generator that failed on the kernel before (or
half-way through) the issue 14 fixes, one or more per kind of failure; they
run in the timed order.
"""

from __future__ import annotations

import os
import random
import textwrap

import pytest

from kernel import migrate
from kernel.scenario import parse_scenario
from kernel.system import System
from kernel.thread import WAITING
from machine.ops import kaddr
from machine.spinlock import spin_lock
from tests import kernel_fuzz
from tests.kernel_fuzz import Outcome, generate, run_case

LONG = os.environ.get("L4TUI_FUZZ") == "long"
COUNT, LONG_COUNT = 40, 1500
FIRST_SEED = 100_000  # apart from the seeds the fixes were found with

# Seed -> what it did to the kernel before the fixes (each passes now).
FOUND = {
    40: "KeyError: 0 in sched.ring_append (two migrations of one thread)",
    91: "KeyError: 0 in sched.dispatch (priority change from another CPU)",
    166: "cpu3 wakeup queue is not ordered (a receiver migrated while it waited)",
    388: "a (on cpu6) is in cpu5's ready list; in the ready lists of cpu5 and cpu6",
    657: "a is inactive but in a wakeup queue",
    1131: "e is locked_running but in a's send queue (a restarted local sender)",
    1541: "d is running but in a wakeup queue; ready but in no ready list",
    1703: "e (on cpu2) is in cpu1's ready list",
    1785: "a run that never ended (a migration waiting for the lock, spinning)",
    2731: "trap into the kernel from kernel mode (a migrated thread finished a timer tick)",
    2883: "c is in the list of priority 100 but has 150",
    5857: "more than one IPC set up to sigma0 (woken receivers counted as senders)",
    20470: "proxy5.1 (on cpu5) is in cpu6's ready list (a sender triggered r's new CPU)",
    20487: "a run that never ended (a shootdown holder preempted, its CPU spinning)",
    23803: "proxy2.2 (on cpu2) is in cpu1's ready list",
    31492: "a run that never ended (a shootdown waiting for a CPU at a migration barrier)",
    31748: "a run that never ended (the same, on three CPUs)",
}


def _explain(o: Outcome, text: str) -> str:
    return f"{o.problem}\n{textwrap.indent(text, '  ')}"


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + (LONG_COUNT if LONG else COUNT)))
def test_random_kernel_scenario_keeps_the_invariants_and_ends(seed: int) -> None:
    text = generate(random.Random(seed), seed).text()
    o = run_case(text)
    assert o.problem is None, _explain(o, text)
    assert o.ended in ("end", "deadlock")
    assert o.steps > 0


@pytest.mark.parametrize("seed", sorted(FOUND), ids=[str(s) for s in sorted(FOUND)])
def test_what_the_fuzzer_found_is_fixed(seed: int) -> None:
    text = generate(random.Random(seed), seed).text()
    o = run_case(text)
    assert o.problem is None, f"was: {FOUND[seed]}\nnow: {_explain(o, text)}"


def test_the_checks_catch_a_planted_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The migration lock taken as appendix A spins, interrupts disabled: the old deadlock."""

    def old_lock(k: object, caller: object) -> object:
        return spin_lock(kaddr(migrate.AREA + migrate.LOCK))

    text = generate(random.Random(1785), 1785).text()
    assert run_case(text).problem is None
    monkeypatch.setattr(migrate, "_lock", old_lock)
    o = run_case(text, budget=60_000)
    assert o.problem is not None and o.problem.startswith("max_steps"), o.problem


SENDER_WAITS = """
    machine: {profile: p3-dual-450, cpus: 2}
    tasks:
      - name: t
        threads:
          - name: snd
            cpu: 1
            program:
              - send: {to: rcv, words: [1]}
          - name: rcv
            cpu: 2
            program:
              - compute: 10
"""


def test_a_cross_cpu_sender_is_stuck_unless_its_proxy_polls_for_it() -> None:
    """stuck(): waiting for a polling proxy is blocked for good; for one that sleeps, stuck."""
    s = System(parse_scenario(textwrap.dedent(SENDER_WAITS), "<test>"))
    assert s.run(max_steps=100_000) == "end"
    k = s.kernel
    snd = k.by_name["snd"]
    proxy = k.by_tcb[k.field(snd, "proxy")]
    assert k.state(snd) == "locked_waiting" and k.state(proxy) == "polling"
    assert s.stuck() == [] and kernel_fuzz.locked_forever(s) == []
    assert sorted(f"{w.thread} {w.how} {w.on}" for w in s.waits()) == [
        f"{proxy.name} polling on rcv",
        f"snd waiting for {proxy.name}",
    ]
    # The proxy lost the request (as the kernel did before issue 14): snd is stuck.
    s.machine.memory.write(proxy.f["thread_state"] - kaddr(0), WAITING)
    assert s.stuck() == ["snd"]
    assert kernel_fuzz.locked_forever(s) == [
        f"snd is locked_waiting at the end ({proxy.name} waiting)"
    ]
