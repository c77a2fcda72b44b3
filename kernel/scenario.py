"""Scenario files: the YAML a user writes, validated into frozen dataclasses (DESIGN.md §2).

A scenario names a machine profile (with overrides such as ``cpus: 4``), the
kernel variant (``xp_ipc: proxy | naive``, the TCB layout of Table 3 or
another, the timer tick), the tasks and their threads with their programs
(the ops of `kernel.program`, names after the thesis: ``call`` and
``reply_wait`` §8.3.1, ``thread_switch`` §2.1.1, ``schedule`` §7.1,
``ex_regs`` §2.1.2, ``unmap`` §2.2.2, ``task_new`` §2.2.3), console commands
to run, and expectations checked when the run ends.

This module holds the scenario's data model and its one loader
(`load_scenario`, `parse_scenario`, `parse_op`). The loader reads through
`kernel.yamlread` (positioned, typed gets), `kernel.opparse` (program ops)
and `kernel.expectations` (``expect:``); ``script:`` and ``expect:`` are kept
as plain data — running and judging them is the debugger's (`l4tui.runner`).

YAML stays at the boundary (STYLE.md point 10): `machine.yamlsrc.load_yaml`
parses safely (no aliases, 1 MB at most) and remembers where each value came
from; every bad value becomes one `ConfigError` positioned at that value —
or at the key, for an unknown key — whose one-line form is
``error: FILE:LINE:COL: what is wrong``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kernel.expectations import Expect, expectations
from kernel.layout import NAMED, LayoutError, make_layout
from kernel.memmap import UTCB_PAGES, UTCB_SIZE
from kernel.opparse import IRQS, SIGMA0, OpReader
from kernel.program import Op
from kernel.yamlread import Where, dotted, kind, show
from machine.errors import ConfigError, suggest
from machine.memory import PAGE_SIZE
from machine.profile import Profile, load_profile, profile_names
from machine.yamlsrc import Path as DataPath
from machine.yamlsrc import Source, load_yaml, load_yaml_file

MAX_BYTES = 1_000_000  # a scenario file is at most 1 MB
DEFAULT_PROFILE = "p3-dual-450"
RESERVED_NAMES = frozenset({SIGMA0, "nil", "any"})
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

# --- the validated scenario ----------------------------------------------------------


MAX_TASK_THREADS = UTCB_PAGES * PAGE_SIZE // UTCB_SIZE  # a task's UTCB area (kernel/memmap.py)


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


_TOP_KEYS = ("name", "seed", "machine", "kernel", "tasks", "interrupts", "script", "expect")
IPI_POLICIES = ("always", "when_needed", "poll_only")
MAX_INTERRUPTS = 100_000  # external interrupts a scenario raises, in all
_TASK_KEYS = ("name", "threads", "start")
_THREAD_KEYS = ("name", "cpu", "priority", "timeslice", "mcp", "pager", "program")
_KERNEL_KEYS = ("xp_ipc", "tcb_layout", "tick", "ipi_policy")


class _Parser(OpReader):
    """Validates the parsed YAML of one scenario, first error wins."""

    def new_name(self, path: DataPath, kind: str) -> str:
        value = self.get(path)
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise self.fail(
                path,
                f"a {kind} name must start with a letter or _ and hold only letters, digits, "
                f"_ . and -, not {show(value)}",
            )
        if value in RESERVED_NAMES:
            raise self.fail(path, f"{value!r} is reserved and cannot name a {kind}")
        return value

    # --- the scenario ---

    def scenario(self) -> Scenario:
        src = self.src
        data = src.data
        if data is None:
            raise ConfigError("the scenario is empty; it needs at least `tasks:`", src.file, 1, 1)
        if not isinstance(data, dict):
            raise self.fail(
                (), f"a scenario must be a mapping of {', '.join(_TOP_KEYS)}, not {kind(data)}"
            )
        for key in data:
            if key not in _TOP_KEYS:
                raise src.key_error(
                    (),
                    key,
                    f"unknown top-level key {key!r}{suggest(key, _TOP_KEYS)}; "
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
        expect = expectations(self)
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
            raise self.fail(("machine",), f"must be a mapping, not {kind(data)}")
        allowed = ("profile", "boot") + tuple(f.name for f in fields(Profile))
        for key in data:
            if key not in allowed:
                raise self.fail_key(
                    ("machine",),
                    key,
                    f"unknown field {key!r}{suggest(key, allowed)}; "
                    "machine takes profile, boot and profile overrides such as cpus",
                )
        boot = self.optional(data, ("machine",), "boot", self.get_bool, False)
        name = DEFAULT_PROFILE
        if "profile" in data:
            name = self.get_str(("machine", "profile"), "a profile name")
            if name not in profile_names() and not self.src.file.startswith("<"):
                local = Path(self.src.file).parent / name
                if not Path(name).is_absolute() and os.path.exists(local):
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
            return self.choice(path, NAMED)
        if not isinstance(value, list) or not value:
            raise self.fail(
                path,
                "expected thesis, naive or a list of cache lines (each a list of TCB field "
                f"names), not {kind(value)} {show(value)}",
            )
        lines = []
        for i, line in enumerate(value):
            if not isinstance(line, list):
                raise self.fail(
                    path + (i,), f"a cache line is a list of TCB field names, not {kind(line)}"
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
                    f"duplicate task name {name!r} (first at {dotted(self.tasks[name][0])})",
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
                        f"duplicate thread name {tname!r} (first at {dotted(self.threads[tname])})",
                    )
                self.threads[tname] = hpath

    def task(self, i: int) -> TaskSpec:
        path: DataPath = ("tasks", i)
        data = self.get(path)
        threads = tuple(
            self.thread(path + ("threads", j), data["name"]) for j in range(len(data["threads"]))
        )
        return TaskSpec(data["name"], threads, self.tasks[data["name"]][1], self.where(path))

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

    def script(self) -> tuple[str, ...]:
        """`script:` as plain strings; what they mean is the console's (l4tui/runner/script.py)."""
        if self.src.data.get("script") is None:
            return ()
        items = self.get_list(("script",), "script")
        return tuple(self.get_str(("script", i), "a console command") for i in range(len(items)))
