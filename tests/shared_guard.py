"""Catch the kernel writing another CPU's Python-side state (issue 15, DESIGN.md's principle).

Shared kernel state is simulated state: a datum one CPU's kernel path writes
and another CPU's path reads lives in simulated memory and is touched with
`Read`/`Write`/`Atomic` micro-ops, which cost cycles, move cache lines and
are choice points of the race explorer. What stays on the Python side of a
`Thread` or a `CpuData` is touched only by the kernel paths running on that
thread's CPU, or on that CPU.

`SharedStateGuard` checks it while a `System` runs. It knows which CPU's
kernel path is running without slowing `Machine.step` for normal runs: it
wraps the machine's op handlers (every op a CPU executes goes through one,
and the kernel path's next Python code runs in the same step, on the same
CPU) and the idle handler (which starts a CPU's next path), on this one
machine only while the guard is installed. `Thread.__setattr__` and
`CpuData.__setattr__` are replaced for the guard's lifetime, and the
threads' mutable containers (`results`, `sent_to`, `injected`, `op_state`)
are swapped for checking copies and their program counters' moves
(`advance`, `halt`) are checked too, so a write from another CPU is recorded
with the field, the writing CPU, the owner and the kernel line that wrote it.

Mailboxes (§8.3.4): their words are simulated memory; `mail.Mail` is the
rest of a mailbox's parameter block, which only the CPU holding the mailbox
may write — the one that locked it (`xcpu.alloc`), until a `xcpu.trigger`
hands it to the target CPU, whose `check_n_ack` links it to a thread there
(`xcpu.link`): from then on that thread's CPU, where the thread takes its
list along when it migrates (§8.5: B acknowledges pending mailboxes before
the thread leaves). The guard follows the hand-overs and records a write of
a parameter block (or of the kernel's table of them) by any other CPU, as
`Mail.<field>` or `mailbox[]` of `mailbox N`.

The mapping database (§2.2.1) and the interrupt-line table (§2.4) have no
Python side at all: they are kernel data in simulated memory, which kernel
paths touch only with micro-ops. The guard records any write into their
areas (kernel/mapdb.py's header and node pool, kernel/interrupts.py's table)
that a kernel path makes other than by executing a micro-op — a direct
`Memory.write`, or `MappingDb`'s operations run from a kernel path — as
``memory[ADDR]`` of the area.

Set-up time (building the kernel, between steps) is nobody's kernel path
and is not checked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel import interrupts, mapdb, xcpu
from kernel.mail import Mail
from kernel.program import ProgramCounter
from kernel.sched import CpuData
from kernel.system import System
from kernel.thread import Thread
from machine import execute
from machine.memory import Memory

CONTAINERS = ("results", "sent_to", "injected", "op_state")
_KERNEL_DIR = str(Path(__file__).resolve().parent.parent / "kernel")
# Kernel data with no Python side: written only by micro-ops (physical ranges).
MEMORY_ONLY = (
    (mapdb.AREA, mapdb.AREA + mapdb.BUCKETS_AT + 4 * mapdb.BUCKETS, "mapping database"),
    (mapdb.POOL, mapdb.POOL_END, "mapping database"),
    (interrupts.AREA, interrupts.AREA + interrupts.END, "interrupt lines"),
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One Python-side write of a thread's or CPU's state by another CPU's kernel path."""

    field: str  # e.g. "Thread.wake" or "CpuData.current" or "Thread.op_state[]"
    obj: str  # the thread's or CPU's name
    writer: int  # the CPU whose kernel path wrote it
    owner: int  # the CPU the state belongs to
    where: str  # the kernel line that wrote it

    def __str__(self) -> str:
        owner = f"owner cpu{self.owner}" if self.owner else "kernel data in memory"
        return (
            f"{self.field} of {self.obj} ({owner}) written by "
            f"cpu{self.writer}'s kernel path at {self.where}"
        )


_active: SharedStateGuard | None = None


def _owner(obj: Any) -> int | None:
    try:
        if isinstance(obj, Thread):
            return object.__getattribute__(obj, "cpu")
        return object.__getattribute__(obj, "number")
    except AttributeError:
        return None  # being constructed


def _name(obj: Any) -> str:
    if isinstance(obj, Thread):
        return obj.name
    return f"cpu{_owner(obj)}"


def _where() -> str:
    """The innermost kernel line on the stack (the write's author)."""
    f = sys._getframe(2)
    while f is not None:
        if f.f_code.co_filename.startswith(_KERNEL_DIR):
            return f"{Path(f.f_code.co_filename).name}:{f.f_lineno} ({f.f_code.co_name})"
        f = f.f_back
    return "?"


