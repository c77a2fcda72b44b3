"""The random kernel fuzzer: small multi-CPU scenarios run with every invariant checked.

`generate(rng)` draws a scenario from a seeded `random.Random`: 2-8 CPUs, the
p3 or p4 profile, a random IPI policy and tick, 2-6 threads in 1-3 tasks on
random CPUs, each with a priority and some with MCP 255 (schedulers), and
programs of compute, fpu, sleep, touch (page faults to sigma0 on CPU 1),
unmap (TLB shootdowns), send/recv/call/reply_wait with timeouts 0, finite or
infinite (some with `xp_fault`), ex_regs within the task, thread_switch, and
thread_schedule: migrations (§8.7), priority changes (§8.7.2) and both at
once. `run_case(text)` runs it under a step budget with the kernel
invariants checked at every kernel exit (`System.run(check_invariants=True)`)
plus `QuiescentChecker`'s lost-wakeup check, and `problem()` says what went
wrong: a Python exception in the kernel, an invariant violated, a thread
left locked (`stuck`), a mailbox or flag left behind, or the step budget
(a live-lock: no program loops, so every run ends).

Standalone, it runs many scenarios and writes each failing one as YAML, with
its problem in a comment header, to a directory — shrunk first, with
`--shrink`, by dropping threads and ops while the same kind of problem stays:

    .venv/bin/python -m tests.kernel_fuzz --count 2000 --seed 1 --out /tmp/fuzz --shrink

`tests/test_kernel_fuzz.py` runs a bounded number of them as a test
(`L4TUI_FUZZ=long` runs more).
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from kernel import invariants, xcpu
from kernel.kernel import Kernel
from kernel.scenario import parse_scenario
from kernel.system import System
from machine.errors import ConfigError
from machine.ops import InterruptExit, Iret, kaddr
from tests.xp_helpers import QuiescentChecker, lost_wakeups, mailbox_problems

STEP_BUDGET = 400_000
PROFILES = ("p3-dual-450", "p4-dual-2000")
EXITS = (Iret, InterruptExit)
PAGES = (0x0040_0000, 0x0040_1000, 0x0080_0000)  # user pages the threads touch and unmap


@dataclass
class ThreadData:
    name: str
    cpu: int
    priority: int
    mcp: int
    program: list[str] = field(default_factory=list)


@dataclass
class ScenarioData:
    """A generated scenario, kept as data so the shrinker can take parts away."""

    seed: int
    cpus: int
    profile: str
    policy: str
    tick: int
    tasks: list[tuple[str, list[ThreadData]]]

    def threads(self) -> list[ThreadData]:
        return [t for _, ts in self.tasks for t in ts]

    def text(self, header: str = "") -> str:
        lines = [f"# {h}" for h in header.splitlines()] if header else []
        lines += [
            f"name: fuzz-{self.seed}",
            f"seed: {self.seed}",
            f"machine: {{profile: {self.profile}, cpus: {self.cpus}}}",
            f"kernel: {{xp_ipc: proxy, ipi_policy: {self.policy}, tick: {self.tick}}}",
            "tasks:",
        ]
        for task, threads in self.tasks:
            lines += [f"  - name: {task}", "    threads:"]
            for t in threads:
                lines += [
                    f"      - name: {t.name}",
                    f"        cpu: {t.cpu}",
                    f"        priority: {t.priority}",
                ]
                if t.mcp:
                    lines.append(f"        mcp: {t.mcp}")
                lines.append("        program:")
                lines += [f"          - {op}" for op in t.program] or ["          - compute: 1"]
        return "\n".join(lines) + "\n"


def _timeout(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return "0"
    if r < 0.5:
        return "inf"
    return str(rng.choice([50, 100, 500, 2000, 10_000, 30_000]))


def _op(rng: random.Random, me: ThreadData, mates: list[str], names: list[str], cpus: int) -> str:
    others = [n for n in names if n != me.name]
    kind = rng.choices(
        [
            "compute", "fpu", "sleep", "touch", "unmap", "send", "recv", "call",
            "reply_wait", "thread_switch", "ex_regs", "schedule",
        ],
        [6, 1, 2, 3, 2, 6, 5, 6, 4, 1, 1, 6 if me.mcp else 0],
    )[0]  # fmt: skip
    if kind == "compute":
        return f"compute: {rng.choice([10, 100, 500, 1500, 4000])}"
    if kind == "fpu":
        return f"fpu: {rng.choice([50, 500])}"
    if kind == "sleep":
        return f"sleep: {rng.choice([100, 1000, 5000])}"
    if kind == "touch":
        return f"touch: {{addr: {rng.choice(PAGES):#x}, write: {str(rng.random() < 0.5).lower()}}}"
    if kind == "unmap":
        own = ", own: true" if rng.random() < 0.5 else ""
        return f"unmap: {{addr: {rng.choice(PAGES):#x}, size: 4096{own}}}"
    if kind == "thread_switch":
        return f"thread_switch: {rng.choice([*others, 'nil'])}"
    if kind == "ex_regs":
        peers = [n for n in mates if n != me.name]
        if not peers:
            return "compute: 10"
        return f"ex_regs: {{thread: {rng.choice(peers)}}}"
    if kind == "schedule":
        target = rng.choice(others)
        fields = [f"thread: {target}"]
        r = rng.random()
        if r < 0.7:
            fields.append(f"cpu: {rng.randint(1, cpus)}")
        if r > 0.4:
            fields.append(f"priority: {rng.choice([50, 100, 150, 200])}")
        return f"schedule: {{{', '.join(fields)}}}"
    words = [rng.randrange(1000) for _ in range(rng.randint(0, 3))]
    xp = ", xp_fault: true" if rng.random() < 0.1 else ""
    if kind == "send":
        return f"send: {{to: {rng.choice(others)}, words: {words}, timeout: {_timeout(rng)}{xp}}}"
    if kind == "recv":
        src = rng.choice([*others, "any", "any"])
        return f"recv: {{from: {src}, timeout: {_timeout(rng)}}}"
    if kind == "call":
        return (
            f"call: {{to: {rng.choice(others)}, words: {words}, timeout: {_timeout(rng)}, "
            f"recv_timeout: {_timeout(rng)}{xp}}}"
        )
    to = f"to: {rng.choice(others)}, " if rng.random() < 0.5 else ""
    return (
        f"reply_wait: {{{to}words: {words}, timeout: {_timeout(rng)}, "
        f"recv_timeout: {_timeout(rng)}}}"
    )


def generate(rng: random.Random, seed: int = 0) -> ScenarioData:
    """A random scenario (see the module docstring)."""
    cpus = rng.randint(2, 8)
    n = rng.randint(2, 6)
    names = [chr(ord("a") + i) for i in range(n)]
    ntasks = rng.randint(1, min(3, n))
    cuts = sorted(rng.sample(range(1, n), ntasks - 1))
    groups = [names[i:j] for i, j in zip([0, *cuts], [*cuts, n], strict=True)]
    tasks: list[tuple[str, list[ThreadData]]] = []
    for g, members in enumerate(groups):
        threads = []
        for name in members:
            mcp = 255 if rng.random() < 0.35 else 0
            threads.append(
                ThreadData(name, rng.randint(1, cpus), rng.choice([50, 100, 100, 150]), mcp)
            )
        tasks.append((f"task{g}", threads))
    data = ScenarioData(
        seed,
        cpus,
        rng.choice(PROFILES),
        rng.choice(["always", "when_needed", "poll_only"]),
        rng.choice([2000, 5000, 20_000]),
        tasks,
    )
    for members in (ts for _, ts in tasks):
        mates = [t.name for t in members]
        for t in members:
            ops = [_op(rng, t, mates, names, cpus) for _ in range(rng.randint(1, 7))]
            if len(ops) > 1 and rng.random() < 0.2:
                k = rng.randint(1, len(ops))
                body = ", ".join(o if o.startswith("{") else f"{{{o}}}" for o in ops[:k])
                ops = [f"{{repeat: {rng.randint(2, 3)}, do: [{body}]}}", *ops[k:]]
            t.program = ops
    return data


@dataclass
class Outcome:
    ended: str | None
    steps: int
    problem: str | None  # None: all is well

    @property
    def kind(self) -> str | None:
        """The problem with names, numbers and places taken out: its class, for grouping."""
        if self.problem is None:
            return None
        first = self.problem.splitlines()[0]
        first = re.sub(r"\(at the kernel exit.*|\(cycle .*", "", first)
        first = re.sub(r"\b(cpu|proxy|ctl|idle)\d+(\.\d+)?", r"\1N", first)
        first = re.sub(r"\b[a-f]\b", "T", first)
        return re.sub(r"\d+", "N", first).strip()


class Checker(QuiescentChecker):
    """`QuiescentChecker`, but a receiver with a wake-up on its way is no lost wake-up.

    A caller whose receive phase its proxy began (§8.3.1's atomic call) is set
    waiting on the receiver's CPU while the mailbox that wakes it still waits
    for its own CPU's check; a sender that queued for it meanwhile is found when
    that mailbox is acknowledged (`xcpu.check_n_ack`), not lost.
    """

    def step(self, number: int | None = None) -> object:
        m = self.s.machine
        op = self.inner(number)
        if op is None:
            return op
        c = m.last_cpu
        self.last[c.number] = type(op)
        if type(op) in EXITS and self.settled():
            self.checks += 1
            k = self.s.kernel
            lost = [x for x in lost_wakeups(k) if not _woken_soon(k, x.split(" ")[3])]
            bad = invariants.check(k) + lost
            if bad and not self.violations:
                where = f"cycle {m.last_start // m.tpc}, kernel exit on cpu{c.number}"
                self.violations = [f"{v} ({where})" for v in bad]
        return op


def _woken_soon(k: Kernel, name: str) -> bool:
    """Whether a flagged mailbox on `name`'s CPU targets it (its wake-up is on the way)."""
    t = k.by_name.get(name.rstrip(","))
    if t is None:
        return False
    mb = k.mailboxes
    mem = k.machine.memory
    for i in mb.mail:
        flags = mem.read(mb.flags(t.cpu, i >> 5) - kaddr(0))
        if flags >> (i & 31) & 1 and mem.read(mb.addr(i, xcpu.TARGET) - kaddr(0)) == t.tcb:
            return True
    return False


def run_case(text: str, budget: int = STEP_BUDGET) -> Outcome:
    """Run a scenario with every check; the outcome says what, if anything, went wrong."""
    try:
        s = System(parse_scenario(text, "<fuzz>"))
    except ConfigError as e:
        return Outcome(None, 0, f"scenario refused: {e.format()}")
    q = Checker(s)
    try:
        s.run(max_steps=budget, check_invariants=True)
    except Exception as e:  # any exception in the kernel is the finding
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f for f in reversed(tb) if "/kernel/" in f.filename), tb[-1])
        place = f"{Path(where.filename).name}:{where.name}"
        return Outcome("exception", s.machine.steps, f"{type(e).__name__}: {e} in {place}")
    return Outcome(s.ended, s.machine.steps, problem(s, q))


