"""Syscall injection: `THREAD: OP ARGS [key=value ...]` as the thread's next operation.

The op is built as the scenario loader would build it (kernel/program.py), from
a short positional form: `cli: call srv 1 2 3 timeout=inf`, `srv: recv any`,
`w: sleep 5000`, `a: thread_switch nil`, `x: touch 0x400000 write`.
"""

from __future__ import annotations

from kernel import program as p
from l4tui.grammar import CommandError, suggest

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
TIMEOUT_KEYS = ("timeout", "recv_timeout", "xfer_timeout")


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {text!r}") from None


def _timeout(text: str) -> int | None:
    if text in ("inf", "infinite", "never"):
        return None
    n = _int(text, "a timeout")
    if n < 0:
        raise CommandError(f"a timeout must be >= 0 or inf, not {n}")
    return n


def build(op: str, args: tuple[str, ...], threads: list[str]) -> object:
    """The program op for `op` with `args`; CommandError with a hint if it is wrong."""
    if op not in OPS:
        raise CommandError(f"cannot inject {op!r}{suggest(op, list(OPS))}; ops: {', '.join(OPS)}")
    pos = [a for a in args if "=" not in a]
    keys: dict[str, str] = {}
    for a in args:
        if "=" in a:
            key, value = a.split("=", 1)
            if key not in (*TIMEOUT_KEYS, "xp_fault"):
                raise CommandError(f"unknown option {key!r}{suggest(key, list(TIMEOUT_KEYS))}")
            keys[key] = value

    def thread(name: str) -> str:
        if name not in threads:
            raise CommandError(f"no thread {name!r}{suggest(name, threads)}")
        return name

    timeouts = {k: _timeout(v) for k, v in keys.items() if k in TIMEOUT_KEYS}
    xp_fault = keys.get("xp_fault", "false") in ("true", "1", "yes")
    if op in ("send", "call"):
        if not pos:
            raise CommandError(f"usage: THREAD: {op} TO [WORDS...] [timeout=...]")
        to = thread(pos[0])
        words = tuple(_int(w, "a word") & 0xFFFF_FFFF for w in pos[1:])
        source = to if op == "call" else None
        recv_timeout = None
        if op == "call":
            recv_timeout = timeouts.get("recv_timeout", timeouts.get("timeout"))
        return p.Ipc(
            op,
            to=to,
            source=source,
            words=words,
            timeout=timeouts.get("timeout"),
            recv_timeout=recv_timeout,
            xp_fault=xp_fault,
        )
    if op == "recv":
        source = None if not pos or pos[0] == "any" else thread(pos[0])
        return p.Ipc("recv", source=source, recv_timeout=timeouts.get("timeout"))
    if op == "reply_wait":
        to = thread(pos[0]) if pos and pos[0] in threads else None
        words = tuple(_int(w, "a word") for w in pos[1 if to else 0 :])
        return p.Ipc(
            "reply_wait",
            to=to,
            words=words,
            timeout=timeouts.get("timeout"),
            recv_timeout=timeouts.get("recv_timeout"),
        )
    if op in ("compute", "sleep"):
        if len(pos) != 1:
            raise CommandError(f"usage: THREAD: {op} CYCLES")
        n = _int(pos[0], "CYCLES")
        return p.Compute(n) if op == "compute" else p.Sleep(n)
    if op == "touch":
        if not pos:
            raise CommandError("usage: THREAD: touch ADDR [write]")
        return p.Touch(_int(pos[0], "ADDR"), len(pos) > 1 and pos[1] == "write")
    if op == "thread_switch":
        return p.ThreadSwitch(None if not pos or pos[0] == "nil" else thread(pos[0]))
    return {"read_kip": p.ReadKip, "read_utcb_cpu": p.ReadUtcbCpu, "halt": p.Halt}[op]()
