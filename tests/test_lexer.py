"""The command-language lexer: the token types of a few lines, and no Error token on any text."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    _TokenType,
)

from l4tui.breakpoints import KINDS
from l4tui.grammar import ALIASES, SPECS
from l4tui.lexer import INFO_TOPICS, SUBCOMMANDS, CommandLexer
from l4tui.views import TOPICS

LEXER = CommandLexer()


def tokens(line: str) -> list[tuple[_TokenType, str]]:
    """The tokens of `line` without the blanks."""
    return [(t, v) for t, v in LEXER.get_tokens(line) if v.strip()]


def no_errors(text: str) -> None:
    got = list(LEXER.get_tokens(text))
    assert not [v for t, v in got if t in Error], got


def test_the_lexer_is_registered_by_name() -> None:
    assert CommandLexer.name == "l4tui" and CommandLexer.aliases == ["l4tui"]


@pytest.mark.parametrize("name", sorted([*SPECS, *ALIASES]))
def test_every_command_and_alias_is_a_keyword(name: str) -> None:
    assert tokens(name)[0] == (Keyword, name)
    assert tokens(f"  {name} 1")[0] == (Keyword, name)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("stepi 0x10", [(Keyword, "stepi"), (Number.Hex, "0x10")]),
        ("step 3", [(Keyword, "step"), (Number.Integer, "3")]),
        ("focus cpu 2", [(Keyword, "focus"), (Keyword.Type, "cpu"), (Number.Integer, "2")]),
        ("info threads", [(Keyword, "info"), (Name.Builtin, "threads")]),
        ("info tcb srv", [(Keyword, "info"), (Name.Builtin, "tcb"), (Name, "srv")]),
        ("print srv.partner", [(Keyword, "print"), (Name.Attribute, "srv.partner")]),
        ("watch cpu1.clock", [(Keyword, "watch"), (Name.Attribute, "cpu1.clock")]),
        ("break ipc.send.*", [(Keyword, "break"), (String, "ipc.send.*")]),
        ("b xp.proxy.send", [(Keyword, "b"), (String, "xp.proxy.send")]),
        (
            "break syscall send",
            [(Keyword, "break"), (Keyword.Type, "syscall"), (Name, "send")],
        ),
        (
            "break ipc.* if cli.partner != 0x3 after 2",
            [
                (Keyword, "break"),
                (String, "ipc.*"),
                (Keyword.Type, "if"),
                (Name.Attribute, "cli.partner"),
                (Operator, "!="),
                (Number.Hex, "0x3"),
                (Keyword.Type, "after"),
                (Number.Integer, "2"),
            ],
        ),
        (
            "cli: call srv 1 timeout=inf",
            [
                (Name.Label, "cli"),
                (Punctuation, ":"),
                (Name.Function, "call"),
                (Name, "srv"),
                (Number.Integer, "1"),
                (Name.Variable, "timeout"),
                (Operator, "="),
                (Name, "inf"),
            ],
        ),
        ("# a comment: break x", [(Comment.Single, "# a comment: break x")]),
        ("  # indented", [(Comment.Single, "# indented")]),
        ("save run.json", [(Keyword, "save"), (String, "run.json")]),
        ("help stepi", [(Keyword, "help"), (Keyword, "stepi")]),
        ("sched manual", [(Keyword, "sched"), (Keyword.Type, "manual")]),
        ('print "x', [(Keyword, "print"), (String.Double, '"x')]),
        (
            "watch line srv.1 cpu 2",
            [
                (Keyword, "watch"),
                (Keyword.Type, "line"),
                (Name.Attribute, "srv.1"),
                (Keyword.Type, "cpu"),
                (Number.Integer, "2"),
            ],
        ),
        (
            "p cli.partner == srv and cli.state != waiting",
            [
                (Keyword, "p"),
                (Name.Attribute, "cli.partner"),
                (Operator, "=="),
                (Name, "srv"),
                (Operator.Word, "and"),
                (Name.Attribute, "cli.state"),
                (Operator, "!="),
                (Name, "waiting"),
            ],
        ),
        (
            "tbreak syscall call thread cli log",
            [
                (Keyword, "tbreak"),
                (Keyword.Type, "syscall"),
                (Name, "call"),
                (Keyword.Type, "thread"),
                (Name, "cli"),
                (Keyword.Type, "log"),
            ],
        ),
        ("info space server", [(Keyword, "info"), (Name.Builtin, "space"), (Name, "server")]),
        ("disable 2", [(Keyword, "disable"), (Number.Integer, "2")]),
        ("enable", [(Keyword, "enable")]),
        ("lab", [(Keyword, "lab")]),
        (
            "x srv.partner 8",
            [(Keyword, "x"), (Name.Attribute, "srv.partner"), (Number.Integer, "8")],
        ),
        ("x proxy2.1.partner", [(Keyword, "x"), (Name.Attribute, "proxy2.1.partner")]),
        ("x 0xe0041340 2", [(Keyword, "x"), (Number.Hex, "0xe0041340"), (Number.Integer, "2")]),
        ("x srv", [(Keyword, "x"), (Name, "srv")]),
        (
            "x cli:0xbff00000 4",
            [
                (Keyword, "x"),
                (Name, "cli"),
                (Punctuation, ":"),
                (Number.Hex, "0xbff00000"),
                (Number.Integer, "4"),
            ],
        ),
        (
            "x cli:4096",
            [(Keyword, "x"), (Name, "cli"), (Punctuation, ":"), (Number.Integer, "4096")],
        ),
    ],
)
def test_token_types(line: str, expected: list[tuple[_TokenType, str]]) -> None:
    assert tokens(line) == expected


def test_a_command_name_is_a_keyword_only_at_the_start_of_a_line() -> None:
    assert tokens("focus thread step") == [
        (Keyword, "focus"),
        (Keyword.Type, "thread"),
        (Name, "step"),
    ]
    assert tokens("stepy")[0][0] not in Keyword  # an unknown command is plain text
    two = tokens("stepi\ncontinue")
    assert two == [(Keyword, "stepi"), (Keyword, "continue")]


def test_the_word_lists_cover_the_language() -> None:
    assert set(INFO_TOPICS) == set(TOPICS)
    assert set(KINDS[1:]) | {"thread", "cpu", "after", "log", "if", "line"} <= set(SUBCOMMANDS)


def test_every_usage_line_lexes_without_errors() -> None:
    corpus = [s.usage for s in SPECS.values()] + [s.help for s in SPECS.values()]
    for line in corpus:
        no_errors(line)
    no_errors("\n".join(corpus))


@given(st.text(alphabet=string.printable, max_size=80))
@settings(max_examples=500, deadline=None)
def test_printable_text_lexes_without_errors(text: str) -> None:
    no_errors(text)


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_text_lexes_without_errors(text: str) -> None:
    no_errors(text)


@given(st.text(alphabet=string.printable, max_size=60))
@settings(max_examples=200, deadline=None)
def test_lexing_loses_no_text(text: str) -> None:
    joined = "".join(v for _, v in LEXER.get_tokens(text))
    # pygments turns \r\n and \r into \n, strips the newlines at both ends and adds one.
    normal = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    assert joined == normal + "\n"
