"""Cross-processor operations: mailboxes, their flags, IPIs and check_n_ack (thesis §8.3.4).

An operation for another CPU is written into a *mailbox* — locked with the
spinlock of appendix A while it is set up — and announced by setting the
mailbox's bit in the target CPU's flag line: 256 one-bit flags packed into
one cache line, so checking for work costs eight compares that hit the L1
("polling 256 mailboxes require 8 cycles"). The target checks its flags in
`check_n_ack` at every kernel exit and timer tick, links each flagged
mailbox to the thread it names (a proxy, or a sender being woken) and makes
that thread ready.

An IPI is sent only when the target would not check in time: the thesis's
pseudo-code reads ``if next_check(destination) < max_latency then send_IPI``,
but its text says the IPI is sent "when the next check of the destination
processor is later than it would take to deliver the IPI" — we follow the
text. The text goes on: knowing when the next check occurs "needs to have a
synchronous clock of all processors", which Pentiums lack; so ``when_needed``
never compares two CPUs' clocks (issue 16). It skips the IPI only when the
next check is known to come first without one: every timer tick does, if
the tick period is shorter than an IPI's latency (a duration, from the
profile); and a CPU inside a system call checks at its kernel exit — it says
so in its per-CPU `IN_KERNEL` word (`announce`). A halted idle CPU, a CPU
in user mode or in an interrupt handler gets the IPI. `ipi_policy`
``always`` and ``poll_only`` are the two extremes for teaching; ``always``
too sends no second IPI while one is not yet acknowledged (the pseudo-code's
``if not_yet_acknowledged``), so a kernel trigger never takes more than one
of the target's two APIC slots (§8.3.3).
The IPI handler EOIs first, to keep the two APIC slots free, then runs
`check_n_ack`.

A mailbox's words (lock, op, sender, destination, target, next) are simulated
memory; the rest of its parameter block — a send descriptor, a migration's
job — is a `Mail` (mail.py), written only by the CPU that holds the mailbox: the one
that locked it in `alloc`, until its `trigger` hands it to the target CPU,
which may re-target and trigger it in turn. Whether a mailbox is free is its
op word, read like any other (`alloc`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from kernel import memmap, sched
from kernel.mail import Mail, MailOp, SendMail
from kernel.thread import LOCKED_WAITING, POLLING, RUNNING, WAITING, Thread
from machine.cpu import Cpu
from machine.ops import EOI, Atomic, Compute, Op, Phase, Read, SendIPI, Write, kaddr
from machine.spinlock import spin_trylock, spin_unlock

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData

Path = Generator[Op, Any, Any]

MAILBOXES = 256  # one flag line's worth (§8.3.4: 32 * 8)
FLAG_WORDS = 8
FLAGS_BASE, MAILBOX_BASE = memmap.FLAGS_BASE, memmap.MAILBOX_BASE
# Mailbox fields (byte offsets).
LOCK, OP, SENDER, DEST, PARAM, TARGET, NEXT, ERROR = range(0, 32, 4)
FREE = 0
XCPU_VECTOR = 0xF0
ALLOC_RETRY_CYCLES = 50


class Mailboxes:
    """Where the mailboxes and flag lines are, and what each mailbox carries."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        line = k.machine.profile.cache.line_size
        self.line = max(line, 32)
        self.mail: dict[int, Mail] = {}

    def addr(self, i: int, field: int = 0) -> int:
        return kaddr(MAILBOX_BASE + i * self.line + field)

    def index(self, addr: int) -> int:
        return (addr - kaddr(MAILBOX_BASE)) // self.line

    def flags(self, cpu: int, word: int = 0) -> int:
        """Kernel address of flag word `word` of CPU `cpu`'s (1-based) flag line."""
        return kaddr(FLAGS_BASE + (cpu - 1) * self.line + 4 * word)


def alloc(k: Kernel, from_cpu: int) -> Path:
    """find_free_mailbox + lock_mailbox: a free mailbox, returned locked."""
    mb = k.mailboxes
    start = (from_cpu - 1) * 16  # each CPU starts looking in its own corner
    while True:
        for j in range(MAILBOXES):
            i = (start + j) % MAILBOXES
            if (yield Read(mb.addr(i, OP))) != FREE:  # in use: a quick look before the lock
                continue
            if not (yield from spin_trylock(mb.addr(i, LOCK))):
                continue
            if (yield Read(mb.addr(i, OP))) == FREE:
                return i
            yield from spin_unlock(mb.addr(i, LOCK))
        yield Compute(ALLOC_RETRY_CYCLES)  # all taken: try again