def _check(obj: Any, field: str) -> None:
    g = _active
    if g is None or g.running is None:
        return
    if not g.owns(obj):
        return  # another run's object (a generator of it finalised now), or set-up data
    g.checked += 1
    owner = _owner(obj)
    if owner is None or owner == g.running:
        return
    if isinstance(obj, Thread) and obj.task is not None and not obj.task.started:
        return  # not created yet: task_new creates it on the creator's CPU (§7.1)
    cls = type(obj).__name__
    g.violations.append(Violation(f"{cls}.{field}", _name(obj), g.running, owner, _where()))


class _GuardedList(list):
    """A thread's list whose mutations are checked against the running CPU."""

    __slots__ = ("_owner_obj", "_field")

    def _touch(self) -> None:
        _check(self._owner_obj, f"{self._field}[]")


class _GuardedDict(dict):
    """A thread's dict whose mutations are checked against the running CPU."""

    __slots__ = ("_owner_obj", "_field")

    def _touch(self) -> None:
        _check(self._owner_obj, f"{self._field}[]")


def _mutator(base: type, name: str) -> Any:
    inner = getattr(base, name)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._touch()
        return inner(self, *args, **kwargs)

    method.__name__ = name
    return method


for _name_ in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(_GuardedList, _name_, _mutator(list, _name_))
for _name_ in ("__setitem__", "__delitem__", "__iadd__", "__imul__"):
    setattr(_GuardedList, _name_, _mutator(list, _name_))
for _name_ in ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault"):
    setattr(_GuardedDict, _name_, _mutator(dict, _name_))


def _guarded(obj: Any, field: str, value: Any) -> Any:
    if field not in CONTAINERS or not isinstance(value, list | dict):
        return value
    out = _GuardedList(value) if isinstance(value, list) else _GuardedDict(value)
    out._owner_obj = obj
    out._field = field
    return out


def _thread_setattr(self: Thread, field: str, value: Any) -> None:
    _check(self, field)
    if field == "pc" and _active is not None:
        _active.pcs[id(value)] = self
    object.__setattr__(self, field, _guarded(self, field, value))


def _pc_mover(name: str) -> Any:
    inner = getattr(ProgramCounter, name)

    def method(self: ProgramCounter, *args: Any) -> Any:
        g = _active
        t = g.pcs.get(id(self)) if g is not None else None
        if t is not None:
            _check(t, f"pc.{name}()")
        return inner(self, *args)

    return method


PC_MOVES = ("advance", "halt")


def _cpu_setattr(self: CpuData, field: str, value: Any) -> None:
    _check(self, field)
    object.__setattr__(self, field, value)


def _check_mailbox(i: int, field: str) -> None:
    g = _active
    if g is None or g.running is None:
        return
    g.checked += 1
    holder = g.holders.get(i)
    if isinstance(holder, Thread):
        holder = holder.cpu
    if holder is not None and holder != g.running:
        g.violations.append(Violation(field, f"mailbox {i}", g.running, holder, _where()))


def _mail_setattr(self: Mail, field: str, value: Any) -> None:
    g = _active
    if g is not None:
        i = next((j for j, m in g.s.kernel.mailboxes.mail.items() if m is self), None)
        if i is not None:  # (a new one is being set up)
            _check_mailbox(i, f"Mail.{field}")
    object.__setattr__(self, field, value)


class _MailTable(dict):
    """The kernel's table of parameter blocks, by mailbox: a write checks the holder."""

    def __setitem__(self, i: int, mail: Any) -> None:
        _check_mailbox(i, "mailbox[]")
        super().__setitem__(i, mail)

    def pop(self, i: int, *default: Any) -> Any:
        _check_mailbox(i, "mailbox[]")
        return super().pop(i, *default)


def _memory_write(memory: Memory, paddr: int, value: int) -> None:
    g = _active
    if g is not None and g.running is not None and not g.in_op and memory is g.memory:
        g.checked += 1
        for lo, hi, what in MEMORY_ONLY:
            if lo <= paddr < hi:
                where = _where()
                g.violations.append(Violation(f"memory[{paddr:#x}]", what, g.running, 0, where))
    _ORIGINAL_WRITE(memory, paddr, value)


_ORIGINAL_WRITE = Memory.write


