"""Fuzzing console command lines (issue 14): every command of the grammar with arguments drawn
from plausible and hostile values, and garbage, through the one executor.

Each example runs a few lines, in order, on a fresh session of the demo scenario
(l4tui/demo.py: two CPUs, a cross-processor call through a proxy) or of the
migration demo (three CPUs, a thread moved, TLBs that fill), with the
working directory in the test's own directory and `LIMIT` lowered so a
`continue` ends soon. Every line is held to the console's contract (DESIGN.md §2):

- nothing escapes `outcome` (no exception, no hang: a guard fails the test);
- the output is text; a refused line is one `error: ...` line of bounded length;
- a refused line changes nothing: position, input log, breakpoints, watchpoints,
  focus, schedule, the machine's state and what the session records;
- no file outside the test's directory is created, changed or removed (file
  commands write only inside it: `save` and `export` get names there, a FIFO
  and /dev/null among them; `load` may read anything, decoys beside it too).

Bounded for CI (about 20 s); `L4TUI_FUZZ=long` runs 20 times as many examples.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.scenario import load_scenario
from l4tui import session as session_module
from l4tui.breakpoints import known_labels
from l4tui.demo import demo_scenario
from l4tui.executor import outcome
from l4tui.grammar import ALIASES, INFO_TOPICS, SPECS
from l4tui.lexer import CommandLexer
from l4tui.session import Session

sys.path.insert(0, str(Path(__file__).parent))
import fuzzing
from fuzzing import WATCHED, Guard, examples, make_decoy

from kernel.scenario import parse_scenario
from l4tui.tui.app import MonitorApp

SCENARIO = demo_scenario()
# Three CPUs, a migration, TLBs that fill (`info tlb` on a full one raised once).
MIGRATION = load_scenario(str(WATCHED[0] / "demos" / "migration.yaml"))
THREADS = sorted({t.name for sc in (SCENARIO, MIGRATION) for t in sc.threads()})
LIMIT = 3000  # micro-ops one command may run here (the console's is 5,000,000)
HANG = 120  # seconds one example may take: a guard against a hang, not a measured time
ERROR_LINE = 2000  # the longest `error:` line accepted (it quotes what the user typed)


def no_hang(seconds: float = HANG) -> contextlib.AbstractContextManager[None]:
    return fuzzing.no_hang(seconds, "a command line")


# --- what a line is made of --------------------------------------------------------------------

NUMBERS = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "7", "-1", "-0", "0x10", "0b11", "0o7", "1_000"]),
    st.sampled_from(["99", "4294967295", "4294967296", "1" + "0" * 50, "9" * 4301]),
    st.sampled_from(["0x" + "f" * 5000, "-" + "9" * 30, "1e9", "nan", "", "0x", "--5"]),
    st.integers(-(2**70), 2**70).map(str),
)
CPUS = st.one_of(
    st.integers(-2, 20).map(str), st.sampled_from(["cpu1", "cpu2", "cpu0", "cpu99", "cpu"])
)
NAMES = st.one_of(
    st.sampled_from(THREADS),
    st.sampled_from(["idle", "proxy1.1", "nosuch", "sigma0", "pager", "server", "client"]),
)
LABELS = sorted(known_labels())
GLOBS = st.one_of(
    st.sampled_from(LABELS),
    st.sampled_from(["*", "ipc.*", "xp.*", "sched.?*", "[", "nosuch.*", "ipc.send.*", "**"]),
)
FIELDS = st.sampled_from(
    ["partner", "state", "cpu", "thread_state", "ready_next", "send_queue", "priority", "nosuch"]
)
FIELD_REFS = st.builds(lambda t, f: f"{t}.{f}", NAMES, FIELDS)
CPU_REFS = st.builds(
    lambda c, f: f"cpu{c}.{f}",
    st.integers(0, 5),
    st.sampled_from(["clock", "mode", "if", "phase", "thread", "cr3", "waiting", "steps", "x"]),
)
TERMS = st.one_of(FIELD_REFS, CPU_REFS, NAMES, NUMBERS, st.sampled_from(["nil", "waiting"]))
COMPARISONS = st.builds(
    lambda a, op, b: f"{a} {op} {b}", TERMS, st.sampled_from(["==", "!=", "<", ">=", "=>"]), TERMS
)
EXPRS = st.one_of(
    TERMS,
    COMPARISONS,
    st.lists(COMPARISONS, min_size=2, max_size=4).map(" and ".join),
    st.lists(COMPARISONS, min_size=2, max_size=4).map(" or ".join),
)
GARBAGE = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["\x00", "a\x00b", "'", '"', "\\", "#", ";", "|", "$(id)", "`id`", "\u202e"]),
)
WORDS = st.one_of(NUMBERS, CPUS, NAMES, GLOBS, FIELD_REFS, GARBAGE, st.sampled_from(["if", "log"]))


def files(work: Path, decoy: Path) -> dict[str, st.SearchStrategy[str]]:
    """Names to write (inside `work` only) and to read (anything: reading changes nothing)."""
    inside = st.sampled_from(
        ["s.json", "sub/s.json", "nodir/x/s.json", "fifo", ".", "", "trace.json", "dir"]
        + [str(work / "s.json"), "a\x00b", "x" * 300, "/dev/null" if os.geteuid() else "s2.json"]
    )
    outside = st.sampled_from(
        [
            f"{decoy}/victim.json",
            f"{decoy}/fifo",
            f"{decoy}/private",
            str(decoy),
            "/etc/passwd",
            "/dev/zero",
            "/proc/self/status",
            str(WATCHED[0] / "client-server.yaml"),
        ]
    )
    return {"write": inside, "read": st.one_of(inside, outside)}


def commands(work: Path, decoy: Path) -> st.SearchStrategy[str]:
    """One command line: a command of the grammar with drawn arguments, or garbage."""
    path = files(work, decoy)

    def quoted(word: str) -> str:
        return shlex.quote(word)

    def line(name: st.SearchStrategy[str], *args: st.SearchStrategy[str]) -> Any:
        return st.tuples(name, *args).map(lambda parts: " ".join(parts))

    counted = st.sampled_from(["stepi", "step", "si", "s", "reverse-stepi", "reverse-step", "rsi"])
    plain = st.sampled_from(
        ["next", "finish", "continue", "c", "reverse-continue", "where", "quit", "lab", "n"]
    )
    any_name = st.sampled_from([*SPECS, *ALIASES])
    some_words = st.lists(WORDS.map(quoted), max_size=5).map(" ".join)
    structured = st.one_of(
        line(counted),
        line(counted, NUMBERS),
        line(plain),
        line(st.just("run"), NUMBERS),
        line(st.just("step cpu"), CPUS),
        line(st.sampled_from(["break", "tbreak", "b"]), GLOBS.map(quoted)),
        line(
            st.sampled_from(["break", "tbreak"]),
            st.one_of(GLOBS, st.sampled_from(["syscall call", "ipi sent", "migration"])),
            st.sampled_from(["", "thread"]),
            NAMES,
            st.sampled_from(["", "cpu 1", "cpu 9", "after 2", "after -1", "log"]),
            st.sampled_from(["", "if"]),
            EXPRS,
        ),
        line(st.just("watch"), FIELD_REFS),
        line(
            st.just("watch line"), st.builds("{}.{}".format, NAMES, NUMBERS), st.just("cpu"), CPUS
        ),
        line(st.sampled_from(["delete", "disable", "enable"]), st.one_of(st.just(""), NUMBERS)),
        line(st.sampled_from(["info", "i"]), st.sampled_from([*INFO_TOPICS, "nosuch"])),
        line(st.just("info"), st.sampled_from(["sendq", "tcb", "tlb", "space", "ready"]), WORDS),
        line(st.sampled_from(["print", "p"]), EXPRS),
        line(st.just("x"), st.one_of(NUMBERS, FIELD_REFS, NAMES, st.just("cli:0xbff00000"))),
        line(st.just("x"), st.one_of(NUMBERS, FIELD_REFS, NAMES), NUMBERS),
        line(
            st.just("focus"),
            st.sampled_from(["cpu", "thread"]),
            WORDS,
            st.sampled_from(["", "pin"]),
        ),
        line(st.just("focus follow")),
        line(st.just("sched"), st.sampled_from(["timed", "manual", "x"])),
        line(st.just("layout"), st.sampled_from(["naive", "thesis", "x"])),
        line(st.just("check"), st.sampled_from(["invariants", "x"])),
        line(st.just("help"), st.one_of(any_name, st.just(""), GARBAGE.map(quoted))),
        line(
            st.sampled_from([f"{t}:" for t in [*THREADS, "nosuch"]]),
            st.sampled_from(["call", "send", "recv", "compute", "sleep", "touch", "halt", "x"]),
            st.lists(
                st.one_of(NAMES, NUMBERS, st.sampled_from(["timeout=inf", "timeout=-5"])),
                max_size=4,
            ).map(" ".join),
        ),
        line(st.just("save"), path["write"].map(quoted)),
        line(st.just("export perfetto"), path["write"].map(quoted)),
        line(st.just("load"), path["read"].map(quoted)),
        line(st.just("load schedule"), path["read"].map(quoted)),
        line(any_name, some_words),
    )
    garbage = st.one_of(
        GARBAGE,
        some_words,
        st.sampled_from(
            [
                "x" * 100_000,
                "print " + "9" * 5000,
                "break " + "*" * 5000,
                "info " + "ready " * 2000,
                "'unclosed",
                "\x00" * 100,
                "stepi 1\nstepi 2",
                "(" * 10_000,
                "p " + " and ".join(["cli.partner == srv"] * 500),
            ]
        ),
    )
    return st.one_of(structured, structured, structured, garbage)


# --- what must hold ---------------------------------------------------------------------------


def state(s: Session) -> tuple[Any, ...]:
    """Everything a refused command must leave as it was."""
    return (
        s.position,
        list(s.log),
        [(b.number, b.spec(), b.enabled, b.hits) for b in s.breakpoints],
        [(w.expr, w.paddr, w.cpu, w.value) for w in s.watches],
        (s.focus_cpu, s.focus_thread, s.focus_pinned),
        s.stop_reason,
        s.schedule,
        list(s.commands),
        list(s.stops),
        s.scenario.name,
        s.system.machine.fingerprint(),
        s.system.kernel.layout.name,
    )


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Guard]:
    """The working directory (cwd), someone else's files beside it, and the guard."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "sub").mkdir()
    (work / "dir").mkdir()
    os.mkfifo(work / "fifo")
    decoy = make_decoy(tmp_path / "decoy")
    monkeypatch.chdir(work)
    monkeypatch.setattr(session_module, "LIMIT", LIMIT)
    monkeypatch.setenv("XDG_STATE_HOME", str(work / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(work / "config"))
    return work, decoy, Guard(*WATCHED, decoy)


def run_lines(s: Session, lines: list[str]) -> None:
    for line in lines:
        before = state(s)
        with no_hang():
            out, ok = outcome(s, line)
        assert isinstance(out, str), (line, out)
        if not ok:
            assert out.startswith("error: "), (line, out)
            assert "\n" not in out and len(out) <= ERROR_LINE, (line, out[:300])
            assert state(s) == before, f"{line!r} was refused ({out}) but changed the session"
        assert "Traceback" not in out


def settings_for(n: int) -> settings:
    return settings(
        max_examples=examples(n),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@settings_for(100)
@given(data=st.data())
def test_command_lines_never_escape_and_a_refused_one_changes_nothing(
    places: tuple[Path, Path, Guard], data: st.DataObject
) -> None:
    work, decoy, guard = places
    lines = data.draw(st.lists(commands(work, decoy), min_size=1, max_size=6), label="lines")
    s = Session(data.draw(st.sampled_from([SCENARIO, MIGRATION]), label="scenario"))
    run_lines(s, lines)
    with no_hang():  # whatever the lines did, the views still answer
        for topic in ("report", "ready", "wakeup", "mailboxes", "apic", "breakpoints", "log"):
            out, ok = outcome(s, f"info {topic}")
            assert ok, out
    guard.check()
    if os.geteuid() == 0:
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@settings_for(25)
@given(data=st.data())
def test_after_a_run_and_mid_update_lines_still_hold(
    places: tuple[Path, Path, Guard], data: st.DataObject
) -> None:
    """The same, from a point deep in the run (a kernel path may be half-way through)."""
    work, decoy, guard = places
    at = data.draw(st.integers(1, 1500), label="stepi")
    lines = data.draw(st.lists(commands(work, decoy), min_size=1, max_size=4), label="lines")
    s = Session(data.draw(st.sampled_from([SCENARIO, MIGRATION]), label="scenario"))
    s.stepi(at)
    run_lines(s, lines)
    guard.check()


@settings(max_examples=examples(200), deadline=None)
@given(
    line=st.one_of(
        st.text(max_size=300), st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))
    )
)
def test_the_lexer_colours_any_line_without_an_error_token(line: str) -> None:
    """The console colours every keystroke: any text lexes, ends, and loses nothing."""
    tokens = list(CommandLexer(stripnl=False, ensurenl=False).get_tokens(line))
    assert "".join(text for _, text in tokens) == line.replace("\r\n", "\n").replace("\r", "\n")
    assert not any("Error" in str(kind) for kind, _ in tokens)


