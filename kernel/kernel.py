"""The L4 SMP kernel: one instance for the whole machine (ID 1, §8.1.2).

`Kernel` lays out kernel memory (per-CPU pages, TCBs, the kernel info page),
creates tasks, threads and sigma0 from a scenario, and plugs into the
machine: the idle handler gives each CPU its next piece of work (a step of
the current thread's program, or the idle loop), the timer and other vectors
go to kernel handlers, and page faults to the fault path (§2.2.2).

A thread's kernel stack is a machine `Context`: a kernel path that blocks —
the thesis's ``switchTo(B)`` — yields `SwitchContext` and stays suspended on
that stack until the thread is dispatched again (§8.3.2).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from kernel import (
    boot,
    interrupts,
    ipc,
    mapdb,
    pager,
    proxy,
    sched,
    shootdown,
    space,
    syscalls,
    xcpu,
)
from kernel.ids import ThreadId, irq_thread
from kernel.layout import Layout, make_layout
from kernel.memmap import FIRST_FREE, KIP_CPUS, KIP_FRAME, PERCPU_BASE, TCB_AREA
from kernel.program import Op as ProgramOp
from kernel.program import ProgramCounter
from kernel.sched import CURRENT, CpuData
from kernel.thread import INACTIVE, RUNNING, STATE_NAMES, WAITING, ProxyKind, Task, Thread
from machine import Machine
from machine.cpu import Context, Cpu
from machine.memory import PAGE_SIZE
from machine.ops import (
    EOI,
    Atomic,
    Cli,
    Compute,
    Hlt,
    Iret,
    LoadCR3,
    Op,
    Phase,
    Read,
    Sti,
    SwitchContext,
    Trap,
    Write,
    kaddr,
)

Path = Generator[Op, Any, Any]

TIMER_VECTOR = 0xEF
MAX_THREADS = 1024
SWITCH_CYCLES = 20  # register save/restore of a thread switch
PROXY_PRIORITY = 255
PROXY_POOL = 4
SIGMA0_TASK = 2
FIRST_TASK = 4
DEFAULT_TIMESLICE = 100_000  # cycles
# Each TCB's field addresses, per layout: the same for every kernel of this process with
# that layout (the race explorer builds one per schedule), and only ever read.
_FIELDS: dict[tuple[tuple[str, int], ...], dict[int, dict[str, int]]] = {}


@dataclass(slots=True)
class Counters:
    """What the kernel counts (DESIGN.md §2 `counters`)."""

    ipc: int = 0
    xp_ipc: int = 0
    migrations: int = 0
    tlb_shootdowns: int = 0  # shootdown rounds: one IPI to the other CPUs each (ID 5)
    tlb_remote_flushes: int = 0  # CPUs that flushed entries for another CPU's shootdown
    page_faults: int = 0  # fault IPCs to pagers (README "Counters": also `fault_ipcs`)
    hardware_page_faults: int = 0  # page faults the CPUs raised (#PF on a user access)
    switches: int = 0
    timeouts: int = 0
    ipis: int = 0  # IPIs the kernel sent for cross-processor operations
    proxy_activations: int = 0


class Kernel:
    """The kernel's state and its hooks into one machine."""

    def __init__(
        self,
        machine: Machine,
        tcb_layout: str | Sequence[Sequence[str]] = "thesis",
        tick: int = 50_000,
        xp_ipc: str = "proxy",
        ipi_policy: str = "when_needed",
    ) -> None:
        self.machine = machine
        self.layout: Layout = make_layout(tcb_layout, machine.profile.cache.line_size)
        if len(_FIELDS) > 16:
            _FIELDS.clear()
        self._fields = _FIELDS.setdefault(tuple(self.layout.offsets.items()), {})
        self.tick = tick
        self.xp_ipc = xp_ipc
        self.ipi_policy = ipi_policy
        # Cycles an IPI takes to reach and interrupt its target (§3.3.1), from the machine's
        # profile (issue 16; it was 1,300 whatever the machine): the ICR write, the local
        # APIC's work and a fixed-destination message on the APIC bus, the interrupt entry.
        a = machine.profile.apic
        self.ipi_latency = round(
            a.icr_write
            + (a.state_machine + a.fixed_message) * machine.profile.apic_ratio
            + machine.profile.kernel.entry
        )
        self.counters = Counters()
        self.threads: list[Thread] = []
        self.by_name: dict[str, Thread] = {}
        self.by_tcb: dict[int, Thread] = {}
        self._by_word: dict[int, Thread] = {}
        self.tasks: list[Task] = []
        self.spaces = space.Spaces(self)
        mem = machine.memory
        mem.next_frame = max(mem.next_frame, FIRST_FREE // PAGE_SIZE)
        self.cpus: list[CpuData] = []
        for c in machine.cpus:
            idle = self._new_thread(f"idle{c.number}", ThreadId(0, 0, 0), None, c.number, idle=True)
            page = kaddr(PERCPU_BASE + c.index * PAGE_SIZE)
            self.cpus.append(CpuData(c.number, page, idle, idle))
            c.context = idle.context
            c.frames = idle.context.frames
        mem.write(KIP_FRAME + KIP_CPUS, len(machine.cpus))
        self.hardware: list[Thread] = []
        for irq in range(interrupts.IRQS):
            hw = self._new_thread(f"irq{irq}", irq_thread(irq), None, 1)
            hw.hardware = True
            mem.write(hw.tcb - kaddr(0) + self.layout.offsets["myself"], hw.word)
            self.hardware.append(hw)
            machine.vector_handlers[interrupts.vector(irq)] = interrupts.handler(self)
        machine.idle_handler = self._next_work
        machine.fault_handler = pager.fault_handler(self)
        machine.vector_handlers[TIMER_VECTOR] = self._timer
        machine.vector_handlers[xcpu.XCPU_VECTOR] = xcpu.ipi_handler(self)
        machine.vector_handlers[shootdown.VECTOR] = shootdown.handler(self)
        machine.vector_handlers[ipc.NAIVE_VECTOR] = ipc.naive_handler(self)
        machine.vector_handlers[boot.VECTOR] = boot.ap_handler(self)
        self.booting = False
        self.boot_report: dict[str, Any] = {}
        self._boot_ready: list[Thread] = []
        self.mailboxes = xcpu.Mailboxes(self)
        # Per CPU a pool of IPC proxies (§8.4, §8.8.4); a sender claims a free one,
        # so one blocked send does not hold up the next (the §8.4.4 problem).
        self.proxies: dict[tuple[int, int], Thread] = {}
        self.pool = max(PROXY_POOL, len(machine.cpus))
        for cd in self.cpus:
            for src in range(1, self.pool + 1):
                p = self._new_thread(f"proxy{cd.number}.{src}", ThreadId(1, 0, 0), None, cd.number)
                p.proxy_kind = ProxyKind.IPC
                off = self.layout.offsets
                base = p.tcb - kaddr(0)
                mem.write(base + off["priority"], PROXY_PRIORITY)
                mem.write(base + off["myself"], p.word)
                mem.write(base + off["thread_state"], WAITING)
                self.proxies[(cd.number, src)] = p
        # Per CPU a control proxy for the parts of a migration (§8.7.2).
        self.ctl: dict[int, Thread] = {}
        for cd in self.cpus:
            p = self._new_thread(f"ctl{cd.number}", ThreadId(1, 0, 0), None, cd.number)
            p.proxy_kind = ProxyKind.CTL
            base = p.tcb - kaddr(0)
            mem.write(base + self.layout.offsets["priority"], PROXY_PRIORITY)
            mem.write(base + self.layout.offsets["myself"], p.word)
            mem.write(base + self.layout.offsets["thread_state"], WAITING)
            self.ctl[cd.number] = p
        self.sigma0 = self.spaces.create_sigma0()

    # --- building ----------------------------------------------------------------

    def _new_thread(
        self, name: str, tid: ThreadId, task: Task | None, cpu: int, idle: bool = False
    ) -> Thread:
        index = len(self.threads)
        if index >= MAX_THREADS:
            raise ValueError(f"at most {MAX_THREADS} threads")
        base = TCB_AREA + index * self.layout.size
        tcb = kaddr(base)
        f = self._fields.get(index)
        if f is None:
            f = self._fields[index] = {
                name_: tcb + off for name_, off in self.layout.offsets.items()
            }
        t = Thread(name, tid, task, index, tcb, f, Context(name), ProgramCounter([]), cpu)
        t.context.owner = t
        self.threads.append(t)
        self.by_tcb[tcb] = t
        if not idle:
            self._by_word[tid.word] = t
        if not idle:
            self.by_name[name] = t
        mem = self.machine.memory
        mem.write(base + self.layout.offsets["cpu"], cpu)
        mem.write(base + self.layout.offsets["thread_state"], INACTIVE)
        return t

    def add_task(self, name: str, number: int | None = None, start: bool = True) -> Task:
        if number is None:
            number = FIRST_TASK + sum(1 for t in self.tasks if t.number >= FIRST_TASK)
        task = Task(name, number)
        self.tasks.append(task)
        if start:
            self.spaces.create_task_space(task)
        return task

    def add_thread(
        self,
        task: Task,
        name: str,
        program: tuple[ProgramOp, ...] = (),
        cpu: int = 1,
        priority: int = 100,
        timeslice: int | None = None,
        mcp: int = 0,
        spec: Any = None,
    ) -> Thread:
        """A thread of `task`, placed on `cpu`; ready at once if its task has started."""
        tid = ThreadId(task.number, len(task.threads) + 1)
        t = self._new_thread(name, tid, task, cpu)
        t.spec = spec
        task.threads.append(t)
        t.pc = ProgramCounter.start(tuple(program))
        mem = self.machine.memory
        off = self.layout.offsets
        base = t.tcb - kaddr(0)
        mem.write(base + off["priority"], priority)
        slice_ = timeslice or DEFAULT_TIMESLICE
        mem.write(base + off["timeslice"], slice_)
        mem.write(base + off["remaining_timeslice"], slice_)
        mem.write(base + off["mcp"], mcp)
        if task.space is not None:
            self.start_thread(t)
        return t

    def start_thread(self, t: Thread) -> None:
        """Make a created thread present and ready on its CPU, at set-up time."""
        if self.booting:
            self._boot_ready.append(t)  # after the boot sequence (§8.2)
            return
        self._run_direct(space.start_thread(self, t))
        if t.task is not None:  # (a user thread: the kernel's own have no task)
            t.task.started = True

    def boot(self) -> None:
        """Run the boot sequence of §8.2 first; threads start when it is done."""
        self.booting = True
        self.machine.start(1, boot.bsp(self, self.machine.cpu(1)), name="boot")

    def finish_boot(self) -> None:
        """The BSP is through the barrier: place the threads and start the timers."""
        self.booting = False
        for t in self._boot_ready:
            self.start_thread(t)
        self._boot_ready.clear()
        # The APs halted at the barrier long ago: their time resumes with the BSP's.
        now = self.machine.cpu(1).clock
        for c in self.machine.cpus:
            if c.waiting is not None and c.clock < now:
                c.clock = now
        self.start()

    def _run_direct(self, gen: Path) -> None:
        """Apply a kernel path's effects at set-up time, outside simulated time."""
        mapdb.run_direct(self.machine.memory, gen)

    def start(self) -> None:
        """Program every CPU's timer and let the CPUs look for work."""
        for cd in self.cpus:
            c = self.machine.cpu(cd.number)
            apic = self.machine.apics
            bus_cycles = max(1, round(self.tick / self.machine.profile.bus_ratio))
            apic.write(c.index, "timer_vector", TIMER_VECTOR, c.clock)
            apic.write(c.index, "timer_periodic", 1, c.clock)
            apic.write(c.index, "timer", bus_cycles, c.clock)
            self.machine.wake(cd.number)

    # --- queries -----------------------------------------------------------------

    def field(self, t: Thread, name: str) -> int:
        """A TCB field's value, read from memory without a micro-op (for views)."""
        return self.machine.memory.read(t.f[name] - kaddr(0))

    def state(self, t: Thread) -> str:
        s = self.field(t, "thread_state")
        if s == RUNNING:
            return "running" if self.cpus[t.cpu - 1].current is t else "ready"
        return STATE_NAMES[s]

    def by_word(self, word: int) -> Thread | None:
        """The thread whose id is `word` (present or not), or None."""
        return self._by_word.get(word)

    def thread(self, name: str) -> Thread:
        return self.by_name[name]

    # --- running -----------------------------------------------------------------

    def _next_work(self, c: Cpu) -> Path | None:
        """The machine's idle handler: what CPU `c` runs when its stack is empty."""
        t = c.context.owner
        cd = self.cpus[c.index]
        if t is None or t is cd.idle:
            return self._idle_step(c, cd)
        if cd.current is not t:
            return None  # a stack switched away from; nothing of it runs here
        if t.proxy_kind:
            return proxy.step(self, cd, t)
        return syscalls.thread_step(self, c, cd, t)

    def claim_proxy(self, cpu: int, source: int) -> Path:
        """get_ipc_proxy: claim a free IPC proxy on CPU `cpu` (an atomic bit in its TCB).

        If every proxy there is busy, the request queues behind the one chosen
        by the requesting CPU's number.
        """
        for j in range(1, self.pool + 1):
            p = self.proxies[(cpu, j)]
            if not (yield Atomic("bts", p.f["resources"], 0)) & 1:
                return p
        return self.proxies[(cpu, (source - 1) % self.pool + 1)]

    def preempt_for(self, cd: CpuData, woken: list[Thread]) -> Path:
        """Threads just made ready here: switch if one outranks what runs (§8.3.4)."""
        if not woken or cd.preempt_off:
            return  # (a lock holder waiting with interrupts enabled: they run after it)
        best = yield from sched.dispatch(self, cd)
        cur = cd.current
        if best is None or best is cur:
            return
        if cur is cd.idle or (yield Read(best.f["priority"])) > (yield Read(cur.f["priority"])):
            yield from self.switch_to(cd, best)

    # Faults are IPCs (§2.2.2): the pager's paths sit above the IPC, proxy and transfer
    # paths that meet a fault, which reach them through the kernel.

    def fault_ipc(self, t: Thread, addr: int, write: bool, timeout: int | None) -> Path:
        """`t` faults on `addr` to its pager; whether the page was mapped (pager.py)."""
        return pager.page_fault_ipc(self, t, addr, write, timeout)

    def redo_fault(self, b: Thread, timeout: int | None) -> Path:
        """Receiver `b` redoes, in its context, a fault a transfer met in its space (§8.3.2)."""
        return pager.redo_fault(self, b, timeout)

    def copy_fault(self, copier: Thread, a: Thread, addr: int, timeout: int | None) -> Path:
        """A copy for sender `a` faulted in its space; whether it was resolved (§8.4.2)."""
        return pager.copy_fault(self, copier, a, addr, timeout)

    def trap(self, t: Thread) -> Path:
        """A system call enters the kernel on `t`'s CPU, whose exit will check the mailboxes."""
        yield Trap()
        yield from xcpu.announce(self, self.cpus[t.cpu - 1], True)

    def exit_to_user(self, c: Cpu) -> Path:
        """Every kernel exit checks the mailboxes first (§8.3.4), then irets."""
        cd = self.cpus[c.index]
        yield from xcpu.announce(self, cd, False)  # before the check: see `xcpu.announce`
        woken = yield from xcpu.check_n_ack(self, cd)
        yield from self.preempt_for(cd, woken)
        yield Iret()

    def _idle_step(self, c: Cpu, cd: CpuData) -> Path:
        """One round of the idle loop: dispatch, or halt until an interrupt."""
        if c.mode != "kernel":  # pragma: no cover - idle runs in the kernel
            yield Iret()
        yield Cli()
        if self.ipi_policy == "when_needed" and (yield Read(cd.page + sched.IN_KERNEL)):
            # A system call that blocked ends here, not at a kernel exit: its check.
            yield from xcpu.announce(self, cd, False)
            yield from xcpu.check_n_ack(self, cd)
        t = yield from sched.dispatch(self, cd)
        if t is not None:
            yield from self.switch_to(cd, t)
            return
        yield Phase("idle")
        yield Sti()
        yield Hlt()

    def switch_to(self, cd: CpuData, t: Thread | None) -> Path:
        """Switch this CPU from its current thread to `t` (None: whoever the dispatcher picks)."""
        if t is None:
            t = yield from sched.dispatch(self, cd)
            if t is None:
                t = cd.idle
        old = cd.current
        if t is old:
            return
        yield Phase("sched.switch")
        self.counters.switches += 1
        yield Write(old.f["stack"], old.index)
        cd.current = t
        yield Write(cd.page + CURRENT, t.tcb)
        yield Read(t.f["stack"])
        if t.task is not None and t.task.space is not None:
            c = self.machine.cpu(cd.number)
            if c.cr3 != t.task.space.pdbr:
                yield LoadCR3(t.task.space.pdbr)
        yield Compute(SWITCH_CYCLES)
        yield SwitchContext(t.context)

    def _timer(self, c: Cpu, vector: int) -> Path:
        """The periodic timer tick (§2.1.1, §8.3.4): wakeups, timeslice, preemption."""
        yield EOI()
        yield Phase("sched.timer_tick")
        cd = self.cpus[c.index]
        interrupted = cd.current
        cd.ticks += 1
        for t in (yield from sched.expired(self, cd, c.clock)):
            yield from ipc.timeout(self, cd, t)
        woken = yield from xcpu.check_n_ack(self, cd)
        yield from self.preempt_for(cd, woken)
        if interrupted.cpu != cd.number:
            # The handler runs on the interrupted thread's kernel stack (§8.3.2); a
            # preemption above switched away from it, and while it was off the CPU it
            # was migrated (§8.7.2). It resumes here on its new CPU, where the rest of
            # the old CPU's tick does not belong: rotating and dispatching with the
            # old CPU's data from the new one corrupted the old CPU's ready list
            # (found by the random kernel fuzzer: `KeyError: 0` in sched.dispatch).
            return
        cur = cd.current
        preempt = False
        if cur is not cd.idle:
            left = (yield Read(cur.f["remaining_timeslice"])) - self.tick
            if left <= 0:
                yield Phase("sched.timeslice_expired")
                left = yield Read(cur.f["timeslice"])
                yield from sched.rotate(self, cd, cur)
                preempt = True
            yield Write(cur.f["remaining_timeslice"], max(left, 0))
        best = yield from sched.dispatch(self, cd)
        if best is not None and best is not cur and not cd.preempt_off:
            if cur is cd.idle or preempt:
                yield from self.switch_to(cd, best)
            else:
                mine = yield Read(cur.f["priority"])
                if (yield Read(best.f["priority"])) > mine:
                    yield from self.switch_to(cd, best)
