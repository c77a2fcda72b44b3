"""A scenario's `expect:` section, read as plain data (DESIGN.md §2, "Scenario file").

Each expectation becomes an `Expect`: the readable text the `run --json`
summary reports (``cli result[0] ok=true xp=true``) and the fields to
compare. The scenario loader reads them here so that `l4tui check` refuses a
bad one with its position; judging them against a finished run is the
runner's job (`l4tui/runner/expect.py`), not the kernel's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kernel.opparse import IRQ_RE, OpReader
from kernel.yamlread import MAX_INT, Where, kind, show, yaml_text
from machine.errors import suggest
from machine.yamlsrc import Path as DataPath

THREAD_STATES = (
    "running",
    "ready",
    "waiting",
    "polling",
    "locked_running",
    "locked_waiting",
    "inactive",
)
COUNTERS = (
    "ipc", "xp_ipc", "ipis_sent", "migrations", "tlb_shootdowns", "page_faults",
    "icr_writes", "ipis_delivered", "tlb_remote_flushes", "fault_ipcs", "hardware_page_faults",
)  # fmt: skip
MESI_COUNTER_RE = re.compile(r"mesi\.([MESI])->([MESI])")
SYSCALL_NAMES = (
    "send",
    "recv",
    "call",
    "reply_wait",
    "thread_switch",
    "schedule",
    "ex_regs",
    "unmap",
    "task_new",
    "read_utcb_cpu",
    "read_kip",
)
ERROR_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
RESULT_FIELDS = ("ok", "xp", "error", "words", "from", "value", "cpu", "op")


@dataclass(frozen=True, slots=True)
class Expect:
    """One expectation, checked when the run ends.

    `check` is a short readable text (``cli state inactive``,
    ``cli result[0] ok=true xp=true``); `thread` is the thread it is about
    (None for ``deadlock`` and ``counter`` checks); `fields` holds what is
    compared — ``{"state": S}``, ``{"cpu": N}``, ``{"priority": N}``, the
    result fields (``ok``, ``xp``, ``error``, ``words``, ``from``, ``value``,
    ``cpu``, ``op``), ``{"deadlock": B}``, or ``{"counter": NAME}`` plus
    ``equals`` or ``min``/``max``; `result` is the index into the thread's
    results for a result check (negative counts from the end).
    """

    check: str
    thread: str | None
    fields: dict[str, Any]
    result: int | None = None
    where: Where = ("<string>", None, None)


def expectations(r: OpReader) -> tuple[Expect, ...]:
    """The scenario's `expect:` list (empty when absent), read through `r`."""
    if r.src.data.get("expect") is None:
        return ()
    items = r.get_list(("expect",), "expect")
    return tuple(_expect(r, ("expect", i)) for i in range(len(items)))


def _expect(r: OpReader, path: DataPath) -> Expect:
    data = r.get(path)
    if not isinstance(data, dict) or not data:
        raise r.fail(
            path,
            "an expectation is a mapping such as {thread: T, state: S}, "
            f"{{deadlock: false}} or {{counter: ipc, min: 1}}, not {kind(data)}",
        )
    where = r.where(path)
    if "deadlock" in data:
        r.mapping(path, ("deadlock",), "a deadlock check")
        deadlock = r.get_bool(path + ("deadlock",))
        return Expect(f"deadlock {yaml_text(deadlock)}", None, {"deadlock": deadlock}, None, where)
    if "counter" in data:
        return _counter_expect(r, path, data, where)
    allowed = ("thread", "state", "priority", "result") + RESULT_FIELDS
    r.mapping(path, allowed, "an expectation", ("thread",))
    thread = r.thread_ref(path + ("thread",))
    if "result" in data:
        return _result_expect(r, path, data, thread, where)
    checks = [k for k in ("state", "cpu", "priority") if k in data]
    others = [k for k in data if k not in ("thread", "state", "cpu", "priority")]
    if others:
        raise r.fail_key(path, others[0], f"{others[0]!r} is a result field: add `result: INDEX`")
    if not checks:
        raise r.fail(path, "expected one of state, cpu, priority or result beside thread")
    if len(checks) > 1:
        raise r.fail_key(
            path,
            checks[1],
            f"one check per expectation: found {checks[0]!r} and "
            f"{checks[1]!r}; write two expectations",
        )
    key = checks[0]
    if key == "state":
        value: Any = r.choice(path + ("state",), THREAD_STATES)
    elif key == "cpu":
        value = r.cpu(path + ("cpu",))
    else:
        value = r.get_int(path + ("priority",), 0, 255)
    return Expect(f"{thread} {key} {value}", thread, {key: value}, None, where)


