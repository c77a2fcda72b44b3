"""`explore --cluster`: the explorer's pool on a Dask cluster (issue 15, point 7).

One `LocalCluster` (two worker processes, one thread each) serves the module
and is closed at its end; the two tests that need a cluster of their own (one
with no worker, one that goes away) close theirs too. Tasks other than the
real `run_unit` are module functions here, which the workers import by name
(their sys.path is the test process's).
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import l4tui.cluster
import l4tui.explore.units
from kernel.scenario import load_scenario
from l4tui.cli import main
from l4tui.cluster import WINDOW, ClusterError, DaskPool, parse_address
from l4tui.explore import Explorer
from machine.errors import MachineError

distributed = pytest.importorskip(
    "distributed", reason="the cluster extra is not installed: pip install 'l4tui[cluster]'"
)


# One LocalCluster for the module, on one worker (an xdist_group
# runs on one worker under `--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]


@dataclass(frozen=True)
class Job:
    """A stand-in for `l4tui.explore.Job`: what every unit of a level shares."""

    text: str
    marker: str = ""


@dataclass(frozen=True)
class Unit:
    """A stand-in for `l4tui.explore.Unit`."""

    parent: tuple[int, ...]
    children: tuple[tuple[int, ...], ...]


def echo(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    """One result per child, saying which job, unit and child it is."""
    return [(job.text, unit.parent, child) for child in unit.children]


def slow_first(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    """Early units finish last, so results come back out of order."""
    time.sleep(0.05 * max(0, 4 - unit.parent[0]))
    return echo(job, unit, fork)


def forking(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    """As `run_unit` does: each child in a forked process that writes its result to a pipe."""
    results = []
    for child in unit.children:
        if not fork:
            results.append((sum(child), os.getpid()))
            continue
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, write, leave without any cleanup
            try:
                os.write(write, pickle.dumps((sum(child), os.getpid())))
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            results.append(pickle.loads(pipe.read()))
        os.waitpid(pid, 0)
    return results


def raising(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    if unit.parent == (3,):
        raise ValueError("a bug\nover two lines")
    return echo(job, unit, fork)


def machine_error(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    raise MachineError("cpu1 executed an impossible op")


def dies_once(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    """The first worker to run unit 2 dies (no exception: the process is gone)."""
    marker = Path(job.marker)
    if unit.parent == (2,) and not marker.exists():
        marker.write_text("died")
        os._exit(1)
    return echo(job, unit, fork)


def wrong_count(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    return []


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[distributed.LocalCluster]:
    """A two-process LocalCluster for the module; closed (no process left) at its end."""
    local = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    try:
        yield local
    finally:
        local.close()


@pytest.fixture
def cluster(local_cluster: distributed.LocalCluster) -> str:
    return local_cluster.scheduler_address


def units(n: int) -> list[Unit]:
    return [Unit((i,), tuple((i, k) for k in range(i % 3 + 1))) for i in range(n)]


# The address


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("tcp://127.0.0.1:8786", "tcp://127.0.0.1:8786"),
        ("127.0.0.1:9000", "tcp://127.0.0.1:9000"),
        ("localhost", "tcp://localhost:8786"),
        ("tcp://[::1]:8786", "tcp://[::1]:8786"),
    ],
)
def test_an_address_is_tcp_host_and_port(text: str, url: str) -> None:
    assert parse_address(text)[0] == url


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected tcp://HOST:PORT"),
        ("tcp://", "expected tcp://HOST:PORT"),
        ("a b:1", "expected tcp://HOST:PORT"),
        ("tls://127.0.0.1:8786", "only tcp://"),
        ("inproc://x", "only tcp://"),
        ("127.0.0.1:port", "the port must be a number"),
        ("127.0.0.1:0", "the port must be a number"),
        ("127.0.0.1:70000", "the port must be a number"),
        ("tcp://127.0.0.1:8786/path", "the port must be a number"),
        ("127.0.0.1:" + "9" * 5000, "the port must be a number"),
        ("h" * 300 + ":1", "expected tcp://HOST:PORT"),
        ("\x1b[2J:1", "'\\x1b[2J:1': expected"),
        ("[::1", "expected tcp://HOST:PORT"),
    ],
)
def test_a_bad_address_is_one_line(text: str, says: str) -> None:
    with pytest.raises(ClusterError) as e:
        DaskPool(text)
    line = e.value.format()
    assert line.startswith("error: --cluster ") and says in line and "\n" not in line


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"(tcp://)?\[?[0-9a-z:.%\]]{0,20}(:[0-9]{0,8})?"))
def test_any_address_parses_or_is_one_short_line(text: str) -> None:
    try:
        url, host, port = parse_address(text)
    except ClusterError as e:
        line = e.format()
        assert line.startswith("error: --cluster ") and "\n" not in line and len(line) < 160
    else:
        assert url.startswith("tcp://") and host and 0 < port < 65536
        assert parse_address(url) == (url, host, port)


def test_without_the_extra_the_cli_says_how_to_install_it(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    assert main(["explore", str(RACES / "uhlig-naive.yaml"), "--cluster", "127.0.0.1:8786"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --cluster needs the cluster extra: pip install 'l4tui[cluster]'\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_is_refused_at_once() -> None:
    with pytest.raises(ClusterError, match="cannot reach the scheduler"):
        DaskPool(f"127.0.0.1:{free_port()}", timeout=30)  # refused: no wait for the timeout


@pytest.mark.parametrize("reply", [None, b"HTTP/1.0 400 Bad Request\r\n\r\n" + b"x" * 64])
def test_a_listener_that_is_not_dask_is_refused_within_the_timeout(reply: bytes | None) -> None:
    """A silent listener would hold Dask's Client forever; a chatty one is another protocol."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            accepted.append(conn)
            if reply is not None:
                conn.sendall(reply)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ClusterError) as e:
            DaskPool(f"127.0.0.1:{server.getsockname()[1]}", timeout=0.5)
        assert "answered within 0.5 s" in str(e.value) or "Dask's protocol" in str(e.value)
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        server.close()
        for conn in accepted:
            conn.close()
        thread.join(5)


