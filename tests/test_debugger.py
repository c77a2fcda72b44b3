"""The debugger session and its commands: breakpoints of every kind, watchpoints, next and
finish, print, the views, interruption, and reverse execution and save/load as properties."""

from __future__ import annotations

import json
import re
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.scenario import load_scenario, parse_scenario
from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.runner.summary import summary as run_summary
from l4tui.session import Session
from l4tui.views import TOPICS


def state(s: Session) -> tuple[str, str, str, list]:
    """The whole observable state: hardware, kernel summary, threads, the phase marks."""
    summary = json.dumps(run_summary(s.system), sort_keys=True, default=str)
    report = execute(s, "info report").split("\n", 1)[1]  # without the stop reason
    return s.system.machine.fingerprint(), summary, report, s.marks


def first_line(out: str) -> str:
    return out.split("\n")[0]


@pytest.fixture
def demo() -> Session:
    return Session(demo_scenario())


# --- breakpoints ------------------------------------------------------------------------


def test_syscall_breakpoint_with_a_thread_filter(demo: Session) -> None:
    assert (
        execute(demo, "break syscall call thread cli") == "breakpoint 1 at syscall call thread cli"
    )
    out = execute(demo, "continue")
    assert first_line(out) == "breakpoint 1: syscall call by cli on cpu1"
    assert execute(demo, "print cli.state") in ("cli.state = running",)
    execute(demo, "delete 1")
    execute(demo, "break syscall recv thread cli")
    # cli never makes a bare recv: the run goes to its end without stopping.
    assert first_line(execute(demo, "continue")).startswith("run ended")


def test_ipi_breakpoints_sent_and_delivered(demo: Session) -> None:
    execute(demo, "break ipi sent")
    assert first_line(execute(demo, "continue")).startswith("breakpoint 1: IPI sent on cpu1")
    execute(demo, "delete")
    execute(demo, "break ipi delivered cpu 2")
    assert first_line(execute(demo, "continue")) == "breakpoint 2: IPI delivered on cpu2"


def test_migration_and_page_fault_breakpoints(demo: Session) -> None:
    execute(demo, "break pagefault")
    execute(demo, "break migration")
    out = first_line(execute(demo, "continue"))
    assert out == "breakpoint 1: pagefault by srv on cpu2"
    stops = [first_line(execute(demo, "continue")) for _ in range(4)]
    assert "breakpoint 1: pagefault by pgr on cpu1" in stops  # the pager faults in its page
    assert "breakpoint 2: migration by sched on cpu1" in stops


def test_tbreak_stops_once_and_is_deleted(demo: Session) -> None:
    execute(demo, "tbreak xp.proxy.send")
    assert first_line(execute(demo, "continue")).startswith("breakpoint 1: xp.proxy.send")
    assert execute(demo, "info breakpoints") == "no breakpoints or watchpoints"


def test_log_points_record_and_go_on(demo: Session) -> None:
    execute(demo, "break xp.proxy.send log")
    out = first_line(execute(demo, "continue"))
    assert out.startswith("run ended")  # never stopped
    records = execute(demo, "info log").split("\n")
    assert len(records) >= 4  # cli's four calls, each through a proxy, and the replies
    assert all("xp.proxy.send on cpu" in r for r in records)
    assert f"(hit {len(records)})" in execute(demo, "info breakpoints")


def test_after_skips_hits_and_conditions_filter(demo: Session) -> None:
    execute(demo, "break xp.proxy.send after 2")
    execute(demo, "continue")
    assert "(hit 3)" in execute(demo, "info breakpoints")
    fresh = Session(demo_scenario())
    assert execute(fresh, "break ipc.* if cli.partner == srv").startswith("breakpoint 1")
    execute(fresh, "continue")
    assert execute(fresh, "print cli.partner == srv") == "cli.partner == srv is true"


def test_bad_breakpoints_are_refused_and_change_nothing(demo: Session) -> None:
    for line in (
        "break syscall nosuch",
        "break ipc.* bogus",
        "break ipc.* thread nobody",
        "break ipc.* cpu 9",
        "break ipc.* if cli.partner ==",
        "break ipc.* if nosuch.partner == srv",
        "break ipc.* after x",
        "watch line srv.99 cpu 1",
        "watch line srv.1 cpu 7",
        "watch srv.nofield",
        "break foo.bar",
        "tbreak foo.bar",
        "break foo.bar if cli.partner == srv",
        "break xp.prxy.*",
        "disable 1",
        "enable 7",
        "disable x",
        "disable 1 2",
    ):
        assert execute(demo, line).startswith("error: "), line
    assert execute(demo, "info breakpoints") == "no breakpoints or watchpoints"
    assert demo.position == 0


