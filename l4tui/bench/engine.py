"""`l4tui bench engine`: how fast the simulation engine runs on the host (DESIGN.md §2).

Three rows, each in micro-ops per second of host wall-clock time: the number
of `Machine.step()` calls that executed an op, divided by the
`time.perf_counter()` seconds they took (machine set-up and a warm-up pass
excluded; the time includes the generators producing the ops, as kernel
code does). Each row runs for about `seconds` in chunks of `chunk` steps and
reports the median chunk, on the thesis machine (`p3-dual-450`):

- ``L1-hit reads``: one CPU reads 8 kernel-window lines over and over (L1 hits).
- ``L2-hit reads``: one CPU cycles through 1024 lines (32 KB: more than the
  16 KB L1, less than the 512 KB L2), after a warm-up pass: L1 misses, L2 hits.
- ``coherence ping-pong``: two CPUs write the same line; the lowest-clock
  scheduling alternates them, so each write is a read-for-ownership that
  invalidates the other CPU's modified copy (M->I).

``simpy`` compares our engine with SimPy on one abstract workload: 8
processes in a ring, each `rounds` times waiting a delay (seeded,
`random.Random(seed)`, the same delays on both engines), sending a message to
the next process and waiting for one from the previous — 8 x `rounds`
messages on both. On SimPy a process is `env.timeout` plus `simpy.Store`
put/get. On ours a process is a CPU: `Compute(delay)` then `SendIPI` to the
next CPU; receiving is the IPI handler, which EOIs and does the next round's
`Compute` and `SendIPI`, while the CPU's base code halts between messages.

What is counted is what executes something: on SimPy one `env.step()` (one
event processed — timeouts, puts, gets, process initialisations and
resumptions); on ours one `m.step()` that executed an op (Compute, SendIPI,
Hlt, the engine-inserted interrupt entry and exit, EOI). A SendIPI that finds
the ICR still busy executes nothing — the CPU goes on polling — and is not
counted (`retries` says how many there were; `ours_all_steps` counts them
too). ``ours`` and ``simpy`` are those events per second, each the median of
`repeats` runs taken in turns; ``ratio`` = ours / simpy. A message costs SimPy
about 3 events and ours 6 (ours models the hardware steps of an IPI), so the
per-message rates are given too (``ours_messages``, ``simpy_messages``,
``message_ratio``, ``steps_per_message``, ``events_per_message``). ``simpy``
is None when SimPy is not installed (``pip install l4tui[bench]``).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Generator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from machine import Machine, load_profile
from machine.cpu import Cpu
from machine.ops import EOI, Compute, Hlt, Op, Read, SendIPI, Write, kaddr

PROFILE = "p3-dual-450"
SEED = 1
BASE = 0x10_0000  # physical address of the lines the rows touch
LINE = 32  # bytes per cache line on the profile
VECTOR = 0x40  # the ring's IPI vector
RING = 8  # processes (CPUs) in the ring

SECONDS = 0.75  # per row
CHUNK = 10_000  # steps timed together
ROUNDS = 1_500  # messages per ring process and run: 12,000 messages
REPEATS = 3  # ring runs per engine


# --- the micro-op rows --------------------------------------------------------


def _machine(cpus: int) -> Machine:
    return Machine(load_profile(PROFILE, {"cpus": cpus}), seed=SEED)


def _reads(lines: int) -> Generator[Op, Any, None]:
    """Read `lines` consecutive kernel-window lines, round and round."""
    addrs = [kaddr(BASE + LINE * i) for i in range(lines)]
    while True:
        for addr in addrs:
            yield Read(addr)


def _writes(addr: int, value: int) -> Generator[Op, Any, None]:
    while True:
        yield Write(addr, value)


def _rate(m: Machine, seconds: float, warmup: int, chunk: int) -> float:
    """Micro-ops per second: `warmup` steps untimed, then chunks of `chunk` steps for
    `seconds`; the median chunk's rate, so a host hiccup does not move the figure."""
    m.run(max_steps=warmup)
    rates = []
    end = perf_counter() + seconds
    while True:
        start = perf_counter()
        ops = m.run(max_steps=chunk)
        now = perf_counter()
        rates.append(ops / (now - start))
        if now >= end:
            return statistics.median(rates)


def l1_hit_reads(seconds: float = SECONDS, chunk: int = CHUNK, lines: int = 8) -> float:
    m = _machine(1)
    m.start(1, _reads(lines))
    return _rate(m, seconds, lines, chunk)


def l2_hit_reads(seconds: float = SECONDS, chunk: int = CHUNK, lines: int = 1024) -> float:
    m = _machine(1)
    m.start(1, _reads(lines))
    return _rate(m, seconds, lines, chunk)  # the warm-up pass brings the lines into L2


