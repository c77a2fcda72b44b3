"""A thread's program, step by step, and the system calls it makes (thesis §2, §7).

`thread_step` is what a CPU runs for its current thread when the thread's
kernel stack is empty: the next op of its program. Plain work (`compute`,
`touch`, `fpu`) runs in user mode; a system call traps into the kernel, runs
its path — which may block, switching to another thread's stack — records
its result, and returns to user mode with the next step.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import ipc, migrate, pager, sched, space, unwind
from kernel.errors import IpcError
from kernel.mail import Forward
from kernel.memmap import KIP_CPUS, KIP_VADDR, UTCB_CPU, UTCB_SIZE, UTCB_VADDR
from kernel.program import (
    Compute,
    ExRegs,
    Fpu,
    Halt,
    Ipc,
    ProgramCounter,
    ReadKip,
    ReadUtcbCpu,
    Schedule,
    ServeFaults,
    Sleep,
    TaskNew,
    ThreadSwitch,
    Touch,
    Unmap,
    result,
)
from kernel.sched import CpuData
from kernel.thread import INACTIVE, RUNNABLE, RUNNING, WAITING, Thread
from machine.cpu import Cpu
from machine.ops import Compute as ComputeOp
from machine.ops import Op, Phase, Read, Trap, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]
SLEEP_PARTNER = 0xFFFF_FFFE  # a partner no thread can be: sleeping is receiving from nobody
FPU_SWITCH_CYCLES = 120  # device-not-available fault, fsave of the owner, frstor


def thread_step(k: Kernel, c: Cpu, cd: CpuData, t: Thread) -> Path:
    """Run the next op of `t`'s program on CPU `c` (an injected op goes first)."""
    injected = bool(t.injected)
    op = t.injected[0] if injected else t.pc.op

    def done() -> None:
        if injected:
            t.injected.pop(0)
        else:
            t.pc.advance()

    if op is None or isinstance(op, Halt):
        if c.mode == "user":
            yield Trap()  # halting is a kernel matter
        yield from sched.exit_thread(k, cd, t)
        return
    if c.mode == "kernel":
        yield from k.exit_to_user(c)  # back to user mode after a system call or switch
        # Its check_n_ack may have switched away, and a migration (§8.7.2) moved the
        # thread meanwhile: it resumes on its new CPU, whose FPU and mailboxes are its own.
        c = k.machine.cpu(t.cpu)
    if t.sigma0:
        yield from pager.sigma0_step(k, t)
        return
    if isinstance(op, Compute):
        yield ComputeOp(op.cycles)
        done()
    elif isinstance(op, Touch):
        if op.write:
            yield Write(op.addr & ~3, 1)
        else:
            yield Read(op.addr & ~3)
        done()
    elif isinstance(op, Fpu):
        yield from fpu(k, c, t, op.cycles)
        done()
    elif isinstance(op, ReadUtcbCpu):
        value = yield Read(UTCB_VADDR + (t.tid.lthread - 1) * UTCB_SIZE + UTCB_CPU)
        t.results.append(result("read_utcb_cpu", value=value))
        done()
    elif isinstance(op, ReadKip):
        value = yield Read(KIP_VADDR + KIP_CPUS)
        t.results.append(result("read_kip", value=value & 0xFF))
        done()
    elif isinstance(op, ServeFaults):
        yield from pager.serve_faults_step(k, t, op)
    else:
        yield from k.trap(t)
        pc = t.pc
        res = yield from syscall(k, t, op)
        if res is not None:
            t.results.append(res)
        if injected:
            t.injected.pop(0)
        elif t.pc is pc:  # lthread_ex_regs with an ip set a new one meanwhile
            t.pc.advance()


def syscall(k: Kernel, t: Thread, op: Any) -> Path:
    """The kernel side of one system call; returns its result (None for sleep)."""
    if isinstance(op, Ipc):
        return (yield from do_ipc(k, t, op))
    if isinstance(op, Sleep):
        yield from sleep(k, t, op.cycles)
        return None
    if isinstance(op, ThreadSwitch):
        return (yield from thread_switch(k, t, op))
    if isinstance(op, Schedule):
        return (yield from schedule(k, t, op))
    if isinstance(op, ExRegs):
        return (yield from ex_regs(k, t, op))
    if isinstance(op, Unmap):
        return (yield from space.unmap(k, t, op))
    if isinstance(op, TaskNew):
        return (yield from space.task_new(k, t, op))
    raise TypeError(f"not a system call: {op!r}")  # pragma: no cover - loader checks