def test_a_phase_glob_must_match_a_label_a_kernel_path_has(demo: Session) -> None:
    assert execute(demo, "break foo.bar") == (
        "error: no phase label matches 'foo.bar' (did you mean 'boot.barrier'?)"
    )
    assert execute(demo, "break xp.proxy.snd") == (
        "error: no phase label matches 'xp.proxy.snd' (did you mean 'xp.proxy.send'?)"
    )
    assert execute(demo, "tbreak xp.prxy.*").endswith("(did you mean 'xp.proxy.*'?)")
    nothing_close = execute(demo, "break frobnicate if cli.partner == srv")
    assert nothing_close.startswith("error: no phase label matches 'frobnicate'; the labels are")
    assert "ipc.* " in nothing_close and "xp.*" in nothing_close
    # Globs that match, labels built at run time, and the other kinds stay valid.
    for line in (
        "break xp.*",
        "break migrate.*barrier2",
        "break tlb.shootdown*",
        "break ipc.call",
        "break thread.ex_regs.remote",
        "tbreak ipc.send.* if cli.partner == srv",
        "break syscall call",
        "break ipi delivered cpu 2",
        "break migration",
        "break pagefault",
    ):
        assert execute(demo, line).startswith("breakpoint "), line
    assert len(demo.breakpoints) == 10


def test_a_disabled_breakpoint_neither_stops_nor_counts(demo: Session) -> None:
    assert execute(demo, "break syscall call") == "breakpoint 1 at syscall call"
    assert execute(demo, "break xp.proxy.send") == "breakpoint 2 at xp.proxy.send"
    assert execute(demo, "disable 1") == "disabled breakpoint 1: syscall call"
    assert execute(demo, "info breakpoints").splitlines() == [
        "1: break syscall call (hit 0, disabled)",
        "2: break xp.proxy.send (hit 0)",
    ]
    assert first_line(execute(demo, "continue")).startswith("breakpoint 2: xp.proxy.send")
    assert [b.hits for b in demo.breakpoints] == [0, 1]  # cli's call went by uncounted
    assert execute(demo, "disable") == "disabled 2 breakpoint(s)"
    out = execute(demo, "continue")
    assert first_line(out).startswith("run ended"), out  # nothing stops it now
    assert [b.hits for b in demo.breakpoints] == [0, 1]
    assert execute(demo, "enable 1") == "enabled breakpoint 1: syscall call"
    assert execute(demo, "enable") == "enabled 2 breakpoint(s)"
    assert "disabled" not in execute(demo, "info breakpoints")


def test_reverse_continue_ignores_disabled_breakpoints(demo: Session) -> None:
    execute(demo, "break syscall call")
    execute(demo, "break xp.proxy.send")
    execute(demo, "continue")
    execute(demo, "continue")  # past the call, at the proxy's send
    at = demo.position
    execute(demo, "continue")
    execute(demo, "disable 2")
    back = execute(demo, "reverse-continue")
    assert "syscall call" in first_line(back), back  # not the (disabled) proxy send
    assert demo.position < at


def test_disabled_breakpoints_are_saved_and_loaded(demo: Session, tmp_path) -> None:
    execute(demo, "break syscall call")
    execute(demo, "break xp.*")
    execute(demo, "continue")
    execute(demo, "disable 2")
    path = tmp_path / "s.json"
    execute(demo, f"save {path}")
    saved = json.loads(path.read_text())["breakpoints"]
    assert [b["enabled"] for b in saved] == [True, False]
    other = Session(demo_scenario())
    assert not execute(other, f"load {path}").startswith("error")
    assert execute(other, "info breakpoints") == execute(demo, "info breakpoints")
    assert [b.enabled for b in other.breakpoints] == [True, False]
    assert execute(other, "continue") == execute(demo, "continue")
    # A session saved before breakpoints could be disabled (format 2: each breakpoint as
    # its command line) loads with all of them on, and one whose phase glob matches no
    # label (accepted then) still loads.
    data = json.loads(path.read_text())
    data["l4tui_session"] = 2
    data["breakpoints"] = [
        {"command": "break syscall call", "number": 1, "hits": saved[0]["hits"]},
        {"command": "break foo.bar", "number": 2, "hits": saved[1]["hits"]},
    ]
    path.write_text(json.dumps(data))
    old = Session(demo_scenario())
    assert not execute(old, f"load {path}").startswith("error")
    assert [(b.what, b.enabled) for b in old.breakpoints] == [("call", True), ("foo.bar", True)]


