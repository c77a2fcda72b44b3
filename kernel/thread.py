"""Threads and tasks as the kernel keeps them (thesis §2.1, §8.6).

A thread's TCB lives in simulated memory (see layout.py); this is the
Python-side rest of it: its program counter (data, so it can be saved), its
kernel stack (a machine `Context`), the results of its system calls, and
the message the transfer delivered.

Shared kernel state is simulated state (issue 15): what another CPU's kernel
path writes or reads — the wake reason, the abort and migration flags, a
call's begun receive phase, a message transmitted from another CPU — is a
TCB field (layout.py), touched with `Read`/`Write` micro-ops. What stays here
is touched only by kernel paths running on the thread's own CPU (`cpu`):
its own system calls, and the proxies and control proxies that act for
other CPUs there (implementation decision 3, §8.4). `tests/test_shared_state.py`
checks it on random multi-CPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kernel.errors import ErrorCode
from kernel.ids import ThreadId
from kernel.program import ProgramCounter
from machine.cpu import Context

# thread_state values, as stored in the TCB.
INACTIVE, RUNNING, WAITING, POLLING, LOCKED_RUNNING, LOCKED_WAITING = range(6)
STATE_NAMES = {
    INACTIVE: "inactive",
    RUNNING: "running",
    WAITING: "waiting",
    POLLING: "polling",
    LOCKED_RUNNING: "locked_running",
    LOCKED_WAITING: "locked_waiting",
}
RUNNABLE = (RUNNING, LOCKED_RUNNING)
IN_IPC = (WAITING, POLLING, LOCKED_RUNNING, LOCKED_WAITING)

# The TCB's `wake` field: why a blocked kernel path was resumed. Whoever makes
# the thread ready writes it first — the partner (on another CPU in the naive
# design: the wake-up Uhlig's race of §8.3.3 loses), the timer, an abort.
WAKE_NONE = 0
WAKE_PARTNER = 1  # the IPC partner is through: go on
WAKE_TIMEOUT = 2  # the IPC timeout expired
WAKE_ABORT = 3  # lthread_ex_regs aborted the IPC (§8.4.3)
WAKE_RESTART = 4  # the receiver left for another CPU: send again (§8.5)
WAKE_FORWARD = 5  # a proxy's receiver left: forward the request (§8.5)
WAKE_REDO_FAULT = 6  # redo a fault in our space for the sender (§8.3.2)
WAKE_RESOLVED = 7  # a proxy's sender resolved the fault it asked for (§8.4.2)
WAKE_NAMES = {
    WAKE_NONE: "none",
    WAKE_PARTNER: "partner",
    WAKE_TIMEOUT: "timeout",
    WAKE_ABORT: "abort",
    WAKE_RESTART: "restart",
    WAKE_FORWARD: "forward",
    WAKE_REDO_FAULT: "redo_fault",
    WAKE_RESOLVED: "resolved",
}


class ProxyKind(StrEnum):
    """What a proxy thread serves (§8.4)."""

    IPC = "ipc"  # cross-processor IPC for senders on one other CPU (§8.4.1)
    CTL = "ctl"  # its CPU's control proxy: remote ex_regs and schedule, migrations (§8.4.3)


@dataclass(eq=False, slots=True)
class Space:
    """An address space: its page directory and a number for the mapping database."""

    number: int
    pdbr: int  # physical address of the page directory (the CR3 value)
    name: str


@dataclass(eq=False, slots=True)
class Task:
    """A task: an address space and its threads (§2.2.3)."""

    name: str
    number: int
    space: Space | None = None  # None until created (task_new)
    threads: list[Thread] = field(default_factory=list)
    utcb_frame: int = 0  # physical frame holding the task's UTCBs
    started: bool = False


@dataclass(eq=False, slots=True)
class Message:
    """What a transfer delivers to the receiver."""

    sender: Thread
    words: tuple[int, ...] = ()
    xp: bool = False
    mapped: list[tuple[int, int]] = field(default_factory=list)  # (vaddr, size) received


@dataclass(eq=False, slots=True)
class Thread:
    """A thread: the TCB's address and field addresses, and the kernel's data about it."""

    name: str
    tid: ThreadId
    task: Task | None  # None for the kernel's own threads: idle, interrupt, proxies
    index: int  # TCB number
    tcb: int  # kernel address of the TCB
    f: dict[str, int]  # field name -> kernel address
    context: Context
    pc: ProgramCounter
    cpu: int  # 1..k: mirrors the TCB's `cpu` field, for the kernel's own bookkeeping
    spec: Any = None  # the scenario's ThreadSpec
    results: list[dict[str, Any]] = field(default_factory=list)
    sent_to: list[str] = field(default_factory=list)  # whom each completed send phase reached
    # Wakeup time in ticks while in its CPU's wakeup queue: the queue's key, kept by
    # that CPU (the TCB's `ipc_timeout` holds it in cycles, for the views).
    deadline: int | None = None
    inbox: Message | None = None  # delivered by a transfer on this CPU
    last_sender: Thread | None = None
    pager: Thread | None = None
    window: tuple[int, int] | None = None  # receive window of the current IPC (vaddr, size)
    buffers: tuple[Any, ...] = ()  # receive string buffers of the current IPC
    # What the UTCB's buffer registers hold (window, buffers): the naive design's
    # senders read them there (space.publish_buffers); rewritten only when they change.
    registers: tuple[Any, ...] = (None, ())
    # Our own copy of the TCB's `abort`, written with it on our CPU: our paths
    # read this, a transfer on another CPU reads the TCB.
    abort: bool = False
    fault: tuple[int, bool] | None = None  # (addr, write) while in our page fault IPC
    failed: ErrorCode | None = None  # the sender's transfer on our CPU failed with this error
    recv_started: bool = False  # our XP call's proxy began its receive (read from the TCB)
    fault_error: ErrorCode | None = None  # why the last page-fault IPC failed
    injected: list[Any] = field(default_factory=list)  # ops a debugger put before the program
    ip: int = 0
    sp: int = 0
    fpu_cycles: int = 0
    hardware: bool = False
    proxy_kind: ProxyKind | None = None  # a proxy thread (§8.4): what it serves
    busy: bool = False  # a proxy in the middle of a request
    sigma0: bool = False
    # Interrupt lines we took over by receiving from their hardware thread (§2.4): a hint
    # our receive paths keep, so a receive reads the line table only for these; the
    # table in memory says whether we still own one (interrupts.take_pending).
    irq_lines: tuple[int, ...] = ()
    op_state: dict[str, Any] = field(default_factory=dict)  # a multi-IPC op in progress

    @property
    def word(self) -> int:
        return self.tid.word

    def __repr__(self) -> str:
        return f"<Thread {self.name} {self.tid}>"


def space_of(t: Thread) -> Space:
    """`t`'s address space: only a user thread of a created task (§2.2.3) has one.

    The kernel paths that ask run for user threads only — their system calls,
    faults and transfers — so a missing space is a kernel bug, not an error a
    scenario can cause.
    """
    task = t.task
    if task is None or task.space is None:
        raise AssertionError(f"{t.name} has no address space")
    return task.space
