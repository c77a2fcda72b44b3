"""Threads and tasks as the kernel keeps them (thesis §2.1, §8.6).

A thread's TCB lives in simulated memory (see layout.py); this is the
Python-side rest of it: its program counter (data, so it can be saved), its
kernel stack (a machine `Context`), the results of its system calls, and
the in-flight IPC that the transfer hands from sender to receiver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    task: Task
    index: int  # TCB number
    tcb: int  # kernel address of the TCB
    f: dict[str, int]  # field name -> kernel address
    context: Context
    pc: ProgramCounter
    cpu: int  # 1..k: mirrors the TCB's `cpu` field, for the kernel's own bookkeeping
    spec: Any = None  # the scenario's ThreadSpec
    results: list[dict[str, Any]] = field(default_factory=list)
    sent_to: list[str] = field(default_factory=list)  # whom each completed send phase reached
    wake: str | None = None  # why a blocked path was resumed: partner, timeout, abort
    deadline: int | None = None  # wakeup time in ticks, while in a wakeup queue
    inbox: Message | None = None
    last_sender: Thread | None = None
    pager: Thread | None = None
    window: tuple[int, int] | None = None  # receive window of the current IPC (vaddr, size)
    buffers: tuple[Any, ...] = ()  # receive string buffers of the current IPC
    abort: bool = False  # lthread_ex_regs asked to abort the ongoing IPC
    fault: tuple[int, bool] | None = None  # (addr, write) while in a page fault IPC
    failed: str | None = None  # the sender's transfer failed with this error
    recv_started: bool = False  # an XP call whose receive phase the proxy began
    migrating: bool = False  # between B deleting it and C inserting it (§8.7.2)
    redo_sender: Thread | None = None  # a sender waiting for us to redo a fault (§8.3.2)
    fault_error: str | None = None  # why the last page-fault IPC failed
    injected: list[Any] = field(default_factory=list)  # ops a debugger put before the program
    ip: int = 0
    sp: int = 0
    fpu_cycles: int = 0
    hardware: bool = False
    proxy_kind: str | None = None  # a proxy thread (§8.4): what it serves
    busy: bool = False  # a proxy in the middle of a request
    sigma0: bool = False
    op_state: dict[str, Any] = field(default_factory=dict)  # a multi-IPC op in progress

    @property
    def word(self) -> int:
        return self.tid.word

    def __repr__(self) -> str:
        return f"<Thread {self.name} {self.tid}>"
