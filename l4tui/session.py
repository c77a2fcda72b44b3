"""The debugger session: one machine and kernel, stepped, stopped and inspected (DESIGN.md §1).

A `Session` owns a `System` built from a scenario, the breakpoints,
watchpoints and focus, and answers the views every front end shows as plain
data. It imports no UI library: the line console and the TUI drive the same
object. Stepping goes through `System.advance`, so a session and `l4tui run`
agree on when a run is over.

It keeps the input log (inputs.py) and the phase labels passed (marks.py) as
it steps; going backwards replays them (history.py, with fork checkpoints in
an engine process, checkpoints.py); breakpoints and watchpoints are evaluated
by stops.py, the focus follows stops by focus.py, the views are panes.py's,
and saving is saved.py's. The kernel is read through kernel/query.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernel import query
from kernel.scenario import Scenario
from kernel.system import System
from l4tui import focus, history, panes, saved, stops
from l4tui.breakpoints import Breakpoint, Watch
from l4tui.examine import access
from l4tui.files import atomic_text
from l4tui.grammar import CommandError
from l4tui.inject import build
from l4tui.inputs import Idle, Inject, LogEntry, SetPolicy, step_cpu, step_on
from l4tui.marks import PLUMBING, Marks
from l4tui.panes import CpuView, ThreadView
from l4tui.runner.summary import deadlock_message
from machine.ops import Phase

if TYPE_CHECKING:
    from l4tui.checkpoints import Checkpoints
    from machine.cpu import Cpu
    from machine.machine import Machine

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


class Session:
    """A scenario being debugged."""

    # The stops `reverse-continue` found, while it goes back (history.reverse_continue).
    stops_found: dict[int, str]

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
                if not isinstance(entry, Idle):
                    cpu = step_cpu(entry)
                    break
                self.system.advance(cpu=entry.cpu)  # it found nothing to run there
                self.log.append(entry)
            else:
                cpu = None
        elif cpu is None and m.policy == "manual":
            self.stop_reason = "manual scheduling: name the CPU (step cpu N)"
            return None
        op = self.system.advance(cpu=cpu)
        if op is None:
            # Finding that nothing can run applied the events due by then: replay must too.
            self.log.append(Idle(cpu))
            self.stop_reason = f"cpu{cpu} has nothing to run" if cpu else self._end_reason()
            return None
        self.log.append(step_on(cpu))
        self.position += 1
        if self.observer is not None:
            self.observer(op)
        if type(op) is Phase:
            c = _ran_on(m)
            name = query.current_name(self.system.kernel, c.number)
            self.marks.add(self.position, op.label, c.number, name)
            if not op.label.startswith(PLUMBING):
                self.last_phase[name] = op.label
        return op

    def _end_reason(self) -> str:
        why = self.system.ended
        if why == "deadlock":
            return f"run ended: deadlock: {deadlock_message(self.system)}"
        return f"run ended: {why}"

    def _stopped(self, op: Any) -> str | None:
        """Why the machine must stop after `op` (a breakpoint or watchpoint), or None."""
        return stops.stopped(self, op)

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
                self.checkpoints.take(self)  # type: ignore[union-attr]  # a fork of this engine
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
            last = _ran_on(self.system.machine).number
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
                    return f"phase {op.label} on cpu{_ran_on(self.system.machine).number}"
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
        return access(self, op, self.system.machine.last_result) or op_text(op)

    def watch_text(self, w: Watch, value: int | str) -> str:
        """A watched value as the user reads it (stops.watch_text)."""
        return stops.watch_text(self, w, value)

    def follow_stop(self) -> None:
        """Focus the CPU that ran last and its thread, unless pinned (focus.py)."""
        focus.follow_stop(self)

    def set_focus(
        self, cpu: int | None = None, thread: str | None = None, pin: bool = False
    ) -> None:
        """The user's focus: a CPU or a thread (and its CPU); `pin` keeps it (focus.py)."""
        focus.set_focus(self, cpu, thread, pin)

    def partner_of_focus(self) -> str | None:
        """The focused thread's IPC partner, one key away in the monitor (focus.py)."""
        return focus.partner_of_focus(self)

    def focused_thread(self) -> str:
        """The focused thread, or the one the focused CPU stands for (focus.py)."""
        return focus.focused_thread(self)

    def next(self) -> str:
        """Run over the rest of the focused thread's phase: stop at its next phase label."""
        name = self.focused_thread()
        k = self.system.kernel

        def done(op: Any) -> str | None:
            if type(op) is Phase:
                c = _ran_on(self.system.machine)
                if query.current_name(k, c.number) == name:
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
        self.log.append(SetPolicy(policy))

    def inject(self, thread: str, op_name: str, args: list[str]) -> None:
        """Run `op_name ARGS` as `thread`'s next operation (logged, so replay repeats it)."""
        t = self.system.kernel.by_name[thread]
        op = build(op_name, args, [x.name for x in self.scenario.threads()])
        if not query.inject(self.system.kernel, t, op):
            raise CommandError(f"{t.name} is inactive: it runs no more ops")
        self.log.append(Inject(thread, op_name, tuple(args)))

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
            history.replay(twin, entry)
        return twin

    def follow(self, plan: list[LogEntry], stops: dict[int, str]) -> None:
        """Take the steps from `plan` (a schedule from the start), stopping at `stops`."""
        self.schedule, self.schedule_stops = list(plan), dict(stops)
        self.plan_at = history.steps_taken(self)

    # --- backwards (history.py) -------------------------------------------------------

    def goto(self, position: int) -> str:
        """Re-create the state after `position` inputs (history.goto): forward from where the
        machine is, or back to the nearest checkpoint at or before it, then forward."""
        return history.goto(self, position)

    def reverse_stepi(self, n: int = 1) -> str:
        """Back `n` micro-ops, at most to the start; 0: here again (a replay to here)."""
        if n < 0:
            raise CommandError(f"N must be 0 or more, not {n}")
        return self.goto(self.position - n)

    def reverse_step(self, n: int = 1) -> str:
        """Back to just after the n-th phase label before here, or to the start."""
        return history.reverse_step(self, n)

    def reverse_continue(self) -> str:
        """Back to just before the last breakpoint or watchpoint hit behind us."""
        return history.reverse_continue(self)

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

    def become(self, other: Session) -> None:
        """Be `other` from now on: a loaded session, a followed schedule, the run under the
        other TCB layout. The front ends hold this object (panes, keys, the engine's
        handle), so its contents are replaced, not the object; nothing of the old session
        stays behind (a cached list of stops would describe the old run)."""
        self.__dict__.clear()
        self.__dict__.update(other.__dict__)

    # --- save and load ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole session as plain data (what `save` writes; saved.py reads it back)."""
        return saved.state(self)

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
        w.value = stops.probe(self, w)
        self.watches.append(w)
        return w

    # --- views ----------------------------------------------------------------------------

    def cpus(self) -> list[CpuView]:
        return panes.cpu_views(self)

    def threads(self) -> list[ThreadView]:
        return panes.thread_views(self)

    def ready(self) -> dict[int, list[str]]:
        k = self.system.kernel
        return {c.number: query.ready_names(k, c.number) for c in self.system.machine.cpus}


def _ran_on(m: Machine) -> Cpu:
    """The CPU that ran the last micro-op (after a step there is one)."""
    c = m.last_cpu
    assert c is not None
    return c


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
