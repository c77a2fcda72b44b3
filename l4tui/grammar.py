"""The debugger's command language: one table of commands, one parser (DESIGN.md §2).

Every front end — the line console, the TUI's console pane, scripts — goes
through `parse`; `help` is generated from the same table. A bad line raises
`CommandError` with a one-line message and, for names, a did-you-mean hint.
"""

from __future__ import annotations

import difflib
import shlex
import textwrap
from dataclasses import dataclass


class CommandError(Exception):
    """A command that cannot be run; its text is the one-line message."""


@dataclass(frozen=True, slots=True)
class Spec:
    """One command: its usage, how many arguments it takes, and what it does."""

    name: str
    usage: str
    help: str
    min_args: int = 0
    max_args: int = 0  # -1: any number


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
BREAK_USAGE = (
    "WHAT [thread T] [cpu N] [after N] [log] [if EXPR]; "
    "WHAT: PHASE_GLOB | syscall NAME | ipi sent|delivered | migration | pagefault"
)
SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("stepi", "stepi [N]", "execute N micro-ops (default 1)", 0, 1),
        Spec(
            "step",
            "step [N] | step cpu N",
            "run until N phase labels have passed (default 1); step cpu N: one micro-op on CPU N",
            0,
            2,
        ),
        Spec("next", "next", "run over the rest of the focused thread's phase"),
        Spec("finish", "finish", "run until the focused thread's system call returns"),
        Spec(
            "continue", "continue", "run until a breakpoint, a watchpoint or the end (Ctrl-C stops)"
        ),
        Spec("run", "run CYCLES", "run for CYCLES simulated cycles (lowest CPU clock)", 1, 1),
        Spec("reverse-stepi", "reverse-stepi [N]", "go back N micro-ops (default 1)", 0, 1),
        Spec("reverse-step", "reverse-step [N]", "go back N phase labels (default 1)", 0, 1),
        Spec(
            "reverse-continue",
            "reverse-continue",
            "go back to the previous breakpoint or watchpoint hit",
        ),
        Spec(
            "goto",
            "goto N",
            "go to micro-op N: back through the nearest checkpoint, or forward as stepi would",
            1,
            1,
        ),
        Spec("break", f"break {BREAK_USAGE}", "stop when it happens (log: record, go on)", 1, -1),
        Spec("tbreak", "tbreak WHAT ...", "a breakpoint deleted when it first stops", 1, -1),
        Spec(
            "watch",
            "watch THREAD.FIELD | watch line THREAD.N cpu C",
            "stop when a TCB field, or TCB line N's MESI state in CPU C's cache, changes",
            1,
            4,
        ),
        Spec(
            "delete", "delete [N]", "delete breakpoint N, or all breakpoints and watchpoints", 0, 1
        ),
        Spec(
            "disable",
            "disable [N]",
            "disable breakpoint N, or all: it neither stops nor counts hits until enabled",
            0,
            1,
        ),
        Spec("enable", "enable [N]", "enable breakpoint N again, or all breakpoints", 0, 1),
        Spec(
            "info",
            "info threads|cpus|ready [CPU]|wakeup|sendq T|tcb T|apic|mailboxes|waits|"
            "tlb CPU|space TASK|breakpoints|counters|log|report",
            "show a view (help info: what each one shows)",
            1,
            2,
        ),
        Spec(
            "print",
            "print EXPR",
            "a value: THREAD.FIELD, THREAD.state, cpuN.FIELD, or a condition (cli.partner == srv)",
            1,
            -1,
        ),
        Spec(
            "x",
            "x ADDR [N]",
            "examine N words (default 4, at most 256) in hex, each named (srv.partner, "
            "mailbox 0 op); ADDR: 0xPHYS, 0xKERNEL_VIRT, THREAD, THREAD.FIELD, THREAD:VADDR",
            1,
            2,
        ),
        Spec(
            "focus",
            "focus cpu N [pin] | focus thread T [pin] | focus follow",
            "choose what next, finish and views follow; each stop moves the focus to the "
            "CPU and thread that stopped unless pinned; follow: let it move again",
            1,
            3,
        ),
        Spec("sched", "sched timed|manual", "timed: lowest clock first; manual: you pick", 1, 1),
        Spec("where", "where", "where each CPU is: thread, phase, cycle"),
        Spec(
            "layout",
            "layout thesis|naive",
            "the same point of the program (thread, phase label, nth time) with that TCB "
            "layout (§8.6): compare info tcb",
            1,
            1,
        ),
        Spec("check", "check invariants", "check the kernel invariants now", 1, 1),
        Spec("save", "save FILE", "save the session (scenario, inputs, stops, position)", 1, 1),
        Spec(
            "export",
            "export perfetto FILE",
            "the run so far as a Chrome/Perfetto trace: per-CPU tracks, IPIs, XP-IPC flows",
            2,
            2,
        ),
        Spec(
            "load",
            "load FILE | load schedule FILE",
            "load a saved session (the identical state), or a race schedule from explore",
            1,
            2,
        ),
        Spec(
            "inject",
            "THREAD: OP [ARGS] [key=value ...]",
            "run an op as the thread's next one, e.g. cli: call srv 1 2 3 timeout=inf",
            2,
            -1,
        ),
        Spec("lab", "lab", "the lab sheet: each exercise, ticked when done"),
        Spec("help", "help [CMD]", "list the commands, or explain one", 0, 1),
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
    """A parsed command line."""

    name: str
    args: tuple[str, ...]


def suggest(word: str, choices: list[str]) -> str:
    if len(word) > SHOWN:  # nothing is that close, and difflib is quadratic in the length
        return ""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        if not args:
            raise CommandError("usage: THREAD: OP [ARGS] [key=value ...]")
        return Command("inject", (name[:-1], *args))
    name = ALIASES.get(name, name)
    spec = SPECS.get(name)
    if spec is None:
        raise CommandError(f"unknown command {shown(name)}{suggest(name, list(SPECS))}; try 'help'")
    if len(args) < spec.min_args or (spec.max_args >= 0 and len(args) > spec.max_args):
        raise CommandError(f"usage: {spec.usage}")
    return Command(name, args)


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
    if name == "info":
        width = max(len(t) for t in INFO_HELP)
        text += "\n" + "\n".join(f"  {t.ljust(width)}  {h}" for t, h in INFO_HELP.items())
    return text