def test_a_worker_address_is_not_the_scheduler(cluster: str) -> None:
    with distributed.Client(cluster, set_as_default=False) as client:
        worker = next(iter(client.nthreads()))
    with pytest.raises(ClusterError, match="that is a Dask Worker, not the scheduler"):
        DaskPool(worker, timeout=5)


def test_a_scheduler_without_workers_is_refused() -> None:
    empty = distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp://", dashboard_address=":0"
    )
    try:
        with pytest.raises(ClusterError, match="the scheduler has no worker"):
            DaskPool(empty.scheduler_address, timeout=0.5)
    finally:
        empty.close()


# Running units


def test_jobs_is_the_clusters_threads(cluster: str) -> None:
    with DaskPool(cluster, task=echo) as pool:
        assert pool.jobs == 2
    with DaskPool(cluster, jobs=5, task=echo) as pool:
        assert pool.jobs == 5


def test_results_come_in_unit_order(cluster: str) -> None:
    batch = units(8)
    with DaskPool(cluster, task=slow_first) as pool:
        got = list(pool.map(Job("j"), batch))
    assert got == [echo(Job("j"), u, True) for u in batch]


def test_units_in_flight_are_bounded(cluster: str) -> None:
    """A long level is submitted as the results are taken, never all at once."""
    batch = units(40)
    with DaskPool(cluster, task=echo) as pool:
        seen = []
        for runs in pool.map(Job("j"), batch):
            seen.append(runs)
            assert len(pool._outstanding) <= WINDOW * pool.jobs
    assert seen == [echo(Job("j"), u, True) for u in batch]


def test_the_job_is_shipped_once_for_many_maps(cluster: str) -> None:
    with DaskPool(cluster, task=echo) as pool:
        first = list(pool.map(Job("a"), units(3)))
        shipped = pool._job_future
        again = list(pool.map(Job("a"), units(3)))
        assert pool._job_future is shipped and again == first
        other = list(pool.map(Job("b"), units(3)))
        assert pool._job_future is not shipped and other[0][0][0] == "b"
        assert list(pool.map(Job("b"), [])) == []


@pytest.mark.parametrize("fork", [True, False])
def test_forking_inside_a_worker(cluster: str, fork: bool) -> None:
    """A unit forks per child inside a threaded Dask worker: the children's results come back."""
    batch = units(6)
    with DaskPool(cluster, fork=fork, task=forking) as pool:
        got = list(pool.map(Job("j"), batch))
    for unit, runs in zip(batch, got, strict=True):
        assert [value for value, _ in runs] == [sum(c) for c in unit.children]
        pids = {pid for _, pid in runs}
        assert len(pids) == (len(runs) if fork else 1)  # a process per child, or the worker