def problem(s: System, q: Checker | None = None) -> str | None:
    """What is wrong with a finished run, or None."""
    if s.violations:
        return "invariant: " + "; ".join(s.violations[:3])
    if s.ended == "stuck":
        return f"stuck: {', '.join(s.stuck())} left locked"
    if s.ended == "max_steps":
        return "max_steps: the run did not end within the step budget"
    if s.ended not in ("end", "deadlock"):
        return f"ended {s.ended}"
    if q is not None and q.violations:
        return "quiescent: " + "; ".join(q.violations[:3])
    forever = locked_forever(s)
    if forever:
        return "locked forever: " + "; ".join(forever[:3])
    left = mailbox_problems(s, pending_ok=True)
    if left:
        return "mailbox: " + "; ".join(left[:3])
    return None


def locked_forever(s: System) -> list[str]:
    """At the end: threads locked with nothing that will unlock them.

    A thread may stay `locked_waiting` only as a cross-CPU sender whose proxy
    polls on the receiver with its request (§8.3.5) — `System.stuck` says the
    same since issue 14; this check does not rely on it.
    """
    if s.ended not in ("end", "deadlock"):
        return []
    k = s.kernel
    out = []
    for t in k.threads:
        if t.task is None:
            continue
        state = k.state(t)
        if state == "locked_running":
            out.append(f"{t.name} is locked_running at the end")
        elif state == "locked_waiting":
            p = k.by_tcb.get(k.field(t, "proxy"))
            first = k.field(p, "first_mailbox") if p is not None else 0
            mail = k.mailboxes.mail.get(k.mailboxes.index(first)) if first else None
            if p is None or k.state(p) != "polling" or mail is None or mail.sender is not t:
                who = "no proxy" if p is None else f"{p.name} {k.state(p)}"
                out.append(f"{t.name} is locked_waiting at the end ({who})")
    return out


