"""Breakpoints and watchpoints: what stops the machine, and the events a step is.

A step is classified once into events — the phase label it passed (§8.3.2
names them), a system call entered, an IPI sent or delivered, a migration
begun (§8.5), a page fault raised (§2.2.2) — and each breakpoint matches
events of its kind, filtered by thread and CPU, guarded by a condition,
after a number of ignored hits. A log-only breakpoint records its hit and
lets the machine go on; a temporary one is deleted when it stops; a disabled
one is skipped. A phase glob must match a label some kernel path has.

Watchpoints look at state, not events: a TCB field's word, or the MESI state
of one cache line in one CPU's cache (§8.6).

One parser reads the words after `break`/`tbreak` and `watch` (`parse_break`,
`parse_watch`): the console's commands, and the older saved sessions that
stored them as text, both go through it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel import boot, ipc, shootdown, xcpu
from kernel.phases import DYNAMIC
from kernel.program import ExRegs, Ipc, Schedule, Sleep, TaskNew, ThreadSwitch, Unmap
from l4tui import expr, views
from l4tui.grammar import BREAK_KINDS, BREAK_USAGE, IPI_EVENTS, CommandError, number, shown, suggest
from l4tui.phases import phase_labels, phase_prefixes
from machine.ops import KERNEL_BASE, InterruptEntry, Op, Phase, SendIPI, Trap

if TYPE_CHECKING:
    from l4tui.session import Session

KINDS = BREAK_KINDS
SYSCALLS = (
    "send",
    "recv",
    "call",
    "reply_wait",
    "sleep",
    "thread_switch",
    "schedule",
    "ex_regs",
    "unmap",
    "task_new",
)
IPI_WHATS = ("", *IPI_EVENTS)  # an ipi breakpoint's `what`: "" is either
IPI_VECTORS = frozenset((xcpu.XCPU_VECTOR, shootdown.VECTOR, ipc.NAIVE_VECTOR, boot.VECTOR))
_NAMES = {
    Sleep: "sleep",
    ThreadSwitch: "thread_switch",
    Schedule: "schedule",
    ExRegs: "ex_regs",
    Unmap: "unmap",
    TaskNew: "task_new",
}


def known_labels() -> tuple[str, ...]:
    """Every phase label a kernel path can emit: the literals, and those built at run time."""
    return tuple(sorted({*phase_labels(), *DYNAMIC}))


def matches_a_label(glob: str) -> bool:
    """Whether a phase glob can ever stop the machine (it matches a label some path has)."""
    return any(fnmatch.fnmatchcase(label, glob) for label in known_labels())


def syscall_name(op: object) -> str | None:
    """The system call a program op makes, or None if it is not one."""
    if isinstance(op, Ipc):
        return op.kind
    return _NAMES.get(type(op))


@dataclass(frozen=True, slots=True)
class Event:
    """Something one step did that a breakpoint can stop at."""

    kind: str  # one of KINDS
    what: str  # the phase label, syscall name, "sent"/"delivered"; "" otherwise
    cpu: int
    thread: str


def events(op: Op, cpu: int, thread: str, pending: object) -> list[Event]:
    """The events of a step that executed `op` on `cpu` running `thread`.

    `pending` is the program op the thread is about to run (its system call
    when `op` is the trap into the kernel).
    """
    kind = type(op)
    if isinstance(op, Phase):
        out = [Event("phase", op.label, cpu, thread)]
        if op.label == "migrate.A.lock":
            out.append(Event("migration", "", cpu, thread))
        elif op.label == "pf.raise":
            out.append(Event("pagefault", "", cpu, thread))
        return out
    if kind is Trap:
        name = syscall_name(pending)
        return [Event("syscall", name, cpu, thread)] if name else []
    if kind is SendIPI:
        return [Event("ipi", "sent", cpu, thread)]
    if isinstance(op, InterruptEntry) and op.vector in IPI_VECTORS:
        return [Event("ipi", "delivered", cpu, thread)]
    return []


@dataclass(slots=True)
class Breakpoint:
    """One breakpoint: `kind` + `what` (a glob for phases), filters, condition, counts."""

    number: int
    kind: str
    what: str
    thread: str | None = None
    cpu: int | None = None
    cond: str | None = None
    after: int = 0  # hits to let pass before stopping
    temporary: bool = False
    log_only: bool = False
    hits: int = 0
    enabled: bool = True  # a disabled breakpoint neither stops nor counts hits

    def matches(self, e: Event) -> bool:
        if e.kind != self.kind:
            return False
        if self.thread is not None and e.thread != self.thread:
            return False
        if self.cpu is not None and e.cpu != self.cpu:
            return False
        if self.kind == "phase":
            return fnmatch.fnmatchcase(e.what, self.what)
        return not self.what or e.what == self.what

    def spec(self) -> str:
        """The command words that re-create it (for `info breakpoints` and saved sessions)."""
        words = (
            [self.what]
            if self.kind == "phase"
            else [self.kind] + ([self.what] if self.what else [])
        )
        if self.thread:
            words += ["thread", self.thread]
        if self.cpu:
            words += ["cpu", str(self.cpu)]
        if self.after:
            words += ["after", str(self.after)]
        if self.log_only:
            words.append("log")
        if self.cond:
            words += ["if", self.cond]
        return " ".join(words)

    def describe(self) -> str:
        kind = "tbreak" if self.temporary else "break"
        state = "" if self.enabled else ", disabled"
        return f"{self.number}: {kind} {self.spec()} (hit {self.hits}{state})"


@dataclass(slots=True)
class Watch:
    """A watchpoint: a TCB word (`line` None) or one line's MESI state in one CPU's cache."""

    expr: str
    paddr: int
    value: int | str
    cpu: int | None = None  # for a MESI watch: the CPU whose cache is watched

    def spec(self) -> str:
        return self.expr


# --- the one parser of breakpoint and watchpoint specs ---------------------------------------


def _count(text: str, what: str) -> int:
    return number(text, what, 0)  # the grammar's numbers: bounded length, one short line


def parse_break(
    s: Session, args: tuple[str, ...], temporary: bool, any_label: bool = False
) -> Breakpoint:
    """`WHAT [thread T] [cpu N] [after N] [log] [if EXPR]` as a breakpoint (not yet numbered).

    The one parser of breakpoint specs: the `break` and `tbreak` commands, and the older
    saved sessions that stored them as text. A phase glob must match a label some kernel
    path has, unless `any_label`. CommandError (one line) if the words are not a spec.
    """
    words = list(args)
    cond = None
    if "if" in words:
        i = words.index("if")
        cond = " ".join(words[i + 1 :])
        words = words[:i]
        if not cond:
            raise CommandError("if needs a condition, e.g. if cli.partner == srv")
        expr.check(s, cond)
    if not words:
        raise CommandError(f"usage: break {BREAK_USAGE}")
    head = words.pop(0)
    if head in KINDS[1:]:
        kind, what = head, ""
        if head == "syscall":
            if not words or words[0] not in SYSCALLS:
                hint = suggest(words[0] if words else "", list(SYSCALLS))
                raise CommandError(f"break syscall NAME, NAME one of {', '.join(SYSCALLS)}{hint}")
            what = words.pop(0)
        elif head == "ipi" and words and words[0] in IPI_EVENTS:
            what = words.pop(0)
    else:
        kind, what = "phase", head
        if not any_label and not matches_a_label(what):
            raise CommandError(f"no phase label matches {shown(what)}{label_hint(what)}")
    bp = Breakpoint(0, kind, what, cond=cond, temporary=temporary)
    while words:
        word = words.pop(0)
        if word == "log":
            bp.log_only = True
        elif word in ("thread", "cpu", "after") and words:
            value = words.pop(0)
            if word == "thread":
                bp.thread = views.thread(s, value).name
            elif word == "cpu":
                bp.cpu = views.cpu_number(s, value)
            else:
                bp.after = _count(value, "after")
        else:
            raise CommandError(f"unexpected {word!r}; usage: break {BREAK_USAGE}")
    return bp


def label_hint(glob: str) -> str:
    """A did-you-mean for a phase glob that matches nothing, else the label families."""
    labels = known_labels()
    hint = suggest(glob, [*labels, *phase_prefixes()])
    if hint:
        return hint
    families = sorted({label.split(".")[0] + ".*" for label in labels if "." in label})
    return f"; the labels are {' '.join(families)} and idle (Tab lists them)"


WATCH_USAGE = "usage: watch THREAD.FIELD | watch line THREAD.N cpu C"


def parse_watch(s: Session, args: tuple[str, ...]) -> tuple[str, int, int | None]:
    """`THREAD.FIELD` or `line THREAD.N cpu C` as (the watch's text, its physical address, the
    CPU whose cache it watches or None): the one parser of watch specs, as `parse_break`."""
    if args and args[0] == "line":
        # watch line THREAD.N cpu C: the MESI state of the TCB's N-th line in CPU C's cache
        if len(args) != 4 or args[2] != "cpu" or "." not in args[1]:
            raise CommandError("usage: watch line THREAD.N cpu C (e.g. watch line srv.1 cpu 2)")
        name, line = args[1].rsplit(".", 1)  # proxy names have a dot: proxy2.1
        t = views.thread(s, name)
        layout = s.system.kernel.layout
        lines = len(layout.lines())
        n = _count(line, "the line")
        if n >= lines:
            raise CommandError(f"{name}'s TCB has lines 0..{lines - 1}, not {n}")
        cpu = views.cpu_number(s, args[3])
        paddr = t.tcb - KERNEL_BASE + n * layout.line_size
        return f"line {name}.{n} cpu {cpu}", paddr, cpu
    if len(args) != 1 or "." not in args[0]:
        raise CommandError(WATCH_USAGE)
    name, field = args[0].rsplit(".", 1)  # proxy names have a dot: proxy2.1.state
    t = views.thread(s, name)
    if field not in t.f:
        raise CommandError(f"no TCB field {field!r}{suggest(field, list(t.f))}")
    return args[0], t.f[field] - KERNEL_BASE, None
