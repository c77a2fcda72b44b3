"""A machine and its kernel built from a scenario, run headless to its end (DESIGN.md §2).

`System` is what every front end drives underneath: it builds the machine
from the scenario's profile, the kernel with its tasks, threads and pagers,
and runs it until no thread can ever run again, a step or cycle limit, or a
deadlock. It answers plain queries about the run (why it ended, the wait-for
graph, the ready lists); the `run --json` summary and the scenario's
expectations are the runner's (`l4tui.runner`).

**When a run ends** (DESIGN.md §2): every thread is inactive or blocked with
an infinite timeout, nothing is in flight (no IPI on the APIC bus or in an
APIC slot, no external interrupt), so only the idle timer ticks would go on.
**Deadlock**: a cycle in the IPC wait-for graph — closed receives and
polling senders with infinite timeouts. A server idle in an open receive is
not waiting *for* anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kernel import invariants, xcpu
from kernel.ids import NIL
from kernel.kernel import MAX_THREADS, Kernel
from kernel.mail import SendMail
from kernel.scenario import Scenario
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    POLLING,
    RUNNABLE,
    WAITING,
    Thread,
)
from machine import Machine
from machine.errors import ConfigError, MachineError
from machine.ops import KERNEL_BASE, Hlt, InterruptExit, Iret, Op, kaddr

QUIESCENCE_CHECK = 4096  # steps between checks when no CPU halts


@dataclass(frozen=True, slots=True)
class Wait:
    """An edge of the wait-for graph: `thread` waits for `on` (as `how`)."""

    thread: str
    on: str
    how: str  # "polling on" | "waiting for"

    def __str__(self) -> str:
        """The edge in words, as the run summary and `info waits` say it: ``snd polling
        on rcv``."""
        return f"{self.thread} {self.how} {self.on}"


def _memory_where(scenario: Scenario) -> tuple[str, int | None, int | None]:
    """Where the scenario sets the machine's memory (or its machine, or the file)."""
    positions = scenario.source.positions
    for path in (("machine", "memory", "size_mb"), ("machine", "memory"), ("machine",)):
        if path in positions:
            return positions[path]
    return (scenario.file, None, None)


@contextmanager
def _fits(
    where: tuple[str, int | None, int | None],
    what: str,
    hint: str = "give the machine more memory (machine: {memory: {size_mb: N}}) or fewer tasks",
) -> Iterator[None]:
    """Building `what` out of physical frames: a ConfigError at `where`, not a crash."""
    try:
        yield
    except MachineError as e:
        raise ConfigError(f"{what} does not fit in the machine: {e}; {hint}", *where) from None


