"""The race explorer's pool on a Dask cluster: `explore --cluster ADDRESS` (issue 15, point 7).

A larger preemption bound is more schedules than one machine runs in
reasonable time. The explorer (`l4tui.explore`) works level by level: each
level is a list of *units* — one parent schedule and the child schedules that
branch off its path — and a pool runs them, returning one `Run` per child in
the units' order. `DaskPool` is that pool on an existing Dask `distributed`
cluster: one task per unit (`run_unit(job, unit)` on a worker, which replays
the parent's path once and forks at each child's branch point, as on one
machine), the `Job` (scenario text, seed, limits) shipped once per level, and
the results handed back in unit order while a bounded number of further units
keep every worker thread busy. The explorer decides what to run and in which
order, so the report does not depend on the pool (the same first failure, the
same schedule and state counts as `--jobs 1`).

**Why Dask, not Ray.** Dask `distributed` is pure Python (with `dask`, about
36 MB installed, no compiled code of its own); a scheduler is one process at a
plain `tcp://HOST:PORT` (`dask scheduler`, then `dask worker ADDRESS` on each
host); `LocalCluster` runs the same thing on one host for tests. Ray 2.60 is a
79 MB platform wheel (202 MB unpacked, with a C++ raylet and GCS server as
separate daemons and a Java jar) for one Python version and platform each, and
its cluster is started with its own runtime (`ray start --head`). The
explorer needs none of Ray's actors, object store or autoscaler: only
"run this function on that data somewhere, and tell me when it died".

**Workers** must run the same l4tui as the client (`pip install
'l4tui[cluster]'` on each host), since the same schedule could end otherwise
on other code: each worker is asked for its digest of the simulator's code
(`code_digest`) when the pool connects, and a task carries the client's, so a
worker that joins later with other code (or a restarted one, on a tree edited
since) refuses it. Either is one line naming the worker or the unit. A worker process that dies
(killed, out of memory) loses its tasks, which the scheduler runs again
elsewhere (Dask's `distributed.scheduler.allowed-failures`, 3 by default,
then `KilledWorker`); a task that raises ends the exploration with one line
naming its unit.

**Forking in a worker.** A Dask worker has threads (its event loop and its
task threads), and `fork()` in a threaded process copies only the calling
thread: a lock another thread held stays held in the child. `run_unit`'s
child processes only simulate (pure Python over the machine's own data,
nothing imported late, no logging), write their `Run` to a pipe and leave by
`os._exit`, so they take no lock of the worker's threads, run no `atexit` or
finaliser, and close no connection of the parent's (their copies of its
sockets close without a shutdown). CPython re-creates its own locks (the GIL,
the import lock) after a fork, and glibc its allocator's. So `fork=True` is
used in workers too (`DaskPool(fork=False)` replays each child from the start
instead, with the same results; tests/test_cluster.py makes the workers fork
at every branch point and compares). Python 3.12 and later warn
(DeprecationWarning) at any fork of a threaded process, for the locks of the
other threads; none is taken in the child. A worker runs one unit per thread
and a unit one child at a time: one single-threaded worker process per core
(`dask worker ADDRESS --nworkers -1 --nthreads 1`) uses every core.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kernel
import l4tui
import machine
from l4tui.explore import run_unit
from machine.errors import ConfigError, MachineError

if TYPE_CHECKING:
    from distributed import Client, Future

    from l4tui.explore import Job, Run, Unit

    Task = Callable[[Job, Unit, bool], list[Run]]

DEFAULT_PORT = 8786  # `dask scheduler`'s default port
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler and to see a first worker
WINDOW = 4  # units submitted ahead, per worker thread: the cluster never waits for the client
POLL = 2.0  # seconds between looks at the cluster while a unit is running
NO_WORKERS = 60.0  # seconds with no worker at all before the exploration is given up
EXTRA = "--cluster needs the cluster extra: pip install 'l4tui[cluster]'"


class ClusterError(ConfigError):
    """The cluster cannot run the exploration; the CLI prints one line and exits 2."""


HOST = re.compile(r"[A-Za-z0-9_.-]+")  # a name or an IPv4 address
HOST6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")  # an IPv6 address, with a zone


def parse_address(address: str) -> tuple[str, str, int]:
    """`tcp://HOST:PORT`, `HOST:PORT` or `HOST` (port 8786) -> (the scheduler's URL, host, port)."""
    quoted = _quoted(address)
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    if sep and scheme != "tcp":
        raise ClusterError(f"--cluster {quoted}: only tcp:// scheduler addresses are supported")
    if rest.startswith("["):  # [IPv6]:PORT
        host, close, tail = rest[1:].partition("]")
        port_text = tail[1:]
        good = bool(close) and HOST6.fullmatch(host) is not None and tail[:1] in ("", ":")
    else:
        host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
        good = HOST.fullmatch(host) is not None
    if not good or len(host) > 253 or (":" in rest and not port_text and not rest.startswith("[")):
        raise ClusterError(f"--cluster {quoted}: expected tcp://HOST:PORT")
    if not port_text:
        port = DEFAULT_PORT
    elif (
        port_text.isascii()
        and port_text.isdigit()
        and len(port_text) <= 5
        and 0 < int(port_text) < 65536
    ):
        port = int(port_text)
    else:
        raise ClusterError(f"--cluster {quoted}: the port must be a number from 1 to 65535")
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port}", host, port


