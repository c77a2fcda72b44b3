"""The engine process: the session lives in a process of its own, driven over pipes (issue 15).

Fork checkpoints (checkpoints.py) need the session's machine in a process without
threads — the TUI has Textual's — whose forks can sleep and later take over. `start`
forks that process (twice, so the front end has no child to reap as engines come and go)
and returns a `RemoteSession`: what the front ends use of a `Session`, over a pipe.

- Methods are forwarded (`stepi`, `cont`, `goto`, `cpus()`, `threads()`, `set_focus`, …);
  their results are plain data (pickled).
- The attributes a front end reads all the time (`position`, `stop_reason`, the focus, the
  scenario) are mirrored from a status sent with every response; any other attribute is
  fetched, and setting one is forwarded.
- A view that takes the session first (`executor.outcome`, `views.render`, panes, the
  completer's data, …) runs where the session lives: `session.call(func, *args)` — for an
  in-process `Session`, a plain call.
- `interrupt()` signals the engine (its pid comes with each response): a running
  `continue` stops at the next micro-op, as Ctrl-C does in-process.

All engine generations (a restore hands the session to a checkpoint's fork) share the
request and response pipes; only the active one reads. Each process leaves when the
lifeline pipe, whose write end only the front end holds, reaches EOF: closing the client
or the front end's death ends them all.

Without `os.fork`, or with `L4TUI_ENGINE=inprocess`, `start` returns the `Session`
itself: going back replays from the start (`info checkpoints` says which).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from l4tui.checkpoints import IDLE, KEEP, SPACING, Checkpoints, Restored, wide_pipe
from l4tui.session import Session

MAXFD = 1 << 16  # fds above are closed in the engine too (os.closerange: one syscall)
GRACE = 5.0  # seconds a request may go unanswered with no engine alive (a handover is ms)
MIRRORED = (
    "position", "stop_reason", "focus_cpu", "focus_thread", "focus_pinned", "focus_via",
    "generation",
)  # fmt: skip


def available() -> bool:
    """Whether sessions run in an engine process here (fork exists, not opted out)."""
    return hasattr(os, "fork") and os.environ.get("L4TUI_ENGINE", "") != "inprocess"


def start(session: Session, spacing: int = SPACING, keep: int = KEEP) -> Session | RemoteSession:
    """`session` in an engine process, with checkpoints, or itself where there is no fork.

    Call before the front end starts threads (Textual): a fork copies only the caller's.
    `spacing` and `keep`: see checkpoints.py (tests take them small).
    """
    if not available():
        return session
    req_r, req_w = wide_pipe()
    resp_r, resp_w = wide_pipe()
    life_r, life_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # Only our three ends stay open: another session's lifeline inherited here
            # would keep that session's engine alive after its client closed.
            low = 3
            for fd in sorted((req_r, resp_w, life_r)):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, MAXFD)
            # Nor the front end's input and output: a reader of its stdout waits for EOF.
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)
            os.setpgid(0, 0)  # the terminal's Ctrl-C is the front end's to pass on
            if os.fork() == 0:
                _serve(session, req_r, resp_w, life_r, Checkpoints(life_r, spacing, keep))
            code = 0
        finally:
            os._exit(code)
    for fd in (req_r, resp_w, life_r):
        os.close(fd)
    os.waitpid(pid, 0)  # the intermediate: the engine is nobody's child to reap
    return RemoteSession(req_w, resp_r, life_w)


# --- the engine side -------------------------------------------------------------------------


def _status(session: Session, scenario: bool) -> dict[str, Any]:
    out = {name: getattr(session, name) for name in MIRRORED}
    out["pid"] = os.getpid()
    if scenario:
        out["scenario"] = session.scenario
    return out


def _become_engine(session: Session) -> None:
    signal.signal(signal.SIGINT, lambda signum, frame: session.interrupt())
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # checkpoints are reaped by the kernel
    for name in ("SIGWINCH", "SIGTSTP", "SIGCONT"):
        if hasattr(signal, name):  # the front end's handlers are not the engine's
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def _serve(session: Session, req_fd: int, resp_fd: int, life_fd: int, ck: Checkpoints) -> None:
    """The engine's loop: a request, its answer, and a checkpoint where the command stopped."""
    code = 0
    try:
        _become_engine(session)
        req = Connection(req_fd, writable=False)
        resp = Connection(resp_fd, readable=False)
        ck.attach(session)
        ck.generation = session.generation
        resp.send(("ok", None, _status(session, True)))
        pending: Any = None
        sent = session.generation
        while True:
            try:
                if pending is None:
                    wait = IDLE if ck.wants_rest(session) else None
                    ready, _, _ = select.select([req_fd, life_fd], [], [], wait)
                    if not ready:  # idle where a command stopped: a checkpoint here
                        ck.at_rest(session)
                        continue
                    if life_fd in ready:
                        break
                    try:
                        request = req.recv()
                    except (EOFError, OSError):
                        break
                else:
                    request, pending = pending, None
                ck.request = request
                kind, result = _handle(session, request, ck)
                ck.drop_keeper()  # a reverse-continue's that its goto did not take
            except Restored as r:  # this process is a checkpoint's fork taking over
                _become_engine(session)
                ck.carry(r.state.pop("cpu_spent", 0.0))
                session.take_over(r.state)
                resp.send(("handover", None, {"pid": os.getpid()}))  # signal me from now on
                pending = r.request
                continue
            reply = (kind, result, _status(session, sent != session.generation))
            sent = session.generation
            try:
                data = pickle.dumps(reply)
            except Exception as e:  # a result that is not plain data is a bug
                data = pickle.dumps(("err", RuntimeError(f"not plain data: {e}"), reply[2]))
            resp.send_bytes(data)
    except BaseException:  # the engine never returns into its caller's code
        code = 1
        traceback.print_exc()
    finally:
        os._exit(code)


