"""`l4tui bench serve`: a class logging in at once — first-frame times and memory per session.

`l4tui serve` runs as its own process (as on a lab host), with a warm pool
the size of the class (the class logs in once the server says the pool is
ready in its log), then with none. `sessions` OpenSSH clients (`ssh -tt`,
key login, the default 80x24 terminal) connect over loopback in one burst and
time the arrival of the monitor's first frame (the bytes of its CPU pane). Then the proportional
memory (PSS) of each idle session's process is read from /proc, and — the class logged in
and nobody typing — the CPU time and wake-ups (context switches) of all the sessions
together over a minute (issue 14: an idle session must not poll; Textual's own keyboard
thread woke ten times a second). Host time: the figures vary from run to run and depend on
the cores.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from l4tui.serve.server import host_key


def _pss_mb(pid: int) -> float:
    """A process's proportional set size (shared pages split among sharers), in MB."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_and_wakeups(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and context switches of every thread of `pid` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        tasks = []
    for task in tasks:
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        switches += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", status))
    return cpu, switches


async def _idle_cost(pids: list[int], seconds: float) -> tuple[float, int]:
    """CPU seconds and wake-ups of `pids` together over `seconds` of nobody typing."""
    before = [_cpu_and_wakeups(pid) for pid in pids]
    await asyncio.sleep(seconds)
    after = [_cpu_and_wakeups(pid) for pid in pids]
    cpu = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    wakeups = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return cpu, wakeups


async def _settled(pids: list[int], timeout: float = 60.0) -> None:
    """Until a second in which the sessions woke at most once each: their logins are drawn."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, wakeups = await _idle_cost(pids, 1.0)
        if wakeups <= len(pids):
            return


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


async def _openssh_student(
    port: int, user: str, key: Path, start: float
) -> tuple[float, asyncio.subprocess.Process]:
    """A student with the OpenSSH client (what students use; lighter than a Python client)."""
    proc = await asyncio.create_subprocess_exec(
        "ssh",
        "-tt",
        "-p",
        str(port),
        "-i",
        str(key),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        f"{user}@127.0.0.1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None  # stdout=PIPE above
    seen = b""
    while b"CPUs" not in seen:
        data = await proc.stdout.read(65536)
        if not data:
            raise RuntimeError(f"{user}: the session closed before its first frame")
        seen = seen[-8:] + data
    return time.perf_counter() - start, proc


def _wait_for(log: IO[str], pattern: str) -> re.Match[str]:
    """Read the server's log (its stderr) up to the first line matching `pattern`."""
    said = []
    while line := log.readline():
        said.append(line)
        if found := re.search(pattern, line):
            return found
    raise RuntimeError("the server ended before saying " + repr(pattern) + ":\n" + "".join(said))


async def _burst(sessions: int, warm: int, idle: float = 0.0) -> dict[str, Any]:
    lab = str(Path(__file__).parents[2] / "scripts" / "labs" / "xp-ipc.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = host_key(root / "id")  # a new ed25519 key, 0600 as ssh wants it
        keys = root / "keys"
        keys.mkdir()
        for i in range(sessions):
            (keys / f"s{i}").write_bytes(key.export_public_key())
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "l4tui",
                "serve",
                "--ssh",
                "127.0.0.1:0",
                "--lab",
                lab,
                "--authorized-keys",
                str(keys),
                "--state-dir",
                str(root / "state"),
                "--max-sessions",
                str(sessions),
                "--warm",
                str(warm),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        log = server.stderr
        assert log is not None  # stderr=PIPE above
        try:
            port = int(_wait_for(log, r" on \S+:(\d+)$").group(1))
            ready = time.perf_counter()
            if warm:
                # The class logs in once the pool is painted, as the server announces.
                _wait_for(log, r"warm pool ready: ")
            pool_ready = time.perf_counter() - ready
            # The rest of its log (a line per login) is read and dropped, so it never blocks.
            threading.Thread(target=log.read, daemon=True).start()
            await asyncio.sleep(1.0 if warm else 3.0)  # without a pool: the zygote's imports

            start = time.perf_counter()
            got = await asyncio.gather(
                *(_openssh_student(port, f"s{i}", root / "id", start) for i in range(sessions))
            )
            frames = sorted(t for t, _ in got)
            await asyncio.sleep(2.0)  # every session idle now
            zygotes = _children(server.pid)
            pids = [c for z in zygotes for c in _children(z)]
            pss = [_pss_mb(pid) for pid in pids]
            idle_cpu, idle_wakeups = 0.0, 0
            if idle:
                await _settled(pids)
                idle_cpu, idle_wakeups = await _idle_cost(pids, idle)
            for _, proc in got:
                proc.kill()
                await proc.wait()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "frames": frames,
        "pss": pss,
        "pool_ready": pool_ready,
        "idle_cpu": idle_cpu,
        "idle_wakeups": idle_wakeups,
        "idle_sessions": len(pids),
    }


def run_serve(sessions: int = 30, idle: float = 60.0) -> dict[str, Any]:
    """The rows of `bench serve`: with a warm pool of the class's size, and with none; then
    what the class's sessions cost idle over `idle` seconds."""
    r = asyncio.run(_burst(sessions, warm=sessions, idle=idle))
    cold = asyncio.run(_burst(sessions, warm=0))
    frames, pss = r["frames"], r["pss"] or [0.0]
    rows = [
        (f"first frame, {sessions} logins in one burst (median)", "s", statistics.median(frames)),
        (f"first frame, {sessions} logins in one burst (worst)", "s", max(frames)),
        ("  the same with no warm sessions (median)", "s", statistics.median(cold["frames"])),
        ("  the same with no warm sessions (worst)", "s", max(cold["frames"])),
        (f"time to start and paint a pool of {sessions}", "s", r["pool_ready"]),
        ("goal: median", "s", 1.0),
        ("goal: worst", "s", 3.0),
        ("memory per idle session (PSS, mean)", "MB", statistics.mean(pss)),
        ("goal: memory per idle session", "MB", 40),
        (
            f"CPU time of {r['idle_sessions']} idle sessions over {idle:.0f} s (all)",
            "s",
            r["idle_cpu"],
        ),
        (f"  their wake-ups over {idle:.0f} s (all)", "", r["idle_wakeups"]),
        ("goal: CPU time of idle sessions", "s", 0.0),
        ("cores", "", os.cpu_count() or 0),
    ]
    return {"rows": [{"name": n, "unit": u, "value": round(v, 2)} for n, u, v in rows]}