def test_a_task_that_raises_is_one_line_naming_its_unit(cluster: str) -> None:
    with DaskPool(cluster, task=raising) as pool, pytest.raises(ClusterError) as e:
        list(pool.map(Job("j"), units(6)))
    line = e.value.format()
    assert "unit 3 (parent" in line and "ValueError: a bug over two lines" in line
    assert "\n" not in line and "Traceback" not in line


def test_a_machine_error_is_the_simulations_own(cluster: str) -> None:
    with DaskPool(cluster, task=machine_error) as pool, pytest.raises(MachineError):
        list(pool.map(Job("j"), units(2)))


def test_a_wrong_number_of_runs_is_refused(cluster: str) -> None:
    says = "returned 0 runs for 1 schedules"
    with DaskPool(cluster, task=wrong_count) as pool, pytest.raises(ClusterError, match=says):
        list(pool.map(Job("j"), units(2)))


def test_a_worker_with_other_code_refuses_the_unit(cluster: str) -> None:
    with DaskPool(cluster, task=echo) as pool:
        pool._digest = "0" * 16  # as if the client ran another l4tui
        with pytest.raises(ClusterError, match="this worker runs another l4tui"):
            list(pool.map(Job("j"), units(1)))


def test_a_worker_with_other_code_is_refused_when_connecting(cluster: str, monkeypatch) -> None:
    monkeypatch.setattr(l4tui.cluster, "code_digest", lambda: "0" * 16)  # here, not on the workers
    with pytest.raises(ClusterError) as e:
        DaskPool(cluster, task=echo)
    line = e.value.format()
    assert "runs another l4tui (code " in line and "here 0000000000000000" in line
    assert "\n" not in line


def test_a_worker_that_dies_has_its_unit_run_again(cluster: str, tmp_path: Path) -> None:
    job = Job("j", marker=str(tmp_path / "died"))
    batch = units(5)
    with DaskPool(cluster, task=dies_once) as pool:
        got = list(pool.map(job, batch))
    assert (tmp_path / "died").exists()  # a worker did die
    assert got == [echo(job, u, True) for u in batch]
    with distributed.Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)  # the nanny restarted it, for the next tests