def coherence_ping_pong(seconds: float = SECONDS, chunk: int = CHUNK) -> float:
    m = _machine(2)
    addr = kaddr(BASE)
    m.start(1, _writes(addr, 1))
    m.start(2, _writes(addr, 2))
    return _rate(m, seconds, 2, chunk)


# --- the ring, on both engines -------------------------------------------------


@dataclass(slots=True)
class RingRun:
    """One run of the ring: events that executed something, messages received, host
    seconds, and steps that executed nothing (our ICR-busy retries; SimPy has none)."""

    events: int
    messages: int
    seconds: float
    retries: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def message_rate(self) -> float:
        return self.messages / self.seconds


def ring_delays(rounds: int, seed: int = SEED, processes: int = RING) -> list[list[int]]:
    """Each process's delay before each of its sends, in cycles (SimPy: time units)."""
    rng = random.Random(seed)
    return [[rng.randint(50, 500) for _ in range(rounds)] for _ in range(processes)]


def simpy_ring(delays: list[list[int]]) -> RingRun:
    import simpy  # noqa: PLC0415 - the optional bench extra: compare_simpy asks first

    env = simpy.Environment()
    inboxes = [simpy.Store(env) for _ in delays]
    received = [0]

    def process(i: int) -> Generator[Any, Any, None]:
        inbox, outbox = inboxes[i], inboxes[(i + 1) % len(inboxes)]
        for delay in delays[i]:
            yield env.timeout(delay)
            yield outbox.put(i)
            yield inbox.get()
            received[0] += 1

    for i in range(len(delays)):
        env.process(process(i))
    events = 0
    start = perf_counter()
    try:
        while True:
            env.step()
            events += 1
    except simpy.core.EmptySchedule:
        pass
    return RingRun(events, received[0], perf_counter() - start)


def machine_ring(delays: list[list[int]]) -> RingRun:
    n = len(delays)
    m = _machine(n)
    received = [0] * n

    def send(i: int, k: int) -> Generator[Op, Any, None]:
        yield Compute(delays[i][k])
        yield SendIPI(1 << (i + 1) % n, VECTOR)

    def on_message(cpu: Cpu, vector: int) -> Generator[Op, Any, None]:
        i = cpu.index
        yield EOI()
        received[i] += 1
        if received[i] < len(delays[i]):
            yield from send(i, received[i])

    def process(i: int) -> Generator[Op, Any, None]:
        yield from send(i, 0)
        while True:  # halt between messages; the handler does the work
            yield Hlt()

    m.vector_handlers[VECTOR] = on_message
    for i in range(n):
        m.start(i + 1, process(i))
    calls = 0
    step = m.step
    start = perf_counter()
    while step() is not None:
        calls += 1
    seconds = perf_counter() - start
    return RingRun(m.steps, sum(received), seconds, calls - m.steps)


def compare_simpy(
    rounds: int = ROUNDS, repeats: int = REPEATS, seed: int = SEED
) -> dict[str, float] | None:
    """Events per second on our engine and on SimPy for the same ring; None without SimPy.

    The engines take turns `repeats` times and each reports its median rate,
    so a slow spell of the host does not fall on one engine only.
    """
    try:
        import simpy  # noqa: F401, PLC0415 - is the optional bench extra installed?
    except ImportError:
        return None
    delays = ring_delays(rounds, seed)
    ours, theirs = [], []
    for _ in range(repeats):
        a, b = machine_ring(delays), simpy_ring(delays)
        if a.messages != b.messages:  # pragma: no cover - the workloads must match
            raise RuntimeError(f"ring messages differ: ours {a.messages}, simpy {b.messages}")
        ours.append(a)
        theirs.append(b)
    a = sorted(ours, key=lambda r: r.rate)[(repeats - 1) // 2]  # the median run
    b = sorted(theirs, key=lambda r: r.rate)[(repeats - 1) // 2]
    return {
        "ours": a.rate,
        "simpy": b.rate,
        "ratio": a.rate / b.rate,
        "ours_all_steps": (a.events + a.retries) / a.seconds,
        "retries": float(a.retries),
        "ours_messages": a.message_rate,
        "simpy_messages": b.message_rate,
        "message_ratio": a.message_rate / b.message_rate,
        "steps_per_message": a.events / a.messages,
        "events_per_message": b.events / b.messages,
    }


def run_engine(
    seconds: float = SECONDS, chunk: int = CHUNK, rounds: int = ROUNDS, repeats: int = REPEATS
) -> dict[str, Any]:
    """The `bench engine` result: micro-op rows and the SimPy comparison."""
    rows = [
        ("L1-hit reads", l1_hit_reads(seconds, chunk)),
        ("L2-hit reads", l2_hit_reads(seconds, chunk)),
        ("coherence ping-pong", coherence_ping_pong(seconds, chunk)),
    ]
    return {
        "rows": [{"name": name, "unit": "micro-ops/s", "value": value} for name, value in rows],
        "simpy": compare_simpy(rounds, repeats),
    }
