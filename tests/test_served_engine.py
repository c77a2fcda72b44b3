"""A served student's session runs in an engine process with checkpoints, and stays confined.

`l4tui lab --confine DIR` (what `l4tui serve` runs per student) puts the session in an
engine process (l4tui/engine.py) with the served budget of checkpoints
(checkpoints.SERVED_KEEP): its file commands run there, and must be refused outside DIR
exactly as in-process (issue 14); a restore hands the session to a checkpoint's fork,
which must be confined too; the completer lists nothing outside; and when the session's
process is killed (kill -9) the engine and every checkpoint leave with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernel.scenario import load_scenario
from l4tui import checkpoints, engine
from l4tui.bench.debugger import SCENARIO
from l4tui.cli import sessions
from l4tui.cli.sessions import lab_session
from l4tui.executor import execute
from l4tui.files import FileRoot, confine, root_of
from l4tui.session import Session

pytestmark = pytest.mark.skipif(not engine.available(), reason="no fork here")

LABS = Path(__file__).parent.parent / "scripts" / "labs"
XP_LAB = LABS / "xp-ipc.yaml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _served(tmp_path: Path, run, long: bool = False) -> int:
    """`run(session)` as `lab --confine` runs it: the engine, the served budget. `long`: the
    bench's endless ping-pong (the lab's scenario ends at 431 micro-ops)."""
    _, s = lab_session(str(XP_LAB), None, True, confine=str(tmp_path / "alice"))
    if long:
        scenario = tmp_path / "pingpong.yaml"
        scenario.write_text(SCENARIO)
        s = Session(load_scenario(scenario))
        confine(s, FileRoot.confined_to(tmp_path / "alice"))
    return sessions.with_engine(s, run, served=True)


def test_file_commands_through_the_engine_stay_inside(tmp_path: Path) -> None:
    outside = tmp_path / "bob.json"
    alice = tmp_path / "alice"
    seen: dict[str, object] = {}

    def run(s) -> int:
        assert isinstance(s, engine.RemoteSession)
        assert root_of(s).root == alice.resolve()  # the front end's completer: inside only
        s.call(execute, "stepi 300")
        for cmd in (f"save {outside}", "save ../bob.json", f"export perfetto {outside}"):
            out = s.call(execute, cmd)
            assert out.startswith("error: ") and "outside your directory" in out, (cmd, out)
        outside.write_text("{}")
        out = s.call(execute, f"load {outside}")
        assert "outside your directory" in out, out
        assert s.position == 300
        assert "saved 300" in s.call(execute, "save mine.json")
        assert "trace" in s.call(execute, "export perfetto t.json") or (alice / "t.json").exists()
        s.call(execute, "stepi 5000")
        # Back through a checkpoint: the fork that takes over is confined as well.
        s.call(execute, "reverse-stepi 4000")
        assert s.position == 1300
        seen["pids"] = [pid for _, pid in s.checkpoint_list()]
        assert s.engine_pid not in (0, os.getpid())
        out = s.call(execute, f"save {outside}")
        assert "outside your directory" in out, out
        out = s.call(execute, "load mine.json")
        assert not out.startswith("error"), out
        assert s.position == 300
        out = s.call(execute, "load ../bob.json")
        assert "outside your directory" in out, out
        out = s.call(execute, "save ../../x.json")
        assert "outside your directory" in out, out
        return 0

    assert _served(tmp_path, run, long=True) == 0
    assert outside.read_text() == "{}"
    assert (alice / "mine.json").exists()
    assert not (tmp_path / "x.json").exists()
    assert seen["pids"]


def test_the_served_budget_keeps_fewer_checkpoints(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "SERVED_SPACING", 500)
    monkeypatch.setattr(checkpoints, "SERVED_KEEP", 4)

    def run(s) -> int:
        s.call(execute, "stepi 20000")
        cps = s.checkpoint_list()
        assert 0 < len(cps) <= 4, cps
        assert cps[0][0] == 0  # the first stays: going back to the start never replays all
        before = s.call(_fingerprint)
        s.call(execute, "reverse-stepi 7000")
        s.call(execute, "stepi 7000")
        assert s.call(_fingerprint) == before
        return 0

    assert _served(tmp_path, run, long=True) == 0


def _fingerprint(s) -> object:
    return (s.position, s.system.machine.fingerprint())


CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from l4tui.cli import sessions
from l4tui.bench.debugger import _session
from l4tui.executor import execute
from l4tui.files import FileRoot, confine

s = _session()
confine(s, FileRoot.confined_to({files!r}))

def run(r):
    r.call(execute, "stepi 40000")
    r.call(execute, "reverse-stepi 100")
    pids = [r.engine_pid] + [pid for _, pid in r.checkpoint_list()]
    print(" ".join(map(str, pids)), flush=True)
    time.sleep(60)
    return 0

sessions.with_engine(s, run, served=True)
"""


def test_kill_9_of_the_served_session_leaves_nothing(tmp_path: Path) -> None:
    code = textwrap.dedent(CHILD).format(
        root=str(Path(__file__).parent.parent), files=str(tmp_path / "f")
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        pids = [int(x) for x in line.split()]
        assert len(pids) >= 2, line
        assert all(_alive(pid) for pid in pids)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if _alive(pid)]
