"""Fork checkpoints: sleeping copies of the engine process, to go back fast (issue 15, point 2).

The session's kernel paths are Python generators, which cannot be copied, and the
kernel reads Python state between its micro-ops; a snapshot of the data alone could not
revive them. A fork copies the whole process — generators included — in a few
milliseconds, sharing every page until one side writes it (gdb's `checkpoint`, rr).

So the engine process (engine.py) forks a checkpoint every `SPACING` micro-ops while it
runs, and where a command stopped once it has been idle for `IDLE` seconds (a person
reading the stop; not between the back-to-back slices of the TUI's live continue); each
checkpoint sleeps on its control pipe. To go back to
position P, `Session.goto` asks `restore`: the engine E sends its debugger state (all of
the Session but the machine: `Session.debugger_state`) and the request it is serving to
the checkpoint C nearest at or before P, kills the checkpoints after C, and exits. C
forks G, and goes back to sleep; G raises `Restored` up its stack — C's stack, frozen
where C was taken — to the engine loop, which takes the debugger state over
(`Session.take_over`) and runs the request again: its `goto` now replays forward from C,
fewer than `SPACING` micro-ops. G inherited the control pipes of the checkpoints before C
and keeps those E still had.

reverse-continue first finds the last stop behind: a scout forked from each checkpoint,
newest first, replays its segment with the breakpoints and watchpoints. So that going
there does not replay the segment a second time, the scout forks every `KEEPER_EVERY`
micro-ops and leaves the newest fork at or before its last stop asleep: the keeper, to
which the `goto` hands the session as to a checkpoint (`scan_stops`, `_to_keeper`).

Every process ends with the front end: each selects on the lifeline pipe, whose write end
only the front end holds, and leaves at its EOF. SIGCHLD is ignored in the engine and the
checkpoints, so none is left a zombie; checkpoints ignore SIGINT (the front end signals
the engine alone). Before each fork `gc.freeze()` moves every object to the permanent
generation, so the engine's cyclic collector does not write to (and un-share) every page.

Memory: a checkpoint costs the pages the engine wrote since — refcounts make that the
engine's working set between two checkpoints. At most `KEEP` are kept: past that, the one
whose removal leaves the smallest gap goes (never the first or the newest), so they stay
spread evenly over the history (tests/test_checkpoints.py, `l4tui bench debugger`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from l4tui import history, stops
from l4tui.inputs import is_step, step_cpu

try:
    import fcntl
except ImportError:  # pragma: no cover - no fcntl: no fork either
    fcntl = None  # type: ignore[assignment]

try:
    import resource
except ImportError:  # pragma: no cover - no resource module: no fork either
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from l4tui.session import Session

SPACING = 15_000  # micro-ops between checkpoints: replay runs 130,000-260,000 a second here
AT_REST = 2_500  # a command's stop gets a checkpoint if the last is at least this far back
IDLE = 0.05  # seconds without a request before the engine takes that checkpoint
SCOUT_WAIT = 600.0  # seconds a scout may take to replay its segment
KEEPER_EVERY = 2_500  # micro-ops between a scout's forks (a keeper: see `scan_stops`)
NEVER = 1 << 62
KEEP = 40  # checkpoints kept (each costs the pages the engine wrote since: ~3-4 MB)
NEAR = 64 * SPACING  # thinning spreads them out a little more far back than near the newest
# A served student's session (`l4tui serve`, `lab --confine`): a server runs many, so each
# keeps fewer (PSS bound at 10^6 micro-ops: `l4tui bench debugger`, the module docstring).
SERVED_SPACING = SPACING
SERVED_KEEP = 12


def wide_pipe() -> tuple[int, int]:
    """A pipe holding up to 1 MB (Linux; elsewhere the default): a restore sends the log
    and marks after the checkpoint, and on a busy host each refill of a 64 kB pipe waits
    for the reader to be scheduled."""
    r, w = os.pipe()
    size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(w, size, 1 << 20)
    return r, w


def _end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.kill(pid, signal.SIGKILL)


@dataclass(slots=True)
class Checkpoint:
    """A sleeping fork: where its machine is, its pid, and the write end of its control pipe."""

    position: int
    applied: int  # log entries its machine has applied
    pid: int
    ctl: Connection  # its control pipe's write end


class Restored(BaseException):
    """Raised in a checkpoint's fork that is to become the engine: up to the engine loop
    (a BaseException, so no `except Exception` of a command on the way catches it)."""

    def __init__(self, state: dict[str, Any], request: Any) -> None:
        super().__init__("restored")
        self.state, self.request = state, request


class Checkpoints:
    """The checkpoints of one engine process (see the module docstring)."""

    def __init__(self, lifeline: int, spacing: int = SPACING, keep: int = KEEP) -> None:
        self.lifeline = lifeline  # read end: EOF once the front end is gone
        self.spacing, self.keep = spacing, keep
        self.list: list[Checkpoint] = []  # by position
        self.generation = 0  # the session history they belong to (Session.generation)
        self.request: Any = None  # the request being served: sent along with a restore
        self.taken = 0  # how many ever taken (the bench counts them)
        # Scouts (reverse-continue) answer here: made before any checkpoint, so every
        # checkpoint, and every engine after a handover, holds both ends.
        scout_r, scout_w = os.pipe()
        self.scouts = Connection(scout_r, writable=False)
        self.scout_w = scout_w
        # The keeper a scout left (`scan_stops`) listens on a pipe of its own, made here
        # for the same reason; only the engine writes it, only the one keeper reads it.
        keeper_r, keeper_w = wide_pipe()
        self.keeper_r = keeper_r
        self.keeper_ctl = Connection(keeper_w, readable=False)
        self.keeper: Checkpoint | None = None
        # What this process took the session over from, and where ("checkpoint"/"keeper",
        # position): None in the first engine (tests and `info` read it).
        self.took_over: tuple[str, int] | None = None
        # CPU seconds the engines before this one spent, and the limit the first had (see
        # `carry`): every later engine is a fork of a fork of it and inherits this number.
        self.cpu_before = 0.0
        self.cpu_budget = -1 if resource is None else resource.getrlimit(resource.RLIMIT_CPU)[1]

    def cpu_spent(self) -> float:
        """CPU seconds the session's engines have used: the ones before this one, and this
        one (what a handover sends along: `restore`, `_to_keeper`)."""
        if resource is None:  # pragma: no cover
            return self.cpu_before
        own = resource.getrusage(resource.RUSAGE_SELF)
        return self.cpu_before + own.ru_utime + own.ru_stime

    def carry(self, spent: float) -> None:
        """Take over the CPU the engines before this one used: a served session's CPU limit
        (RLIMIT_CPU, issue 14) counts per process, and a fork starts at zero, so without
        this each handover would give a student the whole budget again. The limit is
        lowered to what is left (at least a second: the kernel's SIGXCPU then ends it)."""
        self.cpu_before = spent
        if resource is None or sys.platform == "win32":  # pragma: no cover
            return
        if self.cpu_budget in (-1, resource.RLIM_INFINITY):
            return
        left = max(1, int(self.cpu_budget - spent))
        soft = resource.getrlimit(resource.RLIMIT_CPU)[0]
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft, left), left))

    def attach(self, session: Session) -> None:
        session.checkpoints = self
        session.checkpoint_at = session.position  # the first: where the session is now

    # --- taking ------------------------------------------------------------------------

    def _same_history(self, session: Session) -> bool:
        if session.generation != self.generation:
            self.reset()  # a load or relayout: another history, none of them is of it
            self.generation = session.generation
            return False
        return True

    def take(self, session: Session) -> None:
        """Fork a checkpoint here (the machine at the end of the log). Returns in the engine;
        in the checkpoint it sleeps, and in a fork of it that takes over raises `Restored`."""
        self._same_history(session)
        session.checkpoint_at = session.position + self.spacing
        if session.behind is not None or (self.list and self.list[-1].position >= session.position):
            return
        gc.freeze()  # see the module docstring
        r, w = wide_pipe()
        pid = os.fork()
        if pid == 0:
            self._sleep(session, r, w)  # never returns: exits, or raises Restored in a fork
        os.close(r)
        self.list.append(
            Checkpoint(session.position, len(session.log), pid, Connection(w, readable=False))
        )
        self.taken += 1
        self._thin()

    def wants_rest(self, session: Session) -> bool:
        """Whether the engine, idle where a command stopped, should take a checkpoint there:
        none is close behind, or the history is another (a load)."""
        if session.checkpoints is not self:
            self.attach(session)  # a loaded session (`load` keeps the Session object)
        if session.behind is not None:
            return False
        last = self.list[-1].position if self.list else -self.spacing
        return session.generation != self.generation or session.position - last >= AT_REST

    def at_rest(self, session: Session) -> None:
        """Where a command stopped, once no request came for `IDLE` seconds (so the slices
        of the TUI's live continue, back to back, take none): a checkpoint."""
        if self.wants_rest(session):
            self.take(session)

    def _thin(self) -> None:
        """Past `keep`, drop the checkpoint whose removal leaves the smallest gap — measured
        against its distance from the newest plus `NEAR`, so far back they spread out a
        little more — never the first nor the two newest (reverse-stepi from a stop that
        just got a checkpoint goes to the one before)."""
        while len(self.list) > self.keep:
            cps = self.list
            head = cps[-1].position
            score = [
                (cps[i + 1].position - cps[i - 1].position) / (head - cps[i].position + NEAR)
                for i in range(1, len(cps) - 2)  # the two newest stay: reverse from the head
            ]
            i = 1 + score.index(min(score))
            self._kill(cps.pop(i))

    def _kill(self, cp: Checkpoint) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(cp.pid, signal.SIGKILL)
        cp.ctl.close()

    def reset(self) -> None:
        self.drop_keeper()
        while self.list:
            self._kill(self.list.pop())

    def drop_keeper(self) -> None:
        """The keeper of the last scan, unused (the engine calls this after each request)."""
        if self.keeper is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.keeper.pid, signal.SIGKILL)
            self.keeper = None

    def truncate(self, session: Session) -> None:
        """History now ends at the session's position: the checkpoints after it go."""
        while self.list and (
            self.list[-1].position > session.position or self.list[-1].applied > len(session.log)
        ):
            self._kill(self.list.pop())

    # --- going back ----------------------------------------------------------------------

    def restore(self, session: Session, position: int) -> None:
        """Hand the session to the checkpoint nearest at or before `position` (this process
        then exits); returns only if there is none (the caller replays from the start)."""
        if not self._same_history(session):
            return
        self._to_keeper(session, position)  # returns if it is not the nearest
        while True:
            at = [c for c in self.list if c.position <= position]
            if not at:
                return
            cp = at[-1]
            state = session.debugger_state()
            state["cpu_spent"] = self.cpu_spent()
            state["log"] = session.log[cp.applied :]  # it has the rest already
            state["marks"] = session.marks.since(cp.position)
            keep = [c.pid for c in at]
            try:
                cp.ctl.send(("restore", state, self.request, keep))
            except OSError:  # pragma: no cover - it died (killed from outside): the next
                self.list.remove(cp)
                continue
            break
        for c in self.list:
            if c.position > cp.position:
                self._kill(c)
        os._exit(0)  # the checkpoint's fork answers the request

    def _to_keeper(self, session: Session, position: int) -> None:
        """Hand the session to the last scan's keeper (this process then exits) if it is at
        or before `position` and nearer than every checkpoint; else it goes."""
        kp, self.keeper = self.keeper, None
        if kp is None:
            return
        at = [c for c in self.list if c.position <= position]
        if kp.position <= position and (not at or at[-1].position < kp.position):
            state = session.debugger_state()
            state["cpu_spent"] = self.cpu_spent()
            state["log"] = session.log[kp.applied :]
            state["marks"] = session.marks.since(kp.position)
            try:
                self.keeper_ctl.send(("take", kp.pid, state, self.request, [c.pid for c in at]))
            except OSError:  # pragma: no cover - the pipe is ours; a dead keeper reads nothing
                pass
            else:
                for c in self.list:
                    if c.position > kp.position:
                        self._kill(c)
                os._exit(0)  # the keeper answers the request
        with contextlib.suppress(ProcessLookupError):
            os.kill(kp.pid, signal.SIGKILL)

    # --- finding stops behind (reverse-continue) ------------------------------------------

    def scan_stops(self, session: Session, breakpoints: list[Any], watches: list[Any]) -> Any:
        """Where a breakpoint or watchpoint would have stopped, found segment by segment
        backwards: a scout forked from each checkpoint replays to the next (or to here) and
        reports; the first segment with a stop ends the search. The stops of that segment
        (keys: the position just before the step that hit), {} if none, None if it cannot
        (the caller replays from the start).

        So that the `goto` to the last stop found does not replay the segment again, the
        scout forks every `KEEPER_EVERY` micro-ops, and keeps the newest fork at or before
        its last stop (the others it kills): that keeper sleeps, and `restore` hands the
        session to it as to a checkpoint when it is the nearest (`_to_keeper`); the goto
        then replays fewer than `KEEPER_EVERY` micro-ops."""
        self.drop_keeper()
        if session.behind is not None or not self._same_history(session):
            return None
        cps = [c for c in self.list if c.position < session.position]
        if not cps or cps[0].position != 0:
            return None
        for i in range(len(cps) - 1, -1, -1):
            cp = cps[i]
            end, stop = (
                (cps[i + 1].position, cps[i + 1].applied)
                if i + 1 < len(cps)
                else (session.position, len(session.log))
            )
            try:
                cp.ctl.send(("scout", breakpoints, watches, session.log[cp.applied : stop], end))
            except OSError:  # pragma: no cover - a checkpoint killed from outside
                return None
            if not self.scouts.poll(SCOUT_WAIT):
                return None  # pragma: no cover - a scout that died
            found = self.scouts.recv()
            if found is None:
                return None  # the scout failed
            hits, keeper = found
            if keeper is not None:
                position, applied, pid = keeper
                self.keeper = Checkpoint(position, applied, pid, self.keeper_ctl)
            if hits:
                return hits
        return {}

    def _scout(
        self, session: Session, breakpoints: Any, watches: Any, log: Any, end: int, w: int
    ) -> None:
        """In a fork of a checkpoint: replay `log` to position `end` with the breakpoints
        and watchpoints, and send where they stop, with the keeper it leaves (`scan_stops`:
        position, log entries applied, pid) or None. `w`: the checkpoint's control pipe's
        write end (a keeper that takes over lists the checkpoint with it)."""
        found: dict[int, str] = {}
        out: dict[int, str] | None = found
        base = (session.position, len(session.log), os.getppid(), w)  # the checkpoint's
        machine_side = (session.checkpoints, session.observer)
        newest: tuple[int, int, int] | None = None  # the scout's newest fork
        keeper: tuple[int, int, int] | None = None  # the newest at or before the last stop

        def fork_here() -> None:
            nonlocal newest
            if newest is not None and newest != keeper:
                _end(newest[2])
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                self._keep(session, machine_side, base)  # never returns but by Restored
            newest = (session.position, len(session.log), pid)

        try:
            session.checkpoints, session.checkpoint_at = None, NEVER
            session.schedule, session.observer = None, None
            session.breakpoints, session.watches = breakpoints, watches
            for w_ in watches:
                w_.value = stops.probe(session, w_)
            last_fork = session.position
            for entry in log:
                if session.position >= end:
                    break
                if is_step(entry):
                    if session.position - last_fork >= KEEPER_EVERY:
                        fork_here()
                        last_fork = session.position
                    op = session._step(step_cpu(entry))
                    if op is None:
                        break
                    why = stops.stopped(session, op)
                    if why is not None:
                        found[session.position - 1] = why
                        if newest is not None and keeper != newest:
                            if keeper is not None:
                                _end(keeper[2])
                            keeper = newest
                else:
                    history.replay(session, entry)
        except Exception:  # the engine then replays from the start itself
            out = None
        for fork in {newest, keeper} - {keeper if out else None, None}:
            if fork is not None:  # (None is taken out already; for the type checker)
                _end(fork[2])  # no stop after it, or the scan goes on: it is of no use
        try:
            reply = None if out is None else (out, keeper if out else None)
            Connection(self.scout_w, readable=False).send(reply)
        finally:
            os._exit(0)

    def _next_message(self, fd: int, conn: Connection) -> Any:
        """A sleeping process's next message on `fd`; it exits once the front end is gone
        (the lifeline's EOF) or its pipe closes."""
        ready, _, _ = select.select([fd, self.lifeline], [], [])
        if self.lifeline in ready:
            os._exit(0)
        try:
            return conn.recv()
        except (EOFError, OSError):
            os._exit(0)

    def _keep(self, session: Session, machine_side: tuple[Any, Any], base: Any) -> None:
        """A scout's fork, the keeper: sleep until the engine hands it the session (then raise
        `Restored` as a checkpoint's fork does) or the lifeline ends; killed if unused."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        conn = Connection(self.keeper_r, writable=False)
        while True:
            msg = self._next_message(self.keeper_r, conn)
            if msg[0] != "take" or msg[1] != os.getpid():
                os._exit(0)  # pragma: no cover - one keeper lives at a time
            _, _, state, request, keep = msg
            session.checkpoints, session.observer = machine_side
            position, applied, pid, w = base
            mine = Checkpoint(position, applied, pid, Connection(w, readable=False))
            self._adopt(session, state, keep, mine)
            self.took_over = ("keeper", session.position)
            raise Restored(state, request)

    def _adopt(
        self, session: Session, state: dict[str, Any], keep: list[int], mine: Checkpoint
    ) -> None:
        """In the process taking the session over (a checkpoint's fork, or a keeper): the
        checkpoints the engine kept, up to `mine`; the log and marks after this machine's
        position, added to its own in place; the machine stays behind, where it is."""
        for c in self.list:
            if c.pid not in keep:  # thinned by the engine since this one was taken
                c.ctl.close()
        self.list = [c for c in self.list if c.pid in keep]
        self.list.append(mine)
        session.checkpoint_at = session.position + self.spacing
        session.behind = (len(session.log), session.position)
        session.log.extend(state["log"])
        state["log"] = session.log
        session.marks.truncate(session.position)
        session.marks.extend(state["marks"])
        state["marks"] = session.marks

    def _sleep(self, session: Session, r: int, w: int) -> None:
        """A checkpoint's life: wait for a restore (fork the new engine) or the lifeline's end."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        conn = Connection(r, writable=False)
        while True:
            msg = self._next_message(r, conn)
            if msg[0] == "scout":
                if os.fork() == 0:
                    conn.close()
                    _, breakpoints, watches, log, end = msg
                    self._scout(session, breakpoints, watches, log, end, w)
                continue
            if msg[0] != "restore":
                os._exit(0)
            _, state, request, keep = msg
            if os.fork() != 0:
                continue  # this checkpoint sleeps on: it can be restored again
            # The fork: the new engine.
            conn.close()
            mine = Checkpoint(
                session.position, len(session.log), os.getppid(), Connection(w, readable=False)
            )
            self._adopt(session, state, keep, mine)
            self.took_over = ("checkpoint", session.position)
            raise Restored(state, request)