def _handle(session: Session, request: Any, ck: Checkpoints) -> tuple[str, Any]:
    kind, what, args, kwargs = request
    try:
        if kind == "call":
            return "ok", what(session, *args, **kwargs)
        if kind == "method":
            return "ok", getattr(session, what)(*args, **kwargs)
        if kind == "get":
            return "ok", getattr(session, what)
        if kind == "set":
            setattr(session, what, args[0])
            return "ok", None
        if kind == "checkpoints":
            return "ok", [(c.position, c.pid) for c in ck.list]
        raise ValueError(f"unknown request {kind!r}")
    except Exception as e:  # sent back and raised in the front end
        try:
            pickle.dumps(e)
        except Exception:
            e = RuntimeError(f"{type(e).__name__}: {e}")
        return "err", e


# --- the front end's side ----------------------------------------------------------------------


class EngineGone(RuntimeError):
    """The engine process ended (killed from outside, or a bug in it)."""


class RemoteSession:
    """A `Session` in an engine process, as the front ends use one (see the module docstring)."""

    def __init__(self, req_fd: int, resp_fd: int, life_fd: int) -> None:
        d = self.__dict__
        d["_req"] = Connection(req_fd, readable=False)
        d["_resp"] = Connection(resp_fd, writable=False)
        d["_life"] = life_fd
        d["_status"] = {}
        d["_closed"] = False
        # One request and its answer at a time: the TUI waits for a live continue's slice in
        # a thread (so it paints while the engine runs), and a key handler that asks the
        # session meanwhile waits here for that slice's answer.
        d["_lock"] = threading.RLock()
        self._receive()

    def _receive(self) -> Any:
        """The answer; meanwhile, a handover names the engine that will give it. The
        checkpoints hold the pipes too, so a killed engine shows as no answer while its
        pid is gone: after `GRACE` seconds of that, `EngineGone`."""
        since: float | None = None
        while True:
            try:
                if not self._resp.poll(0.1):
                    if self._engine_alive():
                        since = None
                    elif since is None:
                        since = time.monotonic()
                    elif time.monotonic() - since > GRACE:
                        raise EngineGone("the engine process has ended")
                    continue
                kind, result, status = self._resp.recv()
            except (EOFError, OSError) as e:
                raise EngineGone(f"the engine process has ended ({e or 'EOF'})") from None
            self._status.update(status)
            if kind == "handover":
                since = None
                continue
            if kind == "err":
                raise result
            return result

    def _engine_alive(self) -> bool:
        try:
            os.kill(self._status["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - a reused pid: not ours
            return False
        return True

    def _ask(self, kind: str, what: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        with self._lock:
            if self._closed:
                raise EngineGone("the session is closed")
            try:
                self._req.send((kind, what, args, kwargs or {}))
            except OSError as e:
                raise EngineGone(f"the engine process has ended ({e})") from None
            return self._receive()

    # --- what front ends call ---

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`func(session, *args)` in the engine (func: a module-level function)."""
        return self._ask("call", func, args, kwargs)

    def interrupt(self) -> None:
        """Stop a running command at the next micro-op (safe from a signal handler)."""
        pid = self._status.get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):  # between two engines
                os.kill(pid, signal.SIGINT)

    def checkpoint_list(self) -> list[tuple[int, int]]:
        """(position, pid) of each checkpoint, oldest first."""
        return self._ask("checkpoints", None)

    @property
    def engine_pid(self) -> int:
        return self._status["pid"]

    def close(self) -> None:
        """End the engine and its checkpoints (they leave at the lifeline's EOF)."""
        if self._closed:
            return
        self.__dict__["_closed"] = True
        for fd in (self._life,):
            os.close(fd)
        self._req.close()
        self._resp.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        status = self.__dict__["_status"]
        if name in status:
            return status[name]
        if callable(getattr(Session, name, None)):
            return lambda *args, **kwargs: self._ask("method", name, args, kwargs)
        return self._ask("get", name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._ask("set", name, (value,))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at exit: nothing to report to
            self.close()
