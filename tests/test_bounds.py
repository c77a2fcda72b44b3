"""Every run is bounded; every bad scenario, profile or injected op is one positioned line
(issue 14).

- A program block that takes no op, or no time, per pass (an empty loop, a loop of an
  empty loop, `repeat: 2**63-1` of a `repeat: 0`, a loop of `compute: 0`) is refused by
  `check` and `run` at its key; the program counter steps over one built in code.
- Profile values have ranges a real x86 could have (1e308, NaN, a 128 MB L2, more ways
  than lines are refused at the value); the caches make their sets lazily.
- YAML files are read by one bounded reader: a FIFO, a device, a directory, a file that
  is not UTF-8 are one line each.
- A scenario raises at most 100,000 external interrupts in all.
- What does not fit the machine (memory frames, the kernel's 1024 threads) is a positioned
  error from `check` as from `run`.
- An injected op is validated by the scenario loader's own op parser.
- Mutated shipped scenarios (hypothesis, bounded): `check` and a short `run` exit 0, 1 or
  2, with one `error:` line for 2, never an exception, never a hang.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.program import Compute, Loop, ProgramCounter, Repeat
from kernel.scenario import load_scenario, parse_op
from kernel.system import System
from l4tui.cli import main
from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.inject import build
from l4tui.session import Session
from machine.errors import ConfigError
from machine.machine import Machine
from machine.profile import load_profile
from tests import fuzzing

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(
    p
    for pattern in ("scripts/*.yaml", "scripts/demos/*.yaml", "scripts/races/*.yaml")
    for p in ROOT.glob(pattern)
)
ONE_THREAD = "tasks: [{name: t, threads: [{name: a, program: %s}]}]\n"
LONG = os.environ.get("L4TUI_FUZZ", "") == "long"
HANG = 20  # seconds: far beyond what any one command here takes


def bounded(seconds: float = HANG) -> contextlib.AbstractContextManager[None]:
    """Fail (instead of hanging the suite) if the block runs past `seconds`."""
    return fuzzing.no_hang(seconds, "the command")


def cli(*argv: str) -> tuple[int, str, str]:
    """`l4tui ARGV` in this process, bounded: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with bounded(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def position(line: str, path: Path) -> tuple[int, int]:
    m = re.match(rf"error: {re.escape(str(path))}:(\d+):(\d+): ", line)
    assert m, line
    return int(m[1]), int(m[2])


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def at(text: str, fragment: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the `nth` occurrence of `fragment` in `text`."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(fragment, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


# --- programs that take no op, or no time ----------------------------------------------


@pytest.mark.parametrize(
    ("program", "fragment", "nth"),
    [
        ("[{loop: []}]", "loop", 0),
        ("[{loop: [{loop: []}]}]", "loop", 1),  # the inner one is the culprit
        ("[{repeat: 9223372036854775807, do: [{repeat: 0, do: [{compute: 1}]}]}]", "do", 0),
        ("[{repeat: 3, do: []}]", "do", 0),
        ("[{compute: 5}, {loop: [{compute: 0}, {fpu: 0}]}]", "loop", 0),
        ("[{loop: [{repeat: 2, do: [{loop: []}]}]}]", "loop", 1),
    ],
)
@pytest.mark.parametrize("command", [("check",), ("run", "--max-steps", "10")])
def test_a_block_that_takes_no_op_or_no_time_is_refused_at_its_key(
    tmp_path: Path, program: str, fragment: str, nth: int, command: tuple[str, ...]
) -> None:
    text = ONE_THREAD % program
    path = write(tmp_path, text)
    code, out, err = cli(command[0], str(path), *command[1:])
    assert code == 2 and out == ""
    line = one_error(err)
    assert position(line, path) == at(text, fragment, nth)
    assert "takes no time" in line


@pytest.mark.parametrize(
    "program",
    [
        "[{repeat: 0, do: []}]",  # never runs: harmless
        "[{repeat: 0, do: [{compute: 0}]}, {compute: 0}]",
        "[{loop: [{compute: 0}, {compute: 1}]}]",
        "[{repeat: 9223372036854775807, do: [{compute: 1}]}]",
    ],
)
def test_blocks_that_take_time_are_fine_and_bounded_by_max_steps(
    tmp_path: Path, program: str
) -> None:
    path = write(tmp_path, ONE_THREAD % program)
    assert cli("check", str(path))[0] == 0
    code, out, _ = cli("run", str(path), "--max-steps", "500", "--json")
    assert code == 0
    assert '"steps":' in out


@pytest.mark.parametrize(
    ("program", "first"),
    [
        ((Loop(()), Compute(7)), Compute(7)),
        ((Loop((Loop(()),)), Compute(7)), Compute(7)),
        ((Repeat(2**63 - 1, (Repeat(0, (Compute(1),)),)), Compute(7)), Compute(7)),
        ((Repeat(5, ()), Loop((Repeat(0, (Compute(1),)),))), None),
        ((Loop((Repeat(3, (Loop(()), Compute(2))),)),), Compute(2)),
    ],
)
def test_the_program_counter_steps_over_blocks_that_take_no_op(
    program: tuple[Any, ...], first: Any
) -> None:
    """Programs built in code (not by the loader) cannot make the PC spin either."""
    with bounded(5):
        pc = ProgramCounter.start(program)
        assert pc.op == first
        for _ in range(10):
            pc.advance()  # a loop of Compute(2) goes on; the others end
        assert pc.op in (first, None)


def test_a_loop_of_compute_zero_cannot_stall_until_cycle(tmp_path: Path) -> None:
    """Every op of a program that passes `check` moves the clock: --until-cycle ends."""
    text = ONE_THREAD % "[{loop: [{compute: 0}, {touch: {addr: 0x400000}}]}]"
    path = write(tmp_path, text)
    code, out, _ = cli("run", str(path), "--until-cycle", "20000", "--json")
    assert code == 0 and '"ended": "until_cycle"' in out


def test_interrupts_are_bounded_in_all(tmp_path: Path) -> None:
    """Each raise is an event made at build time: 300 x 10,000 would take gigabytes."""
    entry = "  - {irq: 3, at: 0, every: 1, count: 10000}\n"
    text = "interrupts:\n" + entry * 300 + ONE_THREAD % "[{compute: 1}]"
    path = write(tmp_path, text)
    code, _, err = cli("check", str(path))
    assert code == 2
    line = one_error(err)
    assert position(line, path) == (12, 38)  # the count of the eleventh: 110,000
    assert "interrupts[10].count" in line and "at most 100000" in line


# --- profile ranges, lazy caches ------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "value", "words"),
    [
        ("{cache: {l2: {latency: 1.0e+308}}}", "1.0e+308", "cache.l2.latency"),
        ("{cache: {l2: {latency: .nan}}}", ".nan", "from 1 to 1000000"),
        ("{cache: {l1: {latency: .inf}}}", ".inf", "cache.l1.latency"),
        ("{cache: {l1: {latency: 0}}}", "0}", "from 1 to"),
        ("{bus: {read_line: -1}}", "-1", "bus.read_line"),
        ("{cache: {l2: {size_kb: 131072}}}", "131072", "at most 65536"),
        ("{cache: {l2: {size_kb: 0}}}", "0}", "at least 1"),
        ("{cache: {l2: {size_kb: -4}}}", "-4", "at least 1"),
        ("{cache: {l1: {size_kb: 1, ways: 64}}}", "64", "cannot have 64 ways"),
        ("{cache: {l1: {ways: 3}}}", "3", "power of two"),
        ("{cache: {line_size: 48}}", "48", "power of two"),
        ("{memory: {size_mb: 1024}}", "1024", "at most 512"),
        ("{tlb: {entries: 100000}}", "100000", "at most 65536"),
        ("{clock: {cpu_mhz: 1.0e+308}}", "1.0e+308", "at most 10000"),
        ("{cpus: 2.5}", "2.5", "whole number"),
    ],
)
def test_profile_values_out_of_range_are_positioned(
    tmp_path: Path, machine: str, value: str, words: str
) -> None:
    text = f"machine: {machine}\n" + ONE_THREAD % "[{compute: 1}]"
    path = write(tmp_path, text)
    for command in (("check",), ("run", "--max-steps", "10")):
        code, out, err = cli(command[0], str(path), *command[1:])
        assert code == 2 and out == ""
        line = one_error(err)
        assert position(line, path) == at(text, value)
        assert words in line


def test_a_huge_cache_allocates_nothing_up_front() -> None:
    """64 MB of 4-byte lines, direct mapped, on 16 CPUs: 16M sets a CPU, none made."""
    profile = load_profile(
        "p3-dual-450",
        {"cpus": 16, "cache": {"line_size": 4, "l2": {"size_kb": 65536, "ways": 1}}},
    )
    m = Machine(profile)
    assert m.coherence.l2_sets == 16 * 1024 * 1024
    assert all(len(c.l2) == 0 and len(c.l1) == 0 for c in m.coherence.cpus)
    m.coherence.read(0, 0x1000, 0)
    m.coherence.write(1, 0x1000, 0)
    caches = m.coherence.cpus[1]
    assert [s for s in caches.l2 if s] == [[0x1000 >> 2]]  # iterated as a list of sets
    assert len(caches.l2) == 1


def test_profile_file_that_is_not_utf8(tmp_path: Path) -> None:
    profile = tmp_path / "prof.yaml"
    text = (ROOT / "machine/profiles/p3-dual-450.yaml").read_bytes()
    profile.write_bytes(text + b"# caf\xe9\n")
    path = write(tmp_path, "machine: {profile: prof.yaml}\n" + ONE_THREAD % "[{compute: 1}]")
    code, _, err = cli("check", str(path))
    assert code == 2
    line = one_error(err)
    assert line.startswith(f"error: {profile}:") or line.startswith("error: prof.yaml:")
    assert line.endswith("profile is not UTF-8 text: invalid byte 0xe9")


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "symlink-to-device"])
def test_yaml_files_that_are_not_regular_files(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x.yaml"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "device":
        target = Path("/dev/zero")
    else:
        target.symlink_to("/dev/zero")
    code, _, err = cli("check", str(target))  # bounded: a FIFO is not waited on
    assert code == 2
    assert one_error(err).startswith(f"error: {target}: cannot read scenario: ")
    if kind != "device":
        scenario = write(tmp_path, "machine: {profile: x.yaml}\n" + ONE_THREAD % "[]")
        code, _, err = cli("check", str(scenario))
        assert code == 2 and "cannot read profile: " in one_error(err)


# --- machine limits, found by check as by run -------------------------------------------


def tasks_text(tasks: int, threads: int) -> str:
    lines = ["tasks:"]
    for i in range(tasks):
        lines += [f"  - name: t{i}", "    threads:"]
        lines += [f"      - {{name: a{i}_{j}, program: [{{compute: 1}}]}}" for j in range(threads)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", [("check",), ("run", "--max-steps", "10")])
def test_memory_too_small_for_the_kernel(tmp_path: Path, command: tuple[str, ...]) -> None:
    text = "machine: {memory: {size_mb: 1}}\n" + ONE_THREAD % "[{compute: 1}]"
    path = write(tmp_path, text)
    code, _, err = cli(command[0], str(path), *command[1:])
    assert code == 2
    line = one_error(err)
    assert position(line, path) == at(text, "1}")
    assert "out of physical frames" in line and "1 MB" in line


@pytest.mark.parametrize("command", [("check",), ("run", "--max-steps", "10")])
def test_tasks_that_do_not_fit_in_memory(tmp_path: Path, command: tuple[str, ...]) -> None:
    text = "machine: {memory: {size_mb: 2}}\n" + tasks_text(40, 1)
    path = write(tmp_path, text)
    code, _, err = cli(command[0], str(path), *command[1:])
    assert code == 2
    line = one_error(err)
    m = re.search(r"task 't(\d+)' does not fit", line)
    assert m, line
    assert position(line, path) == at(text, f"name: t{m[1]}\n")
    assert "out of physical frames" in line


@pytest.mark.parametrize("command", [("check",), ("run", "--max-steps", "10")])
def test_more_threads_than_the_kernel_has(tmp_path: Path, command: tuple[str, ...]) -> None:
    text = "machine: {cpus: 16}\n" + tasks_text(8, 100)
    path = write(tmp_path, text)
    code, _, err = cli(command[0], str(path), *command[1:])
    assert code == 2
    line = one_error(err)
    m = re.search(r"thread '(a\d+_\d+)' does not fit", line)
    assert m, line
    assert position(line, path) == at(text, f"{{name: {m[1]},")
    assert "1024" in line and "this one has 800" in line


def test_building_what_does_not_fit_is_a_config_error(tmp_path: Path) -> None:
    """Every front end builds a System: each gets the ConfigError, never MachineError."""
    path = write(tmp_path, "machine: {memory: {size_mb: 1}}\n" + ONE_THREAD % "[]")
    with pytest.raises(ConfigError):
        System(load_scenario(path))
    code, _, err = cli("console", str(path), "--script", os.devnull)
    assert code == 2 and "out of physical frames" in one_error(err)


# --- injection: the scenario's op parser -----------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("cli: compute -5", "compute: must be at least 0, not -5"),
        ("cli: call srv " + " ".join(["1"] * 70), "call.words: at most 64 words, not 70"),
        ("srv: reply_wait -5", "reply_wait.words[0]: must be between 0 and"),
        ("cli: touch 0xE0000000", "touch.addr: must be between 0 and"),
        ("cli: send srv 1 recv_timeout=5", "unknown field 'recv_timeout'"),
        ("cli: call srv timeout=-1", "a timeout is inf or a number of cycles"),
        ("cli: call srv xp_fault=maybe", "expected true or false"),
        ("srv: reply_wait clii 1", "no thread 'clii'"),
        ("cli: halt now", "usage: THREAD: halt"),
        ("cli: touch 0x1000 sideways", "usage: THREAD: touch"),
    ],
)
def test_a_bad_injected_op_is_refused_and_changes_nothing(line: str, words: str) -> None:
    session = Session(demo_scenario())
    execute(session, "stepi 20")
    before = session.system.machine.fingerprint()
    log = list(session.log)
    out = execute(session, line)
    assert out.startswith("error: ") and words in out, out
    assert len(out.splitlines()) == 1
    assert session.system.machine.fingerprint() == before and session.log == log
    for t in session.system.kernel.threads:
        assert not t.injected
    assert not execute(session, "stepi 5").startswith("error")  # nothing left to reverse