def resolve(k: Kernel, name: str | None) -> Thread | None:
    return None if name is None else k.by_name.get(name)


def do_ipc(k: Kernel, t: Thread, op: Ipc) -> Path:
    """One IPC system call: the send phase, then the receive phase (§8.3.1)."""
    yield Phase(f"ipc.{op.kind}")
    res = result(op.kind)
    if t.abort:  # left by an abort of a page-fault IPC outside any IPC call
        t.abort = False
        yield Write(t.f["abort"], 0)
    t.window = (op.window.addr, op.window.size) if op.window else None
    t.buffers = op.buffers
    if op.receives:
        yield from space.publish_buffers(k, t)
    try:
        if op.sends:
            dest = resolve(k, op.to) if op.to is not None else t.last_sender
            if dest is None:
                raise IpcError("not_exist")
            res["xp"] = dest.cpu != t.cpu
            yield from ipc.send(k, t, dest, op)
            t.sent_to.append(dest.name)  # delivered: the explorer pairs it with a receive
        if op.receives:
            source = resolve(k, op.source)
            timeout = op.recv_timeout
            sender = yield from ipc.receive(k, t, source, timeout)
            msg, t.inbox = t.inbox, None
            if msg is not None:
                res["words"] = list(msg.words)
                res["xp"] = res["xp"] or msg.xp
                if msg.mapped:
                    res["mapped"] = [list(m) for m in msg.mapped]
            res["from"] = sender.name if sender is not None else None
            t.last_sender = sender
    except IpcError as e:
        res.update(ok=False, error=e.error, cpu=e.cpu)
        if e.error == "xp_abort":
            res["xp"] = True
    t.window, t.buffers = None, ()
    if t.abort:  # an ex_regs abort is for the IPC it cut short only (ipc.abort)
        t.abort = False
        yield Write(t.f["abort"], 0)
    return res


def sleep(k: Kernel, t: Thread, cycles: int) -> Path:
    """L4's sleep: a receive from nobody that ends by its timeout."""
    yield Phase("ipc.sleep")
    yield Write(t.f["partner"], SLEEP_PARTNER)
    yield Write(t.f["thread_state"], WAITING)
    yield from sched.wait_for_partner(k, t, None, cycles)
    yield Write(t.f["thread_state"], RUNNING)


def thread_switch(k: Kernel, t: Thread, op: ThreadSwitch) -> Path:
    """thread_switch (§6.1.1 conclusion 2): to a local ready thread, else the dispatcher."""
    yield Phase("sched.thread_switch")
    cd = k.cpus[t.cpu - 1]
    target = resolve(k, op.to)
    if (
        target is not None
        and target is not t
        and target.cpu == t.cpu
        and (yield Read(target.f["thread_state"])) in RUNNABLE
    ):
        # Donate the rest of our timeslice: the target runs on what we had left.
        left = yield Read(t.f["remaining_timeslice"])
        yield Write(target.f["remaining_timeslice"], left)
        yield from k.switch_to(cd, target)
        return result("thread_switch")
    yield from sched.rotate(k, cd, t)
    yield from k.switch_to(cd, None)
    return result("thread_switch")


def schedule(k: Kernel, t: Thread, op: Schedule) -> Path:
    """thread_schedule: priority and timeslice below the caller's MCP (§2.1.1, §6.1.2).

    A new processor number migrates the thread (§8.7.2). Otherwise the new
    priority and timeslice are set on the thread's own CPU (implementation
    decision 3): "changing the priority of a thread requires to delete the
    thread from the old priorities list and reinsert it to the new one, which
    is nothing more than executing first B and then C on the same processor"
    (§8.7.2) — and a CPU's ready lists are touched by that CPU only (design
    decision 1). Done from the caller's CPU, a priority change raced the
    target CPU's dispatcher and a migration of the same thread, leaving a
    ready-list head pointing at nothing (found by the random kernel fuzzer:
    `KeyError: 0` in `sched.dispatch`).
    """
    yield Phase("sched.thread_schedule")
    target = k.by_name[op.thread]
    mcp = yield Read(t.f["mcp"])
    prio = yield Read(target.f["priority"])
    new_prio = prio if op.priority is None else op.priority
    if prio >= mcp or new_prio >= mcp:
        return result("schedule", ok=False, error="denied")
    if op.cpu and target is not t:  # ID 4: never oneself
        done = yield from migrate.migrate(k, t, target, op)
        if done is not None:
            return done
    if op.priority is None and op.timeslice is None:
        return result("schedule", value=prio)
    cpu = yield Read(target.f["cpu"])
    work = functools.partial(_set_params_on, k, target, op.priority, op.timeslice)
    yield from unwind.run_on(k, t, cpu, work, "sched.thread_schedule")
    return result("schedule", value=prio)


