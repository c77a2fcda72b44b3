"""Tab completion for the command language (STYLE.md point 5: one grammar, three uses).

`CommandCompleter` completes the word before the cursor from the grammar table
(l4tui/grammar.py) and the tables beside it — views, breakpoint kinds and
syscalls, expression terms, injection ops — the phase labels in the kernel's
source (l4tui/phases.py) and the live session: its threads (and for `x`, the
proxies), their TCB fields, its CPUs, tasks and breakpoints.
It asks for the session each time through a callable, so the line console and
the TUI can share one `Session` even when `load` replaces its state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from l4tui.breakpoints import SYSCALLS
from l4tui.expr import CPU_FIELDS, OPS, STATES
from l4tui.grammar import ALIASES, INFO_HELP, SPECS
from l4tui.inject import OPS as INJECT_OPS
from l4tui.phases import phase_labels, phase_prefixes
from l4tui.session import Session
from l4tui.views import TOPICS

BREAK_EVENTS = {
    "syscall": "stop at a system call",
    "ipi": "stop when an IPI is sent or delivered",
    "migration": "stop when a thread migrates",
    "pagefault": "stop at a page fault",
}
BREAK_FILTERS = {
    "thread": "only this thread",
    "cpu": "only on this CPU",
    "after": "let N hits pass first",
    "log": "record the hit and go on",
    "if": "stop only when a condition holds",
}
TARGET_OPS = ("send", "call", "recv", "reply_wait", "thread_switch")
"""Injection ops whose first argument names a thread."""
ARG_TOPICS = {"tcb": "thread", "sendq": "thread", "ready": "cpu", "tlb": "cpu", "space": "task"}
"""The views of `info` that take an argument, and what it names."""

_paths = PathCompleter(expanduser=True)


def _path_completer(session: Session) -> PathCompleter:
    """File names for save/load/export: anywhere, or for a confined session (files.FileRoot)
    only names inside its directory, relative to it — nothing outside is ever listed."""
    from pathlib import Path

    from l4tui.files import root_of

    root = root_of(session).root
    if root is None:
        return _paths

    def inside(full: str) -> bool:
        try:
            return Path(full).resolve().is_relative_to(root)
        except (OSError, RuntimeError, ValueError):
            return False

    return PathCompleter(get_paths=lambda: [str(root)], file_filter=inside)


def _matching(
    prefix: str, words: Iterable[str], meta: str | Callable[[str], str] = ""
) -> Iterator[Completion]:
    """A completion for each word that extends `prefix`, replacing the partial word."""
    for word in words:
        if word.startswith(prefix):
            text = meta(word) if callable(meta) else meta
            yield Completion(word, start_position=-len(prefix), display_meta=text)


def _command_meta(name: str) -> str:
    if name in ALIASES:
        return f"{ALIASES[name]}: " + (SPECS[ALIASES[name]].help if ALIASES[name] in SPECS else "")
    return SPECS[name].help if name in SPECS else ""


def _describe(bp: object) -> str:
    """A breakpoint as its command words, whichever form the session keeps it in."""
    spec = getattr(bp, "spec", None)
    if callable(spec):
        return str(spec())
    return str(getattr(bp, "glob", "") or getattr(bp, "what", ""))


def kernel_names(s: Session, what: str, thread: str = "") -> list[Any]:
    """The kernel's names a completion offers, read where the session lives (Session.call):
    a thread's TCB fields, the tasks, the TCB layout's lines, the proxies."""
    k = s.system.kernel
    if what == "fields":
        t = k.by_name.get(thread)
        return [] if t is None else list(t.f)
    if what == "tasks":
        return [t.name for t in k.tasks]
    if what == "lines":
        return [list(fields) for fields in k.layout.lines()]
    return [t.name for t in k.threads if t.proxy_kind]


class CommandCompleter(Completer):
    """Completes debugger commands and their arguments against the current session."""

    def __init__(self, get_session: Callable[[], Session]) -> None:
        self.get_session = get_session

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        line = document.current_line_before_cursor
        words = line.split()
        if line and not line[-1].isspace():
            partial, done = words[-1], words[:-1]
        else:
            partial, done = "", words
        if not done:
            yield from self._first_word(partial)
            return
        if done[0].startswith("#"):
            return
        if done[0].endswith(":") and len(done[0]) > 1:
            yield from self._inject(done[1:], partial)
            return
        yield from self._arguments(ALIASES.get(done[0], done[0]), done[1:], partial, complete_event)

    # --- the session's names -----------------------------------------------------------

    def _threads(self) -> list[str]:
        return [t.name for t in self.get_session().scenario.threads()]

    def _fields(self, thread: str) -> list[str]:
        return self.get_session().call(kernel_names, "fields", thread)

    def _cpus(self) -> list[str]:
        return [str(c.number) for c in self.get_session().cpus()]

    def _tasks(self) -> list[str]:
        return self.get_session().call(kernel_names, "tasks")

    def _named(self, what: str, partial: str) -> Iterator[Completion]:
        """Threads, CPUs or tasks, as `what` says."""
        names = {"thread": self._threads, "cpu": self._cpus, "task": self._tasks}[what]()
        yield from _matching(partial, names, what)

    # --- what to complete --------------------------------------------------------------

    def _first_word(self, partial: str) -> Iterator[Completion]:
        yield from _matching(partial, sorted([*SPECS, *ALIASES]), _command_meta)
        yield from _matching(partial, [f"{t}:" for t in self._threads()], "inject an op")

    def _inject(self, args: list[str], partial: str) -> Iterator[Completion]:
        if not args:
            yield from _matching(partial, INJECT_OPS, "op")
        elif len(args) == 1 and args[0] in TARGET_OPS:
            extra = {"recv": ["any"], "thread_switch": ["nil"]}.get(args[0], [])
            yield from _matching(partial, [*extra, *self._threads()], "thread")

    def _arguments(
        self, name: str, args: list[str], partial: str, event: CompleteEvent
    ) -> Iterator[Completion]:
        n = len(args)
        if name == "focus":
            if n == 0:
                yield from _matching(partial, ("cpu", "thread"), "centre the views on")
                yield from _matching(partial, ("follow",), "let each stop move the focus again")
            elif n == 1 and args[0] in ("thread", "cpu"):
                yield from self._named(args[0], partial)
            elif n == 2 and args[0] in ("thread", "cpu"):
                yield from _matching(partial, ("pin",), "keep the focus here across stops")
        elif name == "print":  # print EXPR: a term, or a condition
            yield from self._condition(args, partial)
        elif name == "watch":
            yield from self._watch(args, partial)
        elif name == "info":
            if n == 0:
                yield from _matching(partial, TOPICS, INFO_HELP.__getitem__)
            elif n == 1 and args[0] in ARG_TOPICS:
                yield from self._named(ARG_TOPICS[args[0]], partial)
        elif name in ("break", "tbreak"):
            yield from self._break(args, partial)
        elif name == "sched" and n == 0:
            yield from _matching(partial, ("timed", "manual"), "scheduling policy")
        elif name == "step" and n == 0:
            yield from _matching(partial, ("cpu",), "one micro-op on one CPU")
        elif name == "step" and n == 1 and args[0] == "cpu":
            yield from self._named("cpu", partial)
        elif name == "check" and n == 0:
            yield from _matching(partial, ("invariants",), "the kernel invariants")
        elif name in ("delete", "disable", "enable") and n == 0:
            meta = {
                str(b.number): _describe(b) + ("" if getattr(b, "enabled", True) else " (disabled)")
                for b in self.get_session().breakpoints
            }
            yield from _matching(partial, meta, meta.__getitem__)
        elif name == "x" and n == 0:
            yield from self._address(partial)
        elif name == "help" and n == 0:
            yield from _matching(partial, sorted([*SPECS, *ALIASES]), _command_meta)
        elif (
            (name in ("save", "load") and n == 0)
            or (name == "export" and n == 1 and args[0] == "perfetto")
            or (name == "load" and n == 1 and args[0] == "schedule")
        ):
            if name == "load" and n == 0:
                yield from _matching(partial, ("schedule",), "a race schedule from explore")
            paths = _path_completer(self.get_session())
            yield from paths.get_completions(Document(partial, len(partial)), event)
        elif name == "export" and n == 0:
            yield from _matching(partial, ("perfetto",), "a trace for ui.perfetto.dev")

    def _break(self, args: list[str], partial: str) -> Iterator[Completion]:
        """`break WHAT [thread T] [cpu N] [after N] [log] [if EXPR]` (tbreak alike)."""
        n = len(args)
        if n == 0:
            yield from _matching(partial, BREAK_EVENTS, BREAK_EVENTS.__getitem__)
            labels = sorted({*phase_labels(), *phase_prefixes()})
            yield from _matching(partial, labels, lambda w: "phases" if "*" in w else "phase")
        elif "if" in args:  # the condition runs to the end of the line
            yield from self._condition(args[args.index("if") + 1 :], partial)
        elif n == 1 and args[0] == "syscall":
            yield from _matching(partial, SYSCALLS, "system call")
        elif args[-1] in ("thread", "cpu"):
            yield from self._named(args[-1], partial)
        elif args[-1] != "after":
            if n == 1 and args[0] == "ipi":
                yield from _matching(partial, ("sent", "delivered"), "IPI event")
            unused = [w for w in BREAK_FILTERS if w not in args[1:]]
            yield from _matching(partial, unused, BREAK_FILTERS.__getitem__)

    def _watch(self, args: list[str], partial: str) -> Iterator[Completion]:
        """`watch THREAD.FIELD` or `watch line THREAD.N cpu C`."""
        n = len(args)
        if n == 0:
            yield from self._field_expr(partial, cpus=False)
            yield from _matching(partial, ("line",), "a TCB line's MESI state in one cache")
        elif args[0] != "line":
            return
        elif n == 1 and "." in partial:
            owner, line = partial.split(".", 1)
            if owner in self._threads():
                lines = self.get_session().call(kernel_names, "lines")
                numbers = {str(i): " ".join(fields) for i, fields in enumerate(lines)}
                yield from _matching(line, numbers, numbers.__getitem__)
        elif n == 1:
            yield from _matching(partial, [f"{t}." for t in self._threads()], "thread")
        elif n == 2:
            yield from _matching(partial, ("cpu",), "in this CPU's cache")
        elif n == 3 and args[2] == "cpu":
            yield from self._named("cpu", partial)

    def _address(self, partial: str) -> Iterator[Completion]:
        """`x ADDR`: `THREAD.` then its TCB fields (proxies too), or `THREAD:` and a user
        address (there is nothing to complete in a number)."""
        threads = self._threads()
        proxies = self.get_session().call(kernel_names, "proxies")
        owner, dot, field = partial.rpartition(".")
        if dot and owner in (*threads, *proxies):
            yield from _matching(field, self._fields(owner), f"a word of {owner}'s TCB")
            return
        if ":" in partial:
            return
        yield from _matching(partial, [f"{t}." for t in threads], "a TCB field")
        yield from _matching(partial, [f"{t}:" for t in threads], "a user address in its space")
        if partial:  # the proxies only once asked for: there are many of them
            yield from _matching(partial, [f"{t}." for t in proxies], "a proxy's TCB field")

    def _condition(self, words: list[str], partial: str) -> Iterator[Completion]:
        """A term of an expression (l4tui/expr.py); right of a comparison, values too."""
        yield from self._field_expr(partial, cpus=True)
        if words and words[-1] in OPS:
            yield from _matching(partial, self._threads(), "its thread id")
            yield from _matching(partial, (*STATES, "nil"), "value")

    def _field_expr(self, partial: str, cpus: bool) -> Iterator[Completion]:
        """`THREAD.FIELD` (and for `print`, `THREAD.state` and `cpuN.FIELD`)."""
        if "." in partial:
            owner, _, field = partial.rpartition(".")  # a proxy's name has a dot
            if owner in self._threads():
                fields = self._fields(owner) + (["state"] if cpus else [])
                yield from _matching(field, fields, f"{owner}'s TCB")
            elif cpus and owner in {f"cpu{n}" for n in self._cpus()}:
                yield from _matching(field, CPU_FIELDS, owner)
            return
        yield from _matching(partial, [f"{t}." for t in self._threads()], "thread")
        if cpus:
            yield from _matching(partial, [f"cpu{n}." for n in self._cpus()], "cpu")
