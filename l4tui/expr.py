"""Expressions over thread and CPU fields: what `print EXPR` shows and `break … if EXPR` tests.

A term is a number (``42``, ``0x2a``), ``nil``, a thread state name
(``waiting``), a thread name (its thread-id word, so ``cli.partner == srv``
reads as the thesis writes it), ``THREAD.FIELD`` (a TCB field, Table 3),
``THREAD.state``, or ``cpuN.FIELD`` (``clock``, ``mode``, ``if``, ``phase``,
``thread``, ``cr3``, ``waiting``, ``steps``). A condition is comparisons
(``== != < <= > >=``) joined by ``and`` / ``or``, read left to right.
"""

from __future__ import annotations

import operator
import re
from typing import TYPE_CHECKING, Any

from kernel import query
from kernel.thread import STATE_NAMES
from l4tui.grammar import MAX_NUMBER, CommandError, shown, suggest
from l4tui.views import thread

if TYPE_CHECKING:
    from l4tui.session import Session

CPU_FIELDS = ("clock", "mode", "if", "phase", "thread", "cr3", "waiting", "steps")
STATES = tuple(STATE_NAMES.values()) + ("ready",)
OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_DIGITS = re.compile(r"0[xX][0-9a-fA-F]+|\d+")  # a number, or the digits in cpuN
_COMPARISON = re.compile(r"^\s*(\S+?)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$")


def literals(text: str) -> None:
    """Refuse a number longer than `MAX_NUMBER` anywhere in `text`, saying where it starts.

    Checked before any term is read: `int` of thousands of digits is slow, refused past
    4,300 decimal digits (ValueError), and a huge hex value cannot even be printed in
    decimal. The words are 32 bits; 40 characters leave room for leading zeros.
    """
    for m in _DIGITS.finditer(text):
        if len(m.group()) > MAX_NUMBER:
            raise CommandError(
                f"column {m.start() + 1}: a number of {len(m.group()):,} characters; "
                f"numbers have at most {MAX_NUMBER}"
            )


def value(s: Session, term: str) -> Any:
    """The value of one term now; CommandError if it names nothing."""
    k = s.system.kernel
    literals(term)
    if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", term):
        return int(term, 0)
    if term == "nil":
        return 0
    if term in STATES:
        return term
    m = re.fullmatch(r"cpu(\d+)\.(\w+)", term)
    if m:
        return _cpu_field(s, int(m.group(1)), m.group(2))
    names = [t.name for t in s.scenario.threads()]
    if term in k.by_name:  # a thread's name (a proxy's has a dot: proxy2.1)
        return k.by_name[term].word
    if "." not in term:
        raise CommandError(f"no thread or value {shown(term)}{suggest(term, names + list(STATES))}")
    name, field = term.rsplit(".", 1)  # fields have no dot; proxy names do
    t = thread(s, name)
    if field == "state":
        return k.state(t)
    if field == "cpu":
        return t.cpu
    if field not in t.f:
        raise CommandError(f"no TCB field {shown(field)}{suggest(field, ['state', *t.f])}")
    return k.field(t, field)


def _cpu_field(s: Session, number: int, field: str) -> Any:
    m = s.system.machine
    c = m.cpu(number)  # MachineError names the CPUs there are
    k = s.system.kernel
    values = {
        "clock": c.clock // m.tpc,
        "mode": c.mode,
        "if": int(c.if_flag),
        "phase": c.phase or "-",
        "thread": "idle" if query.is_idle(k, number) else query.current_name(k, number),
        "cr3": c.cr3,
        "waiting": c.waiting or "-",
        "steps": c.steps,
    }
    if field not in values:
        raise CommandError(f"no CPU field {shown(field)}{suggest(field, list(CPU_FIELDS))}")
    return values[field]


def show(s: Session, term: str) -> str:
    """`print TERM`: the value, with its hex form and the thread a thread-id word names."""
    literals(term)
    if _COMPARISON.match(term) or " and " in term or " or " in term:
        return f"{term} is {'true' if holds(s, term) else 'false'}"
    v = value(s, term)
    if isinstance(v, str):
        return f"{term} = {v}"
    text = f"{term} = {v} ({v:#x})"
    t = s.system.kernel.by_word(v) if v else None
    if t is not None and "." in term:
        text += f" = {t.name}"
    return text


def check(s: Session, text: str) -> None:
    """Raise CommandError unless `text` is a condition that can be evaluated now."""
    holds(s, text)


def holds(s: Session, text: str) -> bool:
    """Whether the condition holds now (CommandError if it is malformed)."""
    literals(text)
    words = re.split(r"\s+(and|or)\s+", text.strip())
    result = _compare(s, words[0])
    for i in range(1, len(words), 2):
        right = _compare(s, words[i + 1])
        result = (result and right) if words[i] == "and" else (result or right)
    return result


def _compare(s: Session, text: str) -> bool:
    m = _COMPARISON.match(text)
    if m is None:
        raise CommandError(
            f"a condition compares two terms (e.g. cli.partner == srv), not {shown(text)}"
        )
    a, op, b = value(s, m.group(1)), m.group(2), value(s, m.group(3))
    if isinstance(a, str) != isinstance(b, str):
        if op not in ("==", "!="):
            raise CommandError(f"cannot order {m.group(1)} and {m.group(3)}")
        return op == "!="
    return OPS[op](a, b)
