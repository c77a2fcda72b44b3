"""Going backwards: the state after any earlier input, re-created by replay (DESIGN.md §1).

The machine is deterministic, so the input log (inputs.py) replayed on a fresh
machine reproduces the state bit for bit. `goto` replays forward from where
the machine is, or goes back to the nearest fork checkpoint at or before the
target (checkpoints.py; an engine process only) or else to the start, then
forward. Phase starts are recorded as the machine runs (marks.py), so
`reverse-step` knows where to go without a search; `reverse-continue` finds
the stops behind it by a replay with the breakpoints armed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from kernel import query
from kernel.system import System
from l4tui import stops
from l4tui.breakpoints import Watch
from l4tui.grammar import CommandError
from l4tui.inputs import TIMED, Idle, Inject, LogEntry, OnCpu, SetPolicy, is_step, step_cpu
from l4tui.marks import PLUMBING
from machine.ops import Phase

if TYPE_CHECKING:
    from l4tui.session import Session


def steps_taken(s: Session) -> int:
    """Inputs in the log that a schedule also holds: steps, timed or on a CPU, and idle ones."""
    return sum(1 for x in s.log if is_step(x) or type(x) is Idle)


def goto(s: Session, position: int) -> str:
    """Re-create the state after `position` inputs: forward from where the machine is,
    or back to the nearest checkpoint at or before it (else to the start), then forward.

    No breakpoint or watchpoint fires while replaying. With fork checkpoints
    (an engine process, checkpoints.py), going back does not return here: the
    checkpoint's fork takes this session's debugger state and runs the command
    again, and its `goto` then replays forward from the checkpoint. A command
    must therefore change nothing before its `goto`.
    """
    position = max(0, min(position, s.position))
    applied, at = s.behind or (len(s.log), s.position)
    if position < at:
        if s.checkpoints is not None:
            s.checkpoints.restore(s, position)  # returns if none is at or before
        s.system = System(s.scenario, seed=s.seed)
        s.last_phase = {}
        applied = at = 0
    # The entries to replay; the log itself is cut in place (at 10^6 micro-ops a copy
    # of it is a tenth of a reverse command's time).
    log = s.log[applied:]
    del s.log[applied:]
    s.position, s.behind = at, None
    s.marks.truncate(at)
    _forward(s, log, position)
    if s.checkpoints is not None:
        s.checkpoints.truncate(s)  # those past the new end of history go
    for w in s.watches:
        w.value = stops.probe(s, w)
    if s.schedule is not None:
        s.plan_at = steps_taken(s)
    s.stop_reason = f"back at micro-op {s.position}"
    s.follow_stop()
    return s.stop_reason


def _forward(s: Session, log: list[LogEntry], position: int) -> None:
    """Replay `log` until `position` steps are taken, and the inputs given there."""
    i = 0
    while i < len(log) and s.position < position:
        if s.position >= s.checkpoint_at:
            s.checkpoints.take(s)  # type: ignore[union-attr]  # (set only with checkpoints)
        entry = log[i]
        if entry is TIMED:
            # A run of timed steps: the hot loop of every reverse command.
            j = i
            end = min(position, s.checkpoint_at)
            while j < len(log) and log[j] is TIMED and s.position + (j - i) < end:
                j += 1
            if not replay_timed(s, j - i):
                break
            i = j
            continue
        if not replay(s, entry):
            break
        i += 1
    while i < len(log) and not is_step(log[i]):
        replay(s, log[i])  # inputs given at this position, before the next step
        i += 1


def replay_timed(s: Session, n: int) -> bool:
    """`n` timed steps as `Session._step` would take them, without its per-step checks."""
    system, marks, k = s.system, s.marks, s.system.kernel
    m = system.machine
    advance = system.advance
    base = s.position
    for done in range(n):
        op = advance()
        if op is None:  # pragma: no cover - a logged step always runs again
            s.log.extend([TIMED] * done)
            s.position = base + done
            return False
        if type(op) is Phase:
            c = m.last_cpu
            assert c is not None  # (a step ran)
            name = query.current_name(k, c.number)
            marks.add(base + done + 1, op.label, c.number, name)
            if not op.label.startswith(PLUMBING):
                s.last_phase[name] = op.label
    s.log.extend([TIMED] * n)
    s.position = base + n
    return True


def replay(s: Session, entry: LogEntry) -> bool:
    """Apply one input again; False if a step found nothing to run."""
    if isinstance(entry, SetPolicy):
        s.set_policy(entry.policy)
    elif isinstance(entry, Idle):
        s._step(entry.cpu)
    elif isinstance(entry, Inject):
        s.inject(entry.thread, entry.op, list(entry.args))
    elif s._step(step_cpu(entry)) is None:  # a step, timed or on a CPU
        return False
    return True


def reverse_step(s: Session, n: int) -> str:
    """Back to just after the n-th phase label before the current position, or to the
    start if there are fewer; 0: here again (a replay to here)."""
    if n < 0:
        raise CommandError(f"N must be 0 or more, not {n}")
    if n == 0:
        return goto(s, s.position)
    earlier = s.marks.positions_before(s.position)
    target = s.marks.position(earlier - n) if earlier >= n else 0
    return goto(s, target)


def reverse_continue(s: Session) -> str:
    """Back to just before the last breakpoint or watchpoint hit behind us.

    Just before: a `stepi` then redoes the step that hit — for a watchpoint,
    the write that changed the field ("who last wrote this?").
    """
    here = s.position
    # A checkpoint's fork runs this command again (goto): the stops found here go with
    # the debugger state, so the replay from the start that finds them is not repeated.
    hits = s.__dict__.pop("stops_found", None)
    if hits is None:
        hits = stop_positions(s)
    earlier = [p for p in hits if p < here]
    s.stops_found = hits
    try:
        if not earlier:
            return f"{goto(s, 0)} (no earlier stop: the start)"
        reason = hits[earlier[-1]]
        goto(s, earlier[-1])
    finally:
        s.__dict__.pop("stops_found", None)
    s.stop_reason = f"back at micro-op {s.position}, just before {reason}"
    return s.stop_reason


def stop_positions(s: Session) -> dict[int, str]:
    """Where a breakpoint or watchpoint would stop, found by a replay.

    Keys are the positions just before the step that hit.
    """
    bps = [dataclasses.replace(b, hits=0, temporary=False) for b in s.breakpoints if b.enabled]
    watches = [Watch(w.expr, w.paddr, 0, w.cpu) for w in s.watches]
    if s.checkpoints is not None and not any(b.after for b in bps):
        # Backwards from the checkpoints, segment by segment (a count `after N` needs
        # the hits from the start: that one replays all).
        found = s.checkpoints.scan_stops(s, bps, watches)
        if found is not None:
            return found
    fresh = type(s)(s.scenario, s.seed)
    fresh.breakpoints, fresh.watches = bps, watches
    for w in fresh.watches:
        w.value = stops.probe(fresh, w)
    out: dict[int, str] = {}
    for entry in s.log:
        if entry is TIMED or isinstance(entry, OnCpu):
            op = fresh._step(step_cpu(entry))
            if op is None:
                break
            why = stops.stopped(fresh, op)
            if why is not None:
                out[fresh.position - 1] = why
        else:
            replay(fresh, entry)
    return out
