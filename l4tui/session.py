"""The debugger session: one machine and kernel, stepped, stopped and inspected (DESIGN.md §1).

A `Session` owns a `System` built from a scenario, the breakpoints,
watchpoints and focus, and answers the views every front end shows as plain
data. It imports no UI library: the line console and the TUI drive the same
object. Stepping goes through `System.advance`, so a session and `l4tui run`
agree on when a run is over.

Going backwards is deterministic replay: the input log (each step taken, by
the timed policy or on a named CPU; policy changes; injected system calls)
replayed reproduces the state bit for bit. Phase starts are recorded as the
machine runs, so `reverse-step` knows where to go without a search. Python
generators — the kernel paths in flight — cannot be copied, and kernel paths
read Python state between their micro-ops, so a checkpoint of the data alone
could not revive them exactly. A fork of the whole process can: in an engine
process (engine.py) `goto` restores the nearest fork checkpoint before the
target (checkpoints.py) and replays only the rest; without one (no fork, or a
session in the front end's own process) it replays from the start.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from kernel.scenario import Scenario
from kernel.system import System
from l4tui import expr
from l4tui.breakpoints import Breakpoint, Event, Watch, events
from l4tui.files import atomic_text
from l4tui.grammar import CommandError
from l4tui.runner.summary import deadlock_message
from machine.ops import Phase

if TYPE_CHECKING:
    from l4tui.checkpoints import Checkpoints

PLUMBING = ("sched.", "xcpu.", "idle", "xp.mailbox.setup", "xp.trigger", "xp.ipi")
NEVER = 1 << 62  # a position no run reaches
_GENERATIONS = itertools.count(1)
# What stays with the machine when a checkpoint's fork takes over another engine's session
# (checkpoints.py): the rest of the Session is the debugger's state, sent over.
MACHINE_SIDE = (
    "system", "last_phase", "behind", "checkpoints", "checkpoint_at", "observer",
    "interrupted", "scenario", "seed", "tcb_layout",
)  # fmt: skip
LIMIT = 5_000_000  # micro-ops a single continue may take before it pauses
# The TUI's live continue (`cont_for`): host seconds of running between two looks at the
# keyboard, checked every `LIVE_SLICE` micro-ops. In an engine process (engine.py) one
# request a look, not one a slice: each round trip through the pipes costs about 1 ms.
LIVE_SECONDS = 0.05
LIVE_SLICE = 2_000
RECORDS = 10_000  # what log-only breakpoints saw, kept (the newest; `info log` shows 200)

# A timed step | a step on CPU n | a policy | ["inject", ...] | ["idle", cpu]: a step that
# found nothing to run (it applied the events due, so replay must take it too). A peek is
# no input: it changes nothing (Machine.peek).
LogEntry = int | str | list[Any] | None


@dataclass(frozen=True, slots=True)
class CpuView:
    """Where one CPU is."""

    number: int
    cycle: int
    thread: str
    mode: str
    phase: str
    halted: bool


@dataclass(frozen=True, slots=True)
class ThreadView:
    """One thread, as `info threads` shows it."""

    name: str
    id: str
    cpu: int
    state: str
    priority: int
    partner: str
    timeout: str  # the wakeup deadline in cycles, or "-"
    results: int


@dataclass(frozen=True, slots=True)
class Mark:
    """A phase label passed: after which input, on which CPU, by which thread."""

    position: int
    label: str
    cpu: int
    thread: str


class Marks:
    """Every phase label passed, in order, as `Mark`s — stored as columns of machine words.

    A mark is taken at about one micro-op in seven and a session keeps them all
    (`reverse-step` goes back by them, the event log shows them), so a `continue`
    of `LIMIT` micro-ops leaves some 700,000. As objects that is about 100 bytes
    each; here it is 18 (position, label, CPU, thread: labels and thread names
    are numbered once). Reads build `Mark`s on demand; a list of them compares
    equal to the `Marks` holding the same.
    """

    __slots__ = ("_cpu", "_label", "_names", "_number", "_pos", "_thread")

    def __init__(self, marks: Iterable[Mark] = ()) -> None:
        self._pos = array("q")
        self._label = array("I")
        self._cpu = array("H")
        self._thread = array("I")
        self._names: list[str] = []  # labels and thread names, numbered in order of first use
        self._number: dict[str, int] = {}
        for m in marks:
            self.append(m)

    def _id(self, name: str) -> int:
        n = self._number.get(name)
        if n is None:
            n = self._number[name] = len(self._names)
            self._names.append(name)
        return n

    def add(self, position: int, label: str, cpu: int, thread: str) -> None:
        self._pos.append(position)
        self._label.append(self._id(label))
        self._cpu.append(cpu)
        self._thread.append(self._id(thread))

    def append(self, m: Mark) -> None:
        self.add(m.position, m.label, m.cpu, m.thread)

    def _mark(self, i: int) -> Mark:
        names = self._names
        return Mark(self._pos[i], names[self._label[i]], self._cpu[i], names[self._thread[i]])

    def __len__(self) -> int:
        return len(self._pos)

    @overload
    def __getitem__(self, i: int) -> Mark: ...
    @overload
    def __getitem__(self, i: slice) -> list[Mark]: ...
    def __getitem__(self, i: int | slice) -> Mark | list[Mark]:
        if isinstance(i, slice):
            return [self._mark(j) for j in range(*i.indices(len(self._pos)))]
        if i < 0:
            i += len(self._pos)
        if not 0 <= i < len(self._pos):
            raise IndexError("mark index out of range")
        return self._mark(i)

    def __iter__(self) -> Iterator[Mark]:
        return (self._mark(i) for i in range(len(self._pos)))

    def __reversed__(self) -> Iterator[Mark]:
        return (self._mark(i) for i in range(len(self._pos) - 1, -1, -1))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Marks):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __repr__(self) -> str:
        return f"Marks({list(self)!r})"

    def positions_before(self, position: int) -> int:
        """How many marks were taken at positions before `position` (they are in order)."""
        return bisect.bisect_left(self._pos, position)

    def position(self, i: int) -> int:
        """The position of mark `i`, without building the mark."""
        return self._pos[i]

    def since(self, position: int) -> tuple[list[str], list[array]]:
        """The marks taken after `position`, as the names and the columns' tails: what a
        checkpoint's fork is sent (`extend`; arrays pickle as bytes)."""
        n = bisect.bisect_right(self._pos, position)
        return list(self._names), [c[n:] for c in self._columns()]

    def extend(self, tail: tuple[list[str], list[array]]) -> None:
        """Add `since`'s marks, taken from marks that began as these did (the same history:
        names are numbered in the order of first use, so these names are a prefix)."""
        names, columns = tail
        for name in names[len(self._names) :]:
            self._id(name)
        for mine, more in zip(self._columns(), columns, strict=True):
            mine.extend(more)

    def _columns(self) -> tuple[array, array, array, array]:
        return self._pos, self._label, self._cpu, self._thread

    def truncate(self, position: int) -> None:
        """Drop the marks taken after `position` (a replay from there takes them again)."""
        n = bisect.bisect_right(self._pos, position)
        for column in self._columns():
            del column[n:]


