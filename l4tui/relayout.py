"""`layout thesis|naive`: the same scenario with the other TCB layout, back at the same point.

The thesis groups the TCB's fields by use into cache lines (§8.6, Table 3);
`naive` keeps declaration order. Only addresses change, but every access then
moves other lines, so the timing — and with it the interleaving of the CPUs —
differs: cycles and micro-op numbers of one layout mean nothing in the other.

What is the same in both is the program. A *point* is a place in one thread's
own run: the `nth` time it passed a phase label (the session's `Mark`s), plus
how many of its micro-ops it ran since. The point of a stop is that of the
thread that ran the last micro-op; if that was an idle loop, whose rounds
depend on timing, it is the focused thread's point and then the idle loop's
own point counted from that thread's last micro-op. The scenario runs again
from the start in the other layout, by the session's own stepping, until that
thread is at that point; a system call injected on the way is injected when
its thread is where it was. If it never gets there — the run ends or
deadlocks, the thread takes another path, or the bound (`SLACK` times the
micro-ops taken so far, plus `FLOOR`, at most the session's `LIMIT`) runs out
— the answer says what it matched instead: the same label's nearest earlier
occurrence, or the start.

Breakpoints stay with their numbers; their hit counts are counted again in the
new run up to the point (a disabled one keeps its count). A watchpoint on a
TCB field follows the field to its new address; a watch on a TCB line by
number stays if the new layout has that line, else it is put aside until a
layout that has it. Focus, the commands and stops the lab checks read, and a
lab's data stay. Switching back before moving returns to exactly the state
left (the same inputs replayed).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kernel import query
from kernel.layout import NAMED
from l4tui import history, stops
from l4tui.breakpoints import Breakpoint, Watch
from l4tui.grammar import CommandError
from l4tui.inputs import Inject, LogEntry, OnCpu, is_step, step_cpu
from l4tui.session import LIMIT, Session
from machine.ops import KERNEL_BASE, Phase

SLACK = 4  # the other run may take this many times the micro-ops taken so far ...
FLOOR = 10_000  # ... plus these, to reach the point (and never more than LIMIT)


@dataclass(frozen=True, slots=True)
class Point:
    """A place in one thread's run: after its `nth` pass of `label`, then `ops` of its micro-ops.

    `label` None: before its first phase label (`nth` 0).
    """

    thread: str
    label: str | None
    nth: int
    ops: int

    def text(self) -> str:
        if self.label is None:
            at = f"{self.thread} before any phase label"
        else:
            at = f"{self.label} of {self.thread} (its {ordinal(self.nth)} time)"
        if self.ops:
            at += f" + {self.ops} of its micro-op{'s' if self.ops != 1 else ''}"
        return at


def ordinal(n: int) -> str:
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


class Tracker:
    """Each thread's point as a run goes: told of every micro-op and the thread that ran it."""

    def __init__(self) -> None:
        self.last: dict[str, str] = {}  # thread -> its last phase label
        self.times: Counter[tuple[str, str]] = Counter()  # (thread, label) -> passes
        self.ops: Counter[str] = Counter()  # thread -> micro-ops since its last label

    def ran(self, thread: str, label: str | None) -> None:
        if label is None:
            self.ops[thread] += 1
        else:
            self.last[thread] = label
            self.times[thread, label] += 1
            self.ops[thread] = 0

    def point(self, thread: str) -> Point:
        label = self.last.get(thread)
        nth = self.times[thread, label] if label is not None else 0
        return Point(thread, label, nth, self.ops[thread])


def ran_last(s: Session) -> str | None:
    """The thread that ran the last micro-op (as a `Mark` names it), None at the start."""
    c = s.system.machine.last_cpu
    if c is None or s.position == 0:
        return None
    return query.current_name(s.system.kernel, c.number)


def cycle(s: Session) -> int:
    """The clock of the CPU that ran the last micro-op, in cycles."""
    m = s.system.machine
    return m.last_cpu.clock // m.tpc if m.last_cpu is not None and s.position else 0


@dataclass(frozen=True, slots=True)
class Stop:
    """The point of a stop: the anchor thread's point and, when an idle loop ran last, that
    idle thread's point counted from the anchor's last micro-op (`then`)."""

    at: Point
    then: Point | None = None

    def text(self) -> str:
        if self.then is None:
            return self.at.text()
        t = self.then
        then = f"{t.label} of {t.thread} (its {ordinal(t.nth)} time since)" if t.label else t.thread
        if t.ops:
            then += f" + {t.ops} of its micro-op{'s' if t.ops != 1 else ''}"
        return f"{self.at.text()}, then {then}"


