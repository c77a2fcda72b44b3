"""Whether a step stops the machine: the breakpoints and watchpoints of a session, evaluated.

After each micro-op the session asks `stopped`: the step's events (breakpoints.py
classifies them) are matched against every enabled breakpoint — counting hits,
checking conditions, recording log-only hits, deleting temporary ones — and every
watched word or cache line (§8.6) is read again. Stepping itself is session.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernel import query
from kernel.owners import meaning
from l4tui import expr
from l4tui.breakpoints import Breakpoint, Event, Watch, events
from l4tui.grammar import CommandError
from machine.cache import STATE_NAMES

if TYPE_CHECKING:
    from l4tui.session import Session

RECORDS = 10_000  # what log-only breakpoints saw, kept (the newest; `info log` shows 200)


def stopped(s: Session, op: Any) -> str | None:
    """Why the machine must stop after `op` (a breakpoint or watchpoint), or None."""
    reason = None
    if s.watches:
        reason = watch_hit(s)
    if s.breakpoints:
        why = break_hit(s, op)
        if why is not None and reason is None:
            reason = why
    return reason


def break_hit(s: Session, op: Any) -> str | None:
    """The first breakpoint `op` stops at, every matching one counted (and recorded)."""
    c = s.system.machine.last_cpu
    assert c is not None  # (a step ran)
    t = query.current(s.system.kernel, c.number)
    evs = events(op, c.number, t.name, query.next_op(t))
    if not evs:
        return None
    reason = None
    for bp in list(s.breakpoints):
        if not bp.enabled:
            continue
        e = next((e for e in evs if bp.matches(e)), None)
        if e is None or (bp.cond is not None and not _holds(s, bp)):
            continue
        bp.hits += 1
        if bp.hits <= bp.after:
            continue
        what = event_text(e)
        if bp.log_only:
            s.records.append(f"#{bp.number} micro-op {s.position}: {what}")
            s.records_made += 1
            if len(s.records) >= 2 * RECORDS:  # a history: the newest RECORDS stay
                del s.records[:-RECORDS]
            continue
        if reason is None:
            reason = f"breakpoint {bp.number}: {what}"
        if bp.temporary:
            s.breakpoints.remove(bp)
    return reason


def _holds(s: Session, bp: Breakpoint) -> bool:
    try:
        return expr.holds(s, bp.cond or "")
    except CommandError:
        return False  # checked when set; a condition cannot go bad later


def watch_hit(s: Session) -> str | None:
    """The first watchpoint whose value changed; every one takes its new value."""
    reason = None
    c = s.system.machine.last_cpu
    assert c is not None  # (a step ran)
    cpu = c.number
    for w in s.watches:
        now = probe(s, w)
        if now != w.value:
            if reason is None:
                was, is_ = watch_text(s, w, w.value), watch_text(s, w, now)
                reason = f"watchpoint {w.expr}: {was} -> {is_} (cpu{cpu})"
            w.value = now
    return reason


def probe(s: Session, w: Watch) -> int | str:
    """What `w` watches, now: the word, or the line's MESI letter in its CPU's cache."""
    m = s.system.machine
    if w.cpu is None:
        return m.memory.read(w.paddr)
    return STATE_NAMES[m.coherence.state(w.cpu - 1, w.paddr)]


def watch_text(s: Session, w: Watch, value: int | str) -> str:
    """A watched value as the user reads it: a MESI letter, or the word in hex and what
    it stands for (`0x000a0401 = cli`, `0x2 = waiting`)."""
    if isinstance(value, str):
        return value
    said = meaning(s.system.kernel, w.paddr, value)
    return f"{value:#x}" + (f" = {said}" if said else "")


def event_text(e: Event) -> str:
    if e.kind == "phase":
        return f"{e.what} on cpu{e.cpu} ({e.thread})"
    if e.kind == "syscall":
        return f"syscall {e.what} by {e.thread} on cpu{e.cpu}"
    if e.kind == "ipi":
        return f"IPI {e.what} on cpu{e.cpu}"
    return f"{e.kind} by {e.thread} on cpu{e.cpu}"
