"""One command language (issue 17): the grammar's typed forms are the only declaration.

(a) An op typed at the prompt (`cli: call srv 1 2`) and the same op in a
scenario file are accepted and refused alike, and build the same op; a refused
injection changes nothing. (b) For every command of `grammar.SPECS` the
parser, the completer, the lexer, `help` and the executor read the same
declarations: every sub-command and keyword word completes where it may stand
and is coloured as a keyword, every command's help shows its usage, every
command has one handler, and every line built from the completer's offers
parses.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit.completion import CompleteEvent, Completion
from prompt_toolkit.document import Document
from pygments.token import Keyword, Name

from kernel.scenario import parse_scenario
from l4tui.complete import CommandCompleter
from l4tui.demo import demo_scenario
from l4tui.executor import HANDLERS, outcome
from l4tui.grammar import (
    ALIASES,
    BREAK_OPTIONS,
    SPECS,
    Arg,
    CommandError,
    Form,
    Kind,
    help_text,
    parse,
)
from l4tui.inject import OPS
from l4tui.lexer import CommandLexer
from l4tui.session import Session
from machine.errors import ConfigError

# --- (a) the prompt's injection and the scenario file agree --------------------------

SCENARIO = """\
name: inject-agree
seed: 1
tasks:
  - name: t
    threads:
      - {name: cli, program: [%s]}
      - {name: srv, program: [halt]}
"""
# Mostly names and words a scenario accepts, so that both answers are common: long
# accepted messages (the 64-word bound) as well as refusals.
NAMES = st.sampled_from(["cli", "srv", "srv", "srv", "nosuch", "any", "nil"])
NUMBERS = st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(-10, 300),
    st.integers(-(2**40), 2**40),
    st.sampled_from([2**32 - 1, 2**32, 0x400000, 0xBFFFF000, 0xE0000000, 0xFFFFFFFF]),
)
TIMEOUTS = st.one_of(st.just("inf"), NUMBERS)
KEYS = st.dictionaries(
    st.sampled_from(["timeout", "recv_timeout", "xfer_timeout", "xp_fault"]),
    st.one_of(TIMEOUTS, st.booleans()),
    max_size=2,
)


def _value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


@st.composite
def typed_ops(draw: st.DrawFn) -> tuple[str, Any]:
    """An op as typed after `cli:`, and the same op as a scenario's program item holds it."""
    op = draw(st.sampled_from(OPS))
    if op in ("read_kip", "read_utcb_cpu", "halt"):
        return op, op
    if op in ("compute", "sleep"):
        n = draw(NUMBERS)
        return f"{op} {n}", {op: n}
    if op == "touch":
        addr, write = draw(NUMBERS), draw(st.booleans())
        return f"touch {addr:#x}" + (" write" if write else ""), {
            op: {"addr": addr, "write": write}
        }
    if op == "thread_switch":
        to = draw(st.one_of(st.none(), NAMES))
        return f"{op} {to or ''}".strip(), {op: to}
    fields: dict[str, Any] = {}
    pos: list[str] = []
    target = draw(st.one_of(st.none(), NAMES)) if op in ("recv", "reply_wait") else draw(NAMES)
    if target is not None:
        fields["from" if op == "recv" else "to"] = target
        pos.append(target)
    if op != "recv":
        words = draw(
            st.one_of(
                st.lists(NUMBERS, max_size=70),
                st.lists(st.integers(0, 2**32 - 1), min_size=60, max_size=70),  # at the bound
            )
        )
        if words:
            fields["words"] = words
            pos += [str(w) for w in words]
    keys = draw(KEYS)
    fields.update(keys)
    pos += [f"{k}={_value(v)}" for k, v in keys.items()]
    return f"{op} {' '.join(pos)}".strip(), {op: fields or None}


@pytest.fixture(scope="module")
def agree_session() -> Session:
    return Session(parse_scenario(SCENARIO % "{compute: 10}", "<agree>"))


@given(typed_ops())
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_prompt_and_a_scenario_file_accept_the_same_ops(
    agree_session: Session, typed: tuple[str, Any]
) -> None:
    text, data = typed
    try:
        from_file = parse_scenario(SCENARIO % json.dumps(data), "<agree>")
    except ConfigError:
        from_file = None
    s = agree_session
    cli = s.system.kernel.by_name["cli"]
    before = (s.system.machine.fingerprint(), list(s.log), list(cli.injected), len(s.commands))
    out, ok = outcome(s, f"cli: {text}")
    assert ok == (from_file is not None), (text, data, out)
    if ok:
        (spec,) = [t for t in from_file.threads() if t.name == "cli"]  # type: ignore[union-attr]
        assert len(cli.injected) == len(before[2]) + 1  # this op, not the last example's
        assert cli.injected[-1] == spec.program[0]
    else:  # refused: nothing changed, and the message is one line
        assert len(out.splitlines()) == 1 and out.startswith("error: ")
        after = (s.system.machine.fingerprint(), list(s.log), list(cli.injected), len(s.commands))
        assert after == before


# --- (b) completion, highlighting, help and parsing from the same declarations ------


