"""One schedule of the race explorer, run step by step (issue 8; issue 15, points 4 and 5).

A `Walk` is a machine under one schedule and the loop's own state (the CPU
running ahead, how long it may, the words it spins on). It can stop at a
position and go on later, so a worker replays a parent schedule's path once
and forks a process at each child's branch point (l4tui/explore/units.py):
the fork is the checkpoint, since generators cannot be copied.

**Branch points** are found after the step, from the op the machine reports
it executed (`last_op`, `last_cpu`), not by peeking before each step: most
steps are not shared accesses, and peeking is not free. A branch point at
position `pos` means "before step `pos`, another CPU could have gone instead".

**The state key** names the state at a branch point: the digest of memory
before the step (machine/memory.py keeps it up to date at each write, so it
costs nothing to read), then, after the step, each CPU's mode, interrupt
flag, address space, wait, phase and top op, the APICs and the interrupts in
flight, the mailboxes' Python side and the programs' counters; and the op
that ran (CPU, kind, address, value). Clocks and caches are left out: two
orders that leave the kernel in the same state are one state to the
explorer. It is built from ints only (strings through a fixed digest, no
`None`, whose hash is an address before Python 3.12), so any process
computes the same key: workers return keys to the coordinator.

**Independent groups** (groups.py). Where the search knows the CPUs fall
into groups that share no kernel word and send each other no IPI, a state
at a branch point of CPU c is named by the share of c's group only (its
memory words by their own digest, its CPUs, APICs, IPIs in flight,
mailboxes and programs, and the words no group owns yet), and a run whose
last choice is in group G names only G's branch points: the other groups
run as in its parent's run (they share nothing with G, so G's timing is no
input of theirs), and their states were named there. A run that sees a CPU
touch a word of another group, or a word not yet owned that another group
touched, or send an IPI there, is `crossed`: from then on it names states
whole, as without groups.

**Focus.** A schedule of group G (`Choice.focus`, and a group's root run)
steps G's CPUs first: at each step not taken by a CPU running ahead, G's
runnable CPU with the lowest clock, unless none can run or it is
`FOCUS_WINDOW` cycles ahead of the lowest other clock; then the timed
order. The log names each such step's CPU, so the debugger replays it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel import invariants, query
from kernel.scenario import Scenario
from kernel.system import System
from l4tui.explore.groups import group_of
from l4tui.explore.keys import Keys
from l4tui.explore.verdicts import judge
from machine.errors import MachineError
from machine.ops import KERNEL_BASE, Atomic, Hlt, InterruptExit, Iret, Read, SendIPI, Write

SEGMENT = 5_000  # micro-ops a CPU that goes ahead may run before the timed order resumes
# How far (cycles) the CPUs of a focused group may run ahead of the lowest clock of the
# others before those step (Walk): far enough for a conversation's round trips, short
# against a scenario (a CPU that runs ahead takes the others' due events early).
FOCUS_WINDOW = 100_000
SPIN = 3  # the same word read this often with the same value, nothing written: a spin
RUN_LIMIT = 200_000  # micro-ops per schedule: a scenario that never ends is cut here
NEVER = 1 << 62  # a position no schedule reaches
CHECKED_LIMIT = 1_000_000  # states whose invariants held, remembered per scenario
_CHECKED: dict[tuple[int, int | None], set[int]] = {}
_TRACKED: dict[tuple[int, int | None, int], tuple[Any, Any, tuple[int, list[int]]]] = {}
_SCENARIOS_CHECKED: dict[int, Scenario] = {}


@dataclass(frozen=True, slots=True)
class Choice:
    """One preemption: after `at` micro-ops, CPU `cpu` goes ahead of CPU `over`.

    `focus`: the CPUs (a mask) of the independent group the schedule explores, whose
    steps go first from the start (`Walk`); 0 when the CPUs form one group. Every choice
    of a schedule carries its group's, fixed when the schedule was made, so a child
    replays its parent's path even if the groups are learned anew later.
    """

    at: int
    cpu: int
    over: int
    focus: int = 0


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
    #  mask of the other CPUs that could run, state key or None at a word not known shared)
    candidates: list[tuple[int, int, int, int, int | None]] = field(default_factory=list)
    # kernel word -> mask of the CPUs that touched it, from the last choice on (before it,
    # the path is the parent schedule's, which reported it)
    sharers: dict[int, int] = field(default_factory=dict)
    # the keys of its branch points where it went on in the timed order (no choice to come,
    # no CPU running ahead): a descendant that gets to one of them has nothing new to run
    timed: list[int] = field(default_factory=list)
    # masks of a CPU that sent an IPI and its destinations, from the last choice on
    links: set[int] = field(default_factory=set)
    # a CPU touched another group's word or sent it an IPI (groups.py): its states from
    # then on are named whole and none is offered for joins or pruning
    crossed: bool = False
    focus: int = 0  # the group whose CPUs stepped first (Choice.focus), 0 if none
    named: bool = True  # its branch points and states were named (walk.Walk)


class Walk:
    """A machine under one schedule; `go` runs it to a position or to its end."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None,
        choices: tuple[Choice, ...],
        run_limit: int,
        known: tuple[frozenset[int], ...] = (),
        shared: frozenset[int] | None = None,
        checked: int = 0,
        leaf: bool = False,
        groups: tuple[int, ...] = (),
        buckets: dict[int, int] | None = None,
        focus: int = 0,
        named: bool = True,
    ) -> None:
        self.system = system = System(scenario, seed=seed)
        # Several groups: each CPU's bucket, and the run's (its last choice's: None at the root).
        self.proj = len(groups) > 1 and buckets is not None
        self.groups = groups
        self.buckets: dict[int, int] = buckets if buckets is not None and self.proj else {}
        ncpus = len(system.machine.cpus)
        self.cpu_bucket = [group_of(groups, i) for i in range(ncpus)] if self.proj else []
        self.group: int | None = None
        if self.proj and choices:
            self.group = self.cpu_bucket[choices[-1].over - 1]
        # A focused group's CPUs step first, in the order of their clocks, from the start:
        # the other groups share nothing with it, so how its steps interleave with theirs
        # changes nothing it does, and its runs end (join) before the others have run much.
        self.focus = focus = choices[0].focus if choices else focus
        self.window = FOCUS_WINDOW * system.machine.tpc
        if self.proj and focus:
            self.group = self.cpu_bucket[(focus & -focus).bit_length() - 1]
        self.fresh: dict[int, int] = {}  # a word no group owns -> the CPUs that touched it
        self.bparts: list[int] = []  # the groups' memory digests before the step
        # Every machine of the scenario and seed starts with the same memory: its digest
        # is computed once per grouping (a worker builds one machine per schedule).
        memory = system.machine.memory
        tracked_as = (id(scenario), seed, id(buckets) if self.proj else 0)
        held = (scenario, buckets if self.proj else None)
        got = _TRACKED.get(tracked_as)
        start = got[2] if got is not None and got[0] is held[0] and got[1] is held[1] else None
        if self.proj:
            memory.track(self.buckets, len(groups), start)
        else:
            memory.track(None, 0, start)
        if start is None:
            if len(_TRACKED) > 64:
                _TRACKED.clear()
            # (the scenario and the buckets held, so their ids name them while cached)
            _TRACKED[tracked_as] = (*held, (memory.digest, list(memory.parts)))
        k = system.kernel
        self.run_limit = run_limit
        self.out = Run(choices, focus=focus, named=named)
        self.pending = list(choices)
        self.last = choices[-1].at if choices else -1  # branch points only after it
        self.pos = 0
        self.ahead: int | None = None  # the CPU running ahead, if any
        self.ahead_left = 0
        self.spin: dict[int, tuple[Any, int]] = {}  # address -> (value read, times in a row)
        self.shown: Shown | None = None
        self.words = query.SharedWords(k)  # which kernel words CPUs share, by the memory map
        self.keys = Keys(system)
        self.known = known  # the timed-order states of the ancestors' runs
        self.shared = shared  # kernel words known shared (None: all may be)
        self.checked = checked  # the path before this position was checked when it first ran
        # At the bound: no children, so only the states where it goes on in the timed order
        # (to end where an earlier run went on) are named, and no words or branch points noted.
        self.leaf = leaf
        # Unnamed (a root run on more than two CPUs, search.py): no branch points and no
        # states, only the words the CPUs touch and the verdict; the groups' roots name them.
        self.named = named
        self.scenario_key = (id(scenario), seed)
        if id(scenario) not in _SCENARIOS_CHECKED and len(_SCENARIOS_CHECKED) >= 16:
            _SCENARIOS_CHECKED.clear()  # a process exploring many scenarios: start afresh
            _CHECKED.clear()
        _SCENARIOS_CHECKED[id(scenario)] = scenario  # held: its id names it while checked

    def branch(self, choice: Choice) -> None:
        """Take one more choice here (in a forked child at its position): the rest is new."""
        self.out.choices = (*self.out.choices, choice)
        self.pending.append(choice)
        self.last = choice.at
        if self.proj:
            self.group = self.cpu_bucket[choice.over - 1]

    def go(self, stop: int = NEVER, record: bool = True) -> bool:
        """Run to position `stop` (before its step) or to the end; True when the run is over.

        With `record`, the branch points after the last choice and the kernel
        words touched from it on are noted, and the kernel invariants checked
        at each kernel exit from position `checked` on. A parent's path
        replayed to fork its children does neither: its own run did.
        """
        system, out, pending = self.system, self.out, self.pending
        m = system.machine
        memory, cpus, log = m.memory, m.cpus, out.log
        advance, run_limit = system.advance, self.run_limit
        focus = self.focus
        # A group's root (no choices) names only its group's states: once the group has
        # nothing left to do, the rest of the run is the other groups' and tells it nothing.
        group_root = bool(focus) and not out.choices and record
        quiet_at = 0  # where to look next whether the group is through
        last = self.last if record else NEVER
        name_from = last if self.named else NEVER
        check_from = self.checked if record else NEVER
        joined = False
        parts = memory.parts if self.proj else None
        pos, ahead, ahead_left, spin, shown = (
            self.pos,
            self.ahead,
            self.ahead_left,
            self.spin,
            self.shown,
        )
        try:
            while system.ended is None:
                if pos == stop:
                    return False
                if pos >= run_limit:
                    system.ended = "max_steps"
                    break
                if pending and pending[0].at == pos:
                    shown = self._choose(pending.pop(0), shown)
                    ahead, ahead_left = shown.choice.cpu, SEGMENT
                before = memory.digest
                if parts is not None and pos > last:  # (only branch points name states)
                    self.bparts = parts[:]
                cpu = ahead
                if ahead is None and focus:
                    cpu = self._focused(cpus)
                    if group_root and cpu is None and pos >= quiet_at:
                        if system.quiescent(focus):
                            system.ended = "group done"  # (no verdict: the root run gave it)
                            break
                        quiet_at = pos + 16  # (it reads every thread: not at every step)
                try:
                    op = advance(False, cpu)
                except Exception as e:  # any bug of the kernel's is a finding
                    return self._raised(pos, e)
                if op is None:
                    if cpu is not None and system.ended is None:
                        log.append(["idle", cpu])  # it had nothing to run: timed order resumes
                        ahead = None
                        continue
                    break
                log.append(cpu)
                c = m.last_cpu
                assert c is not None  # (a step ran)
                t = type(op)
                if (t is Iret or t is InterruptExit) and pos >= check_from and self._violated():
                    pos += 1
                    break
                if pos >= last and (t is Read or t is Write or t is Atomic or t is SendIPI):
                    timed = ahead is None and not pending
                    if self._touched(pos, c, op, t, before, timed, name_from):
                        pos, joined = pos + 1, True
                        break
                pos += 1
                if ahead is not None:
                    ahead_left = self._ran_ahead(op, t, ahead_left - 1)
                    if ahead_left <= 0 or t is Hlt or c.waiting is not None:
                        ahead = None
                        spin.clear()
                        if shown is not None:
                            shown.phase = c.phase
        finally:
            self.pos, self.ahead, self.ahead_left, self.shown = pos, ahead, ahead_left, shown
        if joined:
            self._join()
        else:
            self._finish()
        return True

    def _choose(self, ch: Choice, shown: Shown | None) -> Shown:
        """Take choice `ch` now: its CPU goes ahead; what the last one looked like is noted."""
        cpus = self.system.machine.cpus
        if shown is not None and not shown.phase:
            shown.phase = cpus[shown.choice.cpu - 1].phase
        shown = Shown(ch, cpus[ch.over - 1].phase)
        self.out.shown.append(shown)
        return shown

    def _touched(
        self, pos: int, c: Any, op: Any, t: type, before: int, timed: bool, name_from: int
    ) -> bool:
        """CPU `c` ran `op` (a memory access or an IPI) at `pos`, after the last choice: note
        the kernel word it touched or the CPUs it linked, and a branch point if one is here.

        True if the run joined an ancestor's there (`_candidate`).
        """
        if t is SendIPI:
            self._link(c.index, op.dest)
            return pos > name_from and self._candidate(pos, c, op, t, -1, before, timed)
        addr = op.addr
        if addr < KERNEL_BASE:
            return False
        paddr = (addr - KERNEL_BASE) & ~3
        sharers = self.out.sharers
        seen = sharers.get(paddr, 0)
        if not seen >> c.index & 1 and not self.leaf:
            sharers[paddr] = seen | 1 << c.index
        if self.proj:  # (grouped from the start of `go`, and not crossed since)
            self._access(c.index, paddr)
        return pos > name_from and self._candidate(pos, c, op, t, paddr, before, timed)

    def _ran_ahead(self, op: Any, t: type, left: int) -> int:
        """The steps left to the CPU running ahead after it ran `op`: 0 when it spins.

        It runs on until it blocks or halts (as a preempting thread in CHESS runs
        until it yields): through its scheduler, its user code and the next
        kernel path, so one preemption can open a whole race window. A CPU that
        spins (reads one word over and over, writing nothing) waits for a CPU
        that is held: it yields too.
        """
        spin = self.spin
        if t is Write:
            spin.clear()
        elif (t is Read or t is Atomic) and op.addr >= KERNEL_BASE:
            m = self.system.machine
            value = m.last_result
            seen_value, times = spin.get(op.addr, (None, 0))
            times = times + 1 if seen_value == value else 1
            spin[op.addr] = (value, times)
            if t is Atomic and m.memory.read(op.addr - KERNEL_BASE) != value:
                spin.clear()  # it changed the word: progress, not a spin
            elif times >= SPIN:
                return 0
        return left

    def _focused(self, cpus: list[Any]) -> int | None:
        """The focused group's CPU to step next (lowest clock), or None for the timed order:
        none of its CPUs can run, or it is `FOCUS_WINDOW` ahead of the lowest other clock."""
        focus = self.focus
        best = low = None
        for c in cpus:
            if c.waiting is None:
                clock = c.clock
                if low is None or clock < low:
                    low = clock
                if focus >> c.index & 1 and (best is None or clock < best.clock):
                    best = c
        if best is None or best.clock > low + self.window:  # type: ignore[operator]
            return None
        return best.number

    def _access(self, i: int, paddr: int) -> None:
        """CPU `i` touched kernel word `paddr`: crossed, if another group owns or touched it."""
        own = self.cpu_bucket[i]
        b = self.buckets.get(paddr)
        if b is None:
            mask = self.fresh.get(paddr, 0) | 1 << i
            self.fresh[paddr] = mask
            if mask & ~self.groups[own - 1]:
                self._cross()
        elif b != own:
            self._cross()

    def _link(self, i: int, dest: int) -> None:
        """An IPI from CPU `i` to the CPUs of mask `dest`: they depend on each other."""
        self.out.links.add(dest | 1 << i)
        if self.proj and dest & ~self.groups[self.cpu_bucket[i] - 1]:
            self._cross()

    def _cross(self) -> None:
        """The groups were not independent: name states whole from here on."""
        self.proj, self.group, self.out.crossed = False, None, True

    def _candidate(
        self, pos: int, c: Any, op: Any, t: type, paddr: int, before: int, timed: bool
    ) -> bool:
        """Note a branch point at `pos` if the op CPU `c` ran there touched shared state.

        True if the run, going on in the timed order from here, joins a state an
        ancestor's run went on from in the timed order too (`known`).
        """
        if self.group is not None and self.cpu_bucket[c.index] != self.group:
            return False  # another group's: as in the parent's run, named there
        # -1: a lock, a flag word, a mailbox, another CPU's thread (query.ALWAYS)
        where = query.ALWAYS if t is Atomic else self.words.where(paddr, c.number)
        mask = 0
        for o in self.system.machine.cpus:
            if o.waiting is None and o is not c:
                mask |= 1 << o.index
        if not timed and (not mask or self.leaf):
            return False
        shared = self.shared
        if where >= 0 and shared is not None and where not in shared:
            # Not known shared yet: most such words never are (a CPU's own data), and
            # naming the state costs more than the step. Named by position, it is
            # branched from (if it turns out shared) without pruning.
            if mask and not self.leaf:
                self.out.candidates.append((pos, c.number, where, mask, None))
            return False
        if self.proj:
            b = self.cpu_bucket[c.index]
            key = self.keys.key_group(self.bparts, b, self.groups[b - 1], self.buckets, c, op)
        else:
            key = self.keys.key(before, c.number, op)
        if timed:
            for keys in self.known:
                if key in keys:
                    return True
            self.out.timed.append(key)
            if self.leaf or not mask:
                return False  # (no other CPU could go: a state to join, not to branch from)
        self.out.candidates.append((pos, c.number, where, mask, key))
        return False

    def _join(self) -> None:
        """End the run where it joined an ancestor's: from here on it was run already."""
        out, shown = self.out, self.shown
        out.steps, out.ended, out.kind, out.message = self.pos, "joined", None, ""
        if shown is not None and not shown.phase:
            shown.phase = self.system.machine.cpus[shown.choice.cpu - 1].phase

    def _violated(self) -> bool:
        """The kernel invariants at a kernel exit, as `System.advance(True)` checks them.

        A state checked once is not checked again: most of a search's kernel
        exits are in states other schedules reached before (98% in the races
        of scripts/races/), and the check reads every list of every CPU. The
        state is named by the memory digest and what the check reads beside
        memory (kernel/invariants.py): each thread's CPU, timeout and message,
        each CPU's current thread and the APICs' IPI slots. The TLBs are not
        in that name (their contents vary with every order), so their check —
        no entry without its PTE (issue 16) — runs at every such exit.
        """
        system = self.system
        if not system.settled():
            return False
        m, k = system.machine, system.kernel
        threads = k.threads
        seen = hash(
            (
                m.memory.digest,
                len(threads),
                hash(tuple([(t.cpu, t.deadline, t.inbox is None) for t in threads])),
                tuple([cd.current.word for cd in k.cpus]),
                tuple([len(a.slots) for a in m.apics.apics]),
            )
        )  # 64 bits: two states alike in them are as good as never
        checked = _CHECKED.setdefault(self.scenario_key, set())
        bad = invariants.stale_tlb_entries(k) if seen in checked else invariants.check(k)
        if not bad:
            if len(checked) > CHECKED_LIMIT:
                checked.clear()
            checked.add(seen)
            return False
        c = m.last_cpu
        assert c is not None  # (a step ran)
        where = f"cycle {m.last_start // m.tpc} on cpu{c.number}"  # as System says it
        system.violations = [f"{v} (at the kernel exit, {where})" for v in bad]
        system.ended = "invariant"
        return True

    def _raised(self, pos: int, e: Exception) -> bool:
        """The step at `pos` raised `e`: the run failed there."""
        if isinstance(e, MachineError):
            # The kernel made the machine do the impossible (a trap from kernel mode, a
            # fault in the kernel): a broken invariant of the hardware's.
            return self._fail(pos, "machine", f"the simulated machine stopped: {e}")
        return self._fail(pos, "kernel", f"the kernel raised {type(e).__name__}: {e}")

    def _fail(self, pos: int, ended: str, message: str) -> bool:
        out = self.out
        out.steps, out.ended, out.kind, out.message = pos, ended, "invariant", message
        self.pos = pos
        return True

    def _finish(self) -> None:
        out, system, shown = self.out, self.system, self.shown
        if shown is not None and not shown.phase:
            shown.phase = system.machine.cpus[shown.choice.cpu - 1].phase
        out.steps = self.pos
        out.ended = system.ended
        try:
            out.kind, out.message = judge(system)
        except Exception as e:  # the kernel's state could not even be judged
            out.kind, out.message = "invariant", f"the kernel raised {type(e).__name__}: {e}"


def run_schedule(
    scenario: Scenario,
    seed: int | None,
    choices: tuple[Choice, ...],
    run_limit: int = RUN_LIMIT,
    known: tuple[frozenset[int], ...] = (),
    shared: frozenset[int] | None = None,
    checked: int = 0,
    leaf: bool = False,
    groups: tuple[int, ...] = (),
    buckets: dict[int, int] | None = None,
    focus: int = 0,
    named: bool = True,
) -> Run:
    """Run the scenario from the start under `choices`: its outcome and its branch points.

    The invariants are checked from position `checked` on (before it, the path
    is a parent's, checked when it ran). With `groups` and `buckets`, states
    are named by group (see the module docstring).
    """
    walk = Walk(
        scenario,
        seed,
        choices,
        run_limit,
        known,
        shared,
        checked,
        leaf,
        groups,
        buckets,
        focus,
        named,
    )
    walk.go()
    return walk.out
