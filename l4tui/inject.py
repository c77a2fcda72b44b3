"""Syscall injection: `THREAD: OP ARGS [key=value ...]` as the thread's next operation.

The short positional form — `cli: call srv 1 2 3 timeout=inf`, `srv: recv any`,
`w: sleep 5000`, `a: thread_switch nil`, `x: touch 0x400000 write` — is turned
into the data a scenario's program item holds (`{"call": {"to": "srv", ...}}`)
and validated by the scenario loader's own op parser (`kernel.scenario.parse_op`).
One parser: an op a scenario file may not hold (`compute: -5`, 70 words, an
address above user space) is refused at the prompt too, before anything changes.
"""

from __future__ import annotations

from typing import Any

from kernel.program import Op
from kernel.scenario import parse_op
from l4tui.grammar import CommandError, suggest
from machine.errors import ConfigError

OPS = (
    "send",
    "recv",
    "call",
    "reply_wait",
    "compute",
    "touch",
    "sleep",
    "thread_switch",
    "read_kip",
    "read_utcb_cpu",
    "halt",
)
TARGETS: dict[str, tuple[str, ...]] = {
    "send": (),
    "call": (),
    "recv": ("any",),
    "reply_wait": (),
    "thread_switch": ("nil",),
}
"""The ops whose first argument names a thread, and the words it may be besides a name."""
TIMEOUT_KEYS = ("timeout", "recv_timeout", "xfer_timeout")
KEYS = (*TIMEOUT_KEYS, "xp_fault")
_BARE = ("read_kip", "read_utcb_cpu", "halt")
# The words a scenario file's YAML (1.1, as PyYAML reads it) takes for a flag, and no
# others: `xp_fault=1` is refused as `xp_fault: 1` is (the command-schema test found the
# prompt taking 1 and 0).
_TRUE = {w for b in ("yes", "true", "on") for w in (b, b.capitalize(), b.upper())}
_FALSE = {w for b in ("no", "false", "off") for w in (b, b.capitalize(), b.upper())}


def _number(text: str) -> int | str:
    """`text` as a number (decimal, 0x.., 0b..), or as it is for the parser to refuse."""
    try:
        return int(text, 0)
    except ValueError:  # not a number (or too many digits): the parser says what it wants
        return text


def _int(text: str, what: str) -> int:
    """A positional number; its range is the parser's to check."""
    try:
        return int(text, 0)
    except ValueError:  # not a number, or more digits than int() takes
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise CommandError(f"{what} must be a number, not {shown!r}") from None


def _flag(text: str) -> bool | int | str:
    return True if text in _TRUE else False if text in _FALSE else _number(text)


def _data(op: str, pos: list[str], keys: dict[str, str], threads: list[str]) -> Any:
    """The program item a scenario would hold for `op` with these arguments."""
    fields: dict[str, Any] = {}
    for key, text in keys.items():
        fields[key] = _flag(text) if key == "xp_fault" else _number(text)
    if op in _BARE:
        if pos or keys:
            raise CommandError(f"usage: THREAD: {op} (it takes no arguments)")
        return op
    if op in ("compute", "sleep"):
        if len(pos) != 1 or keys:
            raise CommandError(f"usage: THREAD: {op} CYCLES")
        return {op: _int(pos[0], "CYCLES")}
    if op == "touch":
        if not 1 <= len(pos) <= 2 or keys or (len(pos) == 2 and pos[1] not in ("read", "write")):
            raise CommandError("usage: THREAD: touch ADDR [write]")
        return {op: {"addr": _int(pos[0], "ADDR"), "write": pos[1:] == ["write"]}}
    if op == "thread_switch":
        if len(pos) > 1 or keys:
            raise CommandError("usage: THREAD: thread_switch [THREAD | nil]")
        return {op: pos[0] if pos else None}
    if op in ("send", "call"):
        if not pos:
            raise CommandError(f"usage: THREAD: {op} TO [WORDS...] [timeout=...]")
        fields["to"] = pos[0]
        pos = pos[1:]
    elif op == "recv":
        if len(pos) > 1:
            raise CommandError("usage: THREAD: recv [FROM | any] [timeout=...]")
        if pos:
            fields["from"] = pos[0]
        pos = []
    elif op == "reply_wait" and pos and (pos[0] in threads or isinstance(_number(pos[0]), str)):
        fields["to"] = pos[0]  # a name (a wrong one is refused as such), then the words
        pos = pos[1:]
    if pos:
        fields["words"] = [_int(w, "a word") for w in pos]
    return {op: fields or None}


def build(op: str, args: tuple[str, ...] | list[str], threads: list[str], cpus: int = 1) -> Op:
    """The program op for `op` with `args`; CommandError with a hint if it is wrong.

    Validated as a scenario file's op is (`kernel.scenario.parse_op`): the
    same ranges, the same limits, the same messages.
    """
    if op not in OPS:
        raise CommandError(f"cannot inject {op!r}{suggest(op, list(OPS))}; ops: {', '.join(OPS)}")
    pos = [a for a in args if "=" not in a]
    keys: dict[str, str] = {}
    for a in args:
        if "=" in a:
            key, value = a.split("=", 1)
            if key not in KEYS:
                raise CommandError(f"unknown option {key!r}{suggest(key, list(KEYS))}")
            keys[key] = value
    data = _data(op, pos, keys, threads)
    try:
        return parse_op(data, threads, cpus)
    except ConfigError as e:
        raise CommandError(e.message) from None