class _Run:
    """A fresh session stepped by its own `_step`, tracking every thread's point, the points
    counted since the anchor thread last ran, and the micro-ops where each breakpoint (a copy
    that only counts) would have hit; injections wait for their thread's point."""

    def __init__(
        self,
        s: Session,
        layout: str | None,
        breakpoints: list[Breakpoint],
        anchor: str | None = None,
        injects: list[tuple[Point, Inject]] | None = None,
    ) -> None:
        self.s = Session(s.scenario, s.seed, tcb_layout=layout)
        self.s.breakpoints = [
            dataclasses.replace(b, hits=0, temporary=False, log_only=True) for b in breakpoints
        ]
        self.tracker = Tracker()
        self.anchor = anchor
        self.since = Tracker()  # restarted each time the anchor runs
        self.hits: list[tuple[int, int]] = []  # (micro-op, breakpoint number)
        self.records: list[tuple[int, str]] = []  # (micro-op, what a log point saw)
        self.notes: list[str] = []  # what could not be carried over
        self.pending = list(injects or [])
        self.inject_due()

    def step(self, cpu: int | None = None) -> Any:
        """One logged step (timed, or on `cpu`); None if nothing ran."""
        f = self.s
        op = f._step(cpu)
        if op is None:
            return None
        name = ran_last(f) or "?"
        label = op.label if type(op) is Phase else None
        self.tracker.ran(name, label)
        if name == self.anchor:
            self.since = Tracker()
        else:
            self.since.ran(name, label)
        if f.breakpoints:
            before = [b.hits for b in f.breakpoints]
            made = f.records_made  # not len(f.records): the list drops its oldest when full
            stops.stopped(f, op)
            for b, was in zip(f.breakpoints, before, strict=True):
                if b.hits > was:
                    self.hits.append((f.position, b.number))
            new = f.records_made - made
            if new:
                self.records += [(f.position, r) for r in f.records[-new:]]
                if len(self.records) >= 2 * stops.RECORDS:  # as the session keeps them: the newest
                    del self.records[: -stops.RECORDS]
        self.inject_due()
        return op

    def replay(self, entry: LogEntry) -> None:
        """An input from a log: a step as `step`, anything else as the session replays it."""
        if is_step(entry):
            self.step(step_cpu(entry))
        else:
            history.replay(self.s, entry)

    def inject_due(self) -> None:
        """Inject what waits for a thread that is now at the point it was injected at."""
        pending = self.pending
        while pending and self.tracker.point(pending[0][0].thread) == pending[0][0]:
            entry = pending.pop(0)[1]
            try:
                self.s.inject(entry.thread, entry.op, list(entry.args))
            except CommandError as e:
                self.notes.append(f"inject {_words(entry)} left out: {e}")

    def reach(self, tracker: Tracker, target: Point, bound: int, guard: str | None) -> _Reached:
        """Step until `tracker` has `target`'s thread at `target` (at most to micro-op
        `bound`; stopping if `guard` runs): what happened, and where it fell short."""
        f = self.s
        got = _Reached()
        if target.label is None:
            got.best = (f.position, 0)
        while tracker.point(target.thread) != target:
            if f.position >= bound:
                got.outcome = f"it does not get there within {bound:,} micro-ops"
                break
            if self.step() is None:
                got.outcome = f"the run ends first ({f.stop_reason})"
                break
            name = ran_last(f)
            if guard is not None and name == guard:
                got.outcome = f"{guard} runs again first"
                break
            if name != target.thread:
                continue
            p = tracker.point(name)
            if p.label == target.label and p.nth < target.nth and p.ops == 0:
                got.earlier.append(f.position)
            if p.label == target.label and p.nth == target.nth and p.ops <= target.ops:
                got.best = (f.position, p.ops)
            elif got.best is not None:
                got.outcome = f"{name} takes another path there (to {p.label})"
                break
        return got


@dataclass(slots=True)
class _Reached:
    """How a search for a point ended: `outcome` "" if it got there."""

    outcome: str = ""
    best: tuple[int, int] | None = None  # last micro-op at the target's label, ops <= target's
    earlier: list[int] = dataclasses.field(default_factory=list)  # its earlier passes

    def fallback(self, f: Session, target: Point, start: int) -> Point | None:
        """Go to the nearest place short of `target`: its label with fewer ops, an earlier
        pass, else `start`. Returns the point gone to (None: `start`)."""
        if self.best is not None:
            f.goto(self.best[0])
            return dataclasses.replace(target, ops=self.best[1])
        if self.earlier:
            f.goto(self.earlier[-1])
            return dataclasses.replace(target, nth=len(self.earlier), ops=0)
        f.goto(start)
        return None


