"""The debugger's command language, declared once (DESIGN.md §2; STYLE.md point 5).

Each command in `SPECS` declares its arguments as a typed schema: one or more
`Form`s (a sub-command word such as `step cpu`, or the plain form), each a
row of `Arg`s of a `Kind` — thread, CPU, phase glob, expression, keyword,
count, file, free text. From this one table come the parser here (`parse`:
counts and keywords checked, numbers converted, a one-line `CommandError`
otherwise), the completer (l4tui/complete.py), the lexer's colours
(l4tui/lexer.py) and `help`, in the line console and the TUI alike. What a
word names in the running machine (is there such a thread, such a CPU) is
checked where the session is, by the executor's handlers.
"""

from __future__ import annotations

import shlex
import textwrap
from dataclasses import dataclass, field
from typing import Any

from kernel.layout import NAMED
from l4tui.schema import NUMBER_KINDS, Arg, Form, Kind, Spec, keyword_arg, subcommand_forms
from machine.errors import suggest as closest
from machine.machine import POLICIES


class CommandError(Exception):
    """A command that cannot be run; its text is the one-line message."""


INFO_HELP: dict[str, str] = {
    "threads": "every thread: id, CPU, state, priority, partner, timeout",
    "cpus": "where each CPU is: thread, mode, phase, cycle",
    "ready": "ready queues per CPU, by priority, in round-robin order",
    "wakeup": "wakeup queues per CPU, earliest deadline first",
    "sendq": "the threads queued to send to a thread",
    "tcb": "a TCB by cache line, MESI per CPU",
    "apic": "each CPU's APIC: IPI slots, IRR, ISR, timer; IPIs in flight",
    "mailboxes": "flag words, mailboxes in use, busy proxies",
    "waits": "the IPC wait-for graph, and a deadlock if there is one",
    "tlb": "one CPU's TLB entries and counts",
    "space": "a task's mappings and their mapping-database trees",
    "breakpoints": "breakpoints (hits, disabled) and watchpoints",
    "counters": "IPCs, IPIs, migrations, faults, MESI transitions",
    "log": "what log-only breakpoints recorded",
    "report": "where, threads, queues, waits and counters at once",
    "checkpoints": "the checkpoints going back restores (or: replay from the start)",
}
"""What each `info` view shows: the completer's descriptions and `help info`."""
INFO_TOPICS = tuple(INFO_HELP)
INFO_ARGS: dict[str, Arg] = {
    "ready": Arg("CPU", Kind.CPU, optional=True),
    "sendq": Arg("THREAD", Kind.THREAD),
    "tcb": Arg("THREAD", Kind.THREAD),
    "tlb": Arg("CPU", Kind.CPU),
    "space": Arg("TASK", Kind.TASK),
}
"""The views of `info` that take an argument, and what it names."""
BREAK_USAGE = (
    "WHAT [thread T] [cpu N] [after N] [log] [if EXPR]; "
    "WHAT: PHASE_GLOB | syscall NAME | ipi sent|delivered | migration | pagefault"
)
BREAK_OPTIONS: dict[str, tuple[Kind | None, str]] = {
    "thread": (Kind.THREAD, "only this thread"),
    "cpu": (Kind.CPU, "only on this CPU"),
    "after": (Kind.COUNT, "let N hits pass first"),
    "log": (None, "record the hit and go on"),
    "if": (Kind.EXPR, "stop only when a condition holds"),
}
"""The filters after a breakpoint's WHAT (l4tui/breakpoints.py reads them): each word, the
kind of the value after it (None: none; EXPR: the rest of the line) and what it does."""
_OPTIONS = Arg("OPTIONS", Kind.OPTIONS, optional=True)
IPI_EVENTS = ("sent", "delivered")
_BREAK_FORMS = (
    Form(
        (Arg("NAME", Kind.SYSCALL, meta="system call", optional=True), _OPTIONS),
        "syscall",
        "stop at a system call",
    ),  # fmt: skip
    Form(
        (keyword_arg(" ".join(IPI_EVENTS), "IPI event", optional=True), _OPTIONS),
        "ipi",
        "stop when an IPI is sent or delivered",
    ),  # fmt: skip
    Form((_OPTIONS,), "migration", "stop when a thread migrates"),
    Form((_OPTIONS,), "pagefault", "stop at a page fault"),
    Form((Arg("PHASE_GLOB", Kind.PHASE), _OPTIONS)),
)
BREAK_KINDS = ("phase", *(f.key for f in _BREAK_FORMS if f.key is not None))
"""What a breakpoint watches: a phase label (the plain form), or each sub-command of `break`."""
_COUNT = Arg("N", Kind.COUNT, optional=True)
_FILE = Arg("FILE", Kind.FILE)
_PIN = keyword_arg("pin", "keep the focus here across stops", optional=True)
_NUMBERED = (Form((Arg("N", Kind.BREAKPOINT, optional=True),)),)
SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("stepi", "stepi [N]", "execute N micro-ops (default 1)", (Form((_COUNT,)),)),
        Spec(
            "step",
            "step [N] | step cpu N",
            "run until N phase labels have passed (default 1); step cpu N: one micro-op on CPU N",
            (
                Form((_COUNT,), usage="step [N]"),
                Form((Arg("N", Kind.CPU),), "cpu", "one micro-op on one CPU", "step cpu N"),
            ),
        ),
        Spec("next", "next", "run over the rest of the focused thread's phase"),
        Spec("finish", "finish", "run until the focused thread's system call returns"),
        Spec(
            "continue", "continue", "run until a breakpoint, a watchpoint or the end (Ctrl-C stops)"
        ),
        Spec(
            "run",
            "run CYCLES",
            "run for CYCLES simulated cycles (lowest CPU clock)",
            (Form((Arg("CYCLES", Kind.COUNT),)),),
        ),
        Spec(
            "reverse-stepi",
            "reverse-stepi [N]",
            "go back N micro-ops (default 1)",
            (Form((_COUNT,)),),
        ),
        Spec(
            "reverse-step",
            "reverse-step [N]",
            "go back N phase labels (default 1)",
            (Form((_COUNT,)),),
        ),
        Spec(
            "reverse-continue",
            "reverse-continue",
            "go back to the previous breakpoint or watchpoint hit",
        ),
        Spec(
            "goto",
            "goto N",
            "go to micro-op N: back through the nearest checkpoint, or forward as stepi would",
            (Form((Arg("N", Kind.INDEX),)),),
        ),
        Spec(
            "break",
            f"break {BREAK_USAGE}",
            "stop when it happens (log: record, go on)",
            _BREAK_FORMS,
        ),
        Spec(
            "tbreak",
            "tbreak WHAT ...",
            "a breakpoint deleted when it first stops",
            _BREAK_FORMS,
        ),
        Spec(
            "watch",
            "watch THREAD.FIELD | watch line THREAD.N cpu C",
            "stop when a TCB field, or TCB line N's MESI state in CPU C's cache, changes",
            (
                Form((Arg("THREAD.FIELD", Kind.FIELD),)),
                Form(
                    (
                        Arg("THREAD.N", Kind.LINE),
                        keyword_arg("cpu", "in this CPU's cache"),
                        Arg("C", Kind.CPU),
                    ),  # fmt: skip
                    "line",
                    "a TCB line's MESI state in one cache",
                    "watch line THREAD.N cpu C (e.g. watch line srv.1 cpu 2)",
                ),
            ),
        ),
        Spec(
            "delete",
            "delete [N]",
            "delete breakpoint N, or all breakpoints and watchpoints",
            _NUMBERED,
        ),
        Spec(
            "disable",
            "disable [N]",
            "disable breakpoint N, or all: it neither stops nor counts hits until enabled",
            _NUMBERED,
        ),
        Spec("enable", "enable [N]", "enable breakpoint N again, or all breakpoints", _NUMBERED),
        Spec(
            "info",
            "info threads|cpus|ready [CPU]|wakeup|sendq T|tcb T|apic|mailboxes|waits|"
            "tlb CPU|space TASK|breakpoints|counters|log|report",
            "show a view (help info: what each one shows)",
            tuple(
                Form(
                    (INFO_ARGS[t],) if t in INFO_ARGS else (),
                    t,
                    what,
                    f"info {t} {INFO_ARGS[t].name}" if t in INFO_ARGS else f"info {t}",
                )
                for t, what in INFO_HELP.items()
            ),
            "no view {shown}{hint}; views: {keys}",
        ),
        Spec(
            "print",
            "print EXPR",
            "a value: THREAD.FIELD, THREAD.state, cpuN.FIELD, or a condition (cli.partner == srv)",
            (Form((Arg("EXPR", Kind.EXPR),)),),
        ),
        Spec(
            "x",
            "x ADDR [N]",
            "examine N words (default 4, at most 256) in hex, each named (srv.partner, "
            "mailbox 0 op); ADDR: 0xPHYS, 0xKERNEL_VIRT, THREAD, THREAD.FIELD, THREAD:VADDR",
            (Form((Arg("ADDR", Kind.ADDRESS), Arg("N", Kind.NUMBER, optional=True))),),
        ),
        Spec(
            "focus",
            "focus cpu N [pin] | focus thread T [pin] | focus follow",
            "choose what next, finish and views follow; each stop moves the focus to the "
            "CPU and thread that stopped unless pinned; follow: let it move again",
            (
                Form((Arg("N", Kind.CPU), _PIN), "cpu", "centre the views on"),
                Form((Arg("T", Kind.THREAD), _PIN), "thread", "centre the views on"),
                Form((), "follow", "let each stop move the focus again"),
            ),
        ),
        Spec(
            "sched",
            f"sched {'|'.join(POLICIES)}",
            "timed: lowest clock first; manual: you pick",
            subcommand_forms(dict.fromkeys(POLICIES, "scheduling policy")),
            f"sched takes {' or '.join(POLICIES)}, not {{shown}}",
        ),
        Spec("where", "where", "where each CPU is: thread, phase, cycle"),
        Spec(
            "layout",
            f"layout {'|'.join(NAMED)}",
            "the same point of the program (thread, phase label, nth time) with that TCB "
            "layout (§8.6): compare info tcb",
            subcommand_forms(dict.fromkeys(NAMED, "TCB layout")),
            f"layout takes {' or '.join(NAMED)}, not {{shown}}",
        ),
        Spec(
            "check",
            "check invariants",
            "check the kernel invariants now",
            subcommand_forms({"invariants": "the kernel invariants"}),
        ),
        Spec(
            "save",
            "save FILE",
            "save the session (scenario, inputs, stops, position)",
            (Form((_FILE,)),),
        ),
        Spec(
            "export",
            "export perfetto FILE",
            "the run so far as a Chrome/Perfetto trace: per-CPU tracks, IPIs, XP-IPC flows",
            (Form((_FILE,), "perfetto", "a trace for ui.perfetto.dev"),),
        ),
        Spec(
            "load",
            "load FILE | load schedule FILE",
            "load a saved session (the identical state), or a race schedule from explore",
            (
                Form((_FILE,), "schedule", "a race schedule from explore", "load schedule FILE"),
                Form((_FILE,)),
            ),
        ),
        Spec(
            "inject",
            "THREAD: OP [ARGS] [key=value ...]",
            "run an op as the thread's next one, e.g. cli: call srv 1 2 3 timeout=inf",
            (
                Form(
                    (
                        Arg("THREAD", Kind.THREAD),
                        Arg("OP", Kind.OP),
                        Arg("ARGS", Kind.OP_ARGS, optional=True),
                    )  # fmt: skip
                ),
            ),
        ),
        Spec("lab", "lab", "the lab sheet: each exercise, ticked when done"),
        Spec(
            "help",
            "help [CMD]",
            "list the commands, or explain one",
            (Form((Arg("CMD", Kind.COMMAND, optional=True),)),),
        ),
        Spec("quit", "quit", "leave the console"),
    )
}
ALIASES = {
    "s": "step",
    "si": "stepi",
    "c": "continue",
    "b": "break",
    "q": "quit",
    "i": "info",
    "rsi": "reverse-stepi",
    "rs": "reverse-step",
    "rc": "reverse-continue",
    "n": "next",
    "p": "print",
}


