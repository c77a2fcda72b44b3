"""The session's input log, one small frozen dataclass per kind of input (DESIGN.md §1).

Going backwards is deterministic replay: the inputs replayed on a fresh
machine reproduce the state bit for bit. The inputs are the steps taken (by
the timed policy, or on a named CPU), a step that found nothing to run (it
applied the events due by then, so replay must take it too), a change of
scheduling policy and a system call injected into a thread. A peek is no
input: it changes nothing (Machine.peek).

On disk (a saved session, an explorer's schedule) an input keeps its old
JSON form: null, a CPU number, a policy name, `["idle", CPU]`,
`["inject", THREAD, OP, ARG...]`; `to_json` and `from_json` convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Timed:
    """A step on the CPU the timed policy picks (the lowest clock). Every one is `TIMED`:
    a log of a million steps holds one object a million times, and a pickled log (sent
    to a checkpoint's fork) comes back as the same one."""

    def __reduce__(self) -> str:
        return "TIMED"


TIMED = Timed()


@dataclass(frozen=True, slots=True)
class OnCpu:
    """A step on CPU `cpu` (1-based), whatever the policy: an interleaving forced by hand."""

    cpu: int


@dataclass(frozen=True, slots=True)
class Idle:
    """A step (timed if `cpu` is None) that found nothing to run: it applied the events due."""

    cpu: int | None


@dataclass(frozen=True, slots=True)
class SetPolicy:
    """The scheduling policy changed: `timed` or `manual`."""

    policy: str


@dataclass(frozen=True, slots=True)
class Inject:
    """`op ARGS` run as `thread`'s next operation (an injected system call)."""

    thread: str
    op: str
    args: tuple[str, ...]


LogEntry = Timed | OnCpu | Idle | SetPolicy | Inject
Step = Timed | OnCpu  # the inputs that move the position by one micro-op

_ON_CPU: dict[int, OnCpu] = {}


def step_on(cpu: int | None) -> Step:
    """The input of a step: timed (None) or on CPU `cpu` (one object per CPU, shared)."""
    if cpu is None:
        return TIMED
    got = _ON_CPU.get(cpu)
    if got is None:
        got = _ON_CPU[cpu] = OnCpu(cpu)
    return got


def step_cpu(entry: LogEntry) -> int | None:
    """The CPU a step names, None for a timed one."""
    return entry.cpu if isinstance(entry, OnCpu) else None


def is_step(entry: LogEntry) -> bool:
    """Whether `entry` moves the position (a step that ran a micro-op)."""
    return type(entry) is Timed or type(entry) is OnCpu


def to_json(entry: LogEntry) -> Any:
    """The entry as the saved-file format writes it."""
    if type(entry) is Timed:
        return None
    if isinstance(entry, OnCpu):
        return entry.cpu
    if isinstance(entry, SetPolicy):
        return entry.policy
    if isinstance(entry, Idle):
        return ["idle", entry.cpu]
    if isinstance(entry, Inject):
        return ["inject", entry.thread, entry.op, *entry.args]
    raise TypeError(f"not an input: {entry!r}")


def from_json(value: Any) -> LogEntry:
    """An entry from its saved form, already checked (saved.py checks files field by field)."""
    if value is None:
        return TIMED
    if isinstance(value, int) and not isinstance(value, bool):
        return step_on(value)
    if isinstance(value, str):
        return SetPolicy(value)
    if isinstance(value, list) and len(value) == 2 and value[0] == "idle":
        return Idle(value[1])
    if isinstance(value, list) and len(value) >= 3 and value[0] == "inject":
        return Inject(value[1], value[2], tuple(value[3:]))
    raise ValueError(f"not an input: {value!r}")