def _quoted(text: str, most: int = 60) -> str:
    """An address as an error line shows it: printable, on one line, at most `most` characters."""
    if text.isprintable() and len(text) <= most and text.strip() == text and text:
        return text
    shown = repr(text[:most])
    return shown if len(shown) <= most else shown[: most - 3] + "..."


def _reach(address: str, host: str, port: int, timeout: float) -> None:
    """Refuse at once an address where nothing listens (Dask would retry until its timeout)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror as e:
        raise ClusterError(f"--cluster {address}: unknown host {host!r} ({e.strerror})") from None
    except TimeoutError:
        raise ClusterError(
            f"--cluster {address}: no answer from the scheduler within {timeout:g} s"
        ) from None
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ClusterError(f"--cluster {address}: cannot reach the scheduler: {why}") from None


def _identify(address: str, timeout: float) -> dict[str, Any]:
    """Ask whatever listens at `address` what it is, within `timeout` seconds.

    Dask's Client bounds its connect but not the handshake after it: a
    listener that never answers (not a Dask server) would hold it forever.
    """
    from distributed.core import rpc  # noqa: PLC0415 - the optional cluster extra

    async def ask() -> dict[str, Any]:
        async with rpc(address, timeout=timeout) as scheduler:
            return await scheduler.identity()

    try:
        who = asyncio.run(asyncio.wait_for(ask(), timeout))
    except TimeoutError:
        raise ClusterError(
            f"--cluster {address}: no Dask scheduler answered within {timeout:g} s"
        ) from None
    except OSError as e:  # distributed's CommClosedError too
        raise ClusterError(
            f"--cluster {address}: no Dask scheduler there ({_one_line(e) or type(e).__name__})"
        ) from None
    except Exception:  # a reply that does not decode: another protocol
        raise ClusterError(
            f"--cluster {address}: what listens there does not speak Dask's protocol"
        ) from None
    if not isinstance(who, dict) or who.get("type") != "Scheduler":
        kind = who.get("type") if isinstance(who, dict) else type(who).__name__
        raise ClusterError(f"--cluster {address}: that is a Dask {kind}, not the scheduler")
    return who


@cache
def code_digest() -> str:
    """A digest of the code a schedule's outcome depends on: the machine (with its
    profiles), the kernel and the explorer. Computed once per process, when first
    asked (on a worker: its first task), so it names the code that process loaded."""
    h = hashlib.sha256()
    for package, only in ((machine, ""), (kernel, ""), (l4tui, "explore")):
        assert package.__file__ is not None  # a regular package (its __init__.py), not a namespace
        root = Path(package.__file__).parent
        files = [
            p
            for p in root.rglob("*")
            if p.suffix in (".py", ".yaml")
            and p.relative_to(root).parts[0].startswith(only)
            and p.is_file()
        ]
        for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            h.update(f"{package.__name__}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:16]


def _worker_digest() -> str:
    """`code_digest` as a worker computes it (a name of its own: tests change the client's)."""
    return code_digest()


class WorkerMismatch(Exception):
    """Raised on a worker whose l4tui differs from the client's."""


def run_on_worker(task: Task, job: Job, unit: Unit, digest: str, fork: bool) -> list[Run]:
    """One Dask task: the unit's runs, if this worker runs the client's code."""
    here = code_digest()
    if here != digest:
        raise WorkerMismatch(
            f"this worker runs another l4tui (code {here}, the client's is {digest}): "
            "install the same l4tui on every worker"
        )
    return task(job, unit, fork)


def _run_unit(job: Job, unit: Unit, fork: bool) -> list[Run]:
    return run_unit(job, unit, fork=fork)


def _import_distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415 - the optional cluster extra, asked for when used
    except ImportError:
        raise ClusterError(EXTRA) from None
    return distributed


def _client_class() -> type[Client]:
    _import_distributed()  # the extra's one-line error if it is missing
    from distributed import Client  # noqa: PLC0415 - the optional cluster extra

    class _Client(Client):
        """A Client that, when it cannot connect, is left closed instead of closing at exit.

        A Client whose constructor failed closes itself when collected, and that
        close waits for a scheduler that never answered (twice the connect
        timeout) and prints a traceback.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                self.status = "closed"
                with suppress(Exception):  # the loop may never have started
                    self._loop_runner.stop()
                raise

    return _Client


class DaskPool:
    """The explorer's pool (`l4tui.explore.Pool`) on an existing Dask cluster.

    `jobs` is the cluster's worker threads when it connected (or `jobs` if
    given). `close()` cancels what is still running and disconnects; it never
    stops the cluster, which it did not start.
    """

    def __init__(
        self,
        address: str,
        jobs: int | None = None,
        *,
        timeout: float = CONNECT_TIMEOUT,
        fork: bool | None = None,
        task: Task | None = None,
    ) -> None:
        self.address, host, port = parse_address(address)
        if jobs is not None and jobs < 1:
            raise ClusterError(f"--cluster {self.address}: jobs must be at least 1")
        _import_distributed()  # the extra's one-line error before anything else
        self._fork = hasattr(os, "fork") if fork is None else fork
        self._task: Task = task or _run_unit
        self._digest = code_digest()
        self._job: Job | None = None
        self._job_future: Future | None = None
        self._outstanding: set[Future] = set()
        self._seq = 0
        self._client: Client | None = None
        self._levels = _quiet()
        try:
            self._connect(host, port, timeout)
        except KeyboardInterrupt:  # Ctrl-C while waiting for the cluster: nothing ran yet
            self.close()
            raise ClusterError(f"--cluster {self.address}: interrupted while connecting") from None
        except BaseException:
            self.close()
            raise
        self.jobs = jobs or max(1, self._threads())

    def _connect(self, host: str, port: int, timeout: float) -> None:
        _reach(self.address, host, port, timeout)
        _identify(self.address, timeout)
        try:
            self._client = _client_class()(self.address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"--cluster {self.address}: no Dask scheduler there ({e})") from None
        try:
            self._client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(
                f"--cluster {self.address}: the scheduler has no worker "
                f"(none joined within {timeout:g} s; start `dask worker {self.address}`)"
            ) from None
        self._check_workers()

    @property
    def _connected(self) -> Client:
        """The client, between `_connect` and `close` (the only time the pool is used)."""
        if self._client is None:
            raise ClusterError(f"--cluster {self.address}: the pool is closed")
        return self._client

    def _check_workers(self) -> None:
        """Each worker there now imports l4tui and runs the client's code (later ones: per task)."""
        try:
            digests = self._connected.run(_worker_digest, on_error="return")
        except Exception as e:
            raise ClusterError(
                f"--cluster {self.address}: cannot ask the workers for their l4tui: "
                f"{type(e).__name__}: {_one_line(e)}"
            ) from None
        for worker, digest in sorted(digests.items()):
            if isinstance(digest, BaseException):
                raise ClusterError(
                    f"--cluster {self.address}: worker {worker} cannot run l4tui "
                    f"({type(digest).__name__}: {_one_line(digest)}): "
                    "install the same l4tui, pip install 'l4tui[cluster]', on every worker host"
                )
            if digest != self._digest:
                raise ClusterError(
                    f"--cluster {self.address}: worker {worker} runs another l4tui "
                    f"(code {digest}, here {self._digest}): "
                    "install the same l4tui on every worker host"
                )

    def _threads(self) -> int:
        return sum(self._connected.nthreads().values())

    def _ship(self, job: Job) -> Future:
        """The job on every worker, once: tasks name it instead of carrying it."""
        if self._job_future is None or self._job != job:
            if self._job_future is not None:
                self._job_future.release()
                self._job_future = self._job = None
            try:
                self._job_future = self._connected.scatter(job, broadcast=True, hash=False)
            except Exception as e:  # a worker that cannot unpickle it: one without l4tui
                raise ClusterError(
                    f"--cluster {self.address}: cannot send the scenario to the workers "
                    f"({type(e).__name__}: {_one_line(e)}): is l4tui installed on every "
                    "worker host? pip install 'l4tui[cluster]'"
                ) from None
            self._job = job
        return self._job_future

    def map(self, job: Job, units: Sequence[Unit]) -> Iterator[list[Run]]:
        """Each unit's runs, in the units' order; at most WINDOW units per thread in flight."""
        units = list(units)
        if not units:
            return
        job_future = self._ship(job)
        window = WINDOW * max(1, self._threads(), self.jobs)
        batch = uuid.uuid4().hex[:12]
        queue: deque[tuple[int, Future]] = deque()
        submitted = 0
        try:
            while queue or submitted < len(units):
                while submitted < len(units) and len(queue) < window:
                    self._seq += 1
                    future = self._connected.submit(
                        run_on_worker,
                        self._task,
                        job_future,
                        units[submitted],
                        self._digest,
                        self._fork,
                        key=f"l4tui-unit-{batch}-{submitted}",
                        priority=-self._seq,  # earlier units first: results are taken in order
                    )
                    self._outstanding.add(future)
                    queue.append((submitted, future))
                    submitted += 1
                index, future = queue.popleft()
                runs = self._result(index, units[index], future)
                self._outstanding.discard(future)
                future.release()
                yield runs
        finally:
            rest = [f for _, f in queue]
            if rest:
                self._cancel(rest)

    def _result(self, index: int, unit: Unit, future: Future) -> list[Run]:
        """The unit's runs; one ClusterError line if the cluster could not produce them."""
        distributed = _import_distributed()
        idle = 0.0
        while True:
            try:
                runs = future.result(timeout=POLL)
                break
            except TimeoutError:  # still running: look at the cluster, then wait again
                pass
            except (MachineError, ConfigError):
                raise  # the simulation's own errors, as `--jobs` raises them
            except distributed.KilledWorker:
                raise ClusterError(
                    f"--cluster {self.address}: the workers running {_name(index, unit)} "
                    "died, again and again (Dask gave it up after its allowed failures)"
                ) from None
            except CancelledError:  # distributed's FutureCancelledError too
                if self._connected.status != "running":
                    raise ClusterError(
                        f"--cluster {self.address}: lost the scheduler "
                        f"while {_name(index, unit)} ran"
                    ) from None
                try:
                    left = not self._threads()
                except Exception:
                    left = False
                why = (
                    "every worker left"
                    if left
                    else "the workers that held its job left, or another client cancelled it"
                )
                raise ClusterError(
                    f"--cluster {self.address}: {_name(index, unit)} was cancelled ({why})"
                ) from None
            except Exception as e:
                raise ClusterError(
                    f"--cluster {self.address}: {_name(index, unit)} failed on a worker: "
                    f"{type(e).__name__}: {_one_line(e)}"
                ) from None
            if self._connected.status != "running":
                raise ClusterError(f"--cluster {self.address}: lost the scheduler")
            try:
                threads = self._threads()
            except Exception:
                raise ClusterError(f"--cluster {self.address}: lost the scheduler") from None
            idle = 0.0 if threads else idle + POLL
            if idle >= NO_WORKERS:
                raise ClusterError(
                    f"--cluster {self.address}: no worker left for {NO_WORKERS:g} s "
                    f"while {_name(index, unit)} waited"
                )
        if not isinstance(runs, list) or len(runs) != len(unit.children):
            raise ClusterError(
                f"--cluster {self.address}: {_name(index, unit)} returned "
                f"{len(runs) if isinstance(runs, list) else type(runs).__name__} runs "
                f"for {len(unit.children)} schedules"
            )
        return runs

    def _cancel(self, futures: list[Future]) -> None:
        self._outstanding.difference_update(futures)
        if self._client is not None and self._client.status == "running":
            with suppress(Exception):  # the scheduler is gone: nothing runs there any more
                self._client.cancel(futures)

    def close(self) -> None:
        """Cancel the units still in flight and disconnect (the cluster keeps running).

        Units waiting on the cluster are dropped; one a worker thread has
        started runs to its end there (Dask cannot stop a running task), and
        its result is dropped.
        """
        client, self._client = self._client, None
        if client is not None:
            outstanding, self._outstanding = list(self._outstanding), set()
            self._job_future = self._job = None
            with suppress(Exception):  # already disconnected: nothing runs there any more
                if client.status == "running" and outstanding:
                    client.cancel(outstanding)
            with suppress(Exception):
                client.close()
        levels, self._levels = self._levels, {}
        _loud(levels)

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Dask logs to stderr itself (a lost scheduler, a worker's failure: tracebacks); an
# exploration says what went wrong in one line instead, so while a pool is open the
# client side of Dask is silent.
QUIET = ("distributed", "distributed.client", "tornado", "tornado.application")


def _quiet() -> dict[str, int]:
    """Silence Dask's loggers in this process; their levels before, for `_loud`."""
    names = set(QUIET) | {
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(("distributed.", "tornado."))
        and isinstance(logger, logging.Logger)
        and logger.level
    }
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    return levels


def _loud(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _name(index: int, unit: Unit) -> str:
    """A unit as the error line names it: its index in the level and its parent schedule."""
    parent = " ".join(_choice(c) for c in unit.parent) or "the timed order"
    return f"unit {index} (parent {parent}, {len(unit.children)} schedules)"


def _choice(c: Any) -> str:
    """`AT:cpuN>cpuM`: after AT micro-ops, cpuN went ahead of cpuM (`l4tui.explore.Choice`)."""
    try:
        return f"{c.at}:cpu{c.cpu}>cpu{c.over}"
    except AttributeError:
        return str(c)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."