def setup(k: Kernel, i: int, mail: Mail, op_code: int, target: Thread) -> Path:
    """setup_mailbox(parameters) and unlock_mailbox."""
    mb = k.mailboxes
    yield Phase("xp.mailbox.setup")
    mb.mail[i] = mail
    yield Write(mb.addr(i, OP), op_code)
    yield Write(mb.addr(i, SENDER), mail.sender.tcb)
    if mail.dest is not None:
        yield Write(mb.addr(i, DEST), mail.dest.word)
    yield Write(mb.addr(i, TARGET), target.tcb)
    yield from spin_unlock(mb.addr(i, LOCK))


def release(k: Kernel, i: int) -> Path:
    """A mailbox's operation is over: free it for the next request."""
    mb = k.mailboxes
    mb.mail.pop(i, None)
    yield Write(mb.addr(i, OP), FREE)


def trigger(k: Kernel, here: CpuData, i: int, cpu: int) -> Path:
    """set_activate_mailbox_flag on CPU `cpu`, and an IPI if it would not check in time."""
    mb = k.mailboxes
    yield Phase("xp.trigger")
    yield Atomic("bts", mb.flags(cpu, i >> 5), i & 31)
    policy = k.ipi_policy
    if policy == "poll_only" or cpu == here.number:
        return
    if policy == "when_needed":
        if k.tick <= k.ipi_latency:
            return  # its timer tick, whenever it comes, finds the flag sooner than an IPI
        if (yield Read(k.cpus[cpu - 1].page + sched.IN_KERNEL)):
            return  # in a system call: its kernel exit checks the flags (see `announce`)
    if (yield Read(k.cpus[cpu - 1].page + sched.IPI_PENDING)):
        # Not yet acknowledged: that IPI's check_n_ack will see this flag too. Under
        # `always` as well: a third IPI to a CPU whose two APIC slots are taken
        # blocks the sender (§8.3.3), and if that CPU spins with interrupts
        # disabled for the sender's CPU — a migration barrier waiting for its
        # control proxy — neither ever goes on (found by the random kernel fuzzer).
        return
    yield Phase("xp.ipi")
    yield Write(k.cpus[cpu - 1].page + sched.IPI_PENDING, 1)
    k.counters.ipis += 1
    yield SendIPI(1 << (cpu - 1), XCPU_VECTOR)


def announce(k: Kernel, cd: CpuData, in_kernel: bool) -> Path:
    """Publish whether this CPU's next mailbox check is its kernel exit (`when_needed`).

    Set at a system call's entry; cleared at its exit *before* the exit's
    `check_n_ack`, and by a wait with interrupts enabled. A sender sets its
    flag bit and then reads this word: if it reads 1, the clear — and so the
    check after it — comes later, and sees the bit. Only `when_needed` reads
    it, so only `when_needed` pays for it.
    """
    if k.ipi_policy == "when_needed":
        yield Write(cd.page + sched.IN_KERNEL, int(in_kernel))


def check_n_ack(k: Kernel, cd: CpuData) -> Path:
    """Link every flagged mailbox to its thread and make that thread ready (§8.3.4).

    Returns the threads made ready. Runs with interrupts disabled, at every
    kernel exit, every timer tick and in the IPI handler.
    """
    mb = k.mailboxes
    if (yield Read(cd.page + sched.IPI_PENDING)):
        yield Write(cd.page + sched.IPI_PENDING, 0)  # acknowledged
    woken: list[Thread] = []
    for w in range(FLAG_WORDS):
        word = yield Read(mb.flags(cd.number, w))
        if not word:
            continue
        yield Phase("xcpu.check_n_ack")
        while word:
            bit = (word & -word).bit_length() - 1  # bit_scan_forward
            i = 32 * w + bit
            target = k.by_tcb[(yield Read(mb.addr(i, TARGET)))]
            state = yield Read(target.f["thread_state"])
            mail = mb.mail.get(i)
            if (
                isinstance(mail, SendMail)
                and mail.reply
                and state == WAITING
                and (yield Read(target.f["recv_started"]))  # written by the proxy (§8.3.1)
            ):
                if (yield from sender_ready(k, target, mail.ipc)):
                    # A sender already queued for the caller: the caller does its
                    # receive itself, as §8.3.2's receive path would, and finds it.
                    yield Write(target.f["recv_started"], 0)
                    yield from link(k, target, i)
                    yield from sched.make_ready(k, cd, target, RUNNING)
                    woken.append(target)
                    yield Atomic("btr", mb.flags(cd.number, w), bit)
                    word &= word - 1
                    continue
                # A caller whose receive phase its proxy began: it waits on, here,
                # with its receive timeout in this CPU's wakeup queue (ID 3). The
                # mailbox's work is done (the code is in xp_cc): free it now.
                timeout = mail.ipc.recv_timeout
                if timeout is not None:
                    c = k.machine.cpu(cd.number)
                    deadline = c.clock + timeout * k.machine.tpc
                    yield from sched.enqueue_wakeup(k, cd, target, deadline)
                yield from release(k, i)
                yield Atomic("btr", mb.flags(cd.number, w), bit)
                word &= word - 1
                continue
            yield from link(k, target, i)
            if target.busy and not (
                mail is not None and (mail.op is MailOp.RESUMED or mail.sender is target)
            ):
                pass  # a proxy blocked inside a request: only its own answers wake it
            elif state in (WAITING, LOCKED_WAITING):
                if target.proxy_kind:
                    k.counters.proxy_activations += 1
                yield from sched.make_ready(k, cd, target, RUNNING)
                woken.append(target)
            yield Atomic("btr", mb.flags(cd.number, w), bit)
            word &= word - 1
    return woken