# --- every command that runs is bounded (LIMIT) -----------------------------------------------

FOREVER = """\
name: forever
seed: 1
machine: {cpus: 2}
tasks:
  - name: server
    threads:
      - {name: srv, cpu: 2, program: [{loop: [{recv: {from: any}}, {compute: 50}]}]}
      - {name: waiter, cpu: 2, program: [{recv: {from: cli}}]}
  - name: client
    threads:
      - {name: cli, cpu: 1, program: [{loop: [{send: {to: srv, words: [1]}}, {compute: 20}]}]}
"""


@pytest.mark.parametrize(
    "line",
    [
        "continue",
        "stepi 1000000000000",
        "step 1000000000000",
        "run 1000000000000",
        "focus thread waiter pin\nstepi 2000\nnext",  # waiter is blocked for good by then
        "focus thread waiter pin\nstepi 2000\nfinish",
    ],
)
def test_a_command_that_would_run_past_limit_pauses_and_says_where(
    line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "LIMIT", LIMIT)
    s = Session(parse_scenario(FOREVER))
    *setup, command = line.split("\n")
    for before in setup:
        assert outcome(s, before)[1]
    start = s.position
    with no_hang():
        out, ok = outcome(s, command)
    assert ok and s.position == start + LIMIT
    assert out.startswith(
        f"paused after {LIMIT:,} micro-ops, at micro-op {s.position}: the most one command runs"
    )
    with no_hang():  # and going on goes on
        assert outcome(s, command)[1] and s.position == start + 2 * LIMIT


def test_reverse_commands_are_bounded_by_the_way_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "LIMIT", LIMIT)
    s = Session(SCENARIO)
    with no_hang():
        for line in (
            "break ipc.*",
            "stepi 2000",
            "reverse-continue",
            "reverse-step 999999",
            "reverse-stepi 99999999999",
        ):
            out, ok = outcome(s, line)
            assert ok, (line, out)
    assert s.position == 0


async def test_the_monitors_continue_pauses_at_limit_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "LIMIT", 5000)
    app = MonitorApp(Session(parse_scenario(FOREVER)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("escape", "c")
        with no_hang():
            while app.running or app.session.position == 0:
                await pilot.pause(0.05)
        assert app.session.position == 5000  # at the limit, as the console's continue
        assert app.session.stop_reason.startswith("paused after 5,000 micro-ops, at micro-op")