def sleepy(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    time.sleep(0.2)
    return echo(job, unit, fork)


def test_a_cluster_that_goes_away_is_one_line_not_a_hang() -> None:
    """The scheduler and its worker stop while units run: an error line, and Dask says nothing."""
    doomed = distributed.LocalCluster(  # a worker thread: quick to start
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        dashboard_address=":0",
    )
    try:
        pool = DaskPool(doomed.scheduler_address, task=sleepy, timeout=5)
        results = pool.map(Job("j"), units(20))
        next(results)
        doomed.close()
        with pytest.raises(ClusterError) as e:
            list(results)
        pool.close()
    finally:
        doomed.close()
    line = e.value.format()
    assert "lost the scheduler" in line or "every worker left" in line
    assert "\n" not in line


def test_dask_is_silent_while_a_pool_is_open(cluster: str) -> None:
    """Dask logs tracebacks to stderr when it loses the scheduler; explore says one line."""
    client_log = logging.getLogger("distributed.client")
    before = client_log.level
    with DaskPool(cluster, task=echo):
        assert not client_log.isEnabledFor(logging.CRITICAL)
        assert not logging.getLogger("distributed.comm.tcp").isEnabledFor(logging.CRITICAL)
    assert client_log.level == before


def always_dies(job: Job, unit: Unit, fork: bool) -> list[tuple]:
    os._exit(1)


def test_a_unit_that_kills_every_worker_is_given_up_in_one_line(
    local_cluster: distributed.LocalCluster,
) -> None:
    scheduler = local_cluster.scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0  # give up at once
    try:
        pool = DaskPool(local_cluster.scheduler_address, task=always_dies)
        with pool, pytest.raises(ClusterError) as e:
            list(pool.map(Job("j"), units(1)))
    finally:
        scheduler.allowed_failures = allowed
        with distributed.Client(local_cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=30)  # restarted, for the next tests
    line = e.value.format()
    assert "the workers running unit 0 (parent 0, 1 schedules) died" in line
    assert "\n" not in line


def test_close_cancels_what_runs_and_leaves_the_cluster_up(cluster: str) -> None:
    pool = DaskPool(cluster, task=slow_first)
    results = pool.map(Job("j"), units(30))
    assert next(results) == echo(Job("j"), units(1)[0], True)
    assert pool._outstanding  # more were in flight
    pool.close()
    assert not pool._outstanding
    pool.close()  # twice is fine
    with DaskPool(cluster, task=echo) as again:  # the cluster still runs
        assert list(again.map(Job("k"), units(2))) == [echo(Job("k"), u, True) for u in units(2)]


# The explorer on the cluster

RACES = Path(__file__).parent.parent / "scripts" / "races"


def fork_after(n: int) -> int:
    """Where `run_unit` starts forking children (l4tui.explore.units), in this process: set to n.

    Branch points before it are replayed from the start; the small races
    branch early, so the cluster's workers are made to fork at every one.
    """
    if not FORKS:  # count this process's forks from now on
        FORKS.append(0)
        os.register_at_fork(after_in_parent=lambda: FORKS.__setitem__(0, FORKS[0] + 1))
    before, l4tui.explore.units.FORK_AFTER = l4tui.explore.units.FORK_AFTER, n
    return before


FORKS: list[int] = []  # forks since fork_after was first called, in this process


def forks() -> int:
    return FORKS[0] if FORKS else 0


def explore_both(cluster: str, name: str, preemptions: int, fork_all: bool = False) -> tuple:
    """The report of `--jobs 1` (as shipped) and of the cluster (its workers forking every
    child if `fork_all`: slower than replaying a short prefix, so only on small races)."""
    scenario = load_scenario(str(RACES / f"{name}.yaml"))
    local = Explorer(scenario, preemptions=preemptions, jobs=1).explore()
    with DaskPool(cluster) as pool:
        if not fork_all:
            return local, Explorer(scenario, preemptions=preemptions, pool=pool).explore()
        before = pool._client.run(fork_after, 0)
        try:
            forked = sum(pool._client.run(forks).values())
            remote = Explorer(scenario, preemptions=preemptions, pool=pool).explore()
            assert sum(pool._client.run(forks).values()) > forked  # the workers did fork
        finally:
            pool._client.run(fork_after, min(before.values()))
    return local, remote


def test_an_exhausted_bound_on_the_cluster_is_the_local_report(cluster: str) -> None:
    """The proxy design, bound 2: the same schedules, states and pruning as `--jobs 1`."""
    local, remote = explore_both(cluster, "uhlig-proxy", 2)
    assert local.exhausted and local.failure is None and local.schedules > 100
    assert remote.data() == local.data()
    assert remote.jobs == 2


def test_units_forking_in_the_workers_report_as_one_process(cluster: str) -> None:
    """Every child forked inside a threaded Dask worker: the same exhausted bound."""
    local, remote = explore_both(cluster, "exregs-xp-ipc", 1, fork_all=True)
    assert local.exhausted and local.schedules > 10
    assert remote.data() == local.data()


def test_the_first_failure_on_the_cluster_is_the_local_one(cluster: str) -> None:
    """Uhlig's lost wake-up, children forked in the workers: the same failure and counts."""
    local, remote = explore_both(cluster, "uhlig-naive", 2, fork_all=True)
    assert local.failure is not None and local.failure.kind == "deadlock"
    assert remote.data() == local.data()
    assert remote.failure is not None and remote.failure.log == local.failure.log


def test_explore_cluster_prints_what_explore_jobs_1_prints(cluster: str, capsys, tmp_path) -> None:
    race = str(RACES / "uhlig-naive.yaml")
    argv = ["explore", race, "--json", "--progress", "none", "--save", str(tmp_path / "s.json")]
    assert main([*argv, "--jobs", "1"]) == 1
    alone = capsys.readouterr().out
    assert main([*argv, "--cluster", cluster]) == 1
    assert capsys.readouterr().out == alone


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("udp://127.0.0.1:8786", "error: --cluster udp://127.0.0.1:8786: only tcp://"),
        ("127.0.0.1:FREE", "cannot reach the scheduler"),  # a port where nothing listens
    ],
)
def test_explore_with_a_bad_cluster_is_one_line_and_exit_2(address: str, says: str, capsys) -> None:
    address = address.replace("FREE", str(free_port()))

    assert main(["explore", str(RACES / "uhlig-naive.yaml"), "--cluster", address]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and says in captured.err