HELP_WIDTH = 78
HELP_COLUMN = 26
"""`help` fits 78 columns: usage, then what it does from this column, wrapped."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command line: its words as typed (`args`), the sub-command word of the form
    it matched (`key`), and each argument by name, converted by its kind (`values`)."""

    name: str
    args: tuple[str, ...]
    key: str | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def number(self, name: str, default: int) -> int:
        """A numeric argument (COUNT, INDEX, BREAKPOINT), or `default` if left out."""
        value = self.values.get(name)
        return default if value is None else int(value)

    def text(self, name: str) -> str:
        """An argument the command needs (its form does not make it optional)."""
        return str(self.values[name])

    def rest(self, name: str) -> tuple[str, ...]:
        """The words a rest argument (EXPR, OPTIONS, OP_ARGS) took; () if none."""
        return tuple(self.values.get(name, ()))


def suggest(word: str, choices: list[str]) -> str:
    if len(word) > SHOWN:  # nothing is that close, and difflib is quadratic in the length
        return ""
    return closest(word, choices)


MAX_LINE = 4096
"""The longest command line: no command needs more, and every line run is kept in the
session's `commands` (lab checks read them), so this bounds what one line costs."""
SHOWN = 40
"""At most this much of what the user typed is quoted back in an error: one short line."""
MAX_NUMBER = 40
"""A number in a command has at most this many characters (the machine's words are 32 bits;
this leaves room for zeros). Longer is refused before `int`, whose time grows with the length
and which refuses more than 4,300 decimal digits with a ValueError."""