class System:
    """One run of a scenario: machine, kernel, and the bookkeeping of its end."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.machine = Machine(scenario.profile, seed=self.seed)
        ks = scenario.kernel
        # What does not fit the machine (memory frames, the kernel's thread table)
        # is bad input: a ConfigError at the setting, task or thread that overflows.
        mb = scenario.profile.memory.size_mb
        with _fits(_memory_where(scenario), "the kernel", f"{mb} MB of memory is too small"):
            self.kernel = k = Kernel(self.machine, ks.tcb_layout, ks.tick, ks.xp_ipc, ks.ipi_policy)
        k.booting = scenario.boot  # threads start once the boot sequence is through
        own = len(k.threads)  # the kernel's own: idle threads, proxies, sigma0
        for ts in scenario.tasks:
            with _fits(ts.where, f"task {ts.name!r}"):
                task = k.add_task(ts.name, start=ts.start)
            for th in ts.threads:
                if len(k.threads) >= MAX_THREADS:
                    raise ConfigError(
                        f"thread {th.name!r} does not fit: the kernel has {MAX_THREADS} "
                        f"threads, {own} of them its own on {len(k.cpus)} CPUs, so a "
                        f"scenario has at most {MAX_THREADS - own}; this one has "
                        f"{len(scenario.threads())}",
                        *th.where,
                    )
                with _fits(th.where, f"thread {th.name!r}"):
                    k.add_thread(
                        task, th.name, th.program, th.cpu, th.priority, th.timeslice, th.mcp,
                        spec=th,
                    )  # fmt: skip
        for th in scenario.threads():
            t = k.by_name[th.name]
            t.pager = k.by_name[th.pager]
            self.machine.memory.write(t.f["pager"] - KERNEL_BASE, t.pager.word)
        with _fits((scenario.file, None, None), "the scenario"):
            if scenario.boot:
                k.boot()
            else:
                k.start()
        for irq in scenario.interrupts:
            for i in range(irq.count):
                self.machine.raise_irq(irq.irq, irq.at + i * (irq.every or 0))
        self.ended: str | None = None  # why the run stopped: end, deadlock, max_steps, until
        self.violations: list[str] = []
        self._since_check = 0

    # --- running -------------------------------------------------------------------

    def run(
        self,
        max_steps: int | None = None,
        until_cycle: int | None = None,
        check_invariants: bool = False,
        observer: Callable[[Op], None] | None = None,
    ) -> str:
        """Run to the end (or a limit); returns why it stopped.

        With `check_invariants`, the kernel invariants are checked at every
        kernel exit; the first violation stops the run ("invariant") and is
        kept in `violations`. `observer` is called with every op executed
        (a trace writer).
        """
        m = self.machine
        limit = None if until_cycle is None else m.ticks(until_cycle)
        steps = 0
        while self.ended is None:
            if max_steps is not None and steps >= max_steps:
                self.ended = "max_steps"
                break
            if limit is not None:
                got = m.peek()
                if got is None or got[0].clock >= limit:
                    self.ended = "until_cycle" if got is not None else "end"
                    break
            op = self.advance(check_invariants)
            if op is None:
                break
            if observer is not None:
                observer(op)
            steps += 1
        assert self.ended is not None  # advance() without a CPU returns None only at the end
        return self.ended

    def advance(self, check_invariants: bool = False, cpu: int | None = None) -> Op | None:
        """One micro-op, and the judgement of whether the run is over.

        Returns the op executed, or None when nothing ran because the run is
        over (`ended` says why). The step that ends a run is returned too, with
        `ended` set. Every front end steps through here, so all agree on the end.
        With `cpu`, that CPU steps (the race explorer's choice); None then may
        also mean only that it has nothing to run, with `ended` still None.
        """
        if self.ended is not None:
            return None
        m = self.machine
        op = m.step(cpu)
        if op is None:
            if cpu is None:
                self.ended = "end"
            return None
        self._since_check += 1
        if check_invariants and type(op) in (Iret, InterruptExit) and self.settled():
            bad = invariants.check(self.kernel)
            if bad:
                last = m.last_cpu
                assert last is not None  # the step just taken set it
                where = f"cycle {m.last_start // m.tpc} on cpu{last.number}"
                self.violations = [f"{v} (at the kernel exit, {where})" for v in bad]
                self.ended = "invariant"
                return op
        if type(op) is Hlt or self._since_check >= QUIESCENCE_CHECK:
            self._since_check = 0
            if self.quiescent():
                self.ended = "deadlock" if self.wait_cycle() else "end"
                if self.ended == "end" and self.stuck():
                    self.ended = "stuck"
        return op

    def settled(self) -> bool:
        """No kernel path is half-way through on any CPU: each runs user code or halts.

        The invariants hold at such points; a CPU in the middle of a kernel path
        may legally have its structures half-changed.
        """
        m = self.machine
        last = m.last_cpu
        return all(c is last or c.waiting in ("hlt", "idle") or c.mode == "user" for c in m.cpus)

    def quiescent(self, cpus: int = -1) -> bool:
        """No thread can ever run again and nothing is in flight (DESIGN.md §2).

        Judged only when every CPU has halted (or has nothing to run), so no
        kernel path is half-way through. With `cpus` (a mask), of those CPUs
        only: their threads, mailboxes and APICs, and the messages to or from
        them (the race explorer's independent groups: l4tui/explore/groups.py).
        """
        m = self.machine
        if any(c.waiting is None for c in m.cpus if cpus >> c.index & 1):
            return False
        k = self.kernel
        for t in k.threads:
            if t.task is None and not t.proxy_kind:
                continue
            if not cpus >> (t.cpu - 1) & 1:
                continue
            state = k.field(t, "thread_state")
            if t.deadline is not None or state in RUNNABLE:
                return False  # a timeout will fire, or someone can run
            # Waiting forever (or, a kernel bug, locked with no one to unlock it):
            # nothing will change this thread any more.
        mem = m.memory
        mb = k.mailboxes
        if any(
            mem.read(mb.flags(cd.number, w) - kaddr(0))
            for cd in k.cpus
            if cpus >> (cd.number - 1) & 1
            for w in range(xcpu.FLAG_WORDS)
        ):
            return False  # a mailbox waits for its CPU's next check
        if any(
            msg.sender is None or cpus >> msg.sender & 1 or any(cpus >> d & 1 for d in msg.dests)
            for msg in m.apics.in_flight
        ) or any(
            a.slots or a.irr_other & ~(1 << 0xEF) or a.outgoing
            for i, a in enumerate(m.apics.apics)
            if cpus >> i & 1
        ):
            return False
        return all(
            e[2] == "apic.timer"
            or (e[2] == "apic.arrive" and not any(cpus >> d & 1 for d in e[3].dests))
            for e in m.events
        )  # (a message to no CPU of `cpus`: only with a mask; the in-flight check saw all)

    def stuck(self) -> list[str]:
        """Threads left locked in an IPC with nothing left to unlock them (a kernel fault).

        A cross-processor sender waits `locked_waiting` for its proxy (§8.3.5);
        that is a wait, not a fault, only while the proxy polls on the receiver
        *for it* — its request first in the proxy's mailbox list. A sender whose
        proxy field names a proxy that sleeps, or works for someone else, will
        never be woken: it is stuck, not blocked for good (a run used to end
        "end", exit 0, with such a sender locked forever).
        """
        k = self.kernel
        out = []
        for t in k.threads:
            if t.task is None and not t.proxy_kind:
                continue
            state = k.field(t, "thread_state")
            if state not in (LOCKED_RUNNING, LOCKED_WAITING):
                continue
            proxy = k.by_tcb.get(k.field(t, "proxy"))
            if state == LOCKED_WAITING and proxy is not None and self._polls_for(proxy, t):
                continue  # a cross-processor sender: it waits for its proxy (see waits)
            out.append(t.name)
        return out

    def _polls_for(self, proxy: Thread, sender: Thread) -> bool:
        """Whether `proxy` polls on its receiver with `sender`'s request (§8.3.5)."""
        k = self.kernel
        if k.field(proxy, "thread_state") != POLLING:
            return False
        first = k.field(proxy, "first_mailbox")
        mail = k.mailboxes.mail.get(k.mailboxes.index(first)) if first else None
        return isinstance(mail, SendMail) and mail.sender is sender

    def waits(self) -> list[Wait]:
        """The IPC wait-for graph: who waits for whom, with an infinite timeout."""
        k = self.kernel
        out = []
        for t in k.threads:
            if (t.task is None and not t.proxy_kind) or t.deadline is not None:
                continue
            state = k.field(t, "thread_state")
            if state == LOCKED_WAITING and not t.proxy_kind:
                # A cross-processor sender waits for the proxy that sends for it (§8.3.5).
                proxy = k.by_tcb.get(k.field(t, "proxy"))
                if proxy is not None and proxy.deadline is None:
                    out.append(Wait(t.name, proxy.name, "waiting for"))
                continue
            partner = k.field(t, "partner")
            if state not in (WAITING, POLLING) or partner == NIL:
                continue
            other = k.by_word(partner)
            if other is None or other.task is None:
                continue
            how = "polling on" if state == POLLING else "waiting for"
            out.append(Wait(t.name, other.name, how))
        return out

    def wait_cycle(self) -> list[Wait]:
        """A cycle in the wait-for graph (a deadlock), or []."""
        edges = {w.thread: w for w in self.waits()}
        for start in edges:
            seen: list[str] = []
            cur = start
            while cur in edges and cur not in seen:
                seen.append(cur)
                cur = edges[cur].on
            if cur in seen:
                cycle = seen[seen.index(cur) :]
                return [edges[n] for n in cycle]
        return []