@pytest.fixture(scope="module")
def completer() -> CommandCompleter:
    session = Session(demo_scenario())
    return CommandCompleter(lambda: session)


def offers(c: CommandCompleter, text: str) -> list[Completion]:
    doc = Document(text, len(text))
    return list(c.get_completions(doc, CompleteEvent(completion_requested=True)))


def words(c: CommandCompleter, text: str) -> list[str]:
    return [x.text for x in offers(c, text)]


SAMPLES = {
    Kind.COUNT: "1",
    Kind.INDEX: "0",
    Kind.BREAKPOINT: "1",
    Kind.NUMBER: "4",
    Kind.THREAD: "srv",
    Kind.CPU: "1",
    Kind.TASK: "server",
    Kind.SYSCALL: "call",
    Kind.PHASE: "ipc.*",
    Kind.FIELD: "srv.partner",
    Kind.LINE: "srv.1",
    Kind.ADDRESS: "srv.partner",
    Kind.FILE: "out.json",
    Kind.COMMAND: "step",
    Kind.OP: "halt",
}
"""A word of each kind that stands where the kind does (the rest kinds take none)."""


def _head(name: str, form: Form) -> str:
    return f"{name} {form.key} " if form.key else f"{name} "


def _prefix(name: str, form: Form, before: tuple[Arg, ...]) -> str:
    """The line up to an argument: the command, its form's word, a sample of each argument
    before it (an optional keyword left out)."""
    line = _head(name, form)
    for a in before:
        if a.kind is Kind.WORD and a.optional:
            continue
        line += (a.words[0] if a.kind is Kind.WORD else SAMPLES[a.kind]) + " "
    return line


def keyword_places() -> list[tuple[str, str, str]]:
    """(line before the word, the word, its meaning) for every sub-command and keyword word
    the grammar declares."""
    out = []
    for name, spec in SPECS.items():
        if name == "inject":
            continue
        for form in spec.forms:
            if form.key is not None:
                out.append((f"{name} ", form.key, "key"))
            for i, arg in enumerate(form.args):
                if arg.kind is Kind.WORD:
                    out += [(_prefix(name, form, form.args[:i]), w, "word") for w in arg.words]
                if arg.kind is Kind.OPTIONS:
                    line = _prefix(name, form, form.args[:i])
                    out += [(line, w, "option") for w in BREAK_OPTIONS]
    return out


@pytest.mark.parametrize(("line", "word", "what"), keyword_places())
def test_every_declared_word_completes_and_is_coloured(
    completer: CommandCompleter, line: str, word: str, what: str
) -> None:
    assert word in words(completer, line), (line, word, what)
    kind, text = [(t, v) for t, v in CommandLexer().get_tokens(line + word) if v.strip()][-1]
    assert text == word
    info_view = line == "info "
    assert kind in (Name.Builtin if info_view else Keyword.Type) or (
        info_view and kind in Keyword.Type  # a view named as a keyword (`log`)
    ), (line, word, kind)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_command_has_help_usage_and_a_handler(name: str) -> None:
    spec = SPECS[name]
    assert help_text(name).startswith(spec.usage)
    assert spec.usage in help_text()
    assert name in HANDLERS
    # Every sub-command word is told in help (tbreak's `WHAT ...` is break's: same forms).
    told = help_text("break" if spec.forms is SPECS["break"].forms else name)
    words = set(re.findall(r"[\w-]+", told))  # whole words: `cpu` is not told by `cpus`
    for form in spec.forms:
        assert form.key is None or form.key in words, (form.key, told)


def test_the_executor_has_a_handler_for_each_command_and_no_more() -> None:
    assert set(HANDLERS) == set(SPECS)
    assert set(ALIASES.values()) <= set(SPECS)


@st.composite
def offered_lines(draw: st.DrawFn, c: CommandCompleter) -> str:
    """A command line built only from what the completer offers at each word (a sample of
    the kind where it offers nothing: a number, a file name)."""
    name = draw(st.sampled_from([n for n in SPECS if n != "inject"]))
    spec = SPECS[name]
    form = draw(st.sampled_from(spec.forms))
    line = _head(name, form)
    for arg in form.args:
        if arg.optional and draw(st.booleans()):
            continue
        if arg.rest:
            if arg.kind is Kind.EXPR:
                line += "srv.partner "
            continue
        # (where the plain form starts, the other forms' words are offered too: not this arg)
        got = [x for x in offers(c, line) if form.key or x.text not in spec.keys]
        if not got:
            line += SAMPLES[arg.kind] + " "
            continue
        pick = draw(st.sampled_from(got))
        line = line[: len(line) + pick.start_position] + pick.text
        while line.endswith((".", ":")):  # THREAD. then its field, THREAD.N's line
            more = offers(c, line)
            if not more:
                break
            pick = draw(st.sampled_from(more))
            line = line[: len(line) + pick.start_position] + pick.text
        line += " "
    return line


@given(st.data())
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_parser_accepts_what_the_completer_offers(
    completer: CommandCompleter, data: st.DataObject
) -> None:
    line = data.draw(offered_lines(completer))
    try:
        parse(line)
    except CommandError as e:
        raise AssertionError(f"{line!r}: {e}") from None