def shown(text: str) -> str:
    """`text` quoted for an error message, cut to `SHOWN` characters with its length said."""
    if len(text) <= SHOWN:
        return repr(text)
    return f"{text[:SHOWN]!r}... ({len(text):,} characters)"


def number(text: str, what: str = "N", low: int | None = None) -> int:
    """`text` as an integer (decimal, 0x hex, 0o, 0b), at least `low` if given;
    CommandError in one short line if it is not one, too long, or too small."""
    if len(text) > MAX_NUMBER:
        raise CommandError(
            f"{what} must be a number of at most {MAX_NUMBER} characters, not {shown(text)}"
        )
    try:
        n = int(text, 0)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {shown(text)}") from None
    if low is not None and n < low:
        raise CommandError(f"{what} must be {low} or more, not {n}")
    return n


def form_of(spec: Spec, args: tuple[str, ...] | list[str]) -> Form | None:
    """The form `args` are written in: the one whose sub-command word comes first, else the
    plain form (None: neither — the first word is no sub-command this command has)."""
    if args:
        for f in spec.forms:
            if f.key is not None and f.key == args[0]:
                return f
    return spec.plain()


def bind(form: Form, words: tuple[str, ...] | list[str]) -> list[tuple[Arg, list[str]]]:
    """Which words each argument of `form` takes (the sub-command word already dropped), as
    far as the words go: an optional keyword that is not there is skipped, a rest argument
    takes every word left. The parser checks the result; the completer reads where the word
    being typed falls."""
    out: list[tuple[Arg, list[str]]] = []
    i = 0
    for a in form.args:
        if a.rest:
            out.append((a, list(words[i:])))
            return out
        if i >= len(words):
            break
        if a.kind is Kind.WORD and a.optional and words[i] not in a.words:
            continue
        out.append((a, [words[i]]))
        i += 1
    if i < len(words):
        out.append((Arg("", Kind.WORD), list(words[i:])))  # left over: more than it takes
    return out