def _result_expect(
    r: OpReader, path: DataPath, data: dict[Any, Any], thread: str, where: Where
) -> Expect:
    for key in ("state", "priority"):
        if key in data:
            raise r.fail_key(path, key, f"{key!r} cannot be checked with a result")
    index = r.get_int(path + ("result",), -MAX_INT, MAX_INT, " (an index into the results)")
    fields: dict[str, Any] = {}
    for key in data:
        if key in ("thread", "result"):
            continue
        p = path + (key,)
        value = data[key]
        if key in ("ok", "xp"):
            fields[key] = r.get_bool(p)
        elif key == "error":
            if value is not None and (
                not isinstance(value, str) or not ERROR_NAME_RE.fullmatch(value)
            ):
                raise r.fail(p, f"expected an error name or null, not {show(value)}")
            fields[key] = value
        elif key == "words":
            fields[key] = list(r.words(p))
        elif key == "from":
            if value is None or (isinstance(value, str) and IRQ_RE.fullmatch(value)):
                fields[key] = value
            else:
                fields[key] = r.thread_ref(p, sigma0=True)
        elif key == "value":
            fields[key] = r.get_int(p, -MAX_INT)
        elif key == "cpu":
            fields[key] = None if value is None else r.cpu(p)
        else:
            fields[key] = r.choice(p, SYSCALL_NAMES)
    if not fields:
        raise r.fail(path, f"a result check compares at least one of {', '.join(RESULT_FIELDS)}")
    text = " ".join(f"{k}={yaml_text(v)}" for k, v in fields.items())
    return Expect(f"{thread} result[{index}] {text}", thread, fields, index, where)


def _counter_expect(r: OpReader, path: DataPath, data: dict[Any, Any], where: Where) -> Expect:
    r.mapping(path, ("counter", "equals", "min", "max"), "a counter check")
    name = r.get(path + ("counter",))
    if not isinstance(name, str) or not (
        name in COUNTERS or ((m := MESI_COUNTER_RE.fullmatch(name)) is not None and m[1] != m[2])
    ):
        hint = suggest(name, COUNTERS) if isinstance(name, str) else ""
        raise r.fail(
            path + ("counter",),
            f"expected a counter ({', '.join(COUNTERS)} or mesi.X->Y), not {show(name)}{hint}",
        )
    bounds = [k for k in ("equals", "min", "max") if k in data]
    if not bounds:
        raise r.fail(path, "a counter check needs equals, min or max")
    if "equals" in data and len(bounds) > 1:
        raise r.fail_key(path, bounds[1], "equals cannot be combined with min or max")
    fields: dict[str, Any] = {"counter": name}
    ops = {"equals": "==", "min": ">=", "max": "<="}
    for key in bounds:
        fields[key] = r.get_int(path + (key,), 0)
    if "min" in fields and "max" in fields and fields["min"] > fields["max"]:
        raise r.fail(path + ("max",), f"max {fields['max']} is below min {fields['min']}")
    text = " ".join(f"{ops[k]} {fields[k]}" for k in bounds)
    return Expect(f"counter {name} {text}", None, fields, None, where)