def test_a_good_injected_op_is_the_scenario_op() -> None:
    threads = ["cli", "srv"]
    assert build("call", ["srv", "1", "0x2", "timeout=inf"], threads) == parse_op(
        {"call": {"to": "srv", "words": [1, 2], "timeout": "inf"}}, threads
    )
    assert build("touch", ["0x400000", "write"], threads) == parse_op(
        {"touch": {"addr": 0x400000, "write": True}}, threads
    )
    assert build("reply_wait", ["7"], threads) == parse_op({"reply_wait": {"words": [7]}}, threads)


# --- mutated shipped scenarios (bounded) ------------------------------------------------


VALUES: list[Any] = [
    None, True, "x", "", [], {}, 0, 1, -1, 255, 2**32 - 1, 2**63 - 1, 2**63, 2**64, -(2**63),
    10**30, 0.5, 1e308, float("nan"), float("inf"), "12", "a" * 300, [[[[[[[[1]]]]]]]],
    {"loop": []}, {"compute": 0}, {"repeat": 2**63 - 1, "do": [{"repeat": 0, "do": []}]},
]  # fmt: skip
OVERRIDES: list[dict[str, Any]] = [
    {"cache": {"l2": {"latency": 1e308}}},
    {"cache": {"l2": {"size_kb": 65536, "ways": 1}, "line_size": 4}},
    {"memory": {"size_mb": 1}},
    {"memory": {"size_mb": 2}},
    {"cpus": 16},
    {"clock": {"cpu_mhz": 9973, "bus_mhz": 9967, "apic_bus_mhz": 9949}},
    {"tlb": {"entries": 1}},
    {"apic": {"slots": 1}},
]