# --- shrinking -----------------------------------------------------------------------


def _variants(d: ScenarioData) -> list[ScenarioData]:
    """Smaller scenarios than `d`, the biggest cuts first."""
    out = []
    names = [t.name for t in d.threads()]
    for name in names:  # a whole thread, if nobody names it
        rest = [t for t in d.threads() if t.name != name]
        if any(re.search(rf"\b{name}\b", op) for t in rest for op in t.program):
            continue
        e = copy.deepcopy(d)
        e.tasks = [(tn, [t for t in ts if t.name != name]) for tn, ts in e.tasks]
        e.tasks = [(tn, ts) for tn, ts in e.tasks if ts]
        if len(e.threads()) >= 1:
            out.append(e)
    for ti, t in enumerate(d.threads()):
        for i in range(len(t.program)):
            e = copy.deepcopy(d)
            del e.threads()[ti].program[i]
            out.append(e)
    top = max(t.cpu for t in d.threads())
    named = [int(m) for t in d.threads() for op in t.program for m in re.findall(r"cpu: (\d+)", op)]
    top = max([top, *named])
    for cpus in range(2, d.cpus):  # fewer CPUs, where no thread or migration needs them
        if cpus >= top:
            e = copy.deepcopy(d)
            e.cpus = cpus
            out.append(e)
            break
    for ti, t in enumerate(d.threads()):  # simpler ops: smaller numbers, fewer words
        for i, op in enumerate(t.program):
            simpler = re.sub(r"words: \[[^\]]+\]", "words: []", op)
            simpler = re.sub(r"compute: \d{3,}", "compute: 10", simpler)
            if simpler != op:
                e = copy.deepcopy(d)
                e.threads()[ti].program[i] = simpler
                out.append(e)
    return out


