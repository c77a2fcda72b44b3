"""A pygments lexer for the debugger's command language (STYLE.md point 6: one lexer).

The prompt-toolkit console wraps it in `PygmentsLexer`; a Textual pane can use it
as it is, so both front ends colour a line the same way. Command names and
aliases come from the grammar table (l4tui/grammar.py), and so do the words
after them — sub-commands, keywords, breakpoint filters, the views of `info`,
which commands take a phase glob, a file or an address — so a new command or
keyword is coloured as soon as its form declares it. Every state ends in a catch-all rule:
any text lexes without `Error` tokens, however broken the line.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, default  # type: ignore[import-untyped]
from pygments.token import (  # type: ignore[import-untyped]
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from l4tui.grammar import ALIASES, BREAK_OPTIONS, INFO_TOPICS, SPECS
from l4tui.schema import Kind


def _keywords() -> tuple[str, ...]:
    """Every word with a fixed meaning after a command, from the grammar's forms: sub-command
    words (`focus cpu`, `sched timed`), keyword arguments (`pin`) and the breakpoint filters.
    The views of `info` are coloured apart (`INFO_TOPICS`)."""
    words: dict[str, None] = {}
    for spec in SPECS.values():
        if spec.name == "info":
            continue
        for form in spec.forms:
            words.update(dict.fromkeys([form.key] if form.key else []))
            for arg in form.args:
                words.update(dict.fromkeys(arg.words if arg.kind is Kind.WORD else ()))
    return tuple(dict.fromkeys((*words, *BREAK_OPTIONS)))


def _first_kind(*kinds: Kind) -> tuple[str, ...]:
    """The commands whose plain form (or else first form) starts with an argument of `kinds`."""
    out = []
    for spec in SPECS.values():
        form = spec.plain() or spec.forms[0]
        if form.args and form.args[0].kind in kinds:
            out.append(spec.name)
    return tuple(out)


SUBCOMMANDS = _keywords()
"""Words with a fixed meaning after a command (`focus cpu`, `break syscall`, `sched timed`)."""

"""The views `info` shows."""

PHASE_COMMANDS = _first_kind(Kind.PHASE)
"""Commands whose first argument is a phase glob (or an event word such as `syscall`)."""

PATH_COMMANDS = _first_kind(Kind.FILE)
"""Commands whose argument is a file name (after a sub-command word: `export perfetto`)."""

ADDRESS_COMMANDS = _first_kind(Kind.ADDRESS)
"""Commands whose first argument is an address: `0x1234`, `srv.partner`, `cli:0xbff00000`."""

HELP_COMMANDS = _first_kind(Kind.COMMAND)
"""Commands whose argument is a command's name (`help step`)."""


