"""Saved sessions are data: what `save FILE` writes and `load FILE`, `l4tui open --load`,
`l4tui lab --state` and `l4tui lab-status` read back (DESIGN.md §1, "save and load").

A session is its scenario, seed and input log — replayed, it is the identical state — and
its breakpoints, watchpoints, focus, the commands run and the stops seen. Format version 3
stores every breakpoint and watchpoint as fields (kind, what, thread, cpu, cond, after, …)
and loading checks each field's type and range, naming the file and the field of the first
bad one (`error: FILE: breakpoints[0].cpu: no CPU 9 ...`), and builds the objects itself.
Nothing in a saved file is run as a command: versions 1 and 2 stored breakpoints and
watches as command lines (so a file whose "breakpoint" was `save PATH` wrote that file
while being graded, and one that loaded itself never ended — issue 14); their text is now
read only as a break/tbreak/watch spec, by the one spec parser (breakpoints.py), and
anything else is refused. `commands` and `stops` are what lab checks read (lab.py), as text.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from typing import TYPE_CHECKING, Any

from kernel.layout import NAMED
from kernel.scenario import Scenario, load_scenario
from l4tui import expr, inputs
from l4tui import session as sessions
from l4tui.breakpoints import (
    IPI_WHATS,
    KINDS,
    SYSCALLS,
    Breakpoint,
    parse_break,
    parse_watch,
)
from l4tui.demo import demo_scenario
from l4tui.grammar import CommandError, parse
from l4tui.inputs import Idle, LogEntry, OnCpu, SetPolicy, Timed
from machine.errors import ConfigError, MachineError
from machine.machine import POLICIES

if TYPE_CHECKING:
    from l4tui.session import Session

VERSION = 3
MAX_GLOB = 200  # longest phase glob (the labels are under 40 characters)
MAX_COND = 1000
MAX_SEED = 2**63
_BREAK_KEYS = {  # a version-3 breakpoint's fields: whether each is required
    "number": True,
    "kind": True,
    "what": True,
    "thread": False,
    "cpu": False,
    "cond": False,
    "after": False,
    "temporary": False,
    "log_only": False,
    "hits": False,
    "enabled": False,
}
_KEYS = {
    1: {"l4tui_session", "scenario", "seed", "log", "breakpoints", "watches"},
    2: {
        "l4tui_session",
        "scenario",
        "seed",
        "log",
        "breakpoints",
        "next_breakpoint",
        "watches",
        "focus",
        "focus_pinned",
        "tcb_layout",
        "commands",
        "stops",
        "meta",
        "schedule",
    },
}
_KEYS[3] = _KEYS[2]


def state(s: Session) -> dict[str, Any]:
    """The whole session as plain data (what `save` writes), format version 3."""
    return {
        "l4tui_session": VERSION,
        "scenario": s.scenario.file,
        "seed": s.seed,
        "log": [inputs.to_json(e) for e in s.log],
        "breakpoints": [
            {
                "number": b.number,
                "kind": b.kind,
                "what": b.what,
                "thread": b.thread,
                "cpu": b.cpu,
                "cond": b.cond,
                "after": b.after,
                "temporary": b.temporary,
                "log_only": b.log_only,
                "hits": b.hits,
                "enabled": b.enabled,
            }
            for b in s.breakpoints
        ],
        "next_breakpoint": s._next_bp,
        "watches": [{"expr": w.expr, "paddr": w.paddr, "cpu": w.cpu} for w in s.watches],
        "focus": [s.focus_cpu, s.focus_thread],
        "focus_pinned": s.focus_pinned,
        "tcb_layout": s.tcb_layout,
        "commands": s.commands,
        "stops": s.stops,
        "meta": s.meta,
        "schedule": _schedule_state(s),
    }


def _schedule_state(s: Session) -> dict[str, Any] | None:
    if s.schedule is None:
        return None
    stops = {str(k): v for k, v in s.schedule_stops.items()}
    return {"log": [inputs.to_json(e) for e in s.schedule], "stops": stops}


class _Bad(Exception):
    """A field of a saved session that is wrong: which one, and why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")


