"""Thread ids: task, lthread and version packed into one word (thesis §8.3.2, §8.8.4).

"Thread ids in L4 are basically composed in two fields, a number defining the
thread itself and a version number"; in Version X the thread number is a task
number plus a thread number within the task. A TCB's `myself` field holds
the id of its owner, 0 meaning "not present"; the send path checks it.
Word layout here: version in bits 0–9, lthread in bits 10–16, task in 17–27.
Hardware (interrupt) threads are ids 1..24 with task 0, as in L4.
"""

from __future__ import annotations

from dataclasses import dataclass

NIL = 0
ANY = 0xFFFF_FFFF
MAX_TASK = (1 << 11) - 1
MAX_LTHREAD = (1 << 7) - 1


@dataclass(frozen=True, slots=True, order=True)
class ThreadId:
    """A thread id; `word` is what the kernel stores in TCB fields."""

    task: int
    lthread: int
    version: int = 1

    @property
    def word(self) -> int:
        return self.task << 17 | self.lthread << 10 | self.version

    @classmethod
    def from_word(cls, word: int) -> ThreadId | None:
        if word in (NIL, ANY):
            return None
        return cls(word >> 17 & MAX_TASK, word >> 10 & MAX_LTHREAD, word & 0x3FF)

    @property
    def is_hardware(self) -> bool:
        return self.task == 0

    def __str__(self) -> str:
        if self.is_hardware:
            return f"irq{self.lthread - 1}"
        return f"{self.task}.{self.lthread}"


def irq_thread(irq: int) -> ThreadId:
    """The hardware thread that interrupt `irq` is delivered from (§2.4)."""
    return ThreadId(0, irq + 1, 0)


def describe(word: int) -> str:
    if word == NIL:
        return "nil"
    if word == ANY:
        return "any"
    tid = ThreadId.from_word(word)
    return str(tid)