class Session:
    """A scenario being debugged."""

    def __init__(
        self, scenario: Scenario, seed: int | None = None, tcb_layout: str | None = None
    ) -> None:
        if tcb_layout is not None:  # the same scenario with another TCB layout (§8.6)
            kernel = dataclasses.replace(scenario.kernel, tcb_layout=tcb_layout)
            scenario = dataclasses.replace(scenario, kernel=kernel)
        self.tcb_layout = tcb_layout
        self.scenario = scenario
        self.seed = seed
        self.system = System(scenario, seed=seed)
        self.log: list[LogEntry] = []  # the input log (see the module docstring)
        self.position = 0  # inputs that were steps
        self.marks = Marks()
        # thread -> the last label it passed on a kernel path (not the scheduler's or the
        # mailbox plumbing's, which every path goes through): what the IPC phase pane shows.
        self.last_phase: dict[str, str] = {}
        self.breakpoints: list[Breakpoint] = []
        self.watches: list[Watch] = []
        self.records: list[str] = []  # what log-only breakpoints saw
        self.records_made = 0  # how many ever, kept or not (a relayout finds a step's new ones)
        self.commands: list[str] = []  # the commands run, in order (lab checks read them)
        self.stops: list[str] = []  # each new stop reason, in order
        self.meta: dict[str, str] = {}  # what a front end keeps with the session (its lab)
        self._next_bp = 1
        self.focus_cpu = 1
        self.focus_thread: str | None = None
        # Focus follows each stop to the CPU and thread that stopped (as gdb switches to
        # the thread that hit), unless the user pinned it (`focus ... pin`).
        self.focus_pinned = False
        self.focus_via: str | None = None  # the proxy whose stop put focus on its client
        self.stop_reason = "start"
        self.interrupted = False  # set from a signal handler: the run stops at the next step
        # A schedule being followed (`load schedule`, from `l4tui explore`): the inputs that
        # replay a race, taken by the plain steps; a stop before each of its preemptions.
        self.schedule: list[LogEntry] | None = None
        self.schedule_stops: dict[int, str] = {}
        self.plan_at = 0  # how many of the schedule's inputs have been taken
        self.observer: Callable[[Any], None] | None = None  # told of every micro-op (a trace)
        # Where the machine is when it is not at the end of the log: (log entries applied,
        # micro-ops taken). None: at the end — the normal state. A loaded session's fresh
        # machine and a restored checkpoint are behind; `goto` replays forward from there.
        self.behind: tuple[int, int] | None = None
        # Fork checkpoints (l4tui/checkpoints.py) in an engine process; None: going back
        # replays from the start. `checkpoint_at`: the position of the next one to take.
        self.checkpoints: Checkpoints | None = None
        self.checkpoint_at = NEVER
        self.generation = next(_GENERATIONS)  # a new history (a load, a relayout): new number

    # --- the one way the machine moves ------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.system.ended is not None

    def _step(self, cpu: int | None = None) -> Any:
        """One micro-op (timed, or on `cpu`), logged; None if nothing ran (`stop_reason` says)."""
        if self.ended:
            self.stop_reason = self._end_reason()
            return None
        m = self.system.machine
        plan = self.schedule
        if cpu is None and plan is not None:
            while self.plan_at < len(plan):  # the schedule says which CPU steps
                entry = plan[self.plan_at]
                self.plan_at += 1
                if not isinstance(entry, list):
                    cpu = entry
                    break
                self.system.advance(cpu=entry[1])  # it found nothing to run there
                self.log.append(entry)
            else:
                cpu = None
        elif cpu is None and m.policy == "manual":
            self.stop_reason = "manual scheduling: name the CPU (step cpu N)"
            return None
        op = self.system.advance(cpu=cpu)
        if op is None:
            # Finding that nothing can run applied the events due by then: replay must too.
            self.log.append(["idle", cpu])
            self.stop_reason = f"cpu{cpu} has nothing to run" if cpu else self._end_reason()
            return None
        self.log.append(cpu)
        self.position += 1
        if self.observer is not None:
            self.observer(op)
        if type(op) is Phase:
            c = m.last_cpu
            cd = self.system.kernel.cpus[c.index]
            self.marks.add(self.position, op.label, c.number, cd.current.name)
            if not op.label.startswith(PLUMBING):
                self.last_phase[cd.current.name] = op.label
        return op

    def _end_reason(self) -> str:
        why = self.system.ended
        if why == "deadlock":
            return f"run ended: deadlock: {deadlock_message(self.system)}"
        return f"run ended: {why}"

    def _stopped(self, op: Any) -> str | None:
        """Why the machine must stop after `op` (a breakpoint or watchpoint), or None."""
        reason = None
        if self.watches:
            reason = self._watch_hit()
        if self.breakpoints:
            why = self._break_hit(op)
            if why is not None and reason is None:
                reason = why
        return reason

    def _break_hit(self, op: Any) -> str | None:
        m = self.system.machine
        c = m.last_cpu
        cd = self.system.kernel.cpus[c.index]
        t = cd.current
        pending = (t.injected[0] if t.injected else t.pc.op) if t.pc is not None else None
        evs = events(op, c.number, t.name, pending)
        if not evs:
            return None
        reason = None
        for bp in list(self.breakpoints):
            if not bp.enabled:
                continue
            e = next((e for e in evs if bp.matches(e)), None)
            if e is None or (bp.cond is not None and not self._holds(bp)):
                continue
            bp.hits += 1
            if bp.hits <= bp.after:
                continue
            what = _event_text(e)
            if bp.log_only:
                self.records.append(f"#{bp.number} micro-op {self.position}: {what}")
                self.records_made += 1
                if len(self.records) >= 2 * RECORDS:  # a history: the newest RECORDS stay
                    del self.records[:-RECORDS]
                continue
            if reason is None:
                reason = f"breakpoint {bp.number}: {what}"
            if bp.temporary:
                self.breakpoints.remove(bp)
        return reason

    def _holds(self, bp: Breakpoint) -> bool:
        try:
            return expr.holds(self, bp.cond or "")
        except CommandError:
            return False  # checked when set; a condition cannot go bad later

    def _watch_hit(self) -> str | None:
        reason = None
        cpu = self.system.machine.last_cpu.number
        for w in self.watches:
            now = self._probe(w)
            if now != w.value:
                if reason is None:
                    was, is_ = self.watch_text(w, w.value), self.watch_text(w, now)
                    reason = f"watchpoint {w.expr}: {was} -> {is_} (cpu{cpu})"
                w.value = now
        return reason

    def _probe(self, w: Watch) -> int | str:
        m = self.system.machine
        if w.cpu is None:
            return m.memory.read(w.paddr)
        from machine.cache import STATE_NAMES

        return STATE_NAMES[m.coherence.state(w.cpu - 1, w.paddr)]

    def _run(self, done: Callable[[Any], str | None], limit: int | None = None) -> str:
        """Step until `done(op)` gives a reason, a breakpoint or watchpoint fires, or the end,
        at most `limit` micro-ops (default `LIMIT`, read now: a test may lower it); focus
        then follows the stop."""
        try:
            return self._run_steps(done, LIMIT if limit is None else limit)
        finally:
            self.follow_stop()

    def _run_steps(self, done: Callable[[Any], str | None], limit: int) -> str:
        self.interrupted = False
        for _ in range(limit):
            if self.position >= self.checkpoint_at:
                self.checkpoints.take(self)  # a sleeping fork of this engine, here
            if self.interrupted:
                self.stop_reason = f"interrupted at micro-op {self.position}"
                return self.stop_reason
            op = self._step()
            if op is None:
                return self.stop_reason
            why = self._stopped(op) if self.breakpoints or self.watches else None
            if why is None and self.schedule_stops and self.schedule is not None:
                why = self.schedule_stops.get(self.position)
            if why is None:
                why = done(op)
            if why is not None:
                self.stop_reason = why
                return why
        # Where and why: one command runs at most `limit` micro-ops (LIMIT), so a scenario
        # that never ends, or `stepi 10**12`, comes back; running the command again goes on.
        self.stop_reason = self._paused(limit)
        return self.stop_reason

    def _paused(self, ran: int) -> str:
        return (
            f"paused after {ran:,} micro-ops, at micro-op {self.position}: "
            "the most one command runs (run it again to go on)"
        )

    # --- forwards -----------------------------------------------------------------------

    def stepi(self, n: int = 1) -> str:
        """`n` micro-ops, at most `LIMIT` of them; 0 moves nothing (the `stepi` command
        takes 1 or more)."""
        if n < 0:
            raise CommandError(f"N must be 0 or more, not {n}")
        left = [n]

        def done(op: Any) -> str | None:
            left[0] -= 1
            if left[0] > 0:
                return None
            last = self.system.machine.last_cpu.number
            return f"stepped; last {self.op_said(op)} on cpu{last}"

        return self._run(done) if n > 0 else "stepped"

    def step(self, n: int = 1) -> str:
        """Run until `n` phase labels have passed (a phase step); 0 moves nothing."""
        if n < 0:
            raise CommandError(f"N must be 0 or more, not {n}")
        left = [n]

        def done(op: Any) -> str | None:
            if type(op) is Phase:
                left[0] -= 1
                if left[0] <= 0:
                    return f"phase {op.label} on cpu{self.system.machine.last_cpu.number}"
            return None

        return self._run(done) if n > 0 else "stepped"

    def step_cpu(self, cpu: int) -> str:
        """One micro-op on CPU `cpu`, whatever the policy (forcing an interleaving)."""
        self.system.machine.cpu(cpu)  # MachineError for a CPU that is not there
        left = self.schedule is not None and self.plan_at < len(self.schedule)
        self.schedule = None  # choosing by hand leaves a schedule being followed
        op = self._step(cpu)
        if op is None:
            return self.stop_reason
        why = self._stopped(op) if self.breakpoints or self.watches else None
        label = f": {op.label}" if type(op) is Phase else f": {self.op_said(op)}"
        self.stop_reason = why or f"stepped cpu{cpu}{label}"
        self.follow_stop()
        if left:
            self.stop_reason += " (you left the schedule; steps are timed again)"
        return self.stop_reason

    def op_said(self, op: Any) -> str:
        """The micro-op just executed, its kernel word named: `Read snd.thread_state = 0x3
        (polling)`; other ops as `op_text` gives them."""
        from l4tui.examine import access

        return access(self, op, self.system.machine.last_result) or op_text(op)

    def watch_text(self, w: Watch, value: int | str) -> str:
        """A watched value as the user reads it: a MESI letter, or the word in hex and what
        it stands for (`0x000a0401 = cli`, `0x2 = waiting`)."""
        if isinstance(value, str):
            return value
        from l4tui.examine import meaning

        said = meaning(self.system.kernel, w.paddr, value)
        return f"{value:#x}" + (f" = {said}" if said else "")

    def follow_stop(self) -> None:
        """Focus the CPU that ran last and its thread — for a proxy, the thread it works for
        (§8.3.5: it runs the path in that thread's stead). Not when the focus is pinned."""
        from l4tui.panes import works_for

        c = self.system.machine.last_cpu
        if self.focus_pinned or c is None:
            return
        cd = self.system.kernel.cpus[c.index]
        names = {t.name for t in self.scenario.threads()}
        self.focus_cpu, self.focus_via = c.number, None
        running = cd.current.name
        if running in names:
            self.focus_thread = running
            return
        job = works_for(self, running)
        if job is not None and job[0] in names:
            self.focus_thread, self.focus_via = job[0], running
        elif cd.current is not cd.idle:  # a proxy for nobody we know: the proxy itself
            self.focus_thread = running
        else:  # idle: the CPU's own thread (focused_thread)
            self.focus_thread = None

    def set_focus(
        self, cpu: int | None = None, thread: str | None = None, pin: bool = False
    ) -> None:
        """The user's focus: a CPU (its thread then follows) or a thread (and its CPU, so the
        CPU marker and the TCB shown agree); `pin` keeps it."""
        if cpu is not None:
            self.focus_cpu, self.focus_thread = cpu, None
        if thread is not None:
            self.focus_thread = thread
            t = self.system.kernel.by_name.get(thread)
            if t is not None:
                self.focus_cpu = t.cpu
        self.focus_via = None
        self.focus_pinned = pin

    def partner_of_focus(self) -> str | None:
        """The focused thread's IPC partner (its TCB's partner word, or the destination of the
        request a proxy carries for it): one key away in the monitor."""
        k = self.system.kernel
        name = self.focused_thread()
        t = k.by_name.get(name)
        if t is None:
            return None
        names = {x.name for x in self.scenario.threads()}
        if self.focus_via is not None:
            from l4tui.panes import works_for

            job = works_for(self, self.focus_via)
            if job is not None and job[0] == name and job[1] in names:
                return job[1]
        other = k.by_word(k.field(t, "partner"))
        return other.name if other is not None and other.name in names else None

    def focused_thread(self) -> str:
        """The focused thread; else the scenario thread running on the focused CPU, else the
        first scenario thread placed there (idle threads and proxies are not in focus)."""
        if self.focus_thread is not None:
            return self.focus_thread
        names = [t.name for t in self.scenario.threads()]
        cd = self.system.kernel.cpus[self.focus_cpu - 1]
        if cd.current.name in names:
            return cd.current.name
        by_name = self.system.kernel.by_name
        here = [n for n in names if by_name[n].cpu == self.focus_cpu]
        return (here or names or [cd.current.name])[0]

    def next(self) -> str:
        """Run over the rest of the focused thread's phase: stop at its next phase label."""
        name = self.focused_thread()
        k = self.system.kernel

        def done(op: Any) -> str | None:
            if type(op) is Phase:
                c = self.system.machine.last_cpu
                if k.cpus[c.index].current.name == name:
                    return f"{name}: phase {op.label} on cpu{c.number}"
            return None

        return self._run(done)

    def finish(self) -> str:
        """Run until the focused thread's system call returns (its next result)."""
        name = self.focused_thread()
        t = self.system.kernel.by_name.get(name)
        if t is None or t.pc is None:
            raise CommandError(f"{name} makes no system calls; focus a thread (focus thread T)")
        count = len(t.results)

        def done(op: Any) -> str | None:
            if len(t.results) > count:
                r = t.results[-1]
                how = "ok" if r.get("ok") else f"error {r.get('error')}"
                return f"{name}: {r.get('op')} returned ({how})"
            return None

        return self._run(done)

    def cont(self, limit: int | None = None) -> str:
        return self._run(lambda op: None, limit)

    def cont_for(self, seconds: float = LIVE_SECONDS, limit: int = LIMIT) -> str:
        """`continue` for about `seconds` of host time, at most `limit` micro-ops: a slice
        of the TUI's live continue. Where it stops is host-timed, but only positions are
        logged, so replay stays exact; a stop other than the slice's end is `cont`'s."""
        deadline = time.monotonic() + seconds
        start = self.position

        def done(op: Any) -> str | None:
            ran = self.position - start
            if ran % LIVE_SLICE or time.monotonic() < deadline:
                return None
            return self._paused(ran)

        return self._run(done, limit)

    def run_cycles(self, cycles: int) -> str:
        m = self.system.machine
        if m.policy == "manual":  # before any look ahead: nothing may change
            self.stop_reason = "manual scheduling: name the CPU (step cpu N)"
            return self.stop_reason
        limit = m.now + m.ticks(cycles)

        def over() -> bool:
            if m.now < limit and any(c.waiting is None for c in m.cpus):
                return False  # a CPU runs below the limit: no need to look ahead
            got = m.peek()  # pure: no input to log
            return got is None or got[0].clock >= limit

        if over():
            self.stop_reason = f"ran {cycles} cycles"
            return self.stop_reason
        return self._run(lambda op: f"ran {cycles} cycles" if over() else None)

    def set_policy(self, policy: str) -> None:
        self.system.machine.set_policy(policy)
        self.log.append(policy)

    def inject(self, thread: str, op_name: str, args: list[str]) -> None:
        """Run `op_name ARGS` as `thread`'s next operation (logged, so replay repeats it)."""
        from l4tui.inject import build

        t = self.system.kernel.by_name[thread]
        op = build(op_name, args, [x.name for x in self.scenario.threads()])
        if self.system.kernel.state(t) == "inactive":
            raise CommandError(f"{t.name} is inactive: it runs no more ops")
        t.injected.append(op)
        self.log.append(["inject", thread, op_name, *args])

    def record(self, line: str) -> None:
        """Note a command that ran and where it left the machine (lab checks read these)."""
        self.commands.append(" ".join(line.split()))
        if not self.stops or self.stops[-1] != self.stop_reason:
            self.stops.append(self.stop_reason)

    def interrupt(self) -> None:
        """Stop a running `continue` at the next micro-op (safe from a signal handler)."""
        self.interrupted = True

    def rerun(self, start: Callable[[System], Callable[[Any], None]]) -> Session:
        """This session's inputs again on a fresh system, to where it is now.

        `start(system)` is called before the first step and returns the function
        told of every micro-op (a trace writer). Returns the re-run session.
        """
        twin = Session(self.scenario, self.seed, tcb_layout=self.tcb_layout)
        twin.observer = start(twin.system)
        for entry in self.log:
            twin._replay(entry)
        return twin

    def _steps_taken(self) -> int:
        """Inputs in the log that a schedule also holds: steps, timed or on a CPU, and idle ones."""
        return sum(
            1
            for x in self.log
            if x is None or (isinstance(x, int) and not isinstance(x, bool)) or _idle(x)
        )

    def follow(self, plan: list[LogEntry], stops: dict[int, str]) -> None:
        """Take the steps from `plan` (a schedule from the start), stopping at `stops`."""
        self.schedule, self.schedule_stops = list(plan), dict(stops)
        self.plan_at = self._steps_taken()

    # --- backwards ----------------------------------------------------------------------

    def goto(self, position: int) -> str:
        """Re-create the state after `position` inputs: forward from where the machine is,
        or back to the nearest checkpoint at or before it (else to the start), then forward.

        The machine is deterministic, so the replay reproduces every bit; no
        breakpoint or watchpoint fires while replaying. With fork checkpoints
        (an engine process, checkpoints.py), going back does not return here:
        the checkpoint's fork takes this session's debugger state and runs the
        command again, and its `goto` then replays forward from the checkpoint.
        A command must therefore change nothing before its `goto`.
        """
        position = max(0, min(position, self.position))
        applied, at = self.behind or (len(self.log), self.position)
        if position < at:
            if self.checkpoints is not None:
                self.checkpoints.restore(self, position)  # returns if none is at or before
            self.system = System(self.scenario, seed=self.seed)
            self.last_phase = {}
            applied = at = 0
        # The entries to replay; the log itself is cut in place (at 10^6 micro-ops a copy
        # of it is a tenth of a reverse command's time).
        log = self.log[applied:]
        del self.log[applied:]
        self.position, self.behind = at, None
        self.marks.truncate(at)
        i = 0
        while i < len(log) and self.position < position:
            if self.position >= self.checkpoint_at:
                self.checkpoints.take(self)
            entry = log[i]
            if entry is None:
                # A run of timed steps: the hot loop of every reverse command.
                j = i
                end = min(position, self.checkpoint_at)
                while j < len(log) and log[j] is None and self.position + (j - i) < end:
                    j += 1
                if not self._replay_timed(j - i):
                    break
                i = j
                continue
            if not self._replay(entry):
                break
            i += 1
        while i < len(log) and not (log[i] is None or isinstance(log[i], int)):
            self._replay(log[i])  # inputs given at this position, before the next step
            i += 1
        if self.checkpoints is not None:
            self.checkpoints.truncate(self)  # those past the new end of history go
        for w in self.watches:
            w.value = self._probe(w)
        if self.schedule is not None:
            self.plan_at = self._steps_taken()
        self.stop_reason = f"back at micro-op {self.position}"
        self.follow_stop()
        return self.stop_reason

    def _replay_timed(self, n: int) -> bool:
        """`n` timed steps as `_step` would take them, without its per-step checks."""
        system, m, marks, kcpus = (
            self.system,
            self.system.machine,
            self.marks,
            self.system.kernel.cpus,
        )
        advance = system.advance
        base = self.position
        for done in range(n):
            op = advance()
            if op is None:  # pragma: no cover - a logged step always runs again
                self.log.extend([None] * done)
                self.position = base + done
                return False
            if type(op) is Phase:
                c = m.last_cpu
                name = kcpus[c.index].current.name
                marks.add(base + done + 1, op.label, c.number, name)
                if not op.label.startswith(PLUMBING):
                    self.last_phase[name] = op.label
        self.log.extend([None] * n)
        self.position = base + n
        return True

    def _replay(self, entry: LogEntry) -> bool:
        if isinstance(entry, str):
            self.set_policy(entry)
        elif isinstance(entry, list) and entry[0] == "idle":
            self._step(entry[1])
        elif isinstance(entry, list):
            self.inject(entry[1], entry[2], list(entry[3:]))
        elif self._step(entry) is None:
            return False
        return True

    def reverse_stepi(self, n: int = 1) -> str:
        """Back `n` micro-ops, at most to the start; 0: here again (a replay to here)."""
        if n < 0:
            raise CommandError(f"N must be 0 or more, not {n}")
        return self.goto(self.position - n)

    def reverse_step(self, n: int = 1) -> str:
        """Back to just after the n-th phase label before the current position, or to the
        start if there are fewer; 0: here again (a replay to here)."""
        if n < 0:
            raise CommandError(f"N must be 0 or more, not {n}")
        if n == 0:
            return self.goto(self.position)
        earlier = self.marks.positions_before(self.position)
        target = self.marks.position(earlier - n) if earlier >= n else 0
        return self.goto(target)

    def reverse_continue(self) -> str:
        """Back to just before the last breakpoint or watchpoint hit behind us.

        Just before: a `stepi` then redoes the step that hit — for a watchpoint,
        the write that changed the field ("who last wrote this?").
        """
        here = self.position
        # A checkpoint's fork runs this command again (goto): the stops found here go with
        # the debugger state, so the replay from the start that finds them is not repeated.
        hits = self.__dict__.pop("stops_found", None)
        if hits is None:
            hits = self._stop_positions()
        earlier = [p for p in hits if p < here]
        self.stops_found = hits
        try:
            if not earlier:
                return f"{self.goto(0)} (no earlier stop: the start)"
            reason = hits[earlier[-1]]
            self.goto(earlier[-1])
        finally:
            self.__dict__.pop("stops_found", None)
        self.stop_reason = f"back at micro-op {self.position}, just before {reason}"
        return self.stop_reason

    def _stop_positions(self) -> dict[int, str]:
        """Where a breakpoint or watchpoint would stop, found by a replay.

        Keys are the positions just before the step that hit.
        """
        bps = [
            dataclasses.replace(b, hits=0, temporary=False) for b in self.breakpoints if b.enabled
        ]
        watches = [Watch(w.expr, w.paddr, 0, w.cpu) for w in self.watches]
        if self.checkpoints is not None and not any(b.after for b in bps):
            # Backwards from the checkpoints, segment by segment (a count `after N` needs
            # the hits from the start: that one replays all).
            found = self.checkpoints.scan_stops(self, bps, watches)
            if found is not None:
                return found
        fresh = Session(self.scenario, self.seed)
        fresh.breakpoints, fresh.watches = bps, watches
        for w in fresh.watches:
            w.value = fresh._probe(w)
        out: dict[int, str] = {}
        for entry in self.log:
            if entry is None or isinstance(entry, int):
                op = fresh._step(entry)
                if op is None:
                    break
                why = fresh._stopped(op)
                if why is not None:
                    out[fresh.position - 1] = why
            else:
                fresh._replay(entry)
        return out

    # --- where the session lives -----------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`func(session, *args)` where the session lives: here, a plain call; for a session
        in an engine process (engine.RemoteSession), there, with the result sent back."""
        return func(self, *args, **kwargs)

    def debugger_state(self) -> dict[str, Any]:
        """Everything but the machine and what goes with it (`MACHINE_SIDE`): what a
        checkpoint's fork takes over from the engine that asked for it."""
        return {k: v for k, v in self.__dict__.items() if k not in MACHINE_SIDE}

    def take_over(self, state: dict[str, Any]) -> None:
        """Become the session `state` came from, this machine being where it is (behind)."""
        here = self.behind or (len(self.log), self.position)
        self.__dict__.update(state)
        self.behind = here

    # --- save and load ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole session as plain data (what `save` writes; saved.py reads it back)."""
        from l4tui.saved import state

        return state(self)

    def save(self, path: str) -> str:
        """Write the session — scenario, seed, inputs, breakpoints, watchpoints — as JSON.

        Written beside and renamed into place, so a crash never leaves half a file.
        """
        with atomic_text(path) as f:
            f.write(json.dumps(self.state()) + "\n")
        return f"saved {self.position} micro-ops of {self.scenario.name} to {path}"

    def add_break(self, bp: Breakpoint) -> Breakpoint:
        bp.number = self._next_bp
        self._next_bp += 1
        self.breakpoints.append(bp)
        return bp

    def delete_break(self, number: int | None) -> int:
        before = len(self.breakpoints)
        keep = [] if number is None else [b for b in self.breakpoints if b.number != number]
        self.breakpoints = keep
        return before - len(self.breakpoints)

    def add_watch(self, expr_text: str, paddr: int, cpu: int | None = None) -> Watch:
        w = Watch(expr_text, paddr, 0, cpu)
        w.value = self._probe(w)
        self.watches.append(w)
        return w

    # --- views ----------------------------------------------------------------------------

    def cpus(self) -> list[CpuView]:
        k, m = self.system.kernel, self.system.machine
        out = []
        for cd in k.cpus:
            c = m.cpu(cd.number)
            name = "idle" if cd.current is cd.idle else cd.current.name
            out.append(
                CpuView(
                    cd.number, c.clock // m.tpc, name, c.mode, c.phase or "-", c.waiting is not None
                )
            )
        return out

    def threads(self) -> list[ThreadView]:
        k = self.system.kernel
        tpc = self.system.machine.tpc
        out = []
        for spec in self.scenario.threads():
            t = k.by_name[spec.name]
            partner = k.by_word(k.field(t, "partner"))
            out.append(
                ThreadView(
                    t.name,
                    str(t.tid),
                    t.cpu,
                    k.state(t),
                    k.field(t, "priority"),
                    partner.name if partner is not None else "-",
                    "-" if t.deadline is None else f"{t.deadline // tpc:,}",
                    len(t.results),
                )
            )
        return out

    def ready(self) -> dict[int, list[str]]:
        return {cd.number: self.system.ready_list(cd) for cd in self.system.kernel.cpus}


def _idle(entry: Any) -> bool:
    return isinstance(entry, list) and bool(entry) and entry[0] == "idle"


def op_text(op: Any) -> str:
    """A micro-op as a debugger shows it: addresses in hex, contexts by name."""
    parts = []
    for f in dataclasses.fields(op):
        v = getattr(op, f.name)
        if f.name in ("addr", "dest") and isinstance(v, int):
            v = f"{v:#x}"
        elif hasattr(v, "name") and not isinstance(v, str):
            v = v.name
        parts.append(f"{f.name}={v}")
    return f"{type(op).__name__}({', '.join(parts)})"


def _event_text(e: Event) -> str:
    if e.kind == "phase":
        return f"{e.what} on cpu{e.cpu} ({e.thread})"
    if e.kind == "syscall":
        return f"syscall {e.what} by {e.thread} on cpu{e.cpu}"
    if e.kind == "ipi":
        return f"IPI {e.what} on cpu{e.cpu}"
    return f"{e.kind} by {e.thread} on cpu{e.cpu}"
