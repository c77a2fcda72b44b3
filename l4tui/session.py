"""The debugger session: one machine and kernel, stepped and inspected (DESIGN.md §1 l4tui/).

A `Session` owns a `System` built from a scenario, the breakpoints and the
focus, and answers the views every front end shows as plain data. It
imports no UI library: the line console and the TUI drive the same object.
Stepping goes through `System.advance`, so a session and `l4tui run` agree
on when a run is over.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.scenario import Scenario
from kernel.system import System
from machine.errors import ConfigError
from machine.ops import Phase

LIMIT = 5_000_000  # micro-ops a single continue may take before it pauses


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
    results: int


WATCHED = object()  # what _advance returns when a watchpoint fired


@dataclass(slots=True)
class Watch:
    """A watchpoint on one word of memory (a TCB field)."""

    expr: str
    paddr: int
    value: int


@dataclass(slots=True)
class Breakpoint:
    number: int
    glob: str
    hits: int = 0


class Session:
    """A scenario being debugged."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.system = System(scenario, seed=seed)
        # The input log: what the machine was told, in order — a timed step is
        # None, a hand-picked step the CPU number, a policy change its name.
        # Replaying it on a fresh system reproduces the state exactly.
        self.log: list[int | str | None] = []
        self.watches: list[Watch] = []
        self.breakpoints: list[Breakpoint] = []
        self._next_bp = 1
        self.focus_cpu = 1
        self.focus_thread: str | None = None
        self.stop_reason = "start"

    # --- stepping ------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.system.ended is not None

    def _advance(self, cpu: int | None = None) -> Any:
        if self.ended:
            return None
        m = self.system.machine
        if cpu is None and m.policy == "manual":
            self.stop_reason = "manual scheduling: name the CPU (step cpu N)"
            return None
        op = self.system.advance() if cpu is None else m.step(cpu)
        if op is None:
            if cpu is not None:
                self.stop_reason = f"cpu{cpu} has nothing to run"
                return None
            self.stop_reason = f"run ended: {self.system.ended}"
            return None
        self.log.append(cpu)
        if self.watches and self._watch_hit():
            return WATCHED
        return op

    def _watch_hit(self) -> bool:
        mem = self.system.machine.memory
        hit = False
        for w in self.watches:
            now = mem.read(w.paddr)
            if now != w.value:
                cpu = self.system.machine.last_cpu.number
                self.stop_reason = f"watchpoint {w.expr}: {w.value} -> {now} (cpu{cpu})"
                w.value = now
                hit = True
        return hit

    def step_cpu(self, cpu: int) -> str:
        """One micro-op on CPU `cpu`, whatever the policy (forcing an interleaving)."""
        self.system.machine.cpu(cpu)  # MachineError for a CPU that is not there
        op = self._advance(cpu)
        if op is None:
            return self.stop_reason
        if op is not WATCHED:
            self.stop_reason = f"stepped cpu{cpu}"
        return self.stop_reason

    @property
    def position(self) -> int:
        """How many inputs (micro-ops) the session has been given."""
        return sum(1 for x in self.log if not isinstance(x, str))

    def goto(self, position: int) -> str:
        """Re-create the state after `position` inputs by replaying the log from the start.

        The machine is deterministic, so the replay reproduces every bit; a
        breakpoint or watchpoint does not fire while replaying.
        """
        if position < 0:
            position = 0
        log, self.log = self.log, []
        watches, self.watches = self.watches, []
        self.system = System(self.scenario, seed=self.seed)
        m = self.system.machine
        done = 0
        for entry in log:
            if done >= position and not isinstance(entry, str):
                break
            if isinstance(entry, str):
                m.set_policy(entry)
                self.log.append(entry)
                continue
            if self._advance(entry) is None:
                break
            done += 1
        for w in watches:
            w.value = m.memory.read(w.paddr)
        self.watches = watches
        self.stop_reason = f"back at micro-op {self.position}"
        return self.stop_reason

    def reverse_stepi(self, n: int = 1) -> str:
        return self.goto(self.position - n)

    def reverse_step(self, n: int = 1) -> str:
        """Back to the start of the n-th phase label before the current position."""
        starts = self._phase_positions()
        here = self.position
        earlier = [p for p in starts if p < here]
        target = earlier[-n] if len(earlier) >= n else 0
        return self.goto(target)

    def reverse_continue(self) -> str:
        """Back to the last breakpoint or watchpoint hit before the current position."""
        here = self.position
        hits = self._stop_positions()
        earlier = [p for p in hits if p < here]
        target = earlier[-1] if earlier else 0
        reason = self.goto(target)
        return reason if earlier else f"{reason} (no earlier stop: the start)"

    def _replay_positions(self, want: Any) -> list[int]:
        """Positions (after which input) where `want(op)` held, found by a replay."""
        fresh = Session(self.scenario, self.seed)
        fresh.breakpoints = [Breakpoint(b.number, b.glob) for b in self.breakpoints]
        out = []
        fresh.watches = [
            Watch(w.expr, w.paddr, fresh.system.machine.memory.read(w.paddr)) for w in self.watches
        ]
        for entry in self.log:
            if isinstance(entry, str):
                fresh.system.machine.set_policy(entry)
                continue
            op = fresh._advance(entry)
            if op is None:
                break
            if want(fresh, op):
                out.append(fresh.position - 1)
        return out

    def _phase_positions(self) -> list[int]:
        return self._replay_positions(lambda s, op: type(op) is Phase)

    def _stop_positions(self) -> list[int]:
        def stop(s: Session, op: Any) -> bool:
            if op is WATCHED:
                return True
            return type(op) is Phase and any(
                fnmatch.fnmatchcase(op.label, b.glob) for b in s.breakpoints
            )

        return self._replay_positions(stop)

    # --- save and load ---------------------------------------------------------------

    def save(self, path: str) -> str:
        """Write the session — scenario, seed, inputs, breakpoints, watchpoints — as JSON."""
        data = {
            "l4tui_session": 1,
            "scenario": self.scenario.file,
            "seed": self.seed,
            "log": self.log,
            "breakpoints": [b.glob for b in self.breakpoints],
            "watches": [[w.expr, w.paddr] for w in self.watches],
        }
        Path(path).write_text(json.dumps(data) + "\n")
        return f"saved {self.position} micro-ops of {self.scenario.name} to {path}"

    @classmethod
    def load(cls, path: str) -> Session:
        """A session in exactly the state a `save` left it (replayed from its inputs)."""
        from kernel.scenario import load_scenario
        from l4tui.demo import demo_scenario

        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the session: {e}", path) from None
        if not isinstance(data, dict) or data.get("l4tui_session") != 1:
            raise ConfigError("not a saved l4tui session", path)
        try:
            file, seed, log = data["scenario"], data["seed"], list(data["log"])
            scenario = demo_scenario() if file == "<demo>" else load_scenario(file)
            s = cls(scenario, seed)
            for glob in data["breakpoints"]:
                s.add_break(str(glob))
            for expr, paddr in data["watches"]:
                s.add_watch(str(expr), int(paddr))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"a saved session with a bad field: {e}", path) from None
        s.log = log
        s.goto(sum(1 for x in log if not isinstance(x, str)))
        s.stop_reason = f"loaded {path}"
        return s

    def add_watch(self, expr: str, paddr: int) -> Watch:
        w = Watch(expr, paddr, self.system.machine.memory.read(paddr))
        self.watches.append(w)
        return w

    def stepi(self, n: int = 1) -> str:
        for _ in range(n):
            op = self._advance()
            if op is None or op is WATCHED:
                return self.stop_reason
        self.stop_reason = "stepped"
        return self.stop_reason

    def step(self, n: int = 1) -> str:
        """Run until `n` phase labels have started (a phase step)."""
        seen = 0
        while seen < n:
            op = self._advance()
            if op is None or op is WATCHED:
                return self.stop_reason
            if type(op) is Phase:
                seen += 1
        self.stop_reason = f"phase {self.system.machine.last_op.label}"
        return self.stop_reason

    def cont(self, limit: int = LIMIT) -> str:
        for _ in range(limit):
            op = self._advance()
            if op is None or op is WATCHED:
                return self.stop_reason
            if type(op) is Phase:
                for bp in self.breakpoints:
                    if fnmatch.fnmatchcase(op.label, bp.glob):
                        bp.hits += 1
                        cpu = self.system.machine.last_cpu.number
                        self.stop_reason = f"breakpoint {bp.number}: {op.label} on cpu{cpu}"
                        return self.stop_reason
        self.stop_reason = f"paused after {limit} micro-ops"
        return self.stop_reason

    def run_cycles(self, cycles: int) -> str:
        m = self.system.machine
        limit = m.now + m.ticks(cycles)
        while True:
            got = m.peek()
            if got is None or got[0].clock >= limit:
                self.stop_reason = f"ran {cycles} cycles"
                return self.stop_reason
            op = self._advance()
            if op is None or op is WATCHED:
                return self.stop_reason

    def set_policy(self, policy: str) -> None:
        self.system.machine.set_policy(policy)
        self.log.append(policy)

    # --- breakpoints -----------------------------------------------------------------

    def add_break(self, glob: str) -> Breakpoint:
        bp = Breakpoint(self._next_bp, glob)
        self._next_bp += 1
        self.breakpoints.append(bp)
        return bp

    def delete_break(self, number: int | None) -> int:
        before = len(self.breakpoints)
        keep = [] if number is None else [b for b in self.breakpoints if b.number != number]
        self.breakpoints = keep
        return before - len(self.breakpoints)

    # --- views -------------------------------------------------------------------------

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
                    len(t.results),
                )
            )
        return out

    def ready(self) -> dict[int, list[str]]:
        return {cd.number: self.system.ready_list(cd) for cd in self.system.kernel.cpus}
