"""The race explorer: systematic interleavings of a scenario, as CHESS does for threads (issue 8).

The thesis's SMP kernel is correct only if every interleaving of the CPUs'
accesses to shared state is: Uhlig's lost wake-up (§8.3.3) needs one
particular order of two CPUs' reads and writes of each other's TCBs, the
`ex_regs` abort of a cross-processor IPC (§8.4.3) and a migration racing an
IPC (§8.5) others. The timed engine runs one order; this module runs many.

**Schedules.** The baseline is the timed order (`l4tui run`). A *preemption*
is a deviation from it at a *choice point*: a micro-op about to touch state
another CPU touches too — a TCB field of a thread on another CPU, a mailbox or
flag word (§8.3.4), a lock (any atomic op), the APIC (an IPI), or any kernel
word that two CPUs were seen to access in an earlier run. There another CPU
goes ahead instead: it runs alone until it blocks, halts or spins on a word
a held CPU would change (or for at most `SEGMENT` micro-ops), then the timed
order resumes; a later preemption may
cut that run short in turn. A schedule is the list of those deviations,
each named by the micro-op count at which it happens, so a schedule replays
exactly. Exploring is breadth-first by the number of preemptions (bounded by
`--preemptions`, default 2), so the first failure found is one with the fewest.

**State hashing.** Python generators cannot be copied, so each schedule runs
from the start (the machine is deterministic). At each branch point the
explorer hashes the kernel-visible state — memory, each CPU's mode, phase and
pending op, the APIC slots, the mailboxes' contents, the programs' counters;
not clocks or caches — and a preemption (that state, that CPU to go ahead)
already scheduled with at least as many preemptions left is not run again,
nor anything that would follow it.

**Failures** (DESIGN.md §2 `explore --json`): `deadlock` (a cycle in the
wait-for graph), `invariant` (a kernel invariant broken at a kernel exit, or
a thread left locked, or the machine stopped by an impossible operation),
`lost_message` (a send reported delivered that its receiver never
received), `expect` (a scenario expectation that fails at the end).

The failing run's inputs are exactly a debugger session's input log
(`None` a timed step, `N` a step of CPU N, `["idle", N]`), so the schedule
file it writes loads into the debugger (`load schedule FILE`, `l4tui open
FILE --schedule S`) with a stop at each deviation.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.kernel import MAX_THREADS, TCB_AREA
from kernel.scenario import Scenario
from kernel.system import System
from kernel.xcpu import FLAGS_BASE, MAILBOX_BASE, MAILBOXES
from l4tui.files import atomic_text
from machine.errors import ConfigError, MachineError
from machine.ops import KERNEL_BASE, Atomic, Hlt, Read, SendIPI, Write

SEGMENT = 5_000  # micro-ops a CPU that goes ahead may run before the timed order resumes
SPIN = 3  # the same word read this often with the same value, nothing written: a spin
RUN_LIMIT = 200_000  # micro-ops per schedule: a scenario that never ends is cut here
SCHEDULE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Choice:
    """One preemption: after `at` micro-ops, CPU `cpu` goes ahead of CPU `over`."""

    at: int
    cpu: int
    over: int


@dataclass(slots=True)
class Shown:
    """What a choice looked like when it ran: the phases of the two CPUs."""

    choice: Choice
    held_phase: str  # where the overtaken CPU was held, before its shared access
    phase: str = ""  # where the CPU that went ahead had got to when the timed order resumed

    def data(self) -> dict[str, Any]:
        c = self.choice
        return {
            "cpu": c.cpu,
            "phase": self.phase,
            "at": c.at,
            "held": {"cpu": c.over, "phase": self.held_phase},
        }

    def text(self) -> str:
        c = self.choice
        return (
            f"at micro-op {c.at}: cpu{c.cpu} goes ahead of cpu{c.over} "
            f"(held at {self.held_phase or '-'}) and runs to {self.phase or '-'}"
        )


@dataclass(slots=True)
class Run:
    """One schedule run to its end: its inputs, its outcome, and where it could branch."""

    choices: tuple[Choice, ...]
    log: list[Any] = field(default_factory=list)  # the session input log that replays it
    shown: list[Shown] = field(default_factory=list)
    kind: str | None = None  # the failure, if any
    message: str = ""
    ended: str | None = None
    steps: int = 0
    # (position, CPU about to step, its address or -1 if always shared,
    #  mask of the other CPUs that could run, state hash)
    candidates: list[tuple[int, int, int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    """What an exploration found (the keys of DESIGN.md §2 `explore --json`)."""

    scenario: str
    preemptions: int
    schedules: int = 0
    states: int = 0
    pruned: int = 0  # preemptions not run: from a state and CPU already scheduled
    exhausted: bool = False  # every schedule within the bound was run
    preemptions_now: int = 0  # the level being explored, and how far through it
    level_done: int = 0
    level_size: int = 1
    failure: Run | None = None
    seconds: float = 0.0  # host time: for the human report and the benchmark, not --json

    def data(self) -> dict[str, Any]:
        f = self.failure
        return {
            "scenario": self.scenario,
            "schedules": self.schedules,
            "states": self.states,
            "pruned": self.pruned,
            "preemptions": self.preemptions,
            "exhausted": self.exhausted,
            "found": f is not None,
            "kind": f.kind if f else None,
            "message": f.message if f else "",
            "schedule": [s.data() for s in f.shown] if f else [],
            "steps": f.steps if f else 0,
        }


class Explorer:
    """Runs a scenario under every schedule within the preemption bound, breadth first."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        preemptions: int = 2,
        max_schedules: int | None = None,
        run_limit: int = RUN_LIMIT,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.preemptions = preemptions
        self.max_schedules = max_schedules
        self.run_limit = run_limit
        self.sharers: dict[int, int] = {}  # kernel physical address -> mask of CPUs seen there
        self.seen: dict[tuple[int, int], int] = {}  # (state, CPU to go) -> preemptions left
        self.states: set[int] = set()
        self.report = Report(scenario.name, preemptions)

    # --- one schedule ----------------------------------------------------------------

    def run(self, choices: tuple[Choice, ...]) -> Run:
        """Run the scenario from the start under `choices`; its outcome and its branch points."""
        system = System(self.scenario, seed=self.seed)
        m, k = system.machine, system.kernel
        out = Run(choices)
        log, cands, sharers = out.log, out.candidates, self.sharers
        tcb_size = k.layout.size
        tcb_end = TCB_AREA + MAX_THREADS * tcb_size
        mail_end = MAILBOX_BASE + MAILBOXES * k.mailboxes.line
        cpus = m.cpus
        last = choices[-1].at if choices else -1
        pending = list(choices)
        pos = 0
        ahead: int | None = None  # the CPU running ahead, if any
        ahead_left = 0
        spin: dict[int, tuple[Any, int]] = {}  # address -> (value read, times in a row)
        shown: Shown | None = None
        while system.ended is None:
            if pos >= self.run_limit:
                system.ended = "max_steps"
                break
            if pending and pending[0].at == pos:
                ch = pending.pop(0)
                if shown is not None and not shown.phase:
                    shown.phase = cpus[shown.choice.cpu - 1].phase
                shown = Shown(ch, cpus[ch.over - 1].phase)
                out.shown.append(shown)
                ahead, ahead_left = ch.cpu, SEGMENT
            if pos > last:
                # A branch point: the op about to run touches shared state and another
                # CPU could run instead. (Peeking applies only events due anyway.)
                got = m.peek(ahead)
                if got is not None:
                    c, op = got
                    t = type(op)
                    where = None
                    if t is Read or t is Write or t is Atomic:
                        addr = op.addr
                        if addr >= KERNEL_BASE:
                            where = (addr - KERNEL_BASE) & ~3
                            if t is Atomic or FLAGS_BASE <= where < mail_end:
                                where = -1  # a lock, a flag word, a mailbox
                            elif TCB_AREA <= where < tcb_end:
                                base = TCB_AREA + (where - TCB_AREA) // tcb_size * tcb_size
                                owner = k.by_tcb.get(KERNEL_BASE + base)
                                if owner is not None and owner.cpu != c.number:
                                    where = -1  # another CPU's thread
                    elif t is SendIPI:
                        where = -1
                    if where is not None:
                        mask = 0
                        for o in cpus:
                            if o.waiting is None and o is not c:
                                mask |= 1 << o.index
                        if mask:
                            cands.append((pos, c.number, where, mask, self._state_key(system)))
            try:
                op = system.advance(True, ahead)
            except MachineError as e:
                # The kernel made the machine do the impossible (a trap from kernel mode,
                # a fault in the kernel): a broken invariant of the hardware's own.
                out.steps, out.ended = pos, "machine"
                out.kind, out.message = "invariant", f"the simulated machine stopped: {e}"
                return out
            if op is None:
                if ahead is not None and system.ended is None:
                    log.append(["idle", ahead])  # it had nothing to run: the timed order resumes
                    ahead = None
                    continue
                break
            log.append(ahead)
            c = m.last_cpu
            t = type(op)
            if (t is Read or t is Write or t is Atomic) and op.addr >= KERNEL_BASE:
                paddr = (op.addr - KERNEL_BASE) & ~3
                seen = sharers.get(paddr, 0)
                if not seen >> c.index & 1:
                    sharers[paddr] = seen | 1 << c.index
            pos += 1
            if ahead is not None:
                ahead_left -= 1
                # It runs on until it blocks or halts (as a preempting thread in CHESS runs
                # until it yields): through its scheduler, its user code and the next kernel
                # path, so one preemption can open a whole race window. A CPU that spins
                # (reads one word over and over, writing nothing) waits for a CPU that is
                # held: it yields too.
                if t is Write:
                    spin.clear()
                elif (t is Read or t is Atomic) and op.addr >= KERNEL_BASE:
                    value = m.last_result
                    seen_value, times = spin.get(op.addr, (None, 0))
                    times = times + 1 if seen_value == value else 1
                    spin[op.addr] = (value, times)
                    if t is Atomic and m.memory.read(op.addr - KERNEL_BASE) != value:
                        spin.clear()  # it changed the word: progress, not a spin
                    elif times >= SPIN:
                        ahead_left = 0
                if ahead_left <= 0 or t is Hlt or c.waiting is not None:
                    ahead = None
                    spin.clear()
                    if shown is not None:
                        shown.phase = c.phase
        if shown is not None and not shown.phase:
            shown.phase = cpus[shown.choice.cpu - 1].phase
        out.steps = pos
        out.ended = system.ended
        out.kind, out.message = judge(system)
        return out

    def _state_key(self, system: System) -> int:
        """A hash of the kernel-visible state: memory, CPUs, APICs, mailboxes, programs.

        Clocks and cache contents are left out: two orders that leave the kernel
        in the same state are one state to the explorer (timing aside). Python's
        hash of ints and tuples is stable within a process, which is all it needs.
        """
        m, k = system.machine, system.kernel
        parts: list[Any] = [hash(frozenset(m.memory.words.items()))]
        for c in m.cpus:
            # A frame whose code has ended is popped lazily: it is no state of its own.
            frames = [f for f in c.frames if f.op is not None or f.resume is not None]
            top = frames[-1] if frames else None
            op = None if top is None else (top.resume or top.op)
            parts.append((c.mode, c.if_flag, c.cr3, c.waiting, c.phase, len(frames)))
            parts.append((type(op).__name__, getattr(op, "addr", None), getattr(op, "value", 0)))
        for a in m.apics.apics:
            slots = tuple((s.vector, s.sender, s.in_service) for s in a.slots)
            parts.append((slots, a.irr_other, a.isr, a.tpr))
        for msg in m.apics.in_flight:
            parts.append((msg.vector, tuple(msg.dests)))
        if k.mailboxes.mail:
            parts.append(repr(sorted(k.mailboxes.mail.items())))
        for t in k.threads:
            if t.pc.levels:
                parts.append(tuple((lv.index, lv.left) for lv in t.pc.levels))
        return hash(tuple(parts))

    def children(self, run: Run) -> tuple[list[tuple[Choice, ...]], int]:
        """The schedules with one more preemption, each after the last of `run`'s.

        A branch from a state already branched from (with as many preemptions
        left) is left out; the count of those comes back too.
        """
        left = self.preemptions - len(run.choices) - 1
        if left < 0:
            return [], 0
        out, pruned = [], 0
        sharers, seen = self.sharers, self.seen
        for pos, cpu, where, mask, state in run.candidates:
            if where >= 0 and bin(sharers.get(where, 0)).count("1") < 2:
                continue  # a word only one CPU ever touched: no other order can matter
            self.states.add(state)
            for other in range(1, mask.bit_length() + 1):
                if not mask >> (other - 1) & 1:
                    continue
                key = (state, other)
                if seen.get(key, -1) >= left:
                    pruned += 1
                    continue
                seen[key] = left
                out.append((*run.choices, Choice(pos, other, cpu)))
        return out, pruned

    # --- the search --------------------------------------------------------------------

    def explore(self, progress: Callable[[Report], None] | None = None) -> Report:
        """Breadth first by preemptions, until a failure, the bound, or `max_schedules`."""
        report = self.report = Report(self.scenario.name, self.preemptions)
        start = time.perf_counter()
        level: list[tuple[Choice, ...]] = [()]
        while level:
            following: list[tuple[Choice, ...]] = []
            report.preemptions_now, report.level_size = len(level[0]), len(level)
            for report.level_done, choices in enumerate(level, 1):
                if self.max_schedules is not None and report.schedules >= self.max_schedules:
                    report.seconds = time.perf_counter() - start
                    return report
                run = self.run(choices)
                report.schedules += 1
                if run.kind is not None:
                    report.failure = run
                    report.seconds = time.perf_counter() - start
                    return report
                more, pruned = self.children(run)
                following.extend(more)
                report.pruned += pruned
                report.states = len(self.states)
                if progress is not None:
                    report.seconds = time.perf_counter() - start
                    progress(report)
            level = following
        report.exhausted = True
        report.seconds = time.perf_counter() - start
        return report


