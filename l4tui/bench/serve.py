"""`l4tui bench serve`: a class logging in at once — first-frame times and memory per session.

`sessions` clients connect over loopback in one burst, each with a pty, and
wait for the monitor's first frame (read through a VT emulator); then the
resident memory of each idle session's process is summed from /proc (its
proportional share, PSS, where the kernel tells it). Host time: the figures
vary from run to run and depend on the cores.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


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


async def _burst(sessions: int) -> dict[str, Any]:
    import asyncssh
    import pyte

    from l4tui.serve.auth import hash_password
    from l4tui.serve.server import LabServer, Limits, host_key

    lab = str(Path(__file__).parents[2] / "scripts" / "labs" / "xp-ipc.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        users = {f"s{i}": hash_password("password1") for i in range(sessions)}
        server = LabServer(lab, root / "state", users, None, Limits(max_sessions=sessions))
        port = await server.start("127.0.0.1", 0, host_key(root / "key"))
        start = time.perf_counter()

        async def student(i: int) -> tuple[float, Any]:
            conn = await asyncssh.connect(
                "127.0.0.1",
                port,
                username=f"s{i}",
                password="password1",
                known_hosts=None,
                client_keys=None,
            )
            proc = await conn.create_process(
                term_type="xterm-256color", term_size=(120, 40), encoding=None
            )
            screen = pyte.Screen(120, 40)
            stream = pyte.ByteStream(screen)
            while "CPUs" not in "\n".join(screen.display):
                stream.feed(await proc.stdout.read(65536))
            return time.perf_counter() - start, conn

        got = await asyncio.gather(*(student(i) for i in range(sessions)))
        frames = sorted(t for t, _ in got)
        await asyncio.sleep(2.0)  # let every session settle into idle
        pids = [s.pid for s in server.sessions if s.pid]
        pss = [_pss_mb(pid) for pid in pids]
        for _, conn in got:
            conn.close()
        await server.stop()
    return {"frames": frames, "pss": pss}


def run_serve(sessions: int = 30) -> dict[str, Any]:
    """The rows of `bench serve`."""
    r = asyncio.run(_burst(sessions))
    frames, pss = r["frames"], r["pss"] or [0.0]
    rows = [
        (f"first frame, {sessions} logins in one burst (median)", "s", statistics.median(frames)),
        (f"first frame, {sessions} logins in one burst (worst)", "s", max(frames)),
        ("goal: median / worst", "s", 1.0),
        ("goal: worst", "s", 3.0),
        ("memory per idle session (PSS, mean)", "MB", statistics.mean(pss)),
        ("goal: memory per idle session", "MB", 40),
    ]
    return {"rows": [{"name": n, "unit": u, "value": round(v, 2)} for n, u, v in rows]}
