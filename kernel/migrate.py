"""Thread migration: thread_schedule's processor number, the A/B/C algorithm (thesis §8.7).

`thread_schedule` carries the target processor in bits 16–19 (1..k; 0 means
stay; §7.1). The caller's CPU A, the thread's CPU B and the destination C
each run their part with interrupts disabled, synchronised by barriers:

    A: trigger B and C | (=1) | exchange priority and timeslice | (=2) | return
    B: (=1) | delete t from the ready list, free its resources (save the
       FPU) | (=2) | set the new processor number | (3̄) | go on
    C: (=2) | (3̄: wait until B set the number) | insert t | switch if it
       outranks the current thread

B's and C's parts run on their CPUs (implementation decision 3) in each
CPU's control proxy, woken through mailboxes. When A is B or C its part is
done first and that barrier partner is itself (§8.7.2). A waiting thread
keeps its timeout: it leaves B's wakeup queue and joins C's; a thread
waiting forever is in none (§8.7.3). No thread migrates itself (ID 4: the
request is ignored). A thread half-way through an IPC (polling or locked)
is not migrated — the "do not migrate" condition of §8.5, decided by B on
the thread's CPU once it has acknowledged its pending mailboxes — and a
receiver leaving a CPU takes along the requests of senders whose proxies
poll on it there (§8.5, the second race).

One migration at a time: A takes the migration lock, reads B under it, and
C releases it when it is through (3̄) (A, when A is C).

What the parts tell each other is simulated memory: the barriers, the
cancel word, the waiting thread's wakeup time (B to C), and the thread's
`migrating` flag in its TCB (A sets it, C clears it) — read by an interrupt
for it, which must wait while it is in no CPU's lists. A waiting for the
lock keeps serving its CPU's mailboxes, for the holder may be waiting for
that CPU's control proxy (issue 14, found by the random kernel fuzzer).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal

from kernel import memmap, sched, space, xcpu
from kernel.mail import MigrateMail, MigrationJob
from kernel.program import Schedule, result
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    POLLING,
    RUNNABLE,
    WAITING,
    WAKE_FORWARD,
    WAKE_RESTART,
    Thread,
)
from machine.ops import Atomic, Cli, Compute, Op, Phase, Read, Sti, Write, kaddr
from machine.spinlock import spin_trylock, spin_unlock

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData

Path = Generator[Op, Any, Any]

AREA = memmap.MIGRATION_AREA  # the lock and barriers, each in a line of its own
LOCK, BARRIER1, BARRIER2, NUMBER_SET, CANCEL = 0, 64, 128, 192, 256
# B hands C the waiting thread's wakeup time (ticks + 1, 0: none) in two words (§8.7.3).
DEADLINE_LO, DEADLINE_HI = 320, 324
SPIN_CYCLES = 5
OP_MIGRATE = 2
FPU_SAVE_CYCLES = 100


def _wait_for(k: Kernel, cd: CpuData, addr: int, count: int) -> Path:
    """Spin until the word at `addr` reaches `count` (reads hit the shared line).

    Interrupts are taken between the reads, but no handler switches away from
    us (`preempt_off`): we are part of the one migration under way. Spinning
    with interrupts disabled, a barrier never acknowledged a TLB shootdown's IPI
    from a CPU that, holding the shootdown lock, kept the control proxy this
    barrier waited for from running: three CPUs stuck (found by the random
    kernel fuzzer). Appendix A's spinlock says nothing of the interrupt flag;
    §8.7.2 runs A, B and C "in interrupt disable mode" for the ready lists,
    which no handler here touches in a way the parts rely on.
    """
    enable = not k.machine.cpu(cd.number).if_flag
    cd.preempt_off += 1
    if enable:
        yield from xcpu.announce(k, cd, False)  # an IPI is taken while we wait
    while (yield Read(addr)) < count:
        if enable:
            yield Sti()
        yield Compute(SPIN_CYCLES)
        if enable:
            yield Cli()
    cd.preempt_off -= 1


def _barrier(k: Kernel, cd: CpuData, addr: int, parties: int) -> Path:
    """A barrier (=x): count ourselves in, then wait for everyone."""
    yield Atomic("xadd", addr, 1)
    yield from _wait_for(k, cd, addr, parties)


def _lock(k: Kernel, caller: Thread) -> Path:
    """Take the migration lock, serving this CPU's cross-processor requests meanwhile.

    The holder's A may be waiting at (=1) or (=2) for this very CPU's control
    proxy to run its B or C. Spinning here with interrupts disabled, as the
    lock of appendix A does, this CPU would never run it: a deadlock of two
    migrations (found by the random kernel fuzzer: one scheduler migrating a
    thread off the CPU of another scheduler that waited for the lock). So the
    waiter acknowledges its mailboxes as it spins and lets a woken proxy run
    (it stays ready itself, and tries again when it runs next).
    """
    base = kaddr(AREA)
    while not (yield from spin_trylock(base + LOCK)):
        yield from xcpu.announce(k, k.cpus[caller.cpu - 1], False)  # IPIs are taken here
        while (yield Read(base + LOCK)) != 0:
            cd = k.cpus[caller.cpu - 1]
            woken = yield from xcpu.check_n_ack(k, cd)
            if woken:
                yield from k.preempt_for(cd, woken)
            else:
                yield Sti()  # a TLB shootdown's IPI too (see `_wait_for`)
                yield Compute(SPIN_CYCLES)
                yield Cli()


def migrate(k: Kernel, caller: Thread, t: Thread, op: Schedule) -> Path:
    """Part A, on the caller's CPU; returns the result, or None if `t` is on `op.cpu` already.

    The thread's processor number is read under the migration lock: a migration
    racing ours (two schedulers moving one thread) has then finished and set
    it, so B is where `t` really is. Read before the lock, a second migration
    of the same thread sent its B to the CPU `t` had just left, which took `t`
    out of a ready list it was no longer in — through links into the new CPU's
    list (found by the random kernel fuzzer: a thread in two CPUs' ready lists).
    Whether `t` may be migrated at all (§8.5: not in an IPC path) is decided by
    B, where its state cannot change under us.
    """
    c_cpu = op.cpu
    base = kaddr(AREA)
    yield Phase("migrate.A.lock")
    yield from _lock(k, caller)  # one migration at a time (the §8.5 lock)
    a_cpu = caller.cpu  # we may have been migrated ourselves while we waited for it
    b_cpu = yield Read(t.f["cpu"])
    if b_cpu == c_cpu:
        yield from spin_unlock(base + LOCK)
        return None  # nothing to move: thread_schedule sets the rest on t's CPU
    for off in (BARRIER1, BARRIER2, NUMBER_SET, CANCEL):
        yield Write(base + off, 0)
    yield Write(t.f["migrating"], 1)
    parties2 = len({a_cpu, b_cpu, c_cpu})
    here = k.cpus[a_cpu - 1]
    job = MigrationJob(t, b_cpu, c_cpu, parties2, op)
    yield Phase("migrate.A.trigger")
    parts: tuple[tuple[Literal["B", "C"], int], ...] = (("B", b_cpu), ("C", c_cpu))
    for part, cpu in parts:
        if cpu != a_cpu:
            ctl = k.ctl[cpu]
            i = yield from xcpu.alloc(k, a_cpu)
            yield from xcpu.setup(k, i, MigrateMail(caller, t, job, part), OP_MIGRATE, ctl)
            yield from xcpu.trigger(k, here, i, cpu)
    if a_cpu == b_cpu:
        yield from part_b(k, here, job, first=True)
    else:
        yield Phase("migrate.A.barrier1")
        yield from _barrier(k, here, base + BARRIER1, 2)  # (=1): B is in the kernel
    prio = yield Read(t.f["priority"])
    cancelled = yield Read(base + CANCEL)
    if not cancelled:
        k.counters.migrations += 1
        yield Phase("migrate.A.exchange")
        if op.priority is not None:
            yield Write(t.f["priority"], op.priority)
        if op.timeslice is not None:
            yield Write(t.f["timeslice"], op.timeslice)
    yield Phase("migrate.A.barrier2")
    yield from _barrier(k, here, base + BARRIER2, parties2)  # (=2)
    if a_cpu == b_cpu:  # B's part after the barrier is ours too
        if not cancelled:
            yield from set_cpu(k, t, c_cpu)
        yield Write(base + NUMBER_SET, 1)  # (3̄)
    if a_cpu != c_cpu:
        # "At this point A gets independent of C" (§8.7.2). C releases the lock when
        # it is through (3̄): the barriers are words the next migration resets, and
        # released here, a reset could hide B's number from C, which would spin
        # for it forever.
        if cancelled:
            return result("schedule", ok=False, error="busy")  # in an IPC path (§8.5)
        return result("schedule", value=prio)
    switch = yield from part_c(k, here, job, after_barrier=True)
    yield from spin_unlock(base + LOCK)
    if switch:
        # C's "switch to t_i" when A is C: after the unlock, for a switch suspends
        # the caller's kernel stack, and a lock held there would stop every other
        # migration — and spin this CPU forever if the next thread here migrates.
        yield from k.switch_to(here, t)
    if cancelled:
        return result("schedule", ok=False, error="busy")  # in an IPC path: do not migrate
    return result("schedule", value=prio)


def part_b(k: Kernel, cd: CpuData, job: MigrationJob, first: bool = False) -> Path:
    """Part B, on the thread's CPU: take it out of every local structure.

    First, in the kernel with interrupts disabled, B acknowledges the
    operations pending for this CPU (§8.5: "Pending requests ... we will find
    by calling check_n_ack before"), so no mailbox for `t` is left to arrive
    here after it left; then it decides whether `t` may go at all. A thread
    half-way through an IPC — polling, locked, or a cross-processor sender
    whose proxy works for it — is not migrated (§8.5: "we do not migrate the
    sender while a proxy thread handles a request for it"). That check was A's,
    on another CPU, where the state could change between the check and B's
    delete: a thread starting a cross-CPU call in between was moved with its
    proxy's reply on the way to the CPU it had left.
    """
    t = job.thread
    base = kaddr(AREA)
    yield from xcpu.check_n_ack(k, cd)  # whom it wakes, the dispatcher finds ready
    state = yield Read(t.f["thread_state"])
    # Also in an IPC: waiting for its pager's reply to a page fault (perhaps one
    # nested in a long IPC, §8.4.2), whose outer IPC resumes where it began.
    busy = state in (POLLING, LOCKED_RUNNING, LOCKED_WAITING) or bool(
        (yield Read(t.f["proxy"]))
        or t.fault is not None
        # A call's receive phase its proxy began (§8.3.1): the proxy wrote it on
        # another CPU, before the reply mailbox that tells us is acknowledged.
        or (yield Read(t.f["recv_started"]))
    )
    if busy:
        yield Write(base + CANCEL, 1)
    # The ring t is in is its old priority's: read it before (=1), for after (=1)
    # A exchanges the priority while we delete (§8.7.2: "delete the thread from
    # the old priorities list").
    old_prio = yield Read(t.f["priority"])
    if not first:
        yield Phase("migrate.B.barrier1")
        yield from _barrier(k, cd, base + BARRIER1, 2)  # (=1)
    if not busy:
        yield Phase("migrate.B.delete")
        yield from sched.dequeue_ready(k, cd, t, old_prio)
        # It keeps its timeout: C queues it with the same wakeup time (§8.7.3).
        stored = 0 if t.deadline is None else t.deadline + 1
        yield Write(base + DEADLINE_LO, stored & 0xFFFF_FFFF)
        yield Write(base + DEADLINE_HI, stored >> 32)
        yield from sched.dequeue_wakeup(k, cd, t)
        if cd.fpu_owner is t:
            yield Phase("migrate.B.save_fpu")  # the FPU is per CPU: save before leaving (§8.7.1)
            yield Write(t.f["resources"], 0)
            yield Compute(FPU_SAVE_CYCLES)
            cd.fpu_owner = None
        yield from _release_polling_proxies(k, cd, t, job.to)
    if first:
        return  # A is B: A goes on to its barriers itself
    yield from _finish_b(k, cd, job, busy)


def _finish_b(k: Kernel, cd: CpuData, job: MigrationJob, busy: bool) -> Path:
    t = job.thread
    base = kaddr(AREA)
    yield Phase("migrate.B.barrier2")
    yield from _barrier(k, cd, base + BARRIER2, job.parties)  # (=2)
    if busy:
        yield Write(base + NUMBER_SET, 1)  # (3̄): C finds the migration cancelled
        return
    yield from set_cpu(k, t, job.to)
    yield Write(base + NUMBER_SET, 1)  # (3̄)
    if cd.current is t:
        yield from k.switch_to(cd, None)  # it runs elsewhere now


def set_cpu(k: Kernel, t: Thread, cpu: int) -> Path:
    """The new processor number: TCB, the kernel's mirror, and the UTCB field (§7.2)."""
    yield Phase("migrate.B.set_cpu")
    yield Write(t.f["cpu"], cpu)
    t.cpu = cpu
    if t.task is not None and t.task.space is not None:
        yield Write(kaddr(space.utcb_paddr(k, t) + memmap.UTCB_CPU), cpu)


def part_c(k: Kernel, cd: CpuData, job: MigrationJob, after_barrier: bool = False) -> Path:
    """Part C, on the destination: insert the thread, switch if it outranks us.

    When A is C (`after_barrier`), C does not switch itself: it returns whether
    to, and A switches once it has released the migration lock.
    """
    t = job.thread
    base = kaddr(AREA)
    if not after_barrier:
        yield Phase("migrate.C.barrier2")
        yield from _barrier(k, cd, base + BARRIER2, job.parties)  # (=2)
    yield Phase("migrate.C.wait_number")
    yield from _wait_for(k, cd, base + NUMBER_SET, 1)  # (3̄): B has set the number
    cancelled = yield Read(base + CANCEL)
    if not after_barrier:
        yield from spin_unlock(base + LOCK)  # the last to use the area (see `migrate`)
    if cancelled:
        yield Write(t.f["migrating"], 0)
        return False  # B found t in an IPC path: it stays where it is
    yield Phase("migrate.C.insert")
    state = yield Read(t.f["thread_state"])
    if state in RUNNABLE:
        yield from sched.enqueue_ready(k, cd, t)
    if state == WAITING:
        stored = (yield Read(base + DEADLINE_LO)) | (yield Read(base + DEADLINE_HI)) << 32
        if stored:
            yield from sched.enqueue_wakeup(k, cd, t, stored - 1)
    yield Write(t.f["migrating"], 0)
    cur = cd.current
    switch = state in RUNNABLE and (
        cur is cd.idle or (yield Read(t.f["priority"])) > (yield Read(cur.f["priority"]))
    )
    if switch and not after_barrier:
        yield from k.switch_to(cd, t)
    return switch


def _release_polling_proxies(k: Kernel, cd: CpuData, t: Thread, to: int) -> Path:
    """Senders waiting here for `t` (a receiver leaving): their requests follow it (§8.5).

    A proxy polling for a remote sender forwards the request; a local sender
    polling itself starts its send over, which now crosses processors.
    """
    senders = []  # the queue first: a restarted sender leaves it below
    head = cur = yield Read(t.f["send_queue"])
    while cur:
        senders.append(k.by_tcb[cur])
        cur = yield Read(k.by_tcb[cur].f["send_next"])
        if cur == head:
            break
    for sender in senders:
        proxy_tcb = yield Read(sender.f["proxy"])
        p = k.by_tcb.get(proxy_tcb) if proxy_tcb else None
        if p is not None and p.cpu == cd.number and (yield Read(p.f["thread_state"])) == POLLING:
            yield Phase("migrate.B.forward_request")
            yield Write(p.f["wake"], WAKE_FORWARD)
            yield from sched.dequeue_wakeup(k, cd, p)
            yield from sched.make_ready(k, cd, p, LOCKED_RUNNING)
        elif sender.cpu == cd.number and (yield Read(sender.f["thread_state"])) == POLLING:
            yield Phase("migrate.B.restart_sender")
            yield Write(sender.f["wake"], WAKE_RESTART)
            # Out of t's send queue here and now, with the queue's owner: woken
            # locked_running, the sender would otherwise sit in the queue of a
            # thread it no longer polls on until it next runs.
            yield from sched.dequeue_sendq(k, t, sender)
            yield from sched.dequeue_wakeup(k, cd, sender)
            yield from sched.make_ready(k, cd, sender, LOCKED_RUNNING)