def _convert(arg: Arg, word: str, usage: str) -> Any:
    """One argument's word as its kind's value: a number converted, a keyword checked."""
    if arg.kind in NUMBER_KINDS:
        return number(word, arg.name, NUMBER_KINDS[arg.kind])
    if arg.kind is Kind.WORD and word not in arg.words:
        raise CommandError(f"usage: {usage}")
    return word


def check(spec: Spec, args: tuple[str, ...]) -> Command:
    """`args` of `spec`'s command, checked against its forms and converted by kind."""
    if len(args) < spec.min_args or (spec.max_args >= 0 and len(args) > spec.max_args):
        raise CommandError(f"usage: {spec.usage}")
    form = form_of(spec, args)
    if form is None:
        keys = list(spec.keys)
        raise CommandError(
            spec.unknown.format(
                shown=shown(args[0]), hint=suggest(args[0], keys), keys=", ".join(keys)
            )
            if spec.unknown
            else f"usage: {spec.usage}"
        )
    usage = form.usage or spec.usage
    words = args[1:] if form.key is not None else args
    if len(args) < form.least or (form.most >= 0 and len(args) > form.most):
        raise CommandError(f"usage: {usage}")
    values: dict[str, Any] = {}
    for arg, got in bind(form, words):
        if not arg.name:
            raise CommandError(f"usage: {usage}")
        values[arg.name] = tuple(got) if arg.rest else _convert(arg, got[0], usage)
    return Command(spec.name, args, form.key, values)


