"""Requests between CPUs: what a mailbox carries besides its words (thesis §8.3.4, §8.4).

A mailbox's words — lock, op code, sender, destination, target, next — are
simulated memory (xcpu.py). The rest of a request, its parameter block, is
one of the dataclasses here, written only by the CPU that holds the mailbox:
the one that locked it, until its trigger hands it to the target CPU. Each
kind of request is its own class, so a path that serves one reads typed
fields; `MailOp` names the kind as the mailbox pane shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from kernel.program import Ipc, Schedule
from kernel.thread import Thread
from machine.ops import Op

if TYPE_CHECKING:
    from kernel.sched import CpuData

Path = Generator[Op, Any, Any]
Work = Callable[["CpuData"], Path]  # a path to run on another CPU


class MailOp(StrEnum):
    """What a mailbox asks of the CPU it is sent to."""

    IPC_SEND = "ipc_send"  # a cross-processor send, for the receiver's proxy (§8.3.5)
    REMOTE = "remote"  # work on the target's CPU, for its control proxy (§8.4.3)
    MIGRATE_B = "migrate_B"  # a migration's part B, on the thread's CPU (§8.7.2)
    MIGRATE_C = "migrate_C"  # its part C, on the destination
    REDO_FAULT = "redo_fault"  # a proxy asks its sender to resolve a fault (§8.4.2)
    RESUMED = "resumed"  # the sender did: the mailbox goes back to the proxy


@dataclass(eq=False, slots=True)
class Mail:
    """What every request has: the thread it is for, and the one it concerns."""

    sender: Thread
    dest: Thread | None
    op: MailOp = field(init=False)
    reply: bool = field(default=False, init=False)  # re-targeted to wake the sender


@dataclass(eq=False, slots=True)
class SendMail(Mail):
    """A send descriptor: `sender` sends `ipc` to `dest` (§8.3.5 "send path")."""

    dest: Thread
    ipc: Ipc
    op: MailOp = field(default=MailOp.IPC_SEND, init=False)


@dataclass(eq=False, slots=True)
class RemoteMail(Mail):
    """Work `sender` wants done on another CPU (lthread_ex_regs, thread_schedule: §8.4.3)."""

    work: Work
    op: MailOp = field(default=MailOp.REMOTE, init=False)


@dataclass(eq=False, slots=True)
class MigrationJob:
    """One migration (§8.7): `thread` moves from CPU `source` to `to`, as `op` asked."""

    thread: Thread
    source: int
    to: int
    parties: int  # how many CPUs meet at the second barrier: A, B and C, some the same
    op: Schedule


@dataclass(eq=False, slots=True)
class MigrateMail(Mail):
    """Part B or C of a migration, for that CPU's control proxy (§8.7.2)."""

    dest: Thread
    job: MigrationJob
    part: Literal["B", "C"]

    def __post_init__(self) -> None:
        self.op = MailOp.MIGRATE_B if self.part == "B" else MailOp.MIGRATE_C


@dataclass(eq=False, slots=True)
class RedoFaultMail(Mail):
    """A proxy's copy faulted in the sender's space: the sender redoes it (§8.4.2)."""

    addr: int
    timeout: int | None
    proxy: Thread
    op: MailOp = field(default=MailOp.REDO_FAULT, init=False)


@dataclass(frozen=True, slots=True)
class Forward:
    """A remote request goes on on another CPU, in the same mailbox (§8.4.3)."""

    cpu: int
    work: Work