def _paths(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, path + (i,))


def _mutate(data: Any, draw: Any) -> Any:
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["delete", "value", "value", "override", "number"]))
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "override" and isinstance(data.get("machine", {}), dict):
            data.setdefault("machine", {}).update(copy.deepcopy(draw(st.sampled_from(OVERRIDES))))
        elif kind == "number" and isinstance(parent[path[-1]], int):
            parent[path[-1]] = draw(st.sampled_from([0, 1, 16, 255, 2**32 - 1, 2**63 - 1]))
        else:
            # A copy: a later mutation of this example must not change VALUES for the next
            # (hypothesis then sees its strategy draw differently: FlakyStrategyDefinition).
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(VALUES)))
    return data


@settings(
    max_examples=800 if LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(SCENARIOS), st.data())
def test_mutated_scenarios_check_and_run_within_bounds(source: Path, data: st.DataObject) -> None:
    mutated = _mutate(yaml.safe_load(source.read_text()), data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / source.name
        path.write_text(yaml.safe_dump(mutated, default_flow_style=None, width=1000))
        code, _, err = cli("check", str(path))
        assert code in (0, 2)
        if code == 2:
            one_error(err)
            return
        code, _, err = cli("run", str(path), "--max-steps", "300")
        assert code in (0, 1, 2)
        if code == 2:
            one_error(err)