class ProgressBar:
    """One line on a terminal: schedules explored, distinct states, rate, level."""

    def __init__(self, out: Any, width: int = 24) -> None:
        self.out = out
        self.width = width
        self.shown = 0.0

    def show(self, report: Report) -> None:
        now = time.monotonic()
        if now - self.shown < 0.1:
            return  # a terminal line ten times a second is plenty
        self.shown = now
        rate = report.schedules / report.seconds if report.seconds > 0 else 0.0
        done = report.level_done / report.level_size if report.level_size else 0.0
        fill = int(done * self.width)
        bar = "#" * fill + "." * (self.width - fill)
        self.out.write(
            f"\r[{bar}] {report.preemptions_now} preemption(s): {report.schedules} schedules, "
            f"{report.states} states, {rate:.0f}/s "
        )
        self.out.flush()

    def clear(self) -> None:
        self.out.write("\r\x1b[K")
        self.out.flush()


def judge(system: System) -> tuple[str | None, str]:
    """The failure a finished run shows, if any: (kind, message)."""
    why = system.ended
    if why == "invariant":
        return "invariant", "; ".join(system.violations)
    if why == "deadlock":
        return "deadlock", system.deadlock_message()
    if why == "stuck":
        return "invariant", f"left locked with nothing to unlock them: {', '.join(system.stuck())}"
    if why != "end":
        return None, ""  # cut at the run limit: no verdict
    lost = lost_messages(system)
    if lost:
        return "lost_message", "; ".join(lost)
    failed = [e.check for e in system.scenario.expect if not system.check(e)]
    if failed:
        return "expect", "expectation failed: " + "; ".join(failed)
    return None, ""