def _key(k: Any) -> str:
    """A key of the file as part of a field's name: as it is if a plain word, else quoted
    (a key is any text: never a second line in the message)."""
    text = str(k)
    return text if re.fullmatch(r"[A-Za-z0-9_]{1,40}", text) else repr(text[:40])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(v: Any, field: str, low: int = 0, high: int | None = None) -> int:
    if not _is_int(v):
        raise _Bad(field, f"must be a whole number, not {_shown(v)}")
    if v < low or (high is not None and v > high):
        top = "" if high is None else f"..{high}"
        raise _Bad(field, f"must be {low}{top if top else ' or more'}, not {v}")
    return int(v)


def _str(v: Any, field: str, longest: int | None = None) -> str:
    if not isinstance(v, str):
        raise _Bad(field, f"must be text, not {_shown(v)}")
    if longest is not None and len(v) > longest:
        raise _Bad(field, f"longer than {longest} characters")
    return v


def _bool(v: Any, field: str) -> bool:
    if not isinstance(v, bool):
        raise _Bad(field, f"must be true or false, not {_shown(v)}")
    return v


def _list(v: Any, field: str) -> list[Any]:
    if not isinstance(v, list):
        raise _Bad(field, f"must be a list, not {_shown(v)}")
    return v


def _dict(v: Any, field: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _Bad(field, f"must be a mapping, not {_shown(v)}")
    return v


def _shown(v: Any) -> str:
    """A value in an error message: its JSON type, or a short one itself."""
    if isinstance(v, str):  # the text itself, cut: the user must see which entry it is
        return repr(v) if len(v) <= 40 else f"{v[:40]!r}... ({len(v):,} characters)"
    names = {dict: "a mapping", list: "a list", bool: "true/false", type(None): "null"}
    if type(v) in names:
        return names[type(v)]
    text = repr(v)
    return text if len(text) <= 24 else text[:20] + "..."


def same_file(a: str, b: str) -> bool:
    """Whether two names (relative or absolute, through links) are one file."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def from_state(data: Any, where: str, same_as: Session | None = None) -> Session:
    """A session replayed from `state()` data (any format version); ConfigError naming the
    file and the first bad field.

    `same_as`: a confined student's session — the saved one must be of the same scenario
    and lab, checked before anything it names is read.
    """
    try:
        return _from_state(data, where, same_as)
    except _Bad as e:
        raise ConfigError(_one_line(f"a saved session with a bad field {e}"), where) from None
    except (CommandError, MachineError) as e:
        raise ConfigError(_one_line(f"a saved session that does not load: {e}"), where) from None


def _one_line(text: str) -> str:
    """Whatever the file held that a message quotes, the message stays one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _from_state(data: Any, where: str, same_as: Session | None) -> Session:
    if not isinstance(data, dict) or data.get("l4tui_session") not in (1, 2, VERSION):
        raise ConfigError("not a saved l4tui session", where)
    version = data["l4tui_session"]
    for key in data:
        if key not in _KEYS[version]:
            raise _Bad(_key(key), f"not a field of a version-{version} saved session")
    for key in ("scenario", "seed", "log", "breakpoints", "watches"):
        if key not in data:
            raise _Bad(key, "missing")
    file = _str(data["scenario"], "scenario", 4096)
    meta = {
        _str(k, "meta", 4096): _str(v, f"meta.{_key(k)}", 4096)
        for k, v in _dict(data.get("meta", {}), "meta").items()
    }
    if same_as is not None:
        _same_work(file, meta, same_as)
    seed = data["seed"]
    if seed is not None and not (_is_int(seed) and -MAX_SEED < seed < MAX_SEED):
        raise _Bad("seed", f"must be a whole number or null, not {_shown(seed)}")
    layout = data.get("tcb_layout")
    if layout is not None and layout not in NAMED:
        raise _Bad("tcb_layout", f"must be {' or '.join(NAMED)} or null, not {_shown(layout)}")
    scenario = _scenario(file)
    cpus = scenario.profile.cpus
    log = [_log_entry(e, f"log[{i}]", cpus) for i, e in enumerate(_list(data["log"], "log"))]
    s = sessions.Session(scenario, seed, tcb_layout=layout)
    # A session saved before peek was pure (issue 15) logged its peeks as ["peek"]: they are
    # skipped (a peek changes nothing now; the replay may end a few idle cycles elsewhere).
    s.log = [e for e in log if e is not None]
    plan = data.get("schedule")
    if plan is not None:
        s.follow(*_schedule(_dict(plan, "schedule"), cpus))
    # What lab checks read (lab.py), as text: never run.
    for key in ("commands", "stops"):
        items = _list(data.get(key, []), key)
        setattr(s, key, [_str(c, f"{key}[{i}]") for i, c in enumerate(items)])
    s.meta = meta
    _replay(s)
    _breakpoints(s, data, version)
    _watches(s, data, version)
    if version >= 2:
        _focus(s, data, cpus)
    return s


def _same_work(file: str, meta: dict[str, str], same_as: Session) -> None:
    """A confined student's saved session: of the same scenario and lab as `same_as`."""
    if not same_file(file, same_as.scenario.file):
        raise _Bad("scenario", "of another scenario than the one you are working on")
    lab, ours = meta.get("lab"), same_as.meta.get("lab")
    if lab != ours and (lab is None or ours is None or not same_file(lab, ours)):
        raise _Bad("meta.lab", "of another lab than the one you are working on")


def _scenario(file: str) -> Scenario:
    """The scenario a saved session names: the demo, or a regular file."""
    if file == "<demo>":
        return demo_scenario()
    try:  # a regular file only: a FIFO would hang the reader, a device feed it forever
        regular = stat.S_ISREG(os.stat(file).st_mode)
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or e
        raise _Bad("scenario", f"cannot read {file}: {why}") from None
    if not regular:
        raise _Bad("scenario", f"{file} is not a regular file")
    return load_scenario(file)  # ConfigError of its own, with its position


def _schedule(plan: dict[str, Any], cpus: int) -> tuple[list[LogEntry], dict[int, str]]:
    """A schedule being followed: its inputs and the stops before its preemptions."""
    steps: list[LogEntry] = [
        _plan_entry(e, f"schedule.log[{i}]", cpus)
        for i, e in enumerate(_list(plan.get("log"), "schedule.log"))
    ]
    stops = {}
    for k, v in _dict(plan.get("stops", {}), "schedule.stops").items():
        try:
            at = int(k)
        except ValueError:
            raise _Bad("schedule.stops", f"keyed by micro-op counts, not {_shown(k)}") from None
        stops[at] = _str(v, f"schedule.stops.{_key(k)}", 4096)
    return steps, stops


def _replay(s: Session) -> None:
    """Replay the loaded log on the fresh machine, to the position it reaches."""
    position = sum(1 for x in s.log if inputs.is_step(x))
    s.position = position  # goto replays the whole log forward from the fresh machine
    s.behind = (0, 0)
    try:
        s.goto(position)
    except (CommandError, MachineError, KeyError) as e:
        raise _Bad("log", f"does not replay: {e}") from None
    if s.position != position:
        raise _Bad("log", f"does not replay: stopped at micro-op {s.position} of {position}")


def _focus(s: Session, data: dict[str, Any], cpus: int) -> None:
    """The focus as saved (version 2 on): [CPU, THREAD] and whether it is pinned."""
    focus = _list(data.get("focus", [1, None]), "focus")
    if len(focus) != 2:
        raise _Bad("focus", "must be [CPU, THREAD]")
    cpu = _int(focus[0], "focus[0]", 1, cpus)
    thread = focus[1]
    if thread is not None and (
        not isinstance(thread, str) or thread not in s.system.kernel.by_name
    ):
        raise _Bad("focus[1]", f"no thread {_shown(thread)}")
    pinned = _bool(data.get("focus_pinned", False), "focus_pinned")
    s.focus_cpu, s.focus_thread, s.focus_pinned = cpu, thread, pinned  # as saved


def _log_entry(e: Any, field: str, cpus: int) -> LogEntry | None:
    """One input of the log (inputs.py gives the forms), checked; None for an old
    ["peek"], dropped by the caller."""
    if e is None:
        return inputs.TIMED
    if _is_int(e):
        return inputs.step_on(_int(e, field, 1, cpus))
    if isinstance(e, str):
        if e not in POLICIES:
            raise _Bad(field, f"not an input: {_shown(e)}")
        return SetPolicy(e)
    if isinstance(e, list) and e:
        if e[0] == "idle" and len(e) == 2:
            return Idle(None if e[1] is None else _int(e[1], field + "[1]", 1, cpus))
        if e == ["peek"]:
            return None
        if e[0] == "inject" and len(e) >= 3:
            words = [_str(a, f"{field}[{j}]", 4096) for j, a in enumerate(e[1:], 1)]
            return inputs.Inject(words[0], words[1], tuple(words[2:]))
    raise _Bad(field, f"not an input: {_shown(e)}")


def _plan_entry(e: Any, field: str, cpus: int) -> Timed | OnCpu | Idle:
    """One input of a schedule being followed: a timed step, a step on a CPU, or one that
    found nothing to run (explore.py writes them)."""
    if e is None:
        return inputs.TIMED
    if _is_int(e):
        return inputs.step_on(_int(e, field, 1, cpus))
    if isinstance(e, list) and len(e) == 2 and e[0] == "idle":
        return Idle(_int(e[1], field + "[1]", 1, cpus))
    raise _Bad(field, f"not a step of a schedule: {_shown(e)}")


def _from_text(s: Session, text: Any, field: str, allowed: tuple[str, ...]) -> Any:
    """An old format's breakpoint or watch, stored as a command line: parsed as a spec only."""
    line = _str(text, field, 4096)
    try:
        cmd = parse(line)
    except CommandError as e:
        raise _Bad(field, str(e)) from None
    if cmd is None or cmd.name not in allowed:
        raise _Bad(field, f"not a {'/'.join(allowed)} spec: {_shown(line)}")
    try:
        if cmd.name == "watch":
            return parse_watch(s, cmd.args)
        # any_label: a glob saved before globs were checked still loads (and never stops)
        return parse_break(s, cmd.args, cmd.name == "tbreak", any_label=True)
    except CommandError as e:
        raise _Bad(field, str(e)) from None


def _breakpoints(s: Session, data: dict[str, Any], version: int) -> None:
    out: list[Breakpoint] = []
    for i, raw in enumerate(_list(data["breakpoints"], "breakpoints")):
        field = f"breakpoints[{i}]"
        if version == 1:
            bp = _from_text(s, f"break {_str(raw, field, 4096)}", field, ("break",))
            bp.number = i + 1
        elif version == 2:
            raw = _dict(raw, field)
            bp = _from_text(s, raw.get("command"), field + ".command", ("break", "tbreak"))
            bp.number = _int(raw.get("number"), field + ".number", 1)
            bp.hits = _int(raw.get("hits", 0), field + ".hits")
            bp.enabled = _bool(raw.get("enabled", True), field + ".enabled")
        else:
            bp = _breakpoint(s, _dict(raw, field), field)
        if any(b.number == bp.number for b in out):
            raise _Bad(field + ".number", f"breakpoint {bp.number} twice")
        out.append(bp)
    s.breakpoints = out
    top = max((b.number for b in out), default=0)
    nxt = data.get("next_breakpoint", top + 1)
    if version < VERSION:  # the older formats did not keep it consistent: the next free one
        s._next_bp = max(_int(nxt, "next_breakpoint"), top + 1)
    else:
        s._next_bp = _int(nxt, "next_breakpoint", top + 1)


def _breakpoint(s: Session, raw: dict[str, Any], field: str) -> Breakpoint:
    """A version-3 breakpoint: each field checked, the object built from them."""
    for key in raw:
        if key not in _BREAK_KEYS:
            raise _Bad(f"{field}.{_key(key)}", "not a field of a breakpoint")
    for key, required in _BREAK_KEYS.items():
        if required and key not in raw:
            raise _Bad(f"{field}.{key}", "missing")
    kind = raw["kind"]
    if kind not in KINDS:
        raise _Bad(field + ".kind", f"one of {', '.join(KINDS)}, not {_shown(kind)}")
    what = _str(raw["what"], field + ".what", MAX_GLOB)
    if kind == "phase":
        # Any glob a phase label could be typed as: a glob matching no label still loads (it
        # was accepted before globs were checked), but it is one word of printable text.
        if not what or not what.isprintable() or any(c.isspace() for c in what):
            raise _Bad(field + ".what", f"not a phase glob: {_shown(what)}")
    elif kind == "syscall" and what not in SYSCALLS:
        raise _Bad(field + ".what", f"one of {', '.join(SYSCALLS)}, not {_shown(what)}")
    elif kind == "ipi" and what not in IPI_WHATS:
        raise _Bad(field + ".what", f"sent, delivered or empty, not {_shown(what)}")
    elif kind in ("migration", "pagefault") and what:
        raise _Bad(field + ".what", f"empty for a {kind} breakpoint, not {_shown(what)}")
    bp = Breakpoint(_int(raw["number"], field + ".number", 1), kind, what)
    thread = raw.get("thread")
    if thread is not None:
        thread = _str(thread, field + ".thread", 200)
        if thread not in s.system.kernel.by_name:
            raise _Bad(field + ".thread", f"no thread {thread!r} in {s.scenario.name}")
        bp.thread = thread
    cpu = raw.get("cpu")
    if cpu is not None:
        bp.cpu = _int(cpu, field + ".cpu", 1, len(s.system.machine.cpus))
    cond = raw.get("cond")
    if cond is not None:
        bp.cond = _str(cond, field + ".cond", MAX_COND)
        try:
            expr.check(s, bp.cond)  # the expression language: it reads state, runs nothing
        except CommandError as e:
            raise _Bad(field + ".cond", str(e)) from None
    bp.after = _int(raw.get("after", 0), field + ".after")
    bp.temporary = _bool(raw.get("temporary", False), field + ".temporary")
    bp.log_only = _bool(raw.get("log_only", False), field + ".log_only")
    bp.hits = _int(raw.get("hits", 0), field + ".hits")
    bp.enabled = _bool(raw.get("enabled", True), field + ".enabled")
    return bp


def _watches(s: Session, data: dict[str, Any], version: int) -> None:
    s.watches = []
    for i, raw in enumerate(_list(data["watches"], "watches")):
        field = f"watches[{i}]"
        if version == 1:
            pair = _list(raw, field)
            if len(pair) != 2:
                raise _Bad(field, "must be [EXPR, PADDR]")
            spec = _from_text(s, f"watch {_str(pair[0], field, 4096)}", field, ("watch",))
        elif version == 2:
            spec = _from_text(s, raw, field, ("watch",))
        else:
            raw = _dict(raw, field)
            for key in raw:
                if key not in ("expr", "paddr", "cpu"):
                    raise _Bad(f"{field}.{_key(key)}", "not a field of a watchpoint")
            text = _str(raw.get("expr"), field + ".expr", 200)
            try:  # the watch's text names what it watches: read by the one watch parser
                spec = parse_watch(s, tuple(shlex.split(text)))
            except (CommandError, ValueError) as e:
                raise _Bad(field + ".expr", str(e)) from None
            if "paddr" in raw and raw["paddr"] != spec[1]:
                raise _Bad(field + ".paddr", f"not the address of {text} ({spec[1]:#x})")
            if "cpu" in raw and raw["cpu"] != spec[2]:
                raise _Bad(field + ".cpu", f"not the CPU of {text}")
        s.add_watch(*spec)