# --- watchpoints ------------------------------------------------------------------------


def test_mesi_line_watchpoint_shows_old_and_new(demo: Session) -> None:
    out = execute(demo, "watch line srv.0 cpu 2")
    assert out.startswith("watchpoint on line srv.0 cpu 2 (now ")
    stop = first_line(execute(demo, "continue"))
    assert stop.startswith("watchpoint line srv.0 cpu 2: ")
    old, new = stop.split(": ", 1)[1].split(" (")[0].split(" -> ")
    assert old != new and {old, new} <= set("MESI")


# --- next, finish, print, focus ----------------------------------------------------------


def test_finish_runs_to_the_end_of_the_focused_threads_syscall(demo: Session) -> None:
    execute(demo, "focus thread cli")
    execute(demo, "break syscall call")
    execute(demo, "continue")
    execute(demo, "delete")
    assert first_line(execute(demo, "finish")) == "cli: call returned (ok)"
    assert len(demo.system.kernel.by_name["cli"].results) == 1


def test_next_stops_at_the_focused_threads_next_phase(demo: Session) -> None:
    execute(demo, "focus thread srv")
    out = first_line(execute(demo, "next"))
    assert out.startswith("srv: phase ")
    assert demo.system.kernel.cpus[1].current.name == "srv"


def test_print_expressions(demo: Session) -> None:
    execute(demo, "step 40")
    assert execute(demo, "print cpu1.mode") in ("cpu1.mode = kernel", "cpu1.mode = user")
    assert execute(demo, "print cpu2.clock").startswith("cpu2.clock = ")
    assert execute(demo, "print srv.priority") == "srv.priority = 100 (0x64)"
    assert execute(demo, "print srv.priority > 50 and cli.cpu == 1") == (
        "srv.priority > 50 and cli.cpu == 1 is true"
    )
    assert execute(demo, "print cpu3.clock").startswith("error: no CPU 3")
    assert execute(demo, "print srv.nofield").startswith("error: no TCB field")
    assert execute(demo, "print cpu1.bogus").startswith("error: no CPU field")


def test_a_proxy_whose_name_has_a_dot_is_printed_and_watched(demo: Session) -> None:
    """`proxy2.1.state`: the field is after the last dot (it read a thread 'proxy2')."""
    assert execute(demo, "print proxy2.1.state") == "proxy2.1.state = waiting"
    assert execute(demo, "print proxy2.1").startswith("proxy2.1 = ")
    assert execute(demo, "print proxy2.1.priority").startswith("proxy2.1.priority = ")
    assert "error" not in execute(demo, "watch proxy2.1.thread_state")
    assert "error" not in execute(demo, "watch line proxy2.1.0 cpu 2")
    assert execute(demo, "print proxy2.1.bogus").startswith("error: no TCB field")


# --- views --------------------------------------------------------------------------------


def test_every_view_renders(demo: Session) -> None:
    execute(demo, "step 200")
    args = {"sendq": "srv", "tcb": "srv", "tlb": "1", "space": "server"}
    for topic in TOPICS:
        out = execute(demo, f"info {topic} {args.get(topic, '')}".strip())
        assert out and not out.startswith("error"), topic
    assert "mapping database" in execute(demo, "info space server")
    assert execute(demo, "info tlb 3").startswith("error: no CPU 3")
    assert execute(demo, "info space nosuch").startswith("error: no task 'nosuch'")
    assert execute(demo, "info sendq").startswith("error: usage: info sendq THREAD")
    assert execute(demo, "info thread").startswith("error: no view 'thread' (did you mean")


def test_deadlock_is_reported_when_the_run_stops() -> None:
    text = """
name: deadly-embrace
tasks:
  - name: t
    threads:
      - {name: a, cpu: 1, program: [{call: {to: b}}]}
      - {name: b, cpu: 2, program: [{call: {to: a}}]}
"""
    s = Session(parse_scenario(text, "<deadlock>"))
    out = first_line(execute(s, "continue"))
    assert out.startswith("run ended: deadlock: ")
    assert "deadlock: " in execute(s, "info waits")


