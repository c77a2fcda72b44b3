"""`l4tui bench kernel`: what a short IPC costs in simulated cycles, local and across CPUs.

Measured on the thesis machine by running small scenarios: a receiver
already waiting, a sender that sends one short message. A send's cost is
from the sender's kernel entry to the receiver's return to user mode with
the message. Cross-processor sends are measured with the `proxy` design —
with an IPI (`ipi_policy: always`), and with `poll_only`, where the
receiver's CPU finds the mailbox at its next timer tick (every `TICK`
cycles: the row depends on it) — and with the `naive` path. Each row names
the policy and the tick it depends on. The
coherence rows count cache-line state transitions per cross-processor IPC
with the thesis's TCB layout (Table 3) and with the naive declaration order.
All figures are simulated cycles or counts: deterministic, no host time.
"""

from __future__ import annotations

from typing import Any

from kernel.scenario import parse_scenario
from kernel.system import System
from machine.ops import Iret, Trap

TICK = 50_000  # cycles between timer ticks in these scenarios

SCENARIO = """
name: bench-ipc
seed: 1
machine: {{profile: {profile}, cpus: 2}}
kernel: {{xp_ipc: {variant}, ipi_policy: {policy}, tcb_layout: {layout}, tick: {tick}}}
tasks:
  - name: a
    threads:
      - name: rcv
        cpu: 1
        priority: 120
        program:
          - repeat: {rounds}
            do:
              - recv: {{from: snd}}
  - name: b
    threads:
      - name: snd
        cpu: {cpu}
        program:
          - repeat: {rounds}
            do:
              - compute: 20000
              - send: {{to: rcv, words: [1, 2, 3]}}
"""


def measure(
    cpu: int,
    variant: str = "proxy",
    policy: str = "when_needed",
    layout: str = "thesis",
    profile: str = "p3-dual-450",
    rounds: int = 4,
) -> dict[str, float]:
    """Mean cycles per send and coherence transitions per send, over `rounds` sends."""
    text = SCENARIO.format(
        profile=profile,
        variant=variant,
        policy=policy,
        layout=layout,
        tick=TICK,
        rounds=rounds,
        cpu=cpu,
    )
    s = System(parse_scenario(text, "<bench>"))
    m, k = s.machine, s.kernel
    snd, rcv = k.by_name["snd"], k.by_name["rcv"]
    starts: list[int] = []
    costs: list[int] = []
    got = 0
    sending = False
    mesi_before = mesi_total = 0
    budget = 400_000
    while len(costs) < rounds and budget and m.step() is not None:
        budget -= 1
        c = m.last_cpu
        assert c is not None  # step() returned an op, so a CPU executed it
        cd = k.cpus[c.index]
        if type(m.last_op) is Trap and cd.current is snd and not sending:
            sending = True
            starts.append(m.last_start)
            mesi_before = sum(m.coherence.transitions.values())
        if type(m.last_op) is Iret and cd.current is rcv and len(rcv.results) > got:
            got = len(rcv.results)
            if sending:
                costs.append(m.last_start + m.t_exit - starts[-1])
                mesi_total += sum(m.coherence.transitions.values()) - mesi_before
                sending = False
    n = max(len(costs), 1)
    return {"cycles": sum(costs) / n / m.tpc, "transitions": mesi_total / n}


def run_kernel() -> dict[str, Any]:
    """The rows of `bench kernel`."""
    local = measure(cpu=1)
    xp_ipi = measure(cpu=2, policy="always")
    xp_poll = measure(cpu=2, policy="poll_only")
    naive = measure(cpu=2, variant="naive")
    naive_layout = measure(cpu=2, layout="naive", policy="always")
    rows = [
        ("short IPC, same CPU", "cycles", local["cycles"]),
        ("short XP-IPC, proxy with IPI (ipi_policy always)", "cycles", xp_ipi["cycles"]),
        (
            f"short XP-IPC, proxy polling only (ipi_policy poll_only, tick {TICK:,} cycles)",
            "cycles",
            xp_poll["cycles"],
        ),
        ("short XP-IPC, naive path", "cycles", naive["cycles"]),
        (
            "coherence transitions per XP-IPC, thesis TCB layout (ipi_policy always)",
            "transitions",
            xp_ipi["transitions"],
        ),
        (
            "coherence transitions per XP-IPC, naive TCB layout (ipi_policy always)",
            "transitions",
            naive_layout["transitions"],
        ),
        ("coherence transitions per local IPC", "transitions", local["transitions"]),
    ]
    return {"rows": [{"name": n, "unit": u, "value": round(v, 1)} for n, u, v in rows]}
