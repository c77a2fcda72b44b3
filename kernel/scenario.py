"""Scenario files: the YAML a user writes, validated into frozen dataclasses (DESIGN.md §2).

A scenario names a machine profile (with overrides such as ``cpus: 4``), the
kernel variant (``xp_ipc: proxy | naive``, the TCB layout of Table 3 or
another, the timer tick), the tasks and their threads with their programs
(the ops of `kernel.program`, names after the thesis: ``call`` and
``reply_wait`` §8.3.1, ``thread_switch`` §2.1.1, ``schedule`` §7.1,
``ex_regs`` §2.1.2, ``unmap`` §2.2.2, ``task_new`` §2.2.3), console commands
to run, and expectations checked when the run ends.

YAML stays at the boundary (STYLE.md point 10): `machine.yamlsrc.load_yaml`
parses safely (no aliases, 1 MB at most) and remembers where each value came
from; every bad value becomes one `ConfigError` positioned at that value —
or at the key, for an unknown key — whose one-line form is
``error: FILE:LINE:COL: what is wrong``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kernel.layout import LayoutError, make_layout
from kernel.memmap import UTCB_PAGES, UTCB_SIZE
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
from machine.errors import ConfigError
from machine.memory import PAGE_SIZE
from machine.profile import Profile, load_profile, profile_names
from machine.yamlsrc import Path as DataPath
from machine.yamlsrc import Source, file_exists, load_yaml, load_yaml_file

MAX_BYTES = 1_000_000  # a scenario file is at most 1 MB
DEFAULT_PROFILE = "p3-dual-450"
SIGMA0 = "sigma0"  # the root pager the kernel creates (§2.2.3)
RESERVED_NAMES = frozenset({SIGMA0, "nil", "any"})
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
MAX_WORDS = 64  # message registers per IPC
MAX_STRING = 4 * 1024 * 1024  # the largest string / receive buffer (4 MiB)
MAX_INT = 2**63 - 1  # cycles, counts and seeds must stay below this

Where = tuple[str, int | None, int | None]

THREAD_STATES = (
    "running",
    "ready",
    "waiting",
    "polling",
    "locked_running",
    "locked_waiting",
    "inactive",
)
COUNTERS = (
    "ipc", "xp_ipc", "ipis_sent", "migrations", "tlb_shootdowns", "page_faults",
    "icr_writes", "ipis_delivered", "tlb_remote_flushes", "fault_ipcs", "hardware_page_faults",
)  # fmt: skip
MESI_COUNTER_RE = re.compile(r"mesi\.([MESI])->([MESI])")
SYSCALL_NAMES = (
    "send",
    "recv",
    "call",
    "reply_wait",
    "thread_switch",
    "schedule",
    "ex_regs",
    "unmap",
    "task_new",
    "read_utcb_cpu",
    "read_kip",
)
ERROR_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


# --- the validated scenario ----------------------------------------------------------


MAX_TASK_THREADS = UTCB_PAGES * PAGE_SIZE // UTCB_SIZE  # a task's UTCB area (kernel/space.py)


@dataclass(frozen=True, slots=True)
class ThreadSpec:
    """One thread: where it starts, its scheduling parameters, its pager and program.

    `cpu` is the processor the thread starts on (1..k; placing it there is not
    a migration); `priority` and `mcp` (maximum controlled priority, §7.1) are
    0..255; `timeslice` is in cycles (None: the kernel's default); `pager` is
    ``sigma0`` or a thread name.
    """

    name: str
    task: str
    cpu: int = 1
    priority: int = 100
    timeslice: int | None = None
    mcp: int = 0
    pager: str = SIGMA0
    program: tuple[Op, ...] = ()
    where: Where = ("<string>", None, None)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """An address space and its threads.

    ``start: false`` means the task only exists once some thread runs
    ``task_new: NAME`` (§2.2.3).
    """

    name: str
    threads: tuple[ThreadSpec, ...]
    start: bool = True
    where: Where = ("<string>", None, None)


@dataclass(frozen=True, slots=True)
class KernelSpec:
    """The kernel variant: XP-IPC design, TCB layout and timer tick.

    `xp_ipc` is ``proxy`` (the thesis's design, §8.3.4) or ``naive`` (the
    uniprocessor path run across CPUs, §8.3.3). `tcb_layout` is ``thesis``
    (Table 3), ``naive`` (declaration order) or a custom layout: a tuple of
    cache lines, each a tuple of TCB field names. `tick` is the timer tick
    period in cycles. `ipi_policy` says when a cross-processor operation
    sends an IPI (§8.3.4): ``always``, ``when_needed`` (only if the target
    would not check its mailboxes in time) or ``poll_only``.
    """

    xp_ipc: str = "proxy"
    tcb_layout: str | tuple[tuple[str, ...], ...] = "thesis"
    tick: int = 50_000
    ipi_policy: str = "when_needed"


@dataclass(frozen=True, slots=True)
class Expect:
    """One expectation, checked when the run ends.

    `check` is a short readable text (``cli state inactive``,
    ``cli result[0] ok=true xp=true``); `thread` is the thread it is about
    (None for ``deadlock`` and ``counter`` checks); `fields` holds what is
    compared — ``{"state": S}``, ``{"cpu": N}``, ``{"priority": N}``, the
    result fields (``ok``, ``xp``, ``error``, ``words``, ``from``, ``value``,
    ``cpu``, ``op``), ``{"deadlock": B}``, or ``{"counter": NAME}`` plus
    ``equals`` or ``min``/``max``; `result` is the index into the thread's
    results for a result check (negative counts from the end).
    """

    check: str
    thread: str | None
    fields: dict[str, Any]
    result: int | None = None
    where: Where = ("<string>", None, None)


@dataclass(frozen=True, slots=True)
class Interrupt:
    """An external device raising IO-APIC line `irq` at cycle `at`, then `every` cycles."""

    irq: int
    at: int
    every: int | None = None
    count: int = 1
    where: Where = ("<string>", None, None)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario file (DESIGN.md §2, "Scenario file")."""

    name: str
    seed: int
    profile: Profile
    boot: bool
    kernel: KernelSpec
    tasks: tuple[TaskSpec, ...]
    script: tuple[str, ...]
    expect: tuple[Expect, ...]
    file: str
    source: Source = field(repr=False, compare=False)
    interrupts: tuple[Interrupt, ...] = ()

    def threads(self) -> tuple[ThreadSpec, ...]:
        """Every thread of every task, in file order."""
        return tuple(t for task in self.tasks for t in task.threads)

    def thread(self, name: str) -> ThreadSpec:
        """The thread called `name`; KeyError if there is none."""
        for t in self.threads():
            if t.name == name:
                return t
        raise KeyError(name)

    def task(self, name: str) -> TaskSpec:
        """The task called `name`; KeyError if there is none."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


# --- entry points --------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate the scenario file at `path`.

    Read by `machine.yamlsrc.load_yaml_file`: a regular file (not a FIFO or a
    device), its size checked before reading and the read bounded, so a huge
    file fails fast; UTF-8 text.
    """
    src = load_yaml_file(os.fspath(path), "scenarios", MAX_BYTES, "scenario")
    return _Parser(src).scenario()


def parse_scenario(text: str, file: str = "<string>") -> Scenario:
    """Validate the scenario YAML `text`; `file` names it in error messages."""
    src = load_yaml(text, file, max_bytes=MAX_BYTES, what="scenarios")
    return _Parser(src).scenario()


def parse_op(
    data: Any,
    threads: Iterable[str],
    cpus: int = 1,
    tasks: dict[str, bool] | None = None,
    file: str = "<op>",
) -> Op:
    """One program op from its YAML data, validated exactly as in a scenario file.

    `data` is what a program list item holds: ``{"call": {"to": "srv",
    "words": [1]}}``, ``{"compute": 100}`` or ``"halt"``. `threads` are the
    names an op may refer to, `cpus` the machine's CPU count, `tasks` the
    tasks by name with their ``start`` flag (for ``task_new``). The console's
    syscall injection builds its ops through here, so an op the scenario
    loader refuses is refused at the prompt too (one parser). A bad op is a
    ConfigError whose message names the field (``call.words: at most 64
    words, not 70``).
    """
    parser = _Parser(Source.from_data(data, file))
    parser.cpus = cpus
    parser.threads = {name: () for name in threads}
    parser.tasks = {name: ((), start) for name, start in (tasks or {}).items()}
    return parser.op(())


# --- helpers -------------------------------------------------------------------------


def _suggest(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _dotted(path: DataPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit str limit
        return f"a number of about {value.bit_length() * 3 // 10:,} digits"
    return text if len(text) <= 40 else text[:37] + "..."


def _yaml_text(value: Any) -> str:
    """A value as the check text shows it: YAML-like (true, null, [1, 2])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_text(v) for v in value) + "]"
    return str(value)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


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
_TOP_KEYS = ("name", "seed", "machine", "kernel", "tasks", "interrupts", "script", "expect")
IPI_POLICIES = ("always", "when_needed", "poll_only")
IRQ_RE = re.compile(r"irq(0|[1-9][0-9]?)")
IRQS = 16
MAX_INTERRUPTS = 100_000  # external interrupts a scenario raises, in all
_TASK_KEYS = ("name", "threads", "start")
_THREAD_KEYS = ("name", "cpu", "priority", "timeslice", "mcp", "pager", "program")
_KERNEL_KEYS = ("xp_ipc", "tcb_layout", "tick", "ipi_policy")
_RESULT_FIELDS = ("ok", "xp", "error", "words", "from", "value", "cpu", "op")


class _Parser:
    """Validates the parsed YAML of one scenario, first error wins."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.cpus = 1
        self.threads: dict[str, DataPath] = {}  # name -> path of the thread mapping
        self.tasks: dict[str, tuple[DataPath, bool]] = {}  # name -> (path, start)

    # --- error and type helpers ---

    def fail(self, path: DataPath, message: str) -> ConfigError:
        where = _dotted(path)
        return self.src.error(path, f"{where}: {message}" if where else message)

    def fail_key(self, path: DataPath, key: Any, message: str) -> ConfigError:
        where = _dotted(path)
        return self.src.key_error(path, key, f"{where}: {message}" if where else message)

    def where(self, path: DataPath) -> Where:
        p = tuple(path)
        while p not in self.src.positions and p:
            p = p[:-1]
        return self.src.positions.get(p, (self.src.file, None, None))

    def get(self, path: DataPath) -> Any:
        data = self.src.data
        for part in path:
            data = data[part]
        return data

    def mapping(
        self,
        path: DataPath,
        allowed: tuple[str, ...],
        what: str,
        required: tuple[str, ...] = (),
    ) -> dict[Any, Any]:
        value = self.get(path)
        if not isinstance(value, dict):
            raise self.fail(path, f"{what} must be a mapping, not {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail_key(
                    path,
                    key,
                    f"unknown field {key!r}{_suggest(key, allowed)}; "
                    f"{what} fields are: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                raise self.fail(path, f"{what} needs `{key}`")
        return value

    def get_list(self, path: DataPath, what: str) -> list[Any]:
        value = self.get(path)
        if not isinstance(value, list):
            raise self.fail(path, f"{what} must be a list, not {_kind(value)}")
        return value

    def get_int(self, path: DataPath, lo: int = 0, hi: int = MAX_INT, what: str = "") -> int:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer{what}, not {_kind(value)} {_show(value)}")
        if not lo <= value <= hi:
            if hi == MAX_INT:
                bound = f"at least {lo}" if value < lo else f"at most {hi} (2**63 - 1)"
                raise self.fail(path, f"must be {bound}, not {_show(value)}")
            raise self.fail(path, f"must be between {lo} and {hi}, not {_show(value)}")
        return value

    def get_bool(self, path: DataPath) -> bool:
        value = self.get(path)
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, not {_kind(value)} {_show(value)}")
        return value

    def get_str(self, path: DataPath, what: str = "a string") -> str:
        value = self.get(path)
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected {what}, not {_kind(value)} {_show(value)}")
        return value

    def choice(self, path: DataPath, choices: tuple[str, ...]) -> str:
        value = self.get(path)
        if not isinstance(value, str) or value not in choices:
            hint = _suggest(value, choices) if isinstance(value, str) else ""
            raise self.fail(path, f"expected one of {', '.join(choices)}, not {_show(value)}{hint}")
        return value

    def optional(
        self,
        data: dict[Any, Any],
        path: DataPath,
        key: str,
        read: Callable[..., Any],
        default: Any,
        *args: Any,
    ) -> Any:
        """`read(path + (key,), *args)` if `data` has `key`, else `default`."""
        return read(path + (key,), *args) if key in data else default

    # --- names ---

    def new_name(self, path: DataPath, kind: str) -> str:
        value = self.get(path)
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise self.fail(
                path,
                f"a {kind} name must start with a letter or _ and hold only letters, digits, "
                f"_ . and -, not {_show(value)}",
            )
        if value in RESERVED_NAMES:
            raise self.fail(path, f"{value!r} is reserved and cannot name a {kind}")
        return value

    def thread_ref(self, path: DataPath, sigma0: bool = False) -> str:
        """A reference to a thread of the scenario (or to sigma0 where allowed)."""
        value = self.get(path)
        known = list(self.threads) + ([SIGMA0] if sigma0 else [])
        if not isinstance(value, str):
            raise self.fail(path, f"expected a thread name, not {_kind(value)} {_show(value)}")
        if value not in known:
            raise self.fail(path, f"no thread {value!r}{_suggest(value, known)}")
        return value

    # --- the scenario ---

    def scenario(self) -> Scenario:
        src = self.src
        data = src.data
        if data is None:
            raise ConfigError("the scenario is empty; it needs at least `tasks:`", src.file, 1, 1)
        if not isinstance(data, dict):
            raise self.fail(
                (), f"a scenario must be a mapping of {', '.join(_TOP_KEYS)}, not {_kind(data)}"
            )
        for key in data:
            if key not in _TOP_KEYS:
                raise src.key_error(
                    (),
                    key,
                    f"unknown top-level key {key!r}{_suggest(key, _TOP_KEYS)}; "
                    f"scenario keys are: {', '.join(_TOP_KEYS)}",
                )
        if "name" in data:
            name = self.get_str(("name",), "a non-empty string")
            if "\n" in name:
                raise self.fail(("name",), "must be one line")
        else:
            name = "scenario" if src.file.startswith("<") else Path(src.file).stem
        seed = self.optional(data, (), "seed", self.get_int, 0, 0, 2**64 - 1)
        profile, boot = self.machine()
        self.cpus = profile.cpus
        kernel = self.kernel(profile)
        if "tasks" not in data:
            raise self.fail((), "a scenario needs `tasks:` (a list of tasks with their threads)")
        self.declare_tasks()
        tasks = tuple(self.task(i) for i in range(len(data["tasks"])))
        script = self.script()
        expect = self.expectations()
        irqs = self.interrupts()
        return Scenario(
            name, seed, profile, boot, kernel, tasks, script, expect, src.file, src, irqs
        )

    def interrupts(self) -> tuple[Interrupt, ...]:
        """`interrupts:` — external devices raising IO-APIC lines at given cycles."""
        if self.src.data.get("interrupts") is None:
            return ()
        items = self.get_list(("interrupts",), "interrupts")
        out = []
        total = 0
        for i in range(len(items)):
            path = ("interrupts", i)
            data = self.mapping(
                path, ("irq", "at", "every", "count"), "an interrupt", ("irq", "at")
            )
            irq = self.get_int(path + ("irq",), 0, IRQS - 1)
            at = self.get_int(path + ("at",), 0)
            every = self.optional(data, path, "every", self.get_int, None, 1)
            count = self.optional(data, path, "count", self.get_int, 1, 1, 10_000)
            if count > 1 and every is None:
                raise self.fail(path + ("count",), "a count above 1 needs `every` (cycles)")
            total += count
            if total > MAX_INTERRUPTS:
                # Each is an event made when the system is built: bound them all.
                raise self.fail(
                    path + ("count",) if "count" in data else path,
                    f"interrupts are raised at most {MAX_INTERRUPTS} times in all; "
                    f"with this one, {total}",
                )
            out.append(Interrupt(irq, at, every, count, self.where(path)))
        return tuple(out)

    def machine(self) -> tuple[Profile, bool]:
        data = self.src.data.get("machine")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            raise self.fail(("machine",), f"must be a mapping, not {_kind(data)}")
        allowed = ("profile", "boot") + tuple(f.name for f in fields(Profile))
        for key in data:
            if key not in allowed:
                raise self.fail_key(
                    ("machine",),
                    key,
                    f"unknown field {key!r}{_suggest(key, allowed)}; "
                    "machine takes profile, boot and profile overrides such as cpus",
                )
        boot = self.optional(data, ("machine",), "boot", self.get_bool, False)
        name = DEFAULT_PROFILE
        if "profile" in data:
            name = self.get_str(("machine", "profile"), "a profile name")
            if name not in profile_names() and not self.src.file.startswith("<"):
                local = Path(self.src.file).parent / name
                if not Path(name).is_absolute() and file_exists(local):
                    name = str(local)
        overrides: Source | None = None
        rest = {k: v for k, v in data.items() if k not in ("profile", "boot")}
        if rest:
            sub = self.src.sub(("machine",))
            positions = {
                p: pos
                for p, pos in sub.positions.items()
                if p[:1] not in (("profile",), ("boot",))
                and p[:2] not in (("<key>", "profile"), ("<key>", "boot"))
            }
            overrides = Source(rest, self.src.file, positions)
        try:
            profile = load_profile(name, overrides)
        except ConfigError as e:
            if e.file is None:  # no such profile: point at the name
                raise self.fail(("machine", "profile"), e.message) from None
            raise
        return profile, boot

    def kernel(self, profile: Profile) -> KernelSpec:
        path: DataPath = ("kernel",)
        if self.src.data.get("kernel") is None:
            return KernelSpec()
        data = self.mapping(path, _KERNEL_KEYS, "kernel")
        xp_ipc = self.optional(data, path, "xp_ipc", self.choice, "proxy", ("proxy", "naive"))
        tick = self.optional(data, path, "tick", self.get_int, 50_000, 1)
        ipi = self.optional(data, path, "ipi_policy", self.choice, "when_needed", IPI_POLICIES)
        layout: str | tuple[tuple[str, ...], ...] = "thesis"
        if "tcb_layout" in data:
            layout = self.tcb_layout(path + ("tcb_layout",), profile.cache.line_size)
        return KernelSpec(xp_ipc, layout, tick, ipi)

    def tcb_layout(self, path: DataPath, line_size: int) -> str | tuple[tuple[str, ...], ...]:
        value = self.get(path)
        if isinstance(value, str):
            return self.choice(path, ("thesis", "naive"))
        if not isinstance(value, list) or not value:
            raise self.fail(
                path,
                "expected thesis, naive or a list of cache lines (each a list of TCB field "
                f"names), not {_kind(value)} {_show(value)}",
            )
        lines = []
        for i, line in enumerate(value):
            if not isinstance(line, list):
                raise self.fail(
                    path + (i,), f"a cache line is a list of TCB field names, not {_kind(line)}"
                )
            for j in range(len(line)):
                self.get_str(path + (i, j), "a TCB field name")
            lines.append(tuple(line))
        spec = tuple(lines)
        try:
            make_layout(spec, line_size)
        except LayoutError as e:
            raise self.fail(path + e.path, str(e)) from None
        return spec

    # --- tasks and threads ---

    def declare_tasks(self) -> None:
        """First pass: every task and thread name, so programs may refer ahead."""
        path: DataPath = ("tasks",)
        tasks = self.get_list(path, "tasks")
        if not tasks:
            raise self.fail(path, "a scenario needs at least one task")
        for i in range(len(tasks)):
            tpath = path + (i,)
            task = self.mapping(tpath, _TASK_KEYS, "a task", ("name", "threads"))
            name = self.new_name(tpath + ("name",), "task")
            if name in self.tasks:
                raise self.fail(
                    tpath + ("name",),
                    f"duplicate task name {name!r} (first at {_dotted(self.tasks[name][0])})",
                )
            start = self.optional(task, tpath, "start", self.get_bool, True)
            self.tasks[name] = (tpath, start)
            threads = self.get_list(tpath + ("threads",), "threads")
            if not threads:
                raise self.fail(tpath + ("threads",), "a task needs at least one thread")
            if len(threads) > MAX_TASK_THREADS:
                raise self.fail(
                    tpath + ("threads", MAX_TASK_THREADS),
                    f"a task has at most {MAX_TASK_THREADS} threads (its UTCB area); "
                    f"this one has {len(threads)}: split them over more tasks",
                )
            for j in range(len(threads)):
                hpath = tpath + ("threads", j)
                self.mapping(hpath, _THREAD_KEYS, "a thread", ("name",))
                tname = self.new_name(hpath + ("name",), "thread")
                if tname in self.threads:
                    raise self.fail(
                        hpath + ("name",),
                        f"duplicate thread name {tname!r} "
                        f"(first at {_dotted(self.threads[tname])})",
                    )
                self.threads[tname] = hpath

    def task(self, i: int) -> TaskSpec:
        path: DataPath = ("tasks", i)
        data = self.get(path)
        threads = tuple(
            self.thread(path + ("threads", j), data["name"]) for j in range(len(data["threads"]))
        )
        return TaskSpec(data["name"], threads, self.tasks[data["name"]][1], self.where(path))

    def cpu(self, path: DataPath, lo: int = 1) -> int:
        value = self.get_int(path, lo)
        if value > self.cpus:
            plural = "CPU" if self.cpus == 1 else "CPUs"
            raise self.fail(
                path, f"CPU {value} does not exist: the machine has {self.cpus} {plural}"
            )
        return value

    def thread(self, path: DataPath, task: str) -> ThreadSpec:
        data = self.get(path)
        name = data["name"]
        cpu = self.optional(data, path, "cpu", self.cpu, 1)
        priority = self.optional(data, path, "priority", self.get_int, 100, 0, 255)
        timeslice = self.optional(data, path, "timeslice", self.get_int, None, 1)
        mcp = self.optional(data, path, "mcp", self.get_int, 0, 0, 255)
        pager = SIGMA0
        if "pager" in data:
            pager = self.thread_ref(path + ("pager",), sigma0=True)
            if pager == name:
                raise self.fail(path + ("pager",), "a thread cannot be its own pager")
        program: tuple[Op, ...] = ()
        if "program" in data and data["program"] is not None:
            program = self.ops(path + ("program",))
        return ThreadSpec(
            name, task, cpu, priority, timeslice, mcp, pager, program, self.where(path)
        )

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
            raise self.fail(path, f"unknown op {item!r}{_suggest(item, _OPS)}")
        if not isinstance(item, dict) or not item:
            raise self.fail(
                path,
                f"an op is a mapping such as `compute: 100` or one of {', '.join(_BARE_OPS)}, "
                f"not {_kind(item)}",
            )
        names = [k for k in item if k != "do"]
        for key in names:
            if key not in _OPS:
                raise self.fail_key(path, key, f"unknown op {key!r}{_suggest(key, _OPS)}")
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
            return {"compute": Compute, "fpu": Fpu, "sleep": Sleep}[op](cycles)
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

    def task_ref(self, path: DataPath) -> str:
        value = self.get(path)
        if not isinstance(value, str):
            raise self.fail(path, f"expected a task name, not {_kind(value)} {_show(value)}")
        if value not in self.tasks:
            raise self.fail(path, f"no task {value!r}{_suggest(value, self.tasks)}")
        if self.tasks[value][1]:
            raise self.fail(
                path,
                f"task {value!r} already exists at start; declare it with `start: false` "
                "to create it with task_new",
            )
        return value

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
            raise self.fail(
                path, f"a timeout is inf or a number of cycles >= 0, not {_show(value)}"
            )
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
            raise self.fail(path, f"expected {{addr, size}}, not {_kind(data)} {_show(data)}")
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

    # --- script and expectations ---

    def script(self) -> tuple[str, ...]:
        if self.src.data.get("script") is None:
            return ()
        items = self.get_list(("script",), "script")
        return tuple(self.get_str(("script", i), "a console command") for i in range(len(items)))

    def expectations(self) -> tuple[Expect, ...]:
        if self.src.data.get("expect") is None:
            return ()
        items = self.get_list(("expect",), "expect")
        return tuple(self.expect(("expect", i)) for i in range(len(items)))

    def expect(self, path: DataPath) -> Expect:
        data = self.get(path)
        if not isinstance(data, dict) or not data:
            raise self.fail(
                path,
                "an expectation is a mapping such as {thread: T, state: S}, "
                f"{{deadlock: false}} or {{counter: ipc, min: 1}}, not {_kind(data)}",
            )
        where = self.where(path)
        if "deadlock" in data:
            self.mapping(path, ("deadlock",), "a deadlock check")
            value = self.get_bool(path + ("deadlock",))
            return Expect(f"deadlock {_yaml_text(value)}", None, {"deadlock": value}, None, where)
        if "counter" in data:
            return self.counter_expect(path, data, where)
        allowed = ("thread", "state", "priority", "result") + _RESULT_FIELDS
        self.mapping(path, allowed, "an expectation", ("thread",))
        thread = self.thread_ref(path + ("thread",))
        if "result" in data:
            return self.result_expect(path, data, thread, where)
        checks = [k for k in ("state", "cpu", "priority") if k in data]
        others = [k for k in data if k not in ("thread", "state", "cpu", "priority")]
        if others:
            raise self.fail_key(
                path, others[0], f"{others[0]!r} is a result field: add `result: INDEX`"
            )
        if not checks:
            raise self.fail(path, "expected one of state, cpu, priority or result beside thread")
        if len(checks) > 1:
            raise self.fail_key(
                path,
                checks[1],
                f"one check per expectation: found {checks[0]!r} and "
                f"{checks[1]!r}; write two expectations",
            )
        key = checks[0]
        if key == "state":
            value: Any = self.choice(path + ("state",), THREAD_STATES)
        elif key == "cpu":
            value = self.cpu(path + ("cpu",))
        else:
            value = self.get_int(path + ("priority",), 0, 255)
        return Expect(f"{thread} {key} {value}", thread, {key: value}, None, where)

    def result_expect(
        self, path: DataPath, data: dict[Any, Any], thread: str, where: Where
    ) -> Expect:
        for key in ("state", "priority"):
            if key in data:
                raise self.fail_key(path, key, f"{key!r} cannot be checked with a result")
        index = self.get_int(path + ("result",), -MAX_INT, MAX_INT, " (an index into the results)")
        fields: dict[str, Any] = {}
        for key in data:
            if key in ("thread", "result"):
                continue
            p = path + (key,)
            value = data[key]
            if key in ("ok", "xp"):
                fields[key] = self.get_bool(p)
            elif key == "error":
                if value is not None and (
                    not isinstance(value, str) or not ERROR_NAME_RE.fullmatch(value)
                ):
                    raise self.fail(p, f"expected an error name or null, not {_show(value)}")
                fields[key] = value
            elif key == "words":
                fields[key] = list(self.words(p))
            elif key == "from":
                if value is None or (isinstance(value, str) and IRQ_RE.fullmatch(value)):
                    fields[key] = value
                else:
                    fields[key] = self.thread_ref(p, sigma0=True)
            elif key == "value":
                fields[key] = self.get_int(p, -MAX_INT)
            elif key == "cpu":
                fields[key] = None if value is None else self.cpu(p)
            else:
                fields[key] = self.choice(p, SYSCALL_NAMES)
        if not fields:
            raise self.fail(
                path, f"a result check compares at least one of {', '.join(_RESULT_FIELDS)}"
            )
        text = " ".join(f"{k}={_yaml_text(v)}" for k, v in fields.items())
        return Expect(f"{thread} result[{index}] {text}", thread, fields, index, where)

    def counter_expect(self, path: DataPath, data: dict[Any, Any], where: Where) -> Expect:
        self.mapping(path, ("counter", "equals", "min", "max"), "a counter check")
        name = self.get(path + ("counter",))
        if not isinstance(name, str) or not (
            name in COUNTERS
            or ((m := MESI_COUNTER_RE.fullmatch(name)) is not None and m[1] != m[2])
        ):
            hint = _suggest(name, COUNTERS) if isinstance(name, str) else ""
            raise self.fail(
                path + ("counter",),
                f"expected a counter ({', '.join(COUNTERS)} or mesi.X->Y), not {_show(name)}{hint}",
            )
        bounds = [k for k in ("equals", "min", "max") if k in data]
        if not bounds:
            raise self.fail(path, "a counter check needs equals, min or max")
        if "equals" in data and len(bounds) > 1:
            raise self.fail_key(path, bounds[1], "equals cannot be combined with min or max")
        fields: dict[str, Any] = {"counter": name}
        ops = {"equals": "==", "min": ">=", "max": "<="}
        for key in bounds:
            fields[key] = self.get_int(path + (key,), 0)
        if "min" in fields and "max" in fields and fields["min"] > fields["max"]:
            raise self.fail(path + ("max",), f"max {fields['max']} is below min {fields['min']}")
        text = " ".join(f"{ops[k]} {fields[k]}" for k in bounds)
        return Expect(f"counter {name} {text}", None, fields, None, where)


def iter_ops(program: tuple[Op, ...]) -> Iterator[Op]:
    """Every op of a program, blocks first then their bodies, depth first."""
    for op in program:
        yield op
        if isinstance(op, Repeat | Loop):
            yield from iter_ops(op.body)