def shrink(d: ScenarioData, kind: str, budget: int = STEP_BUDGET, tries: int = 400) -> ScenarioData:
    """Greedily cut `d` down while it still fails with the same kind of problem."""
    seeds = range(max(1, d.seed), max(1, d.seed) + 1)
    progress = True
    while progress and tries > 0:
        progress = False
        for e in _variants(d):
            tries -= 1
            if tries <= 0:
                break
            for seed in seeds:
                e.seed = seed
                if run_case(e.text(), budget).kind == kind:
                    d, progress = e, True
                    break
            if progress:
                break
    return d


# --- the standalone runner -------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.kernel_fuzz", description=__doc__)
    ap.add_argument("--count", type=int, default=200, help="scenarios to run")
    ap.add_argument("--seed", type=int, default=1, help="the first scenario's seed")
    ap.add_argument("--out", default="fuzz-failures", help="directory for failing scenarios")
    ap.add_argument("--budget", type=int, default=STEP_BUDGET, help="micro-ops per scenario")
    ap.add_argument("--shrink", action="store_true", help="shrink each new kind of failure")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = ap.parse_args(argv)
    out = Path(args.out)
    start = time.monotonic()
    kinds: dict[str, int] = {}
    passed = failed = ops = 0
    for n, seed in enumerate(range(args.seed, args.seed + args.count)):
        if args.seconds is not None and time.monotonic() - start > args.seconds:
            break
        if n and n % 250 == 0:
            print(f"... {n} scenarios, {failed} failed, {ops} micro-ops", flush=True)
        data = generate(random.Random(seed), seed)
        o = run_case(data.text(), args.budget)
        ops += o.steps
        if o.problem is None:
            passed += 1
            continue
        failed += 1
        kind = o.kind or ""
        new = kind not in kinds
        kinds[kind] = kinds.get(kind, 0) + 1
        if new and args.shrink:
            data = shrink(data, kind, args.budget)
            o = run_case(data.text(), args.budget)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"fuzz-{seed}.yaml"
        path.write_text(data.text(f"{o.problem}\nkind: {kind}"))
        print(f"seed {seed}: {o.problem} -> {path}", flush=True)
    elapsed = time.monotonic() - start
    print(
        f"{passed + failed} scenarios, {passed} passed, {failed} failed, "
        f"{ops} micro-ops, {elapsed:.0f} s"
    )
    for kind, n in sorted(kinds.items(), key=lambda x: -x[1]):
        print(f"  {n:4d}  {kind}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
