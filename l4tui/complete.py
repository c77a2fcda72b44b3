"""Tab completion for the command language (STYLE.md point 5: one grammar, three uses).

`CommandCompleter` finds where the word before the cursor stands in the
command's declared forms (l4tui/grammar.py: `form_of`, `bind`) and offers what
that argument's kind names — sub-command and keyword words with their
meanings, breakpoint filters, syscalls, expression terms, injection ops
(l4tui/inject.py), the phase labels (l4tui/phases.py) and the live session's
threads (and for `x`, the proxies), their TCB fields, its CPUs, tasks and
breakpoints. No command's arguments are written down here again.
It asks for the session each time through a callable, so the line console and
the TUI can share one `Session` even when `load` replaces its state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from l4tui.breakpoints import SYSCALLS
from l4tui.expr import CPU_FIELDS, OPS, STATES
from l4tui.files import root_of
from l4tui.grammar import ALIASES, BREAK_OPTIONS, SPECS, bind, form_of
from l4tui.inject import OPS as INJECT_OPS
from l4tui.inject import TARGETS
from l4tui.phases import phase_labels, phase_prefixes
from l4tui.schema import Arg, Form, Kind, Spec
from l4tui.session import Session

_paths = PathCompleter(expanduser=True)


def _path_completer(session: Session) -> PathCompleter:
    """File names for save/load/export: anywhere, or for a confined session (files.FileRoot)
    only names inside its directory, relative to it — nothing outside is ever listed."""
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

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
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
        if done[0].endswith(":") and len(done[0]) > 1:  # THREAD: OP ARGS
            yield from self._arguments(SPECS["inject"], [done[0][:-1], *done[1:]], partial, event)
            return
        spec = SPECS.get(ALIASES.get(done[0], done[0]))
        if spec is not None:
            yield from self._arguments(spec, done[1:], partial, event)

    # --- the session's names -----------------------------------------------------------

    def _threads(self) -> list[str]:
        return [t.name for t in self.get_session().scenario.threads()]

    def _fields(self, thread: str) -> list[str]:
        return self.get_session().call(kernel_names, "fields", thread)

    def _cpus(self) -> list[str]:
        return [str(c.number) for c in self.get_session().cpus()]

    def _tasks(self) -> list[str]:
        return self.get_session().call(kernel_names, "tasks")

    def _named(self, what: Kind, partial: str) -> Iterator[Completion]:
        """Threads, CPUs or tasks, as `what` says."""
        names = {Kind.THREAD: self._threads, Kind.CPU: self._cpus, Kind.TASK: self._tasks}[what]()
        yield from _matching(partial, names, what.value)

    # --- what to complete --------------------------------------------------------------

    def _first_word(self, partial: str) -> Iterator[Completion]:
        yield from _matching(partial, sorted([*SPECS, *ALIASES]), _command_meta)
        yield from _matching(partial, [f"{t}:" for t in self._threads()], "inject an op")

    def _arguments(
        self, spec: Spec, args: list[str], partial: str, event: CompleteEvent
    ) -> Iterator[Completion]:
        """The word after `args` of `spec`'s command, from the kinds its forms declare: first
        the sub-command words and the plain form's first argument, in the forms' order."""
        if not args:
            for f in spec.forms:
                if f.key is not None:
                    yield from _matching(partial, (f.key,), f.meta)
                else:
                    yield from self._next(f, [], partial, event)
            return
        form = form_of(spec, args)
        if form is not None:
            yield from self._next(form, args[1:] if form.key else args, partial, event)

    def _next(
        self, form: Form, words: list[str], partial: str, event: CompleteEvent
    ) -> Iterator[Completion]:
        """What the word after `words` may be in `form`: the next argument's kind, and past
        an optional keyword (`[pin]`, `ipi [sent|delivered]`) the one after it too."""
        bound = bind(form, words)
        values = {a.name: got for a, got in bound}
        if bound and bound[-1][0].rest:
            yield from self._kind(bound[-1][0], bound[-1][1], values, partial, event)
            return
        if bound and not bound[-1][0].name:
            return  # more words than the form takes
        last = bound[-1][0] if bound else None
        start = next(i for i, a in enumerate(form.args) if a is last) + 1 if last else 0
        for arg in form.args[start:]:
            yield from self._kind(arg, [], values, partial, event)
            if not (arg.kind is Kind.WORD and arg.optional):
                return

    def _kind(
        self,
        arg: Arg,
        words: list[str],
        values: dict[str, list[str]],
        partial: str,
        event: CompleteEvent,
    ) -> Iterator[Completion]:
        """The completions for an argument of `arg`'s kind (`words`: what a rest argument has
        taken so far; `values`: the arguments before it)."""
        kind = arg.kind
        if kind in (Kind.THREAD, Kind.CPU, Kind.TASK):
            yield from self._named(kind, partial)
        elif kind is Kind.WORD:
            yield from _matching(partial, arg.words, arg.meta)
        elif kind is Kind.SYSCALL:
            yield from _matching(partial, SYSCALLS, arg.meta)
        elif kind is Kind.PHASE:
            labels = sorted({*phase_labels(), *phase_prefixes()})
            yield from _matching(partial, labels, lambda w: "phases" if "*" in w else "phase")
        elif kind is Kind.OPTIONS:
            yield from self._options(words, partial)
        elif kind is Kind.EXPR:
            yield from self._condition(words, partial)
        elif kind is Kind.FIELD:
            yield from self._field_expr(partial, cpus=False)
        elif kind is Kind.LINE:
            yield from self._line(partial)
        elif kind is Kind.ADDRESS:
            yield from self._address(partial)
        elif kind is Kind.FILE:
            paths = _path_completer(self.get_session())
            yield from paths.get_completions(Document(partial, len(partial)), event)
        elif kind is Kind.COMMAND:
            yield from _matching(partial, sorted([*SPECS, *ALIASES]), _command_meta)
        elif kind is Kind.BREAKPOINT:
            yield from self._breakpoints(partial)
        elif kind is Kind.OP:
            yield from _matching(partial, INJECT_OPS, "op")
        elif kind is Kind.OP_ARGS:
            op = values.get("OP", [""])[0]
            if not words and op in TARGETS:
                yield from _matching(partial, [*TARGETS[op], *self._threads()], "thread")

    def _breakpoints(self, partial: str) -> Iterator[Completion]:
        meta = {
            str(b.number): _describe(b) + ("" if getattr(b, "enabled", True) else " (disabled)")
            for b in self.get_session().breakpoints
        }
        yield from _matching(partial, meta, meta.__getitem__)

    def _options(self, words: list[str], partial: str) -> Iterator[Completion]:
        """A breakpoint's filters (grammar.BREAK_OPTIONS): a filter's value after its word,
        the condition after `if` (to the end of the line), else the filters not yet given."""
        if "if" in words:
            yield from self._condition(words[words.index("if") + 1 :], partial)
            return
        value = BREAK_OPTIONS[words[-1]][0] if words and words[-1] in BREAK_OPTIONS else None
        if value in (Kind.THREAD, Kind.CPU, Kind.TASK):
            yield from self._named(value, partial)
        elif value is None:
            unused = [w for w in BREAK_OPTIONS if w not in words]
            yield from _matching(partial, unused, lambda w: BREAK_OPTIONS[w][1])

    def _line(self, partial: str) -> Iterator[Completion]:
        """`THREAD.N` of `watch line`: the thread, then its TCB's line numbers."""
        if "." not in partial:
            yield from _matching(partial, [f"{t}." for t in self._threads()], "thread")
            return
        owner, line = partial.split(".", 1)
        if owner in self._threads():
            lines = self.get_session().call(kernel_names, "lines")
            numbers = {str(i): " ".join(fields) for i, fields in enumerate(lines)}
            yield from _matching(line, numbers, numbers.__getitem__)

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
