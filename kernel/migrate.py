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
is not migrated — the "do not migrate" condition of §8.5 — and a receiver
leaving a CPU takes along the requests of senders whose proxies poll on it
there (§8.5, the second race).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import sched, xcpu
from kernel.program import Schedule
from kernel.thread import LOCKED_RUNNING, LOCKED_WAITING, POLLING, RUNNABLE, WAITING, Thread
from kernel.xcpu import Mail
from machine.ops import Atomic, Compute, Op, Phase, Read, Write, kaddr
from machine.spinlock import spin_lock, spin_unlock

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData

Path = Generator[Op, Any, Any]

AREA = 0x000A_8000  # the migration lock and barriers, each in a line of its own
LOCK, BARRIER1, BARRIER2, NUMBER_SET = 0, 64, 128, 192
SPIN_CYCLES = 5
OP_MIGRATE = 2
FPU_SAVE_CYCLES = 100


def _wait_for(addr: int, count: int) -> Path:
    """Spin until the word at `addr` reaches `count` (reads hit the shared line)."""
    while (yield Read(addr)) < count:
        yield Compute(SPIN_CYCLES)


def _barrier(addr: int, parties: int) -> Path:
    """A barrier (=x): count ourselves in, then wait for everyone."""
    yield Atomic("xadd", addr, 1)
    yield from _wait_for(addr, parties)


def migrate(k: Kernel, caller: Thread, t: Thread, op: Schedule) -> Path:
    """Part A, on the caller's CPU; returns the thread's old priority."""
    from kernel.syscalls import result

    a_cpu, b_cpu, c_cpu = caller.cpu, t.cpu, op.cpu
    state = yield Read(t.f["thread_state"])
    if state in (POLLING, LOCKED_RUNNING, LOCKED_WAITING):
        return result("schedule", ok=False, error="busy")  # in an IPC path: do not migrate
    base = kaddr(AREA)
    yield Phase("migrate.A.lock")
    yield from spin_lock(base + LOCK)  # one migration at a time (the §8.5 lock)
    for off in (BARRIER1, BARRIER2, NUMBER_SET):
        yield Write(base + off, 0)
    k.counters.migrations += 1
    t.migrating = True
    parties2 = len({a_cpu, b_cpu, c_cpu})
    here = k.cpus[a_cpu - 1]
    job = {"thread": t, "from": b_cpu, "to": c_cpu, "parties": parties2, "op": op}
    yield Phase("migrate.A.trigger")
    for part, cpu in (("B", b_cpu), ("C", c_cpu)):
        if cpu != a_cpu:
            ctl = k.ctl[cpu]
            i = yield from xcpu.alloc(k, a_cpu)
            yield from xcpu.setup(k, i, Mail(f"migrate_{part}", caller, t, job), OP_MIGRATE, ctl)
            yield from xcpu.trigger(k, here, i, cpu)
    if a_cpu == b_cpu:
        yield from part_b(k, here, job, first=True)
    else:
        yield Phase("migrate.A.barrier1")
        yield from _barrier(base + BARRIER1, 2)  # (=1): B is in the kernel
    prio = yield Read(t.f["priority"])
    yield Phase("migrate.A.exchange")
    if op.priority is not None:
        yield Write(t.f["priority"], op.priority)
    if op.timeslice is not None:
        yield Write(t.f["timeslice"], op.timeslice)
    yield Phase("migrate.A.barrier2")
    yield from _barrier(base + BARRIER2, parties2)  # (=2)
    if a_cpu == b_cpu:  # B's part after the barrier is ours too
        yield from set_cpu(k, t, c_cpu)
        yield Write(base + NUMBER_SET, 1)  # (3̄)
    if a_cpu == c_cpu:
        yield from part_c(k, here, job, after_barrier=True)
    yield from spin_unlock(base + LOCK)
    return result("schedule", value=prio)


