"""The command language's schema: what a command's arguments are (DESIGN.md §2).

A `Spec` is one command; its `Form`s are the ways to write it (a sub-command
word, or the plain form), each a row of `Arg`s of a `Kind`. l4tui/grammar.py
declares every command in these terms, and the parser, the completer, the
lexer's colours and `help` all read the declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What an argument is: the parser converts by it, the completer offers by it and the
    lexer colours by it."""

    COUNT = "count"  # a number of steps, 1 or more: converted to int
    INDEX = "index"  # a position (micro-op N), 0 or more: converted to int
    BREAKPOINT = "breakpoint"  # a breakpoint's number, 0 or more: converted to int
    NUMBER = "number"  # a number the command checks itself (x ADDR N)
    WORD = "word"  # one of `Arg.words`, checked here (a keyword: pin, cpu)
    THREAD = "thread"
    CPU = "cpu"
    TASK = "task"
    SYSCALL = "syscall"  # a system call's name (break syscall NAME)
    PHASE = "phase"  # a phase-label glob (break WHAT)
    OPTIONS = "options"  # the breakpoint filters, `BREAK_OPTIONS`, to the end of the line
    EXPR = "expr"  # an expression, to the end of the line (l4tui/expr.py)
    FIELD = "field"  # THREAD.FIELD
    LINE = "line"  # THREAD.N, a TCB line
    ADDRESS = "address"  # x ADDR: 0xPHYS, THREAD.FIELD, THREAD:VADDR
    FILE = "file"
    COMMAND = "command"  # help CMD
    OP = "op"  # an injected op's name (l4tui/inject.py)
    OP_ARGS = "op-args"  # its arguments, to the end of the line


NUMBER_KINDS = {Kind.COUNT: 1, Kind.INDEX: 0, Kind.BREAKPOINT: 0}
"""The kinds the parser turns into an int, and the least each may be."""
REST_KINDS = (Kind.OPTIONS, Kind.EXPR, Kind.OP_ARGS)
"""The kinds that take every word to the end of the line."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its name in usage and messages (`N`, `CYCLES`), its kind, the words a
    `WORD` (or a `SYSCALL`) may be with what each means, and whether it may be left out."""

    name: str
    kind: Kind
    words: tuple[str, ...] = ()
    meta: str = ""
    optional: bool = False

    @property
    def rest(self) -> bool:
        return self.kind in REST_KINDS


@dataclass(frozen=True, slots=True)
class Form:
    """One way to write a command: after its sub-command word `key` (None: the plain form),
    these arguments. `usage` is what a wrong count says (None: the command's usage)."""

    args: tuple[Arg, ...] = ()
    key: str | None = None
    meta: str = ""
    usage: str | None = None

    @property
    def least(self) -> int:
        return (self.key is not None) + sum(not a.optional for a in self.args)

    @property
    def most(self) -> int:
        if any(a.rest for a in self.args):
            return -1
        return (self.key is not None) + len(self.args)


@dataclass(frozen=True, slots=True)
class Spec:
    """One command: its usage, what it does, and how its arguments are written.

    `unknown` is what a sub-command word that is none of the forms' says, with `{shown}`
    the word, `{hint}` a did-you-mean and `{keys}` the words it may be (default: usage)."""

    name: str
    usage: str
    help: str
    forms: tuple[Form, ...] = (Form(),)
    unknown: str = ""

    @property
    def min_args(self) -> int:
        return min(f.least for f in self.forms)

    @property
    def max_args(self) -> int:  # -1: any number
        most = [f.most for f in self.forms]
        return -1 if -1 in most else max(most)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.forms if f.key is not None)

    def plain(self) -> Form | None:
        return next((f for f in self.forms if f.key is None), None)


def keyword_arg(words: str, meta: str = "", optional: bool = False) -> Arg:
    """A keyword argument: one of `words` (space-separated)."""
    return Arg(words.split()[0], Kind.WORD, tuple(words.split()), meta, optional)


def subcommand_forms(words: dict[str, str]) -> tuple[Form, ...]:
    """A form of no arguments for each sub-command word, with what it means."""
    return tuple(Form(key=w, meta=m) for w, m in words.items())