def test_interrupt_stops_a_long_continue_without_losing_state() -> None:
    s = Session(load_scenario("scripts/xp-pingpong.yaml"))
    text = parse_scenario(
        """
name: endless
tasks:
  - name: t
    threads:
      - {name: spin, program: [{loop: [{compute: 100}]}]}
""",
        "<endless>",
    )
    s = Session(text)
    timer = threading.Timer(0.2, s.interrupt)
    timer.start()
    out = first_line(execute(s, "continue"))
    timer.join()
    assert out.startswith("interrupted at micro-op ")
    at = s.position
    assert at > 0
    execute(s, "stepi")
    assert s.position == at + 1  # the session goes on from where it stopped


# --- reverse execution and save/load as properties -------------------------------------

SCENARIOS = ["<demo>", "scripts/xp-pingpong.yaml", "scripts/migrate-workers.yaml"]


def scenario(name: str):  # a Scenario
    return demo_scenario() if name == "<demo>" else load_scenario(name)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(SCENARIOS),
    n=st.integers(min_value=1, max_value=1500),
    back=st.integers(min_value=0, max_value=1500),
)
def test_reverse_k_equals_a_fresh_run_of_n_minus_k(name: str, n: int, back: int) -> None:
    s = Session(scenario(name))
    s.stepi(n)
    n = s.position  # the run may end earlier
    back = min(back, n)
    s.reverse_stepi(back)
    fresh = Session(scenario(name))
    fresh.stepi(n - back)
    assert s.position == fresh.position == n - back
    assert state(s) == state(fresh)


COMMANDS = [
    "stepi 57",
    "step 3",
    "sched manual",
    "step cpu 1",
    "step cpu 2",
    "sched timed",
    "cli: compute 300",
    "break ipc.*",
    "watch srv.partner",
    "tbreak ipi sent",
    "continue",
    "reverse-stepi 20",
    "reverse-step",
    "run 3000",
    "layout naive",
    "disable 1",
    "enable",
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=10))
def test_save_and_load_round_trip_to_the_identical_state(
    commands: list[str], tmp_path_factory
) -> None:
    s = Session(demo_scenario())
    for line in commands:
        execute(s, line)
    path = tmp_path_factory.mktemp("saved") / "session.json"
    assert execute(s, f"save {path}").startswith("saved ")
    other = Session(demo_scenario())
    assert not execute(other, f"load {path}").startswith("error")
    assert other.position == s.position and other.log == s.log
    assert state(other) == state(s)
    assert execute(other, "info breakpoints") == execute(s, "info breakpoints")
    # Both go on identically.
    assert execute(other, "stepi 25") == execute(s, "stepi 25")
    assert state(other) == state(s)


def test_layout_reruns_the_scenario_with_the_other_tcb_layout(demo: Session, tmp_path) -> None:
    execute(demo, "break xp.proxy.send")
    execute(demo, "run 20000")
    out = execute(demo, "layout naive")
    assert out.startswith("naive TCB layout: back at xp.proxy.send of proxy2.1")  # relayout.py
    assert "layout naive" in execute(demo, "info tcb srv")
    assert "1: break xp.proxy.send" in execute(demo, "info breakpoints")
    execute(demo, "disable 1")
    execute(demo, "layout thesis")
    assert "disabled" in execute(demo, "info breakpoints")  # a switch keeps it disabled
    execute(demo, "layout naive")
    path = tmp_path / "naive.json"
    execute(demo, f"save {path}")
    other = Session(demo_scenario())
    execute(other, f"load {path}")
    assert "layout naive" in execute(other, "info tcb srv")
    assert state(other) == state(demo)
    assert execute(demo, "layout bogus").startswith("error: layout takes thesis or naive")


def test_steps_and_watchpoints_name_the_kernel_words_they_touch() -> None:
    s = Session(demo_scenario())
    assert execute(s, "watch srv.partner") == "watchpoint on srv.partner (now 0x0)"
    stop = execute(s, "continue").split("\n")[0]
    assert stop == "watchpoint srv.partner: 0x0 -> 0xc0401 = cli (cpu2)"
    said = [execute(s, "step cpu 2").split("\n")[0] for _ in range(12)]
    assert any(re.search(r"^stepped cpu2: (Read|Write) \w+\.\w+ = 0x[0-9a-f]+", x) for x in said)
    assert "(now 0xc0401 = cli)" in execute(s, "info breakpoints")