@dataclass(slots=True)
class _Left:
    """Where a switch left from, so that switching straight back returns there exactly."""

    layout: str  # the layout left
    log: list[LogEntry]  # its inputs up to the point
    position: int
    arrived: list[LogEntry]  # the new session's inputs when the switch was done


_LEFT: weakref.WeakKeyDictionary[Session, _Left] = weakref.WeakKeyDictionary()
# Line watchpoints the layout switched to has no line for, and len(commands) when put aside.
_PARKED: weakref.WeakKeyDictionary[Session, tuple[list[Watch], int]] = weakref.WeakKeyDictionary()


def current_layout(s: Session) -> str:
    return s.system.kernel.layout.name


def switch(s: Session, layout: str, exact_return: bool = True) -> str:
    """Re-run `s`'s scenario with TCB layout `layout` to the same point; `s` takes the new
    state (the front ends keep their Session object). Returns what was matched and kept.

    `exact_return=False` matches the point even when switching straight back.
    """
    if layout not in NAMED:
        raise CommandError(f"layout takes thesis or naive, not {layout!r}")
    was = current_layout(s)
    if layout == was:
        return f"already the {layout} TCB layout; nothing changes"
    left = _LEFT.get(s)
    if exact_return and left is not None and left.layout == layout and left.arrived == s.log:
        run, headline = _return(s, left, layout)
    else:
        run, headline = _match(s, layout)
    new = run.s
    notes = _carry(s, run, layout)
    _LEFT[s] = _Left(was, list(s.log), s.position, list(new.log))
    headline += (
        f", micro-op {new.position:,}, cycle {cycle(new):,}"
        f" (was {cycle(s):,} with the {was} layout)"
    )
    new.stop_reason = headline
    s.become(new)
    return "\n".join([headline, *notes])


def anchor(s: Session) -> tuple[str, str | None]:
    """The thread whose point is the stop's, and the idle thread that ran last (if one did:
    its rounds depend on timing, so the focused thread is the anchor)."""
    name = ran_last(s)
    idle = query.idle_names(s.system.kernel)
    if name is not None and name not in idle:
        return name, None
    return s.focused_thread(), name


def locate(s: Session) -> tuple[Stop, list[tuple[Point, Inject]]]:
    """The point of `s`'s stop, and each injection in its log with the point of the thread it
    is for (when it was injected). Replays the log unless the marks say it all."""
    thread, idle = anchor(s)
    marks = s.marks
    injected = any(isinstance(e, Inject) for e in s.log)
    if idle is None and not injected and marks and marks[-1].position == s.position:
        last = marks[-1]
        if last.thread == thread:  # at the anchor's own phase label
            nth = sum(1 for m in marks if m.thread == thread and m.label == last.label)
            return Stop(Point(thread, last.label, nth, 0)), []
    run = _Run(s, None, [], anchor=thread)
    injects: list[tuple[Point, Inject]] = []
    for entry in s.log:
        if isinstance(entry, Inject):
            injects.append((run.tracker.point(entry.thread), entry))
        run.replay(entry)
    then = run.since.point(idle) if idle is not None else None
    return Stop(run.tracker.point(thread), then), injects


def _match(s: Session, layout: str) -> tuple[_Run, str]:
    """Run `layout` until the anchor thread is at the stop's point (bounded); else fall back."""
    stop, injects = locate(s)
    thread = stop.at.thread
    run = _Run(s, layout, s.breakpoints, anchor=thread, injects=injects)
    f = run.s
    bound = min(LIMIT, SLACK * s.position + FLOOR)
    got = run.reach(run.tracker, stop.at, bound, None)
    instead: str | None = None
    if got.outcome:
        point = got.fallback(f, stop.at, 0)
        instead = f"at {point.text()}" if point is not None else "at the start"
    elif stop.then is not None:
        here = f.position
        run.since = Tracker()
        more = run.reach(run.since, stop.then, bound, thread)
        if more.outcome:
            got = more
            then = more.fallback(f, stop.then, here)
            instead = f"at {Stop(stop.at, then).text()}"
    if instead is None:
        headline = f"{layout} TCB layout: back at {stop.text()}"
    else:
        headline = (
            f"{layout} TCB layout: could not reach {stop.text()}: {got.outcome}; {instead} instead"
        )
    run.notes += [f"inject {_words(e)} left out: {p.text()} not reached" for p, e in run.pending]
    by_hand = sum(1 for e in s.log if isinstance(e, OnCpu))
    if by_hand:
        run.notes.append(
            f"{by_hand} step(s) on a CPU named by hand were taken by the timed policy here"
        )
    if s.schedule is not None:
        run.notes.append("the schedule being followed is left (its steps were for the old timing)")
    return run, headline


