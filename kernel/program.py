"""User programs of a scenario: the ops a thread executes, and its program counter.

A thread's program is a tree of ops (DESIGN.md §2, "Program ops"): plain ops,
`repeat: N` blocks and `loop` blocks. The kernel *interprets* it; where the
thread is — the program counter — is plain data (`ProgramCounter`), so a
thread's position can be saved and restored, which a suspended Python
generator could not be.

Op names follow the thesis: ``send``, ``recv``, ``call``, ``reply_wait``
(§8.3.1), ``thread_switch`` (§2.1.1), ``schedule`` (thread_schedule, §7),
``ex_regs`` (lthread_ex_regs, §2.1.2), ``unmap`` (§2.2.2), ``task_new``
(§2.2.3), ``read_utcb_cpu`` and ``read_kip`` (§7.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kernel import memmap

INF = None  # an infinite timeout
USER_LIMIT = memmap.USER_LIMIT  # user address spaces are the lower 3 GB (§2.1.2)

Timeout = int | None  # cycles; 0 = don't wait; None = infinite


@dataclass(frozen=True, slots=True)
class Fpage:
    """A flexpage or a memory region: `addr` and `size` in bytes."""

    addr: int
    size: int


@dataclass(frozen=True, slots=True)
class Compute:
    cycles: int


@dataclass(frozen=True, slots=True)
class Fpu:
    """Floating-point work: claims the FPU (lazy switching, §2.4), then computes."""

    cycles: int


@dataclass(frozen=True, slots=True)
class Touch:
    """A user memory access; faults if the page is missing (§2.2.2)."""

    addr: int
    write: bool = False


@dataclass(frozen=True, slots=True)
class Ipc:
    """One IPC system call: send, recv, call or reply_wait (§8.3.1).

    `to` names the receiver of the send phase (None for a plain receive, and
    for a reply_wait that replies to the last sender); `source` is the
    receive phase's partner: None for an open receive (``from: any``).
    """

    kind: str  # "send" | "recv" | "call" | "reply_wait"
    to: str | None = None
    source: str | None = None
    words: tuple[int, ...] = ()
    timeout: Timeout = INF  # send timeout (the receive phase of a call uses it too)
    recv_timeout: Timeout = INF
    xfer_timeout: Timeout = INF  # for page faults during a long transfer
    xp_fault: bool = False  # send word bit 12: abort if cross-processor (DD 4)
    strings: tuple[Fpage, ...] = ()  # what the send phase copies
    buffers: tuple[Fpage, ...] = ()  # where the receive phase accepts strings
    map: Fpage | None = None
    grant: Fpage | None = None
    window: Fpage | None = None  # receive window for map/grant

    @property
    def sends(self) -> bool:
        return self.kind in ("send", "call", "reply_wait")

    @property
    def receives(self) -> bool:
        return self.kind in ("recv", "call", "reply_wait")


@dataclass(frozen=True, slots=True)
class ThreadSwitch:
    to: str | None = None  # None: nil, let the dispatcher choose


@dataclass(frozen=True, slots=True)
class Schedule:
    """thread_schedule: priority, timeslice and (bits 16-19) processor (§7.1)."""

    thread: str
    cpu: int = 0  # 0: stay
    priority: int | None = None
    timeslice: int | None = None


@dataclass(frozen=True, slots=True)
class ExRegs:
    """lthread_ex_regs: new ip, sp, pager; aborts an ongoing IPC of the target."""

    thread: str
    ip: int | None = None
    sp: int | None = None
    pager: str | None = None


@dataclass(frozen=True, slots=True)
class Unmap:
    fpage: Fpage
    mode: Literal["flush", "ro"] = "flush"  # remove the mappings, or make them read-only
    own: bool = False


@dataclass(frozen=True, slots=True)
class TaskNew:
    task: str  # a scenario task declared with start: false


@dataclass(frozen=True, slots=True)
class ReadUtcbCpu:
    pass


@dataclass(frozen=True, slots=True)
class ReadKip:
    pass


@dataclass(frozen=True, slots=True)
class ServeFaults:
    """A user-level pager loop: receive a fault, touch the page, map it, reply."""

    count: int | None = None  # None: forever


@dataclass(frozen=True, slots=True)
class Sleep:
    cycles: int


@dataclass(frozen=True, slots=True)
class Halt:
    pass


@dataclass(frozen=True, slots=True)
class Repeat:
    count: int
    body: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class Loop:
    body: tuple[Op, ...]


Op = (
    Compute
    | Fpu
    | Touch
    | Ipc
    | ThreadSwitch
    | Schedule
    | ExRegs
    | Unmap
    | TaskNew
    | ReadUtcbCpu
    | ReadKip
    | ServeFaults
    | Sleep
    | Halt
    | Repeat
    | Loop
)

SYSCALL_OPS = (Ipc, ThreadSwitch, Schedule, ExRegs, Unmap, TaskNew, ReadUtcbCpu, ReadKip)


def takes_op(body: tuple[Op, ...]) -> bool:
    """Whether one pass through `body` executes at least one op.

    A plain op does; a `loop` does if its body does; a `repeat` does if its
    count is positive and its body does. A block that takes no op per pass
    would make the program counter spin without the thread ever taking a
    micro-op — forever for a loop, 2**63 times for a large repeat — so
    `ProgramCounter` steps over one (and the scenario loader refuses one).
    Short-circuits at the first op found, so it costs little on real programs.
    """
    return _passes(body, lambda op: True)


def takes_time(body: tuple[Op, ...]) -> bool:
    """Whether one pass through `body` surely moves the thread's clock.

    Every op does but ``compute: 0`` and ``fpu: 0`` (the FPU is claimed only
    once): a loop of those would take micro-ops forever at one instant, so no
    ``--until-cycle`` would end it. The scenario loader refuses such a block.
    """
    return _passes(body, lambda op: not (isinstance(op, Compute | Fpu) and op.cycles == 0))


def _passes(body: tuple[Op, ...], counts: Callable[[Op], bool]) -> bool:
    """Whether one pass through `body` executes a plain op for which `counts` holds."""
    for op in body:
        if isinstance(op, Loop):
            if _passes(op.body, counts):
                return True
        elif isinstance(op, Repeat):
            if op.count > 0 and _passes(op.body, counts):
                return True
        elif counts(op):
            return True
    return False


@dataclass(slots=True)
class Level:
    """One nesting level of the program counter: which block, which op, repeats left."""

    body: tuple[Op, ...]
    index: int = 0
    left: int | None = None  # repeats left after this pass; None: a loop (forever)


@dataclass(slots=True)
class ProgramCounter:
    """Where a thread is in its program: a stack of levels, outermost first."""

    levels: list[Level] = field(default_factory=list)

    @classmethod
    def start(cls, program: tuple[Op, ...]) -> ProgramCounter:
        pc = cls([Level(program, 0, 0)])
        pc.settle()
        return pc

    def settle(self) -> None:
        """Step into blocks and out of finished ones until the PC names a plain op or the end.

        Bounded: a block is entered only if one pass through it takes an op
        (`takes_op`), so each pass of each level reaches a plain op; a block
        that takes none is stepped over like an op that is already done.
        """
        while self.levels:
            level = self.levels[-1]
            if level.index >= len(level.body):
                if level.left is None or level.left > 0:
                    if level.left is not None:
                        level.left -= 1
                    level.index = 0
                    continue
                self.levels.pop()
                if self.levels:
                    self.levels[-1].index += 1
                continue
            op = level.body[level.index]
            if isinstance(op, Repeat | Loop):
                runs = isinstance(op, Loop) or op.count > 0
                if not (runs and takes_op(op.body)):
                    level.index += 1
                    continue
                left = None if isinstance(op, Loop) else op.count - 1
                self.levels.append(Level(op.body, 0, left))
                continue
            return

    @property
    def op(self) -> Op | None:
        """The op the thread executes next, or None when its program has ended."""
        if not self.levels:
            return None
        level = self.levels[-1]
        return level.body[level.index]

    def advance(self) -> None:
        """The current op is done: move to the next one."""
        if self.levels:
            self.levels[-1].index += 1
            self.settle()

    def halt(self) -> None:
        self.levels.clear()

    def position(self) -> list[int]:
        """The indices of the current op, outermost first (for views and saves)."""
        return [lv.index for lv in self.levels]


def result(op: str, **fields: Any) -> dict[str, Any]:
    """A syscall result with the keys of DESIGN.md §2."""
    out: dict[str, Any] = {
        "op": op,
        "ok": True,
        "error": None,
        "xp": False,
        "cpu": None,
        "words": [],
    }
    out.update(fields)
    return out