class SharedStateGuard:
    """Records every Python-side write of a thread's or CPU's state by another CPU."""

    def __init__(self, s: System) -> None:
        self.s = s
        self.running: int | None = None  # the CPU whose kernel path runs now
        self.in_op = False  # a micro-op is being executed (its memory access is the op's)
        self.memory = s.machine.memory
        self.violations: list[Violation] = []
        self.checked = 0  # writes made by kernel paths and checked
        k = s.kernel
        self._mine = {id(t) for t in k.threads} | {id(cd) for cd in k.cpus}
        self.pcs: dict[int, Thread] = {id(t.pc): t for t in k.threads}  # program counter -> thread
        # mailbox -> the CPU that may write its Mail, or the thread whose list has it
        self.holders: dict[int, int | Thread] = {}

    def owns(self, obj: Any) -> bool:
        """Is `obj` a thread or CPU of the guarded kernel?"""
        return id(obj) in self._mine

    def _wrap_handlers(self) -> dict[type, Any]:
        saved = dict(execute.HANDLERS)
        m = self.s.machine
        for kind, handler in saved.items():

            def wrapped(machine: Any, c: Any, op: Any, _h: Any = handler) -> Any:
                if machine is not m:
                    return _h(machine, c, op)
                self.running = c.number
                self.in_op = True
                try:
                    return _h(machine, c, op)
                finally:
                    self.in_op = False

            execute.HANDLERS[kind] = wrapped
        return saved

    @contextmanager
    def installed(self) -> Iterator[SharedStateGuard]:
        global _active
        if _active is not None:
            raise RuntimeError("one SharedStateGuard at a time")
        m, k = self.s.machine, self.s.kernel
        saved = self._wrap_handlers()
        idle, step = m.idle_handler, m.step

        def idle_handler(c: Any) -> Any:
            self.running = c.number  # the path it returns starts (is primed) right away
            return idle(c)

        def guarded_step(number: int | None = None) -> Any:
            try:
                return step(number)
            finally:
                self.running = None

        m.idle_handler = idle_handler
        m.step = guarded_step  # type: ignore[method-assign]
        m.inline_kernel_access = False  # every op through the wrapped HANDLERS
        alloc, trigger, link = xcpu.alloc, xcpu.trigger, xcpu.link

        def guarded_alloc(k: Any, from_cpu: int) -> Any:
            i = yield from alloc(k, from_cpu)
            self.holders[i] = self.running  # locked here: this CPU sets it up
            return i

        def guarded_trigger(k: Any, here: Any, i: int, cpu: int) -> Any:
            self.holders[i] = cpu  # handed over: the target CPU's from the flag on
            return (yield from trigger(k, here, i, cpu))

        def guarded_link(k: Any, t: Thread, i: int) -> Any:
            self.holders[i] = t  # on t's list: t's CPU's, wherever t goes
            return (yield from link(k, t, i))

        xcpu.alloc, xcpu.trigger, xcpu.link = guarded_alloc, guarded_trigger, guarded_link
        table = k.mailboxes.mail
        k.mailboxes.mail = _MailTable(table)
        old_mail = Mail.__dict__.get("__setattr__")
        Mail.__setattr__ = _mail_setattr  # type: ignore[method-assign, assignment]
        for t in k.threads:
            for field in CONTAINERS:
                object.__setattr__(t, field, _guarded(t, field, getattr(t, field)))
        old_t = Thread.__dict__.get("__setattr__")
        old_c = CpuData.__dict__.get("__setattr__")
        old_pc = {name: ProgramCounter.__dict__[name] for name in PC_MOVES}
        Thread.__setattr__ = _thread_setattr  # type: ignore[method-assign, assignment]
        CpuData.__setattr__ = _cpu_setattr  # type: ignore[method-assign, assignment]
        for name in PC_MOVES:
            setattr(ProgramCounter, name, _pc_mover(name))
        Memory.write = _memory_write  # type: ignore[method-assign]
        _active = self
        try:
            yield self
        finally:
            _active = None
            Memory.write = _ORIGINAL_WRITE  # type: ignore[method-assign]
            xcpu.alloc, xcpu.trigger, xcpu.link = alloc, trigger, link
            k.mailboxes.mail = dict(k.mailboxes.mail)
            if old_mail is None:
                del Mail.__setattr__
            else:
                Mail.__setattr__ = old_mail  # type: ignore[method-assign]
            for name, method in old_pc.items():
                setattr(ProgramCounter, name, method)
            for cls, old in ((Thread, old_t), (CpuData, old_c)):
                if old is None:
                    del cls.__setattr__
                else:
                    cls.__setattr__ = old  # type: ignore[method-assign]
            execute.HANDLERS.clear()
            execute.HANDLERS.update(saved)
            m.idle_handler = idle
            m.step = step  # type: ignore[method-assign]
            m.inline_kernel_access = True