def parse(line: str) -> Command | None:
    """The command on `line`, None for a blank line or a comment; CommandError if bad."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if len(text) > MAX_LINE:
        raise CommandError(
            f"a command line has at most {MAX_LINE:,} characters, this one {len(text):,}"
        )
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise CommandError(f"cannot read the line: {e}") from None
    name, args = words[0], tuple(words[1:])
    if name.endswith(":") and len(name) > 1:  # THREAD: OP ARGS — syscall injection
        return check(SPECS["inject"], (name[:-1], *args))
    name = ALIASES.get(name, name)
    spec = SPECS.get(name)
    if spec is None:
        raise CommandError(f"unknown command {shown(name)}{suggest(name, list(SPECS))}; try 'help'")
    return check(spec, args)


def command_name(line: str) -> str | None:
    """The command `line` runs (an alias as its command), None if it runs none or is bad:
    for a front end that treats one command apart (`continue` live, `quit` ends)."""
    try:
        cmd = parse(line)
    except CommandError:
        return None
    return None if cmd is None else cmd.name


def help_text(name: str | None = None) -> str:
    if name is None:
        lines = []
        for s in SPECS.values():
            what = textwrap.wrap(s.help, HELP_WIDTH - HELP_COLUMN)
            if len(s.usage) < HELP_COLUMN - 1:
                lines.append(f"{s.usage.ljust(HELP_COLUMN)}{what[0]}")
            else:  # a long usage on a line of its own
                lines += [s.usage, " " * HELP_COLUMN + what[0]]
            lines += [" " * HELP_COLUMN + w for w in what[1:]]
        return "\n".join(lines)
    name = ALIASES.get(name, name)
    spec = SPECS.get(name)
    if spec is None:
        raise CommandError(f"no command {shown(name)}{suggest(name, list(SPECS))}")
    text = f"{spec.usage}\n  {spec.help}"
    if name == "info":  # each view and what it shows: the forms' own descriptions
        width = max(len(t) for t in spec.keys)
        text += "\n" + "\n".join(f"  {f.key.ljust(width)}  {f.meta}" for f in spec.forms if f.key)
    return text