def lost_messages(system: System) -> list[str]:
    """Sends reported delivered (ok) that their receivers never received, per pair."""
    k = system.kernel
    sent: Counter[tuple[str, str]] = Counter()
    got: Counter[tuple[str, str]] = Counter()
    for th in system.scenario.threads():
        t = k.by_name[th.name]
        for to in t.sent_to:
            sent[th.name, to] += 1
        for r in t.results:
            if r.get("ok") and r.get("from"):
                got[r["from"], th.name] += 1
    return [
        f"{s} sent {n - got[s, r]} message(s) to {r} that {r} never received"
        for (s, r), n in sorted(sent.items())
        if n > got[s, r]
    ]


# --- schedule files ---------------------------------------------------------------------


def schedule_data(scenario: Scenario, seed: int | None, report: Report) -> dict[str, Any]:
    """The schedule file: the explore result plus the input log that replays the failure."""
    f = report.failure
    stops: dict[str, str] = {}
    if f is not None:
        n = len(f.shown)
        for i, shown in enumerate(f.shown, 1):
            stops[str(shown.choice.at)] = f"schedule {i}/{n}: {shown.text()}"
        stops[str(f.steps)] = f"here the explorer found {f.kind}: {f.message}"
    return {
        "l4tui_schedule": SCHEDULE_VERSION,
        **report.data(),
        "file": str(Path(scenario.file).resolve()) if scenario.file else None,
        "seed": seed,
        "log": f.log if f else [],
        "stops": stops,
    }