def _set_params_on(
    k: Kernel, target: Thread, priority: int | None, timeslice: int | None, cd: CpuData
) -> Path:
    """On the target's CPU: the new timeslice and priority (B, then C, here)."""

    cpu = yield Read(target.f["cpu"])
    if cpu != cd.number:
        # It moved between the caller reading its CPU and our running here: "t_i is no
        # longer present on B and will not be found locally" (§8.7.2). On to its CPU.
        again = functools.partial(_set_params_on, k, target, priority, timeslice)
        return Forward(cpu, again)
    if timeslice is not None:
        yield Write(target.f["timeslice"], timeslice)
    if priority is None:
        return None
    old = yield Read(target.f["priority"])
    if old == priority:
        return None
    linked = yield Read(target.f["ready_next"])
    if linked:
        yield from sched.dequeue_ready(k, cd, target, old)
    yield Write(target.f["priority"], priority)
    if linked or (yield Read(target.f["thread_state"])) in RUNNABLE:
        yield from sched.enqueue_ready(k, cd, target)
    return None


def ex_regs(k: Kernel, t: Thread, op: ExRegs) -> Path:
    """lthread_ex_regs (§2.1.2): new ip/sp/pager, aborting an ongoing IPC of the target.

    The whole operation runs on the target's CPU (ID 3, §8.4.3): locally, or
    through that CPU's control proxy.
    """
    yield Phase("thread.ex_regs")
    target = k.by_name[op.thread]
    if target.task is not t.task:
        return result("ex_regs", ok=False, error="denied")

    work = functools.partial(_ex_regs_on, k, target, op)  # runs on the target's CPU
    yield from unwind.run_on(k, t, target.cpu, work, "thread.ex_regs")
    return result("ex_regs")


def fpu(k: Kernel, c: Cpu, t: Thread, cycles: int) -> Path:
    """Floating-point work with lazy FPU switching (§2.4)."""
    cd = k.cpus[c.index]
    while cd.fpu_owner is not t:
        # The FPU is someone else's: the device-not-available fault enters the kernel.
        yield from k.trap(t)
        yield Phase("fpu.switch")
        if cd.fpu_owner is not None:
            yield Write(cd.fpu_owner.f["resources"], 0)  # fsave into the old owner's TCB
        yield Write(t.f["resources"], 1)
        yield ComputeOp(FPU_SWITCH_CYCLES)
        cd.fpu_owner = t
        yield from k.exit_to_user(c)
        # Preempted on the way out and migrated meanwhile, we resume on another CPU
        # whose FPU is not ours (§8.7.1: B saved it): fault again there.
        c = k.machine.cpu(t.cpu)
        cd = k.cpus[c.index]
    yield ComputeOp(cycles)
    t.fpu_cycles += cycles


def _ex_regs_on(k: Kernel, target: Thread, op: ExRegs, cd: CpuData) -> Path:
    """ex_regs on the target's CPU: abort its IPC, then set what was asked."""
    cpu = yield Read(target.f["cpu"])
    if cpu != cd.number:  # it was migrated meanwhile: on to its CPU (see _set_params_on)
        return Forward(cpu, functools.partial(_ex_regs_on, k, target, op))
    state = yield Read(target.f["thread_state"])
    # A Forward: the abort goes on at the target's send proxy, and that proxy's CPU
    # wakes the caller (§8.4.3). The target waits locked meanwhile, so setting its
    # registers now is the same as after the abort.
    forward = yield from unwind.abort_on_cpu(k, cd, target)
    if op.pager is not None:
        target.pager = k.by_name[op.pager]
        yield Write(target.f["pager"], target.pager.word)
    if op.sp is not None:
        target.sp = op.sp
        yield Write(target.f["stack"], op.sp)
    if op.ip is not None:
        target.ip = op.ip
        program = target.spec.program if target.spec is not None else ()
        target.pc = ProgramCounter.start(tuple(program[op.ip :]))
        if state == INACTIVE:  # setting the ip of a dead thread creates it (§2.1.2)
            yield from space.start_thread(k, target)
    return forward
