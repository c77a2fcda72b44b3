"""The state key of the race explorer: the kernel-visible state at a branch point, as an int.

Built from ints only (strings through a fixed digest, no `None`, whose hash is
an address before Python 3.12), so any process computes the same key: workers
return keys to the coordinator. What goes in (and what is left out: clocks and
caches) is walk.py's module docstring, "The state key" and "Independent groups".
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import fields, is_dataclass
from typing import Any

from kernel import query
from kernel.system import System

_NAMES: dict[str, int] = {}


def _name(text: str) -> int:
    """A string as an int, the same in every process (Python's str hash is per process)."""
    n = _NAMES.get(text)
    if n is None:
        n = _NAMES[text] = int.from_bytes(
            hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"
        )
    return n


_FIELDS: dict[type, tuple[str, ...]] = {}
_FROZEN: dict[int, tuple[Any, int]] = {}  # id -> (a frozen dataclass, its value at depth 0)


def _stable(x: Any, depth: int = 0) -> int:
    """Any of the kernel's Python-side values as an int, the same in every process.

    Threads and tasks count by name; dataclasses by their fields, two levels
    deep (a mailbox's parameters and the request they carry); anything else
    by its type.
    """
    t = type(x)
    if t is int or t is bool:
        return int(x)
    if x is None:
        return -1
    if t is str:
        return _name(x)
    if t is tuple or t is list:
        return hash((-2, *[_stable(v, depth + 1) for v in x])) if depth < 3 else -2
    name = getattr(x, "name", None)
    if type(name) is str:
        return _name(name)  # a thread or a task: by its name, not its whole state
    if depth < 2 and is_dataclass(x):
        frozen = t.__dataclass_params__.frozen  # type: ignore[attr-defined]
        if frozen:  # a program's op, say: the same object, the same value
            got = _FROZEN.get(id(x))
            if got is not None and got[0] is x:
                return got[1]
        names = _FIELDS.get(t)
        if names is None:
            names = _FIELDS[t] = tuple(f.name for f in fields(x))
        value = hash((_name(t.__name__), *[_stable(getattr(x, f), depth + 1) for f in names]))
        if frozen:
            if len(_FROZEN) > 4096:
                _FROZEN.clear()
            _FROZEN[id(x)] = (x, value)  # held, so its id is not reused while cached
        return value
    return _name(t.__name__)


def _cpu_part(c: Any) -> int:
    """One CPU's share of the key: mode, interrupt flag, space, wait, phase, its top op."""
    # A frame whose code has ended is popped lazily: it is no state of its own.
    n, top = 0, None
    for f in c.frames:
        if f.op is not None or f.resume is not None:
            n, top = n + 1, f
    waiting = _name(c.waiting) if c.waiting else 0
    head = (_name(c.mode), c.if_flag, c.cr3, waiting, _name(c.phase), n)
    if top is None:
        return hash(head)
    o = top.resume or top.op
    addr, value = getattr(o, "addr", None), getattr(o, "value", None)
    return hash((*head, _name(type(o).__name__), _stable(addr), _stable(value)))


class Keys:
    """State keys of one machine, each CPU's share kept until that CPU steps or is woken."""

    def __init__(self, system: System) -> None:
        self.system = system
        n = len(system.machine.cpus)
        self.sigs: list[Any] = [None] * n
        self.cpu_parts = [0] * n
        self.mails: dict[int, tuple[Any, tuple[Any, ...], int]] = {}
        self.nthreads = -1
        self.programs: list[tuple[int, Any]] = []

    def key(self, memory_digest: int, cpu: int, op: Any) -> int:
        """The kernel-visible state at a branch point (see the module docstring)."""
        m, k = self.system.machine, self.system.kernel
        addr, value = getattr(op, "addr", None), getattr(op, "value", None)
        parts = [memory_digest, cpu, _name(type(op).__name__), _stable(addr), _stable(value)]
        sigs, cpu_parts = self.sigs, self.cpu_parts
        for c in m.cpus:
            # A CPU's fields change only when it steps (`steps`) or an event wakes or
            # cuts it (`ticket`, `waiting`): otherwise its share is the one computed last.
            sig = (c.steps, c.ticket, c.waiting)
            i = c.index
            if sigs[i] != sig:
                sigs[i], cpu_parts[i] = sig, _cpu_part(c)
            parts.append(cpu_parts[i])
        for a in m.apics.apics:
            if a.slots:
                parts += [hash((s.vector, s.sender, s.in_service)) for s in a.slots]
            parts += (a.irr_other, a.isr, a.tpr)
        for msg in m.apics.in_flight:
            parts.append(hash((-4, msg.vector, *msg.dests)))
        mail = k.mailboxes.mail
        if mail:
            parts += [self._mail(i, mail[i]) for i in sorted(mail)]
        self._programs(parts, -1)
        return hash(tuple(parts))

    def _programs(self, out: list[int], gmask: int) -> None:
        """The program counters of the threads on the CPUs of `gmask`, onto `out`."""
        threads = self.system.kernel.threads
        if len(threads) != self.nthreads:
            # Only threads running a program have a counter; one whose program ended
            # (no levels) never gets one again. Kernel threads have none.
            self.nthreads = len(threads)
            self.programs = [(i, t) for i, t in enumerate(threads) if t.pc.levels]
        for i, t in self.programs:
            levels = t.pc.levels
            if levels and gmask >> (t.cpu - 1) & 1:
                out.append(-6 - i)
                for lv in levels:
                    out += (lv.index, -1 if lv.left is None else lv.left)

    def key_group(
        self,
        parts: list[int],
        b: int,
        gmask: int,
        buckets: dict[int, int],
        cpu: Any,
        op: Any,
    ) -> int:
        """The share of group `b` (CPUs `gmask`) of the state at a branch point of `cpu`.

        As `key`, but only the group's own: its memory words' digest (and the
        words no group owns yet, bucket 0), its CPUs, APICs and IPIs in flight,
        the mailboxes whose words it owns (or nobody yet), the programs of its
        threads. Tagged with the group, so no key of another grouping equals it.
        """
        m, k = self.system.machine, self.system.kernel
        addr, value = getattr(op, "addr", None), getattr(op, "value", None)
        out = [-7, gmask, parts[b], parts[0], cpu.number]
        out += (_name(type(op).__name__), _stable(addr), _stable(value))
        sigs, cpu_parts = self.sigs, self.cpu_parts
        apics = m.apics.apics
        for c in m.cpus:
            i = c.index
            if not gmask >> i & 1:
                continue
            sig = (c.steps, c.ticket, c.waiting)
            if sigs[i] != sig:
                sigs[i], cpu_parts[i] = sig, _cpu_part(c)
            out.append(cpu_parts[i])
            a = apics[i]
            if a.slots:
                out += [hash((s.vector, s.sender, s.in_service)) for s in a.slots]
            out += (a.irr_other, a.isr, a.tpr)
        for msg in m.apics.in_flight:
            if any(gmask >> d & 1 for d in msg.dests) or (
                msg.sender is not None and gmask >> msg.sender & 1
            ):
                out.append(hash((-4, msg.vector, *msg.dests)))
        mail = k.mailboxes.mail
        if mail:
            for i in sorted(mail):
                if buckets.get(query.mailbox_paddr(k, i), 0) in (0, b):
                    out.append(self._mail(i, mail[i]))
        self._programs(out, gmask)
        return hash(tuple(out))

    def _mail(self, i: int, mail: Any) -> int:
        """A mailbox's Python side: recomputed only when one of its fields is another object."""
        names = _FIELDS.get(type(mail))
        if names is None:
            return hash((-5, i, _stable(mail)))
        now = tuple([getattr(mail, f) for f in names])
        got = self.mails.get(i)
        if got is not None and got[0] is mail and all(map(operator.is_, got[1], now)):
            return got[2]
        value = hash((-5, i, _stable(mail)))
        self.mails[i] = (mail, now, value)
        return value


def state_key(system: System, memory_digest: int, cpu: int, op: Any) -> int:
    """The key of the state at a branch point, computed afresh (`Keys` keeps shares)."""
    return Keys(system).key(memory_digest, cpu, op)
