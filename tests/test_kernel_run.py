"""`l4tui run` and `l4tui check` on kernel scenarios (DESIGN.md §2, "Commands", "run --json").

Driven through a subprocess (`python -m l4tui`), as a user or a script would:
the summary's keys, determinism (same scenario and seed, same bytes), the
limits, exit codes 0/1/2, and bad input reported as one positioned line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kernel.scenario import load_scenario
from kernel.system import System
from l4tui.runner.summary import summary as run_summary

ROOT = Path(__file__).parent.parent
SCRIPTS = ROOT / "scripts"
CLIENT_SERVER = SCRIPTS / "client-server.yaml"

#: The run --json example of DESIGN.md §2: every key it shows, at every level.
TOP_KEYS = {
    "scenario",
    "seed",
    "cycles",
    "steps",
    "deadlock",
    "cpus",
    "threads",
    "counters",
    "expect",
}
CPU_KEYS = {"id", "cycles", "current", "ready", "ipis_received"}
THREAD_KEYS = {"id", "cpu", "state", "priority", "results"}
RESULT_KEYS = {"op", "ok", "error", "xp", "cpu", "words"}
COUNTER_KEYS = {"ipc", "xp_ipc", "ipis_sent", "migrations", "tlb_shootdowns", "page_faults", "mesi"}
EXPECT_KEYS = {"check", "ok"}
STATES = {"running", "ready", "waiting", "polling", "locked_running", "locked_waiting", "inactive"}

LONG = """\
name: long
machine: {profile: p3-dual-450, cpus: 1}
kernel: {tick: 10000}
tasks:
  - name: app
    threads:
      - name: a
        program:
          - repeat: 20
            do:
              - compute: 10000
              - read_kip
