"""The `naive` variant loses a wake-up when driven through Uhlig's interleaving (§8.3.3).

Both partners enter the IPC path at once: the sender finds the receiver not
yet waiting and decides to poll; before it has set itself polling, the
receiver finds the sender not polling and decides to wait. Then each sets its
state, and both wait for the other forever. The `proxy` design does the
check on the receiver's CPU with interrupts disabled and cannot lose it.
"""

from __future__ import annotations

from kernel.scenario import parse_scenario
from kernel.system import System
from l4tui.runner.summary import summary as run_summary

SCENARIO = """
name: uhlig
seed: 1
machine: {{cpus: 2}}
kernel: {{xp_ipc: {variant}}}
tasks:
  - name: t
    threads:
      - name: snd
        cpu: 1
        program:
          - send: {{to: rcv, words: [42]}}
      - name: rcv
        cpu: 2
        program:
          - recv: {{from: snd}}
"""


def _step_until(s: System, cpu: int, phase: str, limit: int = 5000) -> None:
    m = s.machine
    for _ in range(limit):
        if m.cpu(cpu).phase == phase:
            return
        assert m.step(cpu) is not None, f"cpu{cpu} cannot run before {phase}"
    raise AssertionError(f"cpu{cpu} never reached {phase}")


def _race(variant: str) -> System:
    s = System(parse_scenario(SCENARIO.format(variant=variant)))
    m = s.machine
    m.set_policy("manual")
    # The sender decides the receiver is not waiting ...
    _step_until(s, 1, "ipc.send.enqueue_sendq" if variant == "naive" else "xp.trigger")
    # ... and before it is polling, the receiver decides the sender is not.
    _step_until(s, 2, "ipc.recv.wait")
    m.set_policy("timed")
    s.run(max_steps=200_000)
    return s


def test_naive_loses_the_wakeup() -> None:
    s = _race("naive")
    summary = run_summary(s)
    assert s.ended == "deadlock"
    assert summary["threads"]["snd"]["state"] == "polling"
    assert summary["threads"]["rcv"]["state"] == "waiting"
    assert set(summary["waits"]) == {"snd polling on rcv", "rcv waiting for snd"}
    assert summary["threads"]["rcv"]["results"] == []


def test_proxy_delivers_through_the_same_interleaving() -> None:
    s = _race("proxy")
    summary = run_summary(s)
    assert s.ended == "end"
    assert summary["threads"]["rcv"]["results"][0]["words"] == [42]
    assert summary["threads"]["snd"]["state"] == summary["threads"]["rcv"]["state"] == "inactive"
