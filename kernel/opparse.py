"""The program-op parser: one op of a thread's program from its YAML (DESIGN.md §2).

Op names follow the thesis: ``send``/``recv``/``call``/``reply_wait``
(§2.1, §8.3.1), ``thread_switch`` (§2.1.1), ``schedule`` (§7.1),
``ex_regs`` (§2.1.2), ``unmap`` (§2.2.2), ``task_new`` (§2.2.3); each
becomes the frozen op of `kernel.program`. The scenario loader and the
console's syscall injection both build ops here (`kernel.scenario.parse_op`),
so the prompt accepts and refuses exactly what a scenario file does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kernel.program import (
    INF,
    USER_LIMIT,
    Compute,
    ExRegs,
    Fpage,
    Fpu,
    Halt,
    Ipc,
    Loop,
    Op,
    ReadKip,
    ReadUtcbCpu,
    Repeat,
    Schedule,
    ServeFaults,
    Sleep,
    TaskNew,
    ThreadSwitch,
    Timeout,
    Touch,
    Unmap,
    takes_time,
)
from kernel.yamlread import MAX_INT, Reader, kind, show
from machine.errors import suggest
from machine.memory import PAGE_SIZE
from machine.yamlsrc import Path as DataPath
from machine.yamlsrc import Source

SIGMA0 = "sigma0"  # the root pager the kernel creates (§2.2.3)
MAX_WORDS = 64  # message registers per IPC
MAX_STRING = 4 * 1024 * 1024  # the largest string / receive buffer (4 MiB)
IRQ_RE = re.compile(r"irq(0|[1-9][0-9]?)")
IRQS = 16

# Mapping-valued ops, their fields and which are required.
_SEND_FIELDS = ("to", "words", "timeout", "xfer_timeout", "xp_fault", "strings", "map", "grant")
_REPLY_FIELDS = (
    "to",
    "words",
    "timeout",
    "recv_timeout",
    "xfer_timeout",
    "strings",
    "buffers",
    "map",
    "grant",
    "window",
)
_IPC_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # op: (allowed fields, required fields)
    "send": (_SEND_FIELDS, ("to",)),
    "recv": (("from", "timeout", "xfer_timeout", "strings", "window"), ()),
    "call": (_REPLY_FIELDS[:5] + ("xp_fault",) + _REPLY_FIELDS[5:], ("to",)),
    "reply_wait": (_REPLY_FIELDS, ()),
}
_NO_TIME = "takes no time (it is empty, or holds only compute: 0, fpu: 0 or blocks like it)"
_BARE_OPS = ("halt", "read_kip", "read_utcb_cpu", "serve_faults")
_OPS = (
    "compute", "fpu", "touch", "send", "recv", "call", "reply_wait", "thread_switch",
    "schedule", "ex_regs", "unmap", "task_new", "read_utcb_cpu", "read_kip", "serve_faults",
    "sleep", "halt", "repeat", "loop",
)  # fmt: skip


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class OpReader(Reader):
    """Reads program ops; knows the scenario's thread and task names and its CPU count."""

    def __init__(self, src: Source) -> None:
        super().__init__(src)
        self.cpus = 1
        self.threads: dict[str, DataPath] = {}  # name -> path of the thread mapping
        self.tasks: dict[str, tuple[DataPath, bool]] = {}  # name -> (path, start)

    # --- references ---

    def thread_ref(self, path: DataPath, sigma0: bool = False) -> str:
        """A reference to a thread of the scenario (or to sigma0 where allowed)."""
        value = self.get(path)
        known = list(self.threads) + ([SIGMA0] if sigma0 else [])
        if not isinstance(value, str):
            raise self.fail(path, f"expected a thread name, not {kind(value)} {show(value)}")
        if value not in known:
            raise self.fail(path, f"no thread {value!r}{suggest(value, known)}")
        return value

    def cpu(self, path: DataPath, lo: int = 1) -> int:
        value = self.get_int(path, lo)
        if value > self.cpus:
            plural = "CPU" if self.cpus == 1 else "CPUs"
            raise self.fail(
                path, f"CPU {value} does not exist: the machine has {self.cpus} {plural}"
            )
        return value

    def task_ref(self, path: DataPath) -> str:
        value = self.get(path)
        if not isinstance(value, str):
            raise self.fail(path, f"expected a task name, not {kind(value)} {show(value)}")
        if value not in self.tasks:
            raise self.fail(path, f"no task {value!r}{suggest(value, self.tasks)}")
        if self.tasks[value][1]:
            raise self.fail(
                path,
                f"task {value!r} already exists at start; declare it with `start: false` "
                "to create it with task_new",
            )
        return value

    # --- program ops ---

    def ops(self, path: DataPath) -> tuple[Op, ...]:
        items = self.get_list(path, "a program")
        return tuple(self.op(path + (i,)) for i in range(len(items)))

    def op(self, path: DataPath) -> Op:
        item = self.get(path)
        if isinstance(item, str):
            if item in _BARE_OPS:
                return self.bare_op(item)
            if item in _OPS:
                raise self.fail(path, f"{item} needs a value: write `{item}: ...`")
            raise self.fail(path, f"unknown op {item!r}{suggest(item, _OPS)}")
        if not isinstance(item, dict) or not item:
            raise self.fail(
                path,
                f"an op is a mapping such as `compute: 100` or one of {', '.join(_BARE_OPS)}, "
                f"not {kind(item)}",
            )
        names = [k for k in item if k != "do"]
        for key in names:
            if key not in _OPS:
                raise self.fail_key(path, key, f"unknown op {key!r}{suggest(key, _OPS)}")
        if len(names) > 1:
            raise self.fail_key(
                path, names[1], f"one op per list item: found {names[0]!r} and {names[1]!r}"
            )
        if not names:
            raise self.fail_key(path, "do", "`do` belongs to a `repeat: N`")
        op = names[0]
        if "do" in item and op != "repeat":
            raise self.fail_key(path, "do", f"`do` belongs to `repeat`, not to {op!r}")
        return self.op_value(op, path + (op,), path)

    def bare_op(self, op: str) -> Op:
        if op == "halt":
            return Halt()
        if op == "read_kip":
            return ReadKip()
        if op == "read_utcb_cpu":
            return ReadUtcbCpu()
        return ServeFaults()

    def op_value(self, op: str, path: DataPath, item_path: DataPath) -> Op:
        value = self.get(path)
        if op in ("compute", "fpu", "sleep"):
            cycles = self.get_int(path, 0, what=" (cycles)")
            timed: dict[str, type[Compute | Fpu | Sleep]] = {
                "compute": Compute,
                "fpu": Fpu,
                "sleep": Sleep,
            }
            return timed[op](cycles)
        if op in ("halt", "read_kip", "read_utcb_cpu"):
            if value is not None and value != {}:
                raise self.fail(path, f"{op} takes no arguments; write `- {op}`")
            return self.bare_op(op)
        if op == "serve_faults":
            if value is None:
                return ServeFaults()
            data = self.mapping(path, ("count",), "serve_faults")
            return ServeFaults(self.optional(data, path, "count", self.get_int, None, 0))
        if op == "touch":
            data = self.mapping(path, ("addr", "write"), "touch", ("addr",))
            addr = self.get_int(path + ("addr",), 0, USER_LIMIT - 1)
            return Touch(addr, self.optional(data, path, "write", self.get_bool, False))
        if op in _IPC_FIELDS:
            return self.ipc(op, path)
        if op == "thread_switch":
            if value is None or value == "nil":
                return ThreadSwitch(None)
            return ThreadSwitch(self.thread_ref(path))
        if op == "schedule":
            data = self.mapping(
                path, ("thread", "cpu", "priority", "timeslice"), "schedule", ("thread",)
            )
            return Schedule(
                self.thread_ref(path + ("thread",)),
                self.optional(data, path, "cpu", self.cpu, 0, 0),
                self.optional(data, path, "priority", self.get_int, None, 0, 255),
                self.optional(data, path, "timeslice", self.get_int, None, 1),
            )
        if op == "ex_regs":
            data = self.mapping(path, ("thread", "ip", "sp", "pager"), "ex_regs", ("thread",))
            return ExRegs(
                self.thread_ref(path + ("thread",)),
                self.optional(data, path, "ip", self.get_int, None, 0, 2**32 - 1),
                self.optional(data, path, "sp", self.get_int, None, 0, 2**32 - 1),
                self.optional(data, path, "pager", self.thread_ref, None, True),
            )
        if op == "unmap":
            data = self.mapping(path, ("addr", "size", "mode", "own"), "unmap", ("addr", "size"))
            return Unmap(
                self.fpage(path, flexpage=True, check_keys=False),
                self.optional(data, path, "mode", self.choice, "flush", ("flush", "ro")),
                self.optional(data, path, "own", self.get_bool, False),
            )
        if op == "task_new":
            tpath = path
            if isinstance(value, dict):
                self.mapping(path, ("task",), "task_new", ("task",))
                tpath = path + ("task",)
            return TaskNew(self.task_ref(tpath))
        if op == "repeat":
            count = self.get_int(path, 0, what=" (a repeat count)")
            if "do" not in self.get(item_path):
                raise self.fail(path, "repeat needs `do: [ops]` beside it")
            body = self.ops(item_path + ("do",))
            if count > 0 and not takes_time(body):
                # Each pass would take no step, or no time: 2**63 of them is a hang.
                message = f"this repeat {_NO_TIME}: give it an op that takes time, or remove it"
                raise self.fail_key(item_path, "do", message)
            return Repeat(count, body)
        assert op == "loop", op
        body = self.ops(path)
        if not takes_time(body):
            raise self.fail_key(item_path, "loop", f"this loop {_NO_TIME}: it would spin forever")
        return Loop(body)

    def ipc(self, op: str, path: DataPath) -> Ipc:
        allowed, required = _IPC_FIELDS[op]
        if self.get(path) is None and not required:
            data: dict[Any, Any] = {}
        else:
            data = self.mapping(path, allowed, op, required)

        def opt(key: str, read: Callable[..., Any], default: Any, *args: Any) -> Any:
            return self.optional(data, path, key, read, default, *args)

        to = opt("to", self.thread_ref, None, True)
        words = opt("words", self.words, ())
        strings = opt("strings", self.regions, ())
        xfer = opt("xfer_timeout", self.timeout, INF)
        window = opt("window", self.fpage_at, None)
        if op == "recv":
            source = None
            if "from" in data and data["from"] != "any":
                if isinstance(data["from"], str) and IRQ_RE.fullmatch(data["from"]):
                    source = data["from"]  # a hardware thread: interrupt N (§2.4)
                    if int(source[3:]) >= IRQS:
                        raise self.fail(path + ("from",), f"interrupts are irq0..irq{IRQS - 1}")
                else:
                    source = self.thread_ref(path + ("from",), sigma0=True)
            return Ipc(
                "recv",
                source=source,
                recv_timeout=opt("timeout", self.timeout, INF),
                xfer_timeout=xfer,
                buffers=strings,
                window=window,
            )
        timeout = opt("timeout", self.timeout, INF)
        recv_default = timeout if op == "call" else INF
        return Ipc(
            op,
            to=to,
            source=to if op == "call" else None,
            words=words,
            timeout=timeout,
            recv_timeout=opt("recv_timeout", self.timeout, recv_default),
            xfer_timeout=xfer,
            xp_fault=opt("xp_fault", self.get_bool, False),
            strings=strings,
            buffers=opt("buffers", self.regions, ()),
            map=opt("map", self.fpage_at, None),
            grant=opt("grant", self.fpage_at, None),
            window=window,
        )

    def timeout(self, path: DataPath) -> Timeout:
        value = self.get(path)
        if value in ("inf", "infinite", "never") or value == float("inf"):
            return INF
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(path, f"a timeout is inf or a number of cycles >= 0, not {show(value)}")
        if value > MAX_INT:
            raise self.fail(path, f"a timeout must be below 2**63 cycles (or inf), not {value}")
        return value

    def words(self, path: DataPath) -> tuple[int, ...]:
        items = self.get_list(path, "words")
        if len(items) > MAX_WORDS:
            raise self.fail(path, f"at most {MAX_WORDS} words, not {len(items)}")
        return tuple(self.get_int(path + (i,), 0, 2**32 - 1) for i in range(len(items)))

    def regions(self, path: DataPath) -> tuple[Fpage, ...]:
        items = self.get_list(path, "a list of {addr, size} regions")
        return tuple(self.fpage(path + (i,), flexpage=False) for i in range(len(items)))

    def fpage_at(self, path: DataPath) -> Fpage:
        return self.fpage(path, flexpage=True)

    def fpage(self, path: DataPath, flexpage: bool, check_keys: bool = True) -> Fpage:
        """A flexpage (map, grant, unmap, window) or a string region (strings, buffers)."""
        data = self.get(path)
        if not isinstance(data, dict):
            raise self.fail(path, f"expected {{addr, size}}, not {kind(data)} {show(data)}")
        if check_keys:
            self.mapping(path, ("addr", "size"), "an fpage", ("addr", "size"))
        addr = self.get_int(path + ("addr",), 0, USER_LIMIT - 1)
        if flexpage:
            size = self.get_int(path + ("size",), PAGE_SIZE, USER_LIMIT)
            if not _power_of_two(size):
                raise self.fail(
                    path + ("size",), f"a flexpage size is a power of two >= 4096, not {size}"
                )
            if addr % size:
                raise self.fail(
                    path + ("addr",),
                    f"a flexpage is aligned to its size: {addr:#x} is not a multiple of {size:#x}",
                )
        else:
            size = self.get_int(path + ("size",), 1, MAX_STRING)
        if addr + size > USER_LIMIT:
            raise self.fail(
                path + ("size",),
                f"{addr:#x} + {size:#x} runs past the user address space ({USER_LIMIT:#x})",
            )
        return Fpage(addr, size)