def _return(s: Session, left: _Left, layout: str) -> tuple[_Run, str]:
    """Back to the layout just left, by its own inputs: exactly the state left."""
    run = _Run(s, layout, s.breakpoints)
    f = run.s
    log = left.log
    i = 0
    while i < len(log) and f.position < left.position:
        run.replay(log[i])
        i += 1
    while i < len(log) and not is_step(log[i]):
        run.replay(log[i])  # inputs given at this position, before the next step
        i += 1
    f.focus_cpu, f.focus_thread = s.focus_cpu, s.focus_thread  # as the anchor is chosen
    stop, _ = locate(f)
    return run, f"{layout} TCB layout: back where you left it, at {stop.text()}"


def _carry(s: Session, run: _Run, layout: str) -> list[str]:
    """Give the new session `s`'s breakpoints, watchpoints, focus and history; notes on each."""
    new = run.s
    notes = list(run.notes)
    here = new.position
    # Breakpoints: the same, numbered the same, hits counted again in this run up to here.
    # A disabled one keeps its count: when it was disabled is not known.
    counts = Counter(n for pos, n in run.hits if pos <= here)
    bps = [dataclasses.replace(b, hits=counts[b.number]) if b.enabled else b for b in s.breakpoints]
    if bps:
        listed = ", ".join(
            f"{b.number} ({b.hits} hit{'s' if b.hits != 1 else ''}"
            f"{'' if b.enabled else ', disabled: kept'})"
            for b in bps
        )
        notes.append(f"breakpoints kept, hit counts counted again in the {layout} run: {listed}")
    log_points = {b.number for b in s.breakpoints if b.log_only}
    new.records = [
        r for pos, r in run.records if pos <= here and int(r.split(" ", 1)[0][1:]) in log_points
    ]
    new.breakpoints = bps
    new._next_bp = s._next_bp
    # Watchpoints: a field by its name, a line by its number.
    watches, parked = [], []
    was = s.system.kernel.layout
    lay = new.system.kernel.layout
    parked_before, since = _PARKED.get(s, ([], 0))
    if "delete" in s.commands[since:]:
        parked_before = []  # `delete` cleared the watchpoints, the ones put aside too
    for w in [*s.watches, *parked_before]:
        paddr, why = _address(new, w)
        if paddr is None:
            parked.append(w)
            notes.append(f"watchpoint {w.expr} put aside: {why} (back with a layout that has it)")
            continue
        nw = Watch(w.expr, paddr, 0, w.cpu)
        nw.value = stops.probe(new, nw)
        watches.append(nw)
        if w.cpu is None:
            field = w.expr.partition(".")[2]
            notes.append(
                f"watchpoint {w.expr} follows the field to {paddr:#x}, TCB line {lay.line(field)} "
                f"(was {w.paddr:#x}, line {was.line(field)}); now {new.watch_text(nw, nw.value)}"
            )
        else:
            n = int(w.expr.split()[1].partition(".")[2])
            notes.append(
                f"watchpoint {w.expr} stays on TCB line {n}, which holds "
                f"{', '.join(lay.lines()[n])} in the {lay.name} layout; "
                f"now {new.watch_text(nw, nw.value)}"
            )
    new.watches = watches
    _PARKED[s] = (parked, len(s.commands))
    # What the user did and looks at.
    new.commands, new.stops, new.meta = s.commands, s.stops, s.meta
    new.focus_cpu, new.focus_thread = s.focus_cpu, s.focus_thread
    new.focus_pinned, new.focus_via = s.focus_pinned, s.focus_via
    policy = s.system.machine.policy
    if policy != new.system.machine.policy:
        new.set_policy(policy)
    return notes


def _address(s: Session, w: Watch) -> tuple[int | None, str]:
    """The physical address of a watch's field or line in `s`'s layout, or None and why."""
    k = s.system.kernel
    if w.cpu is None:
        name, _, field = w.expr.partition(".")
        t = k.by_name.get(name)
        if t is None or field not in t.f:
            return None, f"no TCB field {w.expr}"
        return t.f[field] - KERNEL_BASE, ""
    # "line THREAD.N cpu C"
    words = w.expr.split()
    name, _, number = words[1].partition(".")
    t = k.by_name.get(name)
    lines = len(k.layout.lines())
    if t is None or int(number) >= lines:
        return None, f"the {k.layout.name} TCB has lines 0..{lines - 1}"
    return t.tcb - KERNEL_BASE + int(number) * k.layout.line_size, ""


def _words(entry: Inject) -> str:
    """An injection as it was typed: `THREAD OP ARGS`."""
    return " ".join([entry.thread, entry.op, *entry.args])