def read_schedule(path: str) -> tuple[list[Any], dict[int, str], dict[str, Any]]:
    """A schedule file's inputs and stops (and the whole of it); ConfigError if it is none."""
    from l4tui.files import load_json

    data = load_json(path, "the schedule", "schedules")  # regular, bounded, not too deep
    if not isinstance(data, dict) or data.get("l4tui_schedule") != SCHEDULE_VERSION:
        raise ConfigError("not an l4tui schedule (written by `l4tui explore`)", path)
    log, stops = data.get("log"), data.get("stops", {})
    if not isinstance(log, list) or not isinstance(stops, dict):
        raise ConfigError("a schedule needs a list `log` and a map `stops`", path)
    for i, entry in enumerate(log):
        ok = entry is None or (isinstance(entry, int) and entry > 0)
        ok = ok or (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] == "idle"
            and isinstance(entry[1], int)
            and entry[1] > 0
        )
        if not ok:
            raise ConfigError(f"log entry {i} is {entry!r}: not a step of the schedule", path)
    try:
        where = {int(k): str(v) for k, v in stops.items()}
    except ValueError:
        raise ConfigError("stops are keyed by micro-op counts", path) from None
    return log, where, data


def write_schedule(path: str, data: dict[str, Any]) -> None:
    """Write a schedule file whole (never half a file)."""
    with atomic_text(path) as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def format_report(report: Report) -> str:
    """The human report of `l4tui explore`."""
    rate = report.schedules / report.seconds if report.seconds > 0 else 0.0
    lines = [
        f"explored {report.schedules} schedules ({report.pruned} more skipped as seen), "
        f"{report.states} distinct states, up to {report.preemptions} preemptions, "
        f"{rate:.0f} schedules/s"
    ]
    f = report.failure
    if f is None:
        if report.exhausted:
            lines.append("no failure: the bound is exhausted")
        else:
            lines.append("no failure found before the schedule limit (not exhausted)")
        return "\n".join(lines)
    lines.append(f"found: {f.kind}: {f.message}")
    if f.shown:
        lines.append(f"schedule ({len(f.shown)} preemption(s), {f.steps} micro-ops):")
        lines.extend(f"  {i}. {s.text()}" for i, s in enumerate(f.shown, 1))
    else:
        lines.append(f"in the timed order itself ({f.steps} micro-ops)")
    return "\n".join(lines)