"""


def l4tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l4tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def run_json(*args: str) -> tuple[int, dict[str, Any], str]:
    proc = l4tui("run", *args, "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stdout


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- the summary --------------------------------------------------------------------


def test_run_json_has_every_design_key() -> None:
    code, out, _ = run_json(str(CLIENT_SERVER))
    assert code == 0
    assert set(out) >= TOP_KEYS
    assert out["scenario"] == "client-server"
    assert out["seed"] == 1
    assert isinstance(out["cycles"], int) and out["cycles"] > 0
    assert isinstance(out["steps"], int) and out["steps"] > 0
    assert out["deadlock"] is False
    assert [c["id"] for c in out["cpus"]] == [1, 2]
    for c in out["cpus"]:
        assert set(c) >= CPU_KEYS
        assert isinstance(c["cycles"], int)
        assert isinstance(c["ready"], list)
        assert isinstance(c["ipis_received"], int)
        assert c["current"] is None or isinstance(c["current"], str)
    assert set(out["threads"]) == {"srv", "cli"}
    for t in out["threads"].values():
        assert set(t) >= THREAD_KEYS
        assert t["state"] in STATES
        assert t["cpu"] == 1
        assert isinstance(t["priority"], int)
        assert isinstance(t["id"], str)
        for r in t["results"]:
            assert set(r) >= RESULT_KEYS
            if r["op"] in ("recv", "call", "reply_wait") and r["ok"]:
                assert "from" in r
    cli = out["threads"]["cli"]
    assert cli["state"] == "inactive"
    assert [r["op"] for r in cli["results"]] == ["call"] * 3
    assert cli["results"][0] == {
        "op": "call",
        "ok": True,
        "error": None,
        "xp": False,
        "cpu": None,
        "words": [7],
        "from": "srv",
    }
    assert set(out["counters"]) >= COUNTER_KEYS
    assert isinstance(out["counters"]["mesi"], dict)
    assert out["counters"]["ipc"] == 6
    assert out["counters"]["xp_ipc"] == 0
    assert out["counters"]["migrations"] == 0
    assert len(out["expect"]) == 4
    for e in out["expect"]:
        assert set(e) >= EXPECT_KEYS
        assert e["ok"] is True


def test_run_json_is_deterministic() -> None:
    first = l4tui("run", str(CLIENT_SERVER), "--json")
    second = l4tui("run", str(CLIENT_SERVER), "--json")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout  # something was printed


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_scripts_run_identically_twice_in_process(path: Path) -> None:
    """The same scenario and seed give the same summary (every script; no subprocess)."""
    a, b = System(load_scenario(path)), System(load_scenario(path))
    assert a.run(max_steps=200_000) == b.run(max_steps=200_000) == "end"
    assert json.dumps(run_summary(a)) == json.dumps(run_summary(b))
    assert all(e["ok"] for e in run_summary(a)["expect"])


def test_scripts_exit_zero() -> None:
    for path in sorted(SCRIPTS.glob("*.yaml")):
        proc = l4tui("run", str(path))
        assert proc.returncode == 0, (path, proc.stdout, proc.stderr)
        assert proc.stdout.strip()


def test_seed_option() -> None:
    code, out, text = run_json(str(CLIENT_SERVER), "--seed", "42")
    assert code == 0
    assert out["seed"] == 42
    code2, _, text2 = run_json(str(CLIENT_SERVER), "--seed", "42")
    assert text == text2


def test_max_steps(tmp_path: Path) -> None:
    path = write(tmp_path, "long.yaml", LONG)
    code, full, _ = run_json(str(path))
    assert code == 0
    assert full["threads"]["a"]["state"] == "inactive"
    assert len(full["threads"]["a"]["results"]) == 20
    code, cut, _ = run_json(str(path), "--max-steps", "100")
    assert code == 0  # reaching a limit is not a failure
    assert cut["steps"] == 100
    assert cut["deadlock"] is False
    assert cut["cycles"] < full["cycles"]
    assert len(cut["threads"]["a"]["results"]) < 20
    assert cut["threads"]["a"]["state"] != "inactive"


def test_until_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, "long.yaml", LONG)
    _, full, _ = run_json(str(path))
    assert full["cycles"] > 150_000
    code, part, _ = run_json(str(path), "--until-cycle", "60000")
    assert code == 0
    assert part["cycles"] >= 60000
    assert part["cycles"] < full["cycles"]
    assert part["steps"] < full["steps"]
    n = len(part["threads"]["a"]["results"])
    assert 3 <= n <= 7  # one read_kip per 10000 cycles of compute
    assert part["threads"]["a"]["state"] != "inactive"


def test_until_cycle_beyond_the_end_runs_to_the_end(tmp_path: Path) -> None:
    path = write(tmp_path, "long.yaml", LONG)
    _, full, text = run_json(str(path))
    _, late, _ = run_json(str(path), "--until-cycle", str(full["cycles"] * 10))
    assert late["threads"] == full["threads"]
    assert late["steps"] == full["steps"]


# --- exit codes -----------------------------------------------------------------------


def test_failing_expect_exits_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad-expect.yaml",
        """\
        machine: {profile: p3-dual-450, cpus: 1}
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - read_kip
        expect:
          - {thread: a, state: inactive}
          - {thread: a, result: 0, value: 7}
        """,
    )
    code, out, _ = run_json(str(path))
    assert code == 1
    assert [e["ok"] for e in out["expect"]] == [True, False]
    assert out["deadlock"] is False


def test_deadlock_exits_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "deadlock.yaml",
        """\
        machine: {profile: p3-dual-450, cpus: 1}
        tasks:
          - name: ta
            threads:
              - name: a
                program:
                  - call: {to: b}
          - name: tb
            threads:
              - name: b
                program:
                  - call: {to: a}
        """,
    )
    code, out, _ = run_json(str(path))
    assert code == 1
    assert out["deadlock"] is True
    assert {w.split()[0] for w in out["waits"]} == {"a", "b"}


def test_check_invariants_option() -> None:
    proc = l4tui("run", str(SCRIPTS / "pager-long-ipc.yaml"), "--check-invariants", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["deadlock"] is False


BAD = [
    pytest.param("tasks: [\n", 2, id="yaml-syntax"),
    pytest.param(
        """\
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - sned: {to: a}
        """,
        6,
        id="unknown-op",
    ),
    pytest.param(
        """\
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - send: {to: nobody}
        """,
        6,
        id="unknown-thread",
    ),
    pytest.param(
        """\
        machine: {profile: p3-dual-450, cpus: 1}
        tasks:
          - name: app
            threads:
              - name: a
                cpu: 2
        """,
        6,
        id="no-such-cpu",
    ),
    pytest.param(
        """\
        tasks:
          - name: app
            threads:
              - name: a
                program:
                  - recv: {from: any, timeout: -5}
        """,
        6,
        id="bad-timeout",
    ),
]


@pytest.mark.parametrize(("text", "line"), BAD)
@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_scenario_exits_two_with_position(
    tmp_path: Path, command: str, text: str, line: int
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    proc = l4tui(command, str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    prefix = f"error: {path}:{line}:"
    assert lines[0].startswith(prefix), lines[0]
    col = lines[0][len(prefix) :].split(":", 1)[0]
    assert col.isdigit() and int(col) >= 1


def test_check_good_file_exits_zero() -> None:
    proc = l4tui("check", str(CLIENT_SERVER))
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_missing_file_exits_two() -> None:
    proc = l4tui("check", "no/such/file.yaml")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no/such/file.yaml")
    assert "Traceback" not in proc.stderr
