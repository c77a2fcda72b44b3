"""`l4tui explore` on the command line: progress lines and Ctrl-C (issue 15, point 8).

`--progress json` prints JSON lines on stderr (stdout keeps the result); a
Ctrl-C — SIGINT to the whole process group, as a terminal sends it — stops
the search with the result so far, exit 0 as when `--max-schedules` cuts it
(1 had it found a failure), and leaves no worker or child process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l4tui.cli import main
from tests.waiting import wait_until

ROOT = Path(__file__).parent.parent
RACES = ROOT / "scripts" / "races"
PROXY = str(RACES / "uhlig-proxy.yaml")
LONG = str(RACES / "migrate-twice.yaml")  # minutes at bound 2: surely still running


def test_progress_json_lines_parse(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", PROXY, "--preemptions", "1", "--jobs", "1", "--progress", "json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert lines, "no progress line"
    for line in lines:
        assert {"schedules", "states", "queue", "rate", "elapsed", "done"} <= set(line)
    assert lines[-1]["done"] is True and lines[-1]["queue"] == 0
    assert all(not line["done"] for line in lines[:-1])
    assert "explored" in captured.out and lines[-1]["schedules"] > 10


def test_bad_jobs_and_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", PROXY, "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert main(["explore", PROXY, "--progress", "fancy"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    argv = ["explore", PROXY, "--preemptions", "0", "--progress", "none", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["exhausted"] is True


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_keeps_the_result_so_far_and_leaves_no_process(jobs: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "l4tui", "explore", LONG, "--jobs", jobs, "--progress", "json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        first = proc.stderr.readline()  # a progress line: it is exploring
        assert json.loads(first)["schedules"] >= 1
        time.sleep(1.0)  # well into the search: workers and their children at work
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "interrupted" in err
    assert "no failure found before it was interrupted" in out
    wait_until(lambda: not _alive(proc.pid), 10, "a worker or child process was left behind")