def _alternation(words: list[str] | tuple[str, ...]) -> str:
    """A regex matching exactly one of `words`, the longest first (`stepi` before `step`)."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _commands(canonical: tuple[str, ...] | None = None) -> list[str]:
    """Command names and aliases, all of them or those standing for `canonical` commands."""
    names = [*SPECS, *ALIASES]
    if canonical is None:
        return names
    return [n for n in names if ALIASES.get(n, n) in canonical]


_END = r"(?![^\s=<>!])"  # a word ends at whitespace, an operator or the end of the text
_CMD = _alternation(_commands())
_SUB = _alternation(SUBCOMMANDS)
_TOPIC = _alternation([t for t in INFO_TOPICS if t not in SUBCOMMANDS])
_NAME = r"[A-Za-z_][\w-]*"


class CommandLexer(RegexLexer):
    """The l4tui command language: `break ipc.send.*`, `print srv.partner`, `cli: call srv 1`."""

    name = "l4tui"
    aliases: ClassVar[list[str]] = ["l4tui"]
    filenames: ClassVar[list[str]] = ["*.l4tui"]
    flags = re.MULTILINE

    tokens: ClassVar[dict] = {
        # The start of a line: a comment, `THREAD:` or a command name.
        "root": [
            (r"\n", Whitespace),
            (r"[^\S\n]+", Whitespace),
            (r"#.*$", Comment.Single),
            (rf"({_NAME})(:)(?=\s|$)", bygroups(Name.Label, Punctuation), "inject"),
            (rf"({_alternation(_commands(PHASE_COMMANDS)) or '(?!)'}){_END}", Keyword, "phase"),
            (rf"({_alternation(_commands(PATH_COMMANDS)) or '(?!)'}){_END}", Keyword, "path"),
            (rf"({_alternation(_commands(HELP_COMMANDS)) or '(?!)'}){_END}", Keyword, "help"),
            (
                rf"({_alternation(_commands(ADDRESS_COMMANDS)) or '(?!)'}){_END}",
                Keyword,
                "address",
            ),
            (rf"({_CMD}){_END}", Keyword, "args"),
            (r"[^\s]+", Text, "args"),
        ],
        # The arguments of any command, to the end of the line.
        "args": [
            (r"\n", Whitespace, "#pop"),
            (r"[^\S\n]+", Whitespace),
            (r"==|!=|<=|>=|<|>", Operator),
            (rf"(and|or){_END}", Operator.Word),
            (rf"({_NAME})(=)(?!=)", bygroups(Name.Variable, Operator)),
            (r'"[^"\n]*"?', String.Double),
            (r"'[^'\n]*'?", String.Single),
            (r"[^\s=<>!\"']*[*?][^\s=<>!\"']*", String),
            (rf"{_NAME}\.\w+(?![\w.]){_END}", Name.Attribute),  # srv.partner, srv.1
            (rf"0[xX][0-9a-fA-F]+{_END}", Number.Hex),
            (rf"\d+{_END}", Number.Integer),
            (rf"({_SUB}){_END}", Keyword.Type),
            (rf"({_TOPIC}){_END}", Name.Builtin),
            (rf"{_NAME}(\.[\w-]+)+{_END}", Name.Constant),
            (_NAME, Name),
            (r".", Text),
        ],
        # `break`: a phase glob or an event word first, then the usual arguments.
        "phase": [
            (r"\n", Whitespace, "#pop"),
            (r"[^\S\n]+", Whitespace),
            (rf"({_SUB}){_END}", Keyword.Type, ("#pop", "args")),
            (r'"[^"\n]*"?', String.Double, ("#pop", "args")),
            (r"'[^'\n]*'?", String.Single, ("#pop", "args")),
            (r"[^\s=<>!\"']+", String, ("#pop", "args")),
            (r".", Text, ("#pop", "args")),
        ],
        # `save`/`load`/`export [perfetto]`: the rest is a file name.
        "path": [
            (r"\n", Whitespace, "#pop"),
            (r"[^\S\n]+", Whitespace),
            (rf"({_SUB}){_END}", Keyword.Type),
            (r'"[^"\n]*"?', String.Double),
            (r"'[^'\n]*'?", String.Single),
            (r"[^\s\"']+", String),
            (r".", Text),
        ],
        # `x ADDR [N]`: a number, THREAD.FIELD (a proxy's name has dots too) or THREAD:VADDR.
        "address": [
            (r"\n", Whitespace, "#pop"),
            (r"[^\S\n]+", Whitespace),
            (
                rf"({_NAME})(:)(0[xX][0-9a-fA-F]+){_END}",
                bygroups(Name, Punctuation, Number.Hex),
                ("#pop", "args"),
            ),
            (
                rf"({_NAME})(:)(\d+){_END}",
                bygroups(Name, Punctuation, Number.Integer),
                ("#pop", "args"),
            ),
            (rf"{_NAME}(\.[\w-]+)+{_END}", Name.Attribute, ("#pop", "args")),
            default(("#pop", "args")),  # a number or a name: as any argument
        ],
        # `help CMD`: a command name is coloured as one.
        "help": [
            (r"\n", Whitespace, "#pop"),
            (r"[^\S\n]+", Whitespace),
            (rf"({_CMD}){_END}", Keyword, ("#pop", "args")),
            (r"[^\s]+", Text, ("#pop", "args")),
        ],
        # `THREAD: OP ...`: the op, then its arguments.
        "inject": [
            (r"\n", Whitespace, "#pop"),
            (r"[^\S\n]+", Whitespace),
            (rf"{_NAME}{_END}", Name.Function, ("#pop", "args")),
            (r".", Text, ("#pop", "args")),
        ],
    }
