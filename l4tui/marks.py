"""The phase labels a session passed, kept for going back by them (DESIGN.md §1, reverse execution).

`reverse-step` goes back by phase labels and the event log shows them: each
label a CPU passes is a `Mark` — after which input, on which CPU, by which
thread. A session keeps them all, so `Marks` stores them as columns of
machine words.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import overload

# Labels of the scheduler's and the mailbox plumbing's, which every kernel path goes
# through: the IPC phase pane shows a thread's last label that is not one of them.
PLUMBING = ("sched.", "xcpu.", "idle", "xp.mailbox.setup", "xp.trigger", "xp.ipi")


@dataclass(frozen=True, slots=True)
class Mark:
    """A phase label passed: after which input, on which CPU, by which thread."""

    position: int
    label: str
    cpu: int
    thread: str


class Marks:
    """Every phase label passed, in order, as `Mark`s — stored as columns of machine words.

    A mark is taken at about one micro-op in seven and a session keeps them all
    (`reverse-step` goes back by them, the event log shows them), so a `continue`
    of `LIMIT` micro-ops leaves some 700,000. As objects that is about 100 bytes
    each; here it is 18 (position, label, CPU, thread: labels and thread names
    are numbered once). Reads build `Mark`s on demand; a list of them compares
    equal to the `Marks` holding the same.
    """

    __slots__ = ("_cpu", "_label", "_names", "_number", "_pos", "_thread")

    def __init__(self, marks: Iterable[Mark] = ()) -> None:
        self._pos = array("q")
        self._label = array("I")
        self._cpu = array("H")
        self._thread = array("I")
        self._names: list[str] = []  # labels and thread names, numbered in order of first use
        self._number: dict[str, int] = {}
        for m in marks:
            self.append(m)

    def _id(self, name: str) -> int:
        n = self._number.get(name)
        if n is None:
            n = self._number[name] = len(self._names)
            self._names.append(name)
        return n

    def add(self, position: int, label: str, cpu: int, thread: str) -> None:
        self._pos.append(position)
        self._label.append(self._id(label))
        self._cpu.append(cpu)
        self._thread.append(self._id(thread))

    def append(self, m: Mark) -> None:
        self.add(m.position, m.label, m.cpu, m.thread)

    def _mark(self, i: int) -> Mark:
        names = self._names
        return Mark(self._pos[i], names[self._label[i]], self._cpu[i], names[self._thread[i]])

    def __len__(self) -> int:
        return len(self._pos)

    @overload
    def __getitem__(self, i: int) -> Mark: ...
    @overload
    def __getitem__(self, i: slice) -> list[Mark]: ...
    def __getitem__(self, i: int | slice) -> Mark | list[Mark]:
        if isinstance(i, slice):
            return [self._mark(j) for j in range(*i.indices(len(self._pos)))]
        if i < 0:
            i += len(self._pos)
        if not 0 <= i < len(self._pos):
            raise IndexError("mark index out of range")
        return self._mark(i)

    def __iter__(self) -> Iterator[Mark]:
        return (self._mark(i) for i in range(len(self._pos)))

    def __reversed__(self) -> Iterator[Mark]:
        return (self._mark(i) for i in range(len(self._pos) - 1, -1, -1))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Marks):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __repr__(self) -> str:
        return f"Marks({list(self)!r})"

    def positions_before(self, position: int) -> int:
        """How many marks were taken at positions before `position` (they are in order)."""
        return bisect.bisect_left(self._pos, position)

    def position(self, i: int) -> int:
        """The position of mark `i`, without building the mark."""
        return self._pos[i]

    def since(self, position: int) -> tuple[list[str], list[array]]:
        """The marks taken after `position`, as the names and the columns' tails: what a
        checkpoint's fork is sent (`extend`; arrays pickle as bytes)."""
        n = bisect.bisect_right(self._pos, position)
        return list(self._names), [c[n:] for c in self._columns()]

    def extend(self, tail: tuple[list[str], list[array]]) -> None:
        """Add `since`'s marks, taken from marks that began as these did (the same history:
        names are numbered in the order of first use, so these names are a prefix)."""
        names, columns = tail
        for name in names[len(self._names) :]:
            self._id(name)
        for mine, more in zip(self._columns(), columns, strict=True):
            mine.extend(more)

    def _columns(self) -> tuple[array, array, array, array]:
        return self._pos, self._label, self._cpu, self._thread

    def truncate(self, position: int) -> None:
        """Drop the marks taken after `position` (a replay from there takes them again)."""
        n = bisect.bisect_right(self._pos, position)
        for column in self._columns():
            del column[n:]
