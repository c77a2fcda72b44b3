"""The command language and the line console (issue 5, first part): parser, executor, console."""

from __future__ import annotations

import subprocess
import sys

import pytest

from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.grammar import SPECS, CommandError, help_text, parse
from l4tui.session import Session


@pytest.fixture
def session() -> Session:
    return Session(demo_scenario())


def test_parse_aliases_and_errors() -> None:
    assert parse("  ") is None and parse("# a comment") is None
    assert parse("si 3").name == "stepi"
    with pytest.raises(CommandError, match="did you mean 'step'"):
        parse("stepy")
    with pytest.raises(CommandError, match="usage: run CYCLES"):
        parse("run")
    with pytest.raises(CommandError, match="cannot read"):
        parse('print "unclosed')


def test_help_lists_every_command() -> None:
    text = help_text()
    for spec in SPECS.values():
        assert spec.usage in text
    assert "usage" not in help_text("break") and "PHASE_GLOB" in help_text("break")


def test_bad_commands_change_nothing(session: Session) -> None:
    before = session.system.machine.fingerprint()
    for line in (
        "frobble",
        "stepi x",
        "print nobody.partner",
        "print srv.partnr",
        "focus cpu 9",
        "info nonsense",
        "sched fast",
    ):
        assert execute(session, line).startswith("error: ")
    assert session.system.machine.fingerprint() == before


def test_break_and_continue_stop_at_the_phase(session: Session) -> None:
    assert execute(session, "break xp.proxy.send") == "breakpoint 1 at xp.proxy.send"
    out = execute(session, "continue")
    assert out.startswith("breakpoint 1: xp.proxy.send on cpu2")
    assert session.system.machine.last_op.label == "xp.proxy.send"
    assert "hit 1" in execute(session, "info breakpoints")


def test_stepping_is_deterministic() -> None:
    a, b = Session(demo_scenario()), Session(demo_scenario())
    for s in (a, b):
        execute(s, "step 40")
        execute(s, "stepi 500")
    assert a.system.machine.fingerprint() == b.system.machine.fingerprint()
    assert execute(a, "info threads") == execute(b, "info threads")


def test_continue_to_the_end(session: Session) -> None:
    out = execute(session, "continue")
    assert out.startswith("run ended: end")
    assert session.threads()[2].state == "inactive"  # cli made its four calls


def test_console_reads_stdin_runs_every_line_and_exits_2_on_a_failure() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "l4tui", "console", "--echo"],
        input="info threads\nbogus\nstep 2\nquit\nstepi 5\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "(l4tui) info threads" in proc.stdout
    assert "error: unknown command 'bogus'" in proc.stdout
    assert "(l4tui) step 2" in proc.stdout  # the line after the failure ran
    assert "(l4tui) stepi 5" not in proc.stdout  # stopped at quit
    assert proc.stderr.startswith("error: <stdin>:2: unknown command 'bogus'")
    assert "Traceback" not in proc.stderr


def test_console_bad_scenario_exits_2(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "l4tui", "console", str(bad)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad}:2:1:")


def test_reverse_stepi_equals_a_fresh_run() -> None:
    """N micro-ops forward, K back: the same state as N - K from the start, whole."""
    for n, back in ((300, 1), (300, 120), (900, 899)):
        s = Session(demo_scenario())
        s.stepi(n)
        s.reverse_stepi(back)
        fresh = Session(demo_scenario())
        fresh.stepi(n - back)
        assert s.position == n - back
        assert s.system.machine.fingerprint() == fresh.system.machine.fingerprint()
        assert execute(s, "info threads") == execute(fresh, "info threads")


def test_reverse_continue_goes_back_to_the_last_write() -> None:
    s = Session(demo_scenario())
    execute(s, "watch srv.partner")
    first = execute(s, "continue")
    assert first.startswith("watchpoint srv.partner:")
    at = s.position
    second = execute(s, "continue")  # the next change (or the end of the run)
    assert s.position > at
    execute(s, "reverse-continue")
    execute(s, "reverse-continue")
    assert s.position == at - 1  # just before the write that first changed it
    assert execute(s, "stepi").split("\n")[0] == first.split("\n")[0]  # the same write again
    assert s.position == at
    assert second


def test_manual_interleaving_and_info_views(session: Session) -> None:
    assert execute(session, "sched manual") == "scheduling: manual"
    assert execute(session, "continue").startswith("manual scheduling: name the CPU")
    assert execute(session, "step cpu 2").startswith(("stepped cpu2", "watchpoint"))
    assert session.system.machine.last_cpu.number == 2
    assert execute(session, "step cpu 7").startswith("error: no CPU 7")
    assert "global modified" in execute(session, "info tcb srv")
    assert "slots" in execute(session, "info apic")
    assert execute(session, "info waits")


def test_save_and_load_restore_the_identical_state(session: Session, tmp_path) -> None:
    execute(session, "break ipc.recv.*")
    execute(session, "watch cli.thread_state")
    execute(session, "step 30")
    execute(session, "sched manual")
    execute(session, "step cpu 2")
    path = tmp_path / "s.json"
    assert execute(session, f"save {path}").startswith("saved ")
    other = Session(demo_scenario())
    out = execute(other, f"load {path}")
    assert "at micro-op" in out
    assert other.position == session.position
    assert other.system.machine.fingerprint() == session.system.machine.fingerprint()
    assert execute(other, "info breakpoints") == execute(session, "info breakpoints")
    assert other.system.machine.policy == "manual"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    before = other.system.machine.fingerprint()
    assert execute(other, f"load {bad}").startswith(f"error: {bad}: cannot read the session")
    assert other.system.machine.fingerprint() == before


def test_syscall_injection_runs_as_the_next_op(session: Session) -> None:
    assert execute(session, "cli: call srv 9 8 timeout=inf") == "cli will run call next"
    assert execute(session, "cli: frobnicate").startswith("error: cannot inject 'frobnicate'")
    assert execute(session, "nobody: read_kip").startswith("error: no thread 'nobody'")
    assert execute(session, "srv: sleep x").startswith("error: CYCLES must be a number")
    execute(session, "continue")
    cli = session.system.kernel.by_name["cli"]
    assert cli.results[0]["op"] == "call" and cli.results[0]["ok"] is True
    assert len([r for r in cli.results if r["op"] == "call"]) == 5  # the program's four, and ours
    srv = session.system.kernel.by_name["srv"]
    assert srv.results[0]["words"] == [9, 8]  # the injected call came first