def sender_ready(k: Kernel, b: Thread, op: Any) -> Path:
    """Is a sender already waiting to send to `b` (closed from op.source, or open)?"""
    if op.source is not None:
        a = k.by_name.get(op.source)
    else:
        head = yield Read(b.f["send_queue"])
        a = k.by_tcb[head] if head else None
    if a is None:
        return False
    if a.cpu != b.cpu:
        return (yield from sender_proxy(k, a, b)) is not None
    state = yield Read(a.f["thread_state"])
    return state == POLLING and (yield Read(a.f["partner"])) == b.word


def link(k: Kernel, t: Thread, i: int) -> Path:
    """link_mailbox_to_proxy: append mailbox `i` to `t`'s first/last mailbox list."""
    mb = k.mailboxes
    addr = mb.addr(i)
    yield Write(mb.addr(i, NEXT), 0)
    last = yield Read(t.f["last_mailbox"])
    if last:
        yield Write(last + NEXT, addr)
    else:
        yield Write(t.f["first_mailbox"], addr)
    yield Write(t.f["last_mailbox"], addr)


def unhook_first(k: Kernel, t: Thread) -> Path:
    """Take the first mailbox off `t`'s list; its index, or None."""
    first = yield Read(t.f["first_mailbox"])
    if not first:
        return None
    nxt = yield Read(first + NEXT)
    yield Write(t.f["first_mailbox"], nxt)
    if not nxt:
        yield Write(t.f["last_mailbox"], 0)
    return k.mailboxes.index(first)


def remove(k: Kernel, t: Thread, which: Callable[[Mail], bool]) -> Path:
    """Unlink and free the mailboxes on `t`'s list whose `Mail` satisfies `which`."""
    mb = k.mailboxes
    prev = 0
    cur = yield Read(t.f["first_mailbox"])
    while cur:
        nxt = yield Read(cur + NEXT)
        i = mb.index(cur)
        if which(mb.mail[i]):
            yield Write(prev + NEXT if prev else t.f["first_mailbox"], nxt)
            if not nxt:
                yield Write(t.f["last_mailbox"], prev)
            yield from release(k, i)
        else:
            prev = cur
        cur = nxt


def ipi_handler(k: Kernel) -> Any:
    return functools.partial(_ipi, k)  # not a closure: checkpoints copy what it binds


def _ipi(k: Kernel, c: Cpu, vector: int) -> Path:
    """ipi_handler: EOI at once (the slot is free again), then check_n_ack (§8.3.4)."""
    yield EOI()
    yield Phase("xcpu.ipi")
    cd = k.cpus[c.index]
    woken = yield from check_n_ack(k, cd)
    yield from k.preempt_for(cd, woken)


def sender_proxy(k: Kernel, a: Thread, b: Thread) -> Path:
    """The receive path's check of a remote sender (§8.3.5): its proxy, if it polls on us."""
    proxy_tcb = yield Read(a.f["proxy"])
    if not proxy_tcb:
        return None
    p = k.by_tcb[proxy_tcb]
    if (yield Read(p.f["thread_state"])) != POLLING:
        return None
    if (yield Read(p.f["partner"])) != b.word:
        return None
    current = yield Read(p.f["first_mailbox"])  # is it a's request it is polling for?
    mail = k.mailboxes.mail.get(k.mailboxes.index(current)) if current else None
    if mail is None or mail.sender is not a:
        return None
    return p
