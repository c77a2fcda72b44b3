"""The simulated SMP machine and its deterministic engine (DESIGN.md §1, thesis §3).

`Machine` assembles the hardware of a profile — CPUs, caches, bus, memory,
APICs — and runs code on it. The engine is SimPy-shaped: `step()` executes
exactly one micro-op, `peek()` tells which CPU and op come next, `run()`
loops `step()`. Each CPU keeps its own clock in ticks (see
`Profile.ticks_per_cycle`); under the `timed` policy the CPU with the lowest
clock steps next, ties by CPU number; under `manual` the caller names the CPU.

Timed events — an IPI reaching its target, the APIC timer firing — are
applied once no runnable CPU is earlier than them, so a CPU never sees an
event before its own time. An interrupt that arrives during a long
`Compute` cuts it at the arrival tick. All randomness comes from `rng`,
seeded: the same code and seed give the same run, bit for bit.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Generator
from typing import Any

from machine.apic import ApicSystem, Message
from machine.bus import Bus
from machine.cache import READ, Coherence
from machine.cpu import Code, Context, Cpu, Frame
from machine.errors import MachineError
from machine.execute import FAULTED, HANDLERS
from machine.memory import Memory
from machine.ops import (
    EOI,
    KERNEL_BASE,
    PAGE_FAULT_VECTOR,
    Compute,
    InterruptEntry,
    InterruptExit,
    Op,
    Read,
    SendIPI,
    SwitchContext,
    Write,
)
from machine.peek import Undo, plain_next
from machine.profile import Profile
from machine.tlb import Tlb

POLICIES = ("timed", "manual")

IdleHandler = Callable[[Cpu], Code | None]
VectorHandler = Callable[[Cpu, int], Code]
FaultHandler = Callable[[Cpu, int, bool, str], Code]


class PageFault(MachineError):
    """Thrown into code that faulted when no fault handler is installed."""

    def __init__(self, addr: int, write: bool, reason: str) -> None:
        super().__init__(f"page fault at {addr:#x} ({'write' if write else 'read'}: {reason})")
        self.addr, self.write, self.reason = addr, write, reason


def _default_vector_handler(cpu: Cpu, vector: int) -> Generator[Op, Any, None]:
    yield EOI()


# Made once, not per interrupt: a frame's name, and the engine's entry and exit ops
# (nothing changes an op once made; they compare by value).
_VECTOR_NAMES = [f"vector {v}" for v in range(256)]
_ENTRIES = [InterruptEntry(v) for v in range(256)]
_EXITS = [InterruptExit(v) for v in range(256)]
_FAULT_ENTRY = InterruptEntry(PAGE_FAULT_VECTOR, "fault")


class Machine:
    """An SMP machine built from a profile, with its engine."""

    def __init__(self, profile: Profile, seed: int = 0, cpus: int | None = None) -> None:
        n = cpus if cpus is not None else profile.cpus
        if not 1 <= n <= 16:
            raise MachineError(f"a machine has 1 to 16 CPUs, not {n}")
        self.profile = profile
        self.seed = seed
        self.rng = random.Random(seed)
        self.tpc = tpc = profile.ticks_per_cycle
        p = profile.cpu
        self.t_cli, self.t_sti = round(p.cli * tpc), round(p.sti * tpc)
        self.t_rdtsc, self.t_cr3 = round(p.rdtsc * tpc), round(p.cr3_load * tpc)
        self.t_invlpg = round(p.invlpg * tpc)
        self.t_entry = round(profile.kernel.entry * tpc)
        self.t_exit = round(profile.kernel.exit * tpc)
        self.t_entry_k = round(profile.kernel.kernel_entry * tpc)
        self.t_exit_k = round(profile.kernel.kernel_exit * tpc)
        self.memory = Memory(profile.memory.size_mb << 20)
        self.bus = Bus()
        self.coherence = Coherence(profile, n, self.bus)
        self.cpus = [Cpu(i, Tlb(profile.tlb.entries)) for i in range(n)]
        self.apics = ApicSystem(profile, n, self.rng, self._schedule, self._notify)
        self._apics = self.apics.apics
        self.policy = "timed"
        self.events: list[tuple[int, int, str, Any]] = []
        self.event_seq = 0
        self.event_time = 0  # tick of the last event applied
        self._runq: list[tuple[int, int, int]] = []  # (clock, cpu index, ticket)
        self.steps = 0
        self.idle_handler: IdleHandler | None = None
        self.vector_handlers: dict[int, VectorHandler] = {}
        self.default_vector_handler: VectorHandler = _default_vector_handler
        self.fault_handler: FaultHandler | None = None
        # Kernel loads and stores done inside `step`, not through execute.HANDLERS (the same
        # effects, fewer calls); off, every op goes through HANDLERS (a guard wrapping them).
        self.inline_kernel_access = True
        # What the last step did, for tracing and breakpoints (no allocation per step).
        self.last_cpu: Cpu | None = None
        self.last_op: Op | None = None
        self.last_start = 0
        self.last_result: Any = None

    # --- time ---------------------------------------------------------------

    def cycles(self, ticks: int) -> float:
        """Ticks as CPU cycles."""
        return ticks / self.tpc

    def ticks(self, cycles: float) -> int:
        return round(cycles * self.tpc)

    @property
    def now(self) -> int:
        """Global time in ticks: the lowest clock of a runnable CPU.

        With no CPU runnable, everything that happened is over: the latest
        clock (or event).
        """
        clocks = [c.clock for c in self.cpus if c.waiting is None]
        return min(clocks) if clocks else max(self.event_time, *(c.clock for c in self.cpus))

    # --- giving CPUs work ---------------------------------------------------

    def cpu(self, number: int) -> Cpu:
        """CPU by its number, 1..k as the thesis numbers processors."""
        if not 1 <= number <= len(self.cpus):
            raise MachineError(f"no CPU {number}: this machine has CPUs 1..{len(self.cpus)}")
        return self.cpus[number - 1]

    def start(self, number: int, code: Code, name: str = "") -> None:
        """Run `code` on CPU `number` (on top of whatever it runs, as its new base when idle)."""
        c = self.cpu(number)
        frame = Frame(code, None, name=name)
        if not self._prime(c, frame):
            return
        c.frames.append(frame)
        self._wake(c, self.now if c.waiting else c.clock)

    def _prime(self, c: Cpu, frame: Frame) -> bool:
        try:
            frame.op = next(frame.code)
        except StopIteration:
            return False
        return True

    def _wake(self, c: Cpu, tick: int) -> None:
        if c.waiting is not None:
            if tick > c.clock:
                if c.waiting == "icr":
                    c.stall_ticks += tick - c.clock
                c.clock = tick
            c.waiting = None
        self._enqueue(c)

    def wake(self, number: int) -> None:
        """Have an idle CPU look for work again (its idle handler may now return some)."""
        c = self.cpu(number)
        if c.waiting == "idle":
            self._wake(c, self.now)

    def _enqueue(self, c: Cpu) -> None:
        c.ticket += 1
        heapq.heappush(self._runq, (c.clock, c.index, c.ticket))

    # --- events -------------------------------------------------------------

    def _schedule(self, tick: int, kind: str, payload: Any) -> None:
        self.event_seq += 1
        heapq.heappush(self.events, (tick, self.event_seq, kind, payload))

    def _apply_event(self) -> None:
        tick, _, kind, payload = heapq.heappop(self.events)
        self.event_time = max(self.event_time, tick)
        if kind == "apic.arrive":
            self.apics.arrive(payload, tick)
        elif kind == "apic.timer":
            self.apics.timer_fires(payload[0], payload[1], tick)
        elif kind == "irq":
            self.apics.raise_irq(payload, tick)
        else:  # pragma: no cover - kinds are internal
            raise MachineError(f"unknown event {kind}")

    def raise_irq(self, irq: int, cycle: float | None = None) -> None:
        """An external device asserts `irq` at `cycle` (default: now) — through the IO-APIC."""
        tick = self.now if cycle is None else self.ticks(cycle)
        self._schedule(tick, "irq", irq)

    def _notify(self, index: int, tick: int) -> None:
        """CPU `index` may have an interrupt to take or its ICR may have freed."""
        c = self.cpus[index]
        waiting = c.waiting
        if waiting is not None:
            icr_free = waiting == "icr" and self._apics[index].outgoing is None
            if icr_free or (
                (c.if_flag or waiting == "idle") and self.apics.pending_vector(index) is not None
            ):
                self._wake(c, tick)
            return
        frame = c.compute_frame
        # Only an interrupt inside the Compute this CPU last ran matters: ask for the
        # pending vector after the cheap tests (most notifications find none of this).
        if (
            frame is not None
            and c.compute_from < tick < c.clock
            and c.if_flag
            and c.frames
            and c.frames[-1] is frame
            and c.exit_pending is None
            and self.apics.pending_vector(index) is not None
        ):
            # The interrupt arrived inside the Compute this CPU last ran: cut it there.
            frame.resume = Compute((c.clock - tick) / self.tpc)
            c.clock = tick
            c.compute_frame = None
            self._enqueue(c)

    # --- the step loop -------------------------------------------------------

    def _next_op(self, c: Cpu) -> Op | None:
        """What CPU `c` executes next, deciding interrupt delivery; None if it has nothing."""
        if c.exit_pending is not None:
            return _EXITS[c.exit_pending.vector]
        if c.fault is not None:
            return _FAULT_ENTRY
        frames = c.frames
        # A frame whose code has ended leaves once its last op is complete (a cut
        # Compute may still have to finish); a handler's end is an iret.
        while frames and frames[-1].op is None and frames[-1].resume is None:
            frame = frames.pop()
            if frame.kind != "code":
                c.exit_pending = frame
                return _EXITS[frame.vector]
        apic = self._apics[c.index]
        if (apic.slots or apic.irr_other) and ((c.if_flag and not c.sti_shadow) or not frames):
            vector = self.apics.pending_vector(c.index)
            if vector is not None:
                return _ENTRIES[vector]
        if not c.frames:
            if self.idle_handler is not None:
                code = self.idle_handler(c)
                if code is not None:
                    frame = Frame(code, None, name="idle")
                    if self._prime(c, frame):
                        c.frames.append(frame)
                        return frame.op
            return None
        frame = c.frames[-1]
        return frame.resume if frame.resume is not None else frame.op

    def _pick(self, number: int | None) -> Cpu | None:
        """The CPU to step: named (manual) or lowest clock (timed); applies due events."""
        runq, events = self._runq, self.events
        if number is not None:
            c = self.cpu(number)
            # Stepping one CPU by hand: events up to its own time happen first, and
            # a waiting CPU is carried forward to the event that wakes it.
            while events and (events[0][0] <= c.clock or c.waiting is not None):
                self._apply_event()
            return c if c.waiting is None else None
        while True:
            while runq:
                _, index, ticket = runq[0]
                c = self.cpus[index]
                if ticket == c.ticket and c.waiting is None:
                    break
                heapq.heappop(runq)
            if events and (not runq or events[0][0] <= runq[0][0]):
                self._apply_event()
                continue
            return self.cpus[runq[0][1]] if runq else None

    def _look(self, number: int | None) -> tuple[Cpu, Op] | None:
        """What the next step executes, applying the events due first (what `step` does)."""
        while True:
            c = self._pick(number)
            if c is None:
                return None
            op = self._next_op(c)
            if op is not None:
                return c, op
            c.waiting = "idle"  # nothing to run: off the run queue until woken
            if number is not None:
                return None

    def peek(self, number: int | None = None) -> tuple[Cpu, Op] | None:
        """The CPU and op the next `step(number)` executes, or None if nothing can run.

        Pure, as SimPy's `peek`: it changes nothing — the fingerprint and every
        later outcome are the same whether or not it was called; due events are
        applied by `step`. The common case (no event due before the CPU that
        runs next, and its top frame holds a plain op) is read off without
        copying anything. Otherwise peek looks the way `step` would — applying
        the due events, retiring ended frames, asking the idle handler — on a
        small save of exactly the state those touch (`peek.Undo`: the event and run
        queues, the RNG, each CPU's and local APIC's fields, the messages on
        the APIC bus) and restores it after. A frame the idle handler gave is
        primed to find its first op and then dropped: kernel paths do nothing
        before their first micro-op (tests/test_peek.py checks the fingerprint).
        """
        got = plain_next(self, number)
        if got is not False:
            return got
        undo = Undo(self)
        try:
            return self._look(number)
        finally:
            undo.restore()

    def step(self, number: int | None = None) -> Op | None:
        """Execute one micro-op: on the lowest-clock CPU, or on CPU `number` (manual).

        Returns the op executed, or None when no CPU can run (or CPU `number` cannot).
        """
        if number is None and self.policy != "manual":
            # Timed: the lowest clock runs, after the events due by then. This is
            # _pick and _next_op inlined, with the common case — plain code,
            # no interrupt to take, no frame boundary — decided without calls.
            runq, events, cpus, apics = self._runq, self.events, self.cpus, self._apics
            while True:
                # Drop stale entries: the CPU was queued again since, or waits now.
                while runq and (
                    (c := cpus[runq[0][1]]).ticket != runq[0][2] or c.waiting is not None
                ):
                    heapq.heappop(runq)
                if events and (not runq or events[0][0] <= runq[0][0]):
                    self._apply_event()
                    continue
                if not runq:
                    return None
                frames = c.frames
                apic = apics[c.index]
                if (
                    frames
                    and (frame := frames[-1]).resume is None
                    and (top := frame.op) is not None
                    and c.exit_pending is None
                    and c.fault is None
                    and not ((apic.slots or apic.irr_other) and c.if_flag and not c.sti_shadow)
                ):
                    op, plain = top, True
                    break
                top = self._next_op(c)
                if top is not None:
                    op, plain = top, False
                    break
                c.waiting = "idle"  # nothing to run: off the run queue until woken
        else:
            got = self._look(self._manual(number))
            if got is None:
                return None
            c, op = got
            plain = False
        kind = type(op)
        start = c.clock
        index = c.index
        if kind is SendIPI and self._apics[index].outgoing is not None:
            # The previous IPI is still unaccepted: wait (retrying) until it is.
            c.waiting = "icr"
            self.last_cpu, self.last_op, self.last_start, self.last_result = c, op, start, None
            return op
        c.compute_frame = None
        shadowed = c.sti_shadow
        if shadowed:
            c.sti_shadow = False
        # The commonest steps, kernel loads and stores, without the calls of do_read and
        # do_write and their translation (an L1 read hit makes no call): the same effects
        # (issue 16). Loads and stores test apart: each `op.addr` sees one class of op.
        if (
            kind is Read
            and plain
            and c.mode == "kernel"
            and self.inline_kernel_access
            and (paddr := op.addr - KERNEL_BASE) >= 0  # type: ignore[union-attr]  # (Read)
            and not paddr & 3
            and paddr < self.memory.size
        ):
            coh = self.coherence
            line = paddr >> coh.shift
            coh.last[line] = (index, READ, start)
            caches = coh.cpus[index]
            s1 = caches.l1[line & coh.l1_mask]
            if line in s1:
                if s1[-1] != line:
                    s1.remove(line)
                    s1.append(line)
                caches.stats.l1_hits += 1
                cost = coh.t_l1
            else:
                cost = coh.l1_miss(index, caches, line, start)
            result = self.memory.words.get(paddr, 0)
        elif (
            kind is Write
            and plain
            and c.mode == "kernel"
            and self.inline_kernel_access
            and (paddr := op.addr - KERNEL_BASE) >= 0  # type: ignore[union-attr]  # (Write)
            and not paddr & 3
            and paddr < self.memory.size
        ):
            cost = self.coherence.write(index, paddr, start)
            self.memory.write(paddr, op.value)  # type: ignore[union-attr]  # (kind is Write)
            result = None
        else:
            result, cost = HANDLERS[kind](self, c, op)
        c.clock = start + cost
        c.steps += 1
        self.steps += 1
        if plain and not shadowed and result is not FAULTED and kind is not SwitchContext:
            try:
                frame.op = frame.code.send(result)
            except StopIteration:
                frame.op = None  # retired by _next_op
        elif shadowed:
            self._after_sti(c, op, result, start)
        else:
            self._advance(c, op, result)
        self.last_cpu, self.last_op, self.last_start, self.last_result = c, op, start, result
        if c.waiting is None:  # (a SendIPI that waits for acceptance set it: do_send_ipi)
            runq = self._runq
            if runq and runq[0][1] == index and runq[0][2] == c.ticket:
                heapq.heapreplace(runq, (c.clock, index, c.ticket))
            else:
                self._enqueue(c)
        return op

    def _manual(self, number: int | None) -> int:
        """The CPU a manual step names (the policy asks for one)."""
        if number is None:
            raise MachineError("manual policy: name the CPU to step")
        return number

    def _after_sti(self, c: Cpu, op: Op, result: Any, start: int) -> None:
        """`_advance` for the op after an sti, which its shadow covers (issue 16).

        The shadow covers one instruction: an interrupt pending at the sti is
        taken after a Compute's first cycle, not after all of it.
        """
        if (
            type(op) is Compute
            and c.if_flag
            and op.cycles > 1
            and self.apics.pending_vector(c.index) is not None
        ):
            c.clock = start + round(self.tpc)
            c.compute_frame = None
            self._advance(c, op, result)
            c.frames[-1].resume = Compute(op.cycles - 1)  # the rest, after the interrupt
        else:
            self._advance(c, op, result)

    def _advance(self, c: Cpu, op: Op, result: Any) -> None:
        """Feed `result` to the code that yielded `op` and fetch its next op."""
        if isinstance(op, InterruptEntry):
            self._enter(c, op)
            return
        if isinstance(op, InterruptExit):
            exiting = c.exit_pending
            assert exiting is not None  # _next_op set it when it made the exit
            c.exit_pending = None
            c.mode, c.if_flag = exiting.saved_mode, exiting.saved_if
            return
        frame = c.frames[-1]
        if frame.resume is op:
            frame.resume = None
            return
        if isinstance(op, SwitchContext):
            self._switch(c, frame, op.context)
            return
        if result is FAULTED:
            if self.fault_handler is None:
                fault = c.fault
                assert fault is not None  # FAULTED: the access left its fault on the CPU
                c.fault = None
                self._send(c, frame, PageFault(fault.addr, fault.write, fault.reason), throw=True)
            return  # the access is retried after the fault handler returns
        self._send(c, frame, result)

    def _switch(self, c: Cpu, frame: Frame, context: Context) -> None:
        """Put `context`'s frames on CPU `c`; the yielding frame waits on its own stack."""
        frame.suspended = True
        c.context = context
        c.frames = context.frames
        if c.frames:
            top = c.frames[-1]
            if top.suspended:  # it switched away earlier: its SwitchContext is now done
                top.suspended = False
                self._send(c, top, None)

    def _send(self, c: Cpu, frame: Frame, value: Any, throw: bool = False) -> None:
        try:
            frame.op = frame.code.throw(value) if throw else frame.code.send(value)
        except StopIteration:
            frame.op = None  # retired by _next_op once nothing of it is left to run

    def _enter(self, c: Cpu, op: InterruptEntry) -> None:
        if op.kind == "fault":
            fault, handle = c.fault, self.fault_handler
            assert fault is not None and handle is not None  # (see _next_op and _advance)
            c.fault = None
            code = handle(c, fault.addr, fault.write, fault.reason)
        else:
            self.apics.acknowledge(c.index, op.vector)
            handler = self.vector_handlers.get(op.vector, self.default_vector_handler)
            code = handler(c, op.vector)
        name = _VECTOR_NAMES[op.vector]
        frame = Frame(code, None, op.kind, op.vector, c.mode, c.if_flag, name=name)
        c.mode, c.if_flag = "kernel", False
        self._prime(c, frame)
        c.frames.append(frame)  # a handler with no ops is retired (iret) at once

    def run(self, until: float | None = None, max_steps: int | None = None) -> int:
        """Step until nothing can run, global time reaches `until` cycles, or `max_steps`.

        Returns the number of steps taken.
        """
        limit = None if until is None else self.ticks(until)
        n = 0
        step = self.step
        while max_steps is None or n < max_steps:
            if limit is not None:
                got = self.peek()
                if got is None or got[0].clock >= limit:
                    break
            if step() is None:
                break
            n += 1
        return n

    # --- state ---------------------------------------------------------------

    def fingerprint(self) -> str:
        """A digest of the whole hardware state (not of the code running on it).

        Two runs of the same programs with the same seed have equal
        fingerprints after every step; the race explorer hashes states with it.
        """
        h = hashlib.blake2b(digest_size=16)

        def put(value: Any) -> None:
            h.update(repr(value).encode())

        for c in self.cpus:
            put((c.clock, c.mode, c.if_flag, c.cr3, c.waiting, c.phase, len(c.frames)))
            put(sorted((vpn, e.frame, e.writable) for vpn, e in c.tlb.entries.items()))
        coh = self.coherence
        for caches in coh.cpus:
            put(sorted(caches.state.items()))
            put([s for s in caches.l1 if s])
            put([s for s in caches.l2 if s])
        put(sorted(self.memory.words.items()))
        put((self.memory.next_frame, self.memory.free_frames))
        put(self.bus.booked)
        for a in self.apics.apics:
            put((a.slots, a.irr_other, a.isr, a.tpr, a.timer_initial, a.timer_deadline))
            put(a.outgoing)
        put(self.apics.in_flight)
        put(self.events)
        put(self.rng.getstate())
        return h.hexdigest()

    # --- policy --------------------------------------------------------------

    def set_policy(self, policy: str) -> None:
        if policy not in POLICIES:
            raise MachineError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy

    def in_flight(self) -> list[Message]:
        """Interrupt messages on the APIC bus, earliest arrival first."""
        return sorted(self.apics.in_flight, key=lambda m: (m.arrival, m.seq))