def part_b(k: Kernel, cd: CpuData, job: dict[str, Any], first: bool = False) -> Path:
    """Part B, on the thread's CPU: take it out of every local structure."""
    t: Thread = job["thread"]
    base = kaddr(AREA)
    # The ring t is in is its old priority's: read it before (=1), for after (=1)
    # A exchanges the priority while we delete (§8.7.2: "delete the thread from
    # the old priorities list").
    old_prio = yield Read(t.f["priority"])
    if not first:
        yield Phase("migrate.B.barrier1")
        yield from _barrier(base + BARRIER1, 2)  # (=1)
    yield Phase("migrate.B.delete")
    yield from sched.dequeue_ready(k, cd, t, old_prio)
    job["deadline"] = t.deadline
    yield from sched.dequeue_wakeup(k, cd, t)
    if cd.fpu_owner is t:
        yield Phase("migrate.B.save_fpu")  # the FPU is per CPU: save before leaving (§8.7.1)
        yield Write(t.f["resources"], 0)
        yield Compute(FPU_SAVE_CYCLES)
        cd.fpu_owner = None
    yield from _release_polling_proxies(k, cd, t, job["to"])
    if first:
        return  # A is B: A goes on to its barriers itself
    yield from _finish_b(k, cd, job)


def _finish_b(k: Kernel, cd: CpuData, job: dict[str, Any]) -> Path:
    t: Thread = job["thread"]
    base = kaddr(AREA)
    yield Phase("migrate.B.barrier2")
    yield from _barrier(base + BARRIER2, job["parties"])  # (=2)
    yield from set_cpu(k, t, job["to"])
    yield Write(base + NUMBER_SET, 1)  # (3̄)
    if cd.current is t:
        yield from k.switch_to(cd, None)  # it runs elsewhere now


def set_cpu(k: Kernel, t: Thread, cpu: int) -> Path:
    """The new processor number: TCB, the kernel's mirror, and the UTCB field (§7.2)."""
    yield Phase("migrate.B.set_cpu")
    yield Write(t.f["cpu"], cpu)
    t.cpu = cpu
    from kernel import space

    if t.task is not None and t.task.space is not None:
        yield Write(kaddr(space.utcb_paddr(k, t) + space.UTCB_CPU), cpu)


def part_c(k: Kernel, cd: CpuData, job: dict[str, Any], after_barrier: bool = False) -> Path:
    """Part C, on the destination: insert the thread, switch if it outranks us."""
    t: Thread = job["thread"]
    base = kaddr(AREA)
    if not after_barrier:
        yield Phase("migrate.C.barrier2")
        yield from _barrier(base + BARRIER2, job["parties"])  # (=2)
    yield Phase("migrate.C.wait_number")
    yield from _wait_for(base + NUMBER_SET, 1)  # (3̄): B has set the processor number
    yield Phase("migrate.C.insert")
    state = yield Read(t.f["thread_state"])
    if state in RUNNABLE:
        yield from sched.enqueue_ready(k, cd, t)
    deadline = job.get("deadline")
    if state == WAITING and deadline is not None:
        yield from sched.enqueue_wakeup(k, cd, t, deadline)
    t.migrating = False
    cur = cd.current
    if state in RUNNABLE and (
        cur is cd.idle or (yield Read(t.f["priority"])) > (yield Read(cur.f["priority"]))
    ):
        yield from k.switch_to(cd, t)


def _release_polling_proxies(k: Kernel, cd: CpuData, t: Thread, to: int) -> Path:
    """Senders waiting here for `t` (a receiver leaving): their requests follow it (§8.5).

    A proxy polling for a remote sender forwards the request; a local sender
    polling itself starts its send over, which now crosses processors.
    """
    head = yield Read(t.f["send_queue"])
    cur = head
    while cur:
        sender = k.by_tcb[cur]
        nxt = yield Read(sender.f["send_next"])
        proxy_tcb = yield Read(sender.f["proxy"])
        p = k.by_tcb.get(proxy_tcb) if proxy_tcb else None
        if p is not None and p.cpu == cd.number and (yield Read(p.f["thread_state"])) == POLLING:
            yield Phase("migrate.B.forward_request")
            p.wake = "forward"
            yield from sched.dequeue_wakeup(k, cd, p)
            yield from sched.make_ready(k, cd, p, LOCKED_RUNNING)
        elif sender.cpu == cd.number and (yield Read(sender.f["thread_state"])) == POLLING:
            yield Phase("migrate.B.restart_sender")
            sender.wake = "restart"
            yield from sched.dequeue_wakeup(k, cd, sender)
            yield from sched.make_ready(k, cd, sender, LOCKED_RUNNING)
        cur = nxt
        if cur == head:
            break
