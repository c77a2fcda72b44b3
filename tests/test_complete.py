"""The console's completer, tested as a pure function over `Document`s (the pgcli way)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_toolkit.completion import CompleteEvent, Completion
from prompt_toolkit.document import Document

from l4tui.breakpoints import SYSCALLS
from l4tui.complete import CommandCompleter
from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.expr import CPU_FIELDS, STATES
from l4tui.grammar import ALIASES, INFO_HELP, SPECS
from l4tui.inject import OPS
from l4tui.phases import phase_labels, phase_prefixes
from l4tui.session import Session
from l4tui.views import TOPICS

THREADS = ["pgr", "srv", "cli", "sched"]


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(demo_scenario())


@pytest.fixture(scope="module")
def completer(session: Session) -> CommandCompleter:
    return CommandCompleter(lambda: session)


def complete(c: CommandCompleter, text: str, cursor: int | None = None) -> list[Completion]:
    doc = Document(text, len(text) if cursor is None else cursor)
    return list(c.get_completions(doc, CompleteEvent(completion_requested=True)))


def words(c: CommandCompleter, text: str) -> list[str]:
    return [x.text for x in complete(c, text)]


def test_command_names_at_line_start(completer: CommandCompleter) -> None:
    got = words(completer, "")
    assert set(SPECS) | set(ALIASES) <= set(got)
    assert {f"{t}:" for t in THREADS} <= set(got)  # the injection form
    assert words(completer, "st") == ["step", "stepi"]
    assert words(completer, "rev") == ["reverse-continue", "reverse-step", "reverse-stepi"]


def test_completions_replace_the_partial_word_and_say_what_they_are(
    completer: CommandCompleter,
) -> None:
    (brk,) = [x for x in complete(completer, "brea")]
    assert brk == Completion("break", start_position=-4, display_meta=SPECS["break"].help)
    assert brk.display_meta_text == SPECS["break"].help
    (alias,) = [x for x in complete(completer, "rc") if x.text == "rc"]
    assert "reverse-continue" in alias.display_meta_text
    assert [x.text for x in complete(completer, "  si")] == ["si"]  # leading blanks are fine


def test_aliases_complete_their_arguments_like_the_command(completer: CommandCompleter) -> None:
    assert words(completer, "i ") == words(completer, "info ")
    assert words(completer, "b ipc.se") == words(completer, "break ipc.se")


def test_focus(completer: CommandCompleter) -> None:
    assert words(completer, "focus ") == ["cpu", "thread", "follow"]
    assert words(completer, "focus th") == ["thread"]
    assert words(completer, "focus thread ") == THREADS
    assert words(completer, "focus thread s") == ["srv", "sched"]
    assert words(completer, "focus cpu ") == ["1", "2"]
    assert words(completer, "focus thread srv ") == ["pin"]
    assert words(completer, "focus thread srv pin ") == []


def test_print_and_watch_threads_and_fields(completer: CommandCompleter, session: Session) -> None:
    got = words(completer, "print ")
    assert got == [*(f"{t}." for t in THREADS), "cpu1.", "cpu2."]
    assert words(completer, "p ") == got  # the alias
    fields = list(session.system.kernel.by_name["srv"].f)
    assert words(completer, "print srv.") == [*fields, "state"]
    part = complete(completer, "print srv.part")
    assert [(x.text, x.start_position) for x in part] == [("partner", -4)]
    assert "srv's TCB" in part[0].display_meta_text
    assert words(completer, "print cpu1.") == list(CPU_FIELDS)
    assert words(completer, "print cpu2.c") == ["clock", "cr3"]
    assert words(completer, "print cpu9.") == []  # no such CPU
    assert words(completer, "print nosuch.") == []


def test_print_completes_both_sides_of_a_condition(completer: CommandCompleter) -> None:
    assert words(completer, "print cli.partner == s") == ["srv.", "sched.", "srv", "sched"]
    assert words(completer, "print cli.state == w") == ["waiting"]
    assert set(STATES) <= set(words(completer, "print cli.state != "))
    assert words(completer, "print cli.partner == srv and cli.th") == ["thread_state"]


def test_watch_a_field_or_a_tcb_line(completer: CommandCompleter, session: Session) -> None:
    assert words(completer, "watch ") == [*(f"{t}." for t in THREADS), "line"]  # no CPUs
    assert words(completer, "watch srv.") == list(session.system.kernel.by_name["srv"].f)
    assert words(completer, "watch cpu1.") == []
    assert words(completer, "watch line ") == [f"{t}." for t in THREADS]
    lines = session.system.kernel.layout.lines()
    got = complete(completer, "watch line srv.")
    assert [x.text for x in got] == [str(i) for i in range(len(lines))]
    assert "thread_state" in got[0].display_meta_text  # what the line holds
    assert words(completer, "watch line srv.1 ") == ["cpu"]
    assert words(completer, "watch line srv.1 cpu ") == ["1", "2"]
    assert words(completer, "watch srv.partner ") == []


def test_info_topics_and_their_arguments(completer: CommandCompleter) -> None:
    assert words(completer, "info ") == list(TOPICS)
    assert words(completer, "info t") == ["threads", "tcb", "tlb"]
    assert words(completer, "info tcb ") == THREADS
    assert words(completer, "info sendq c") == ["cli"]
    assert words(completer, "info tlb ") == ["1", "2"]
    assert words(completer, "info ready ") == ["1", "2"]
    assert words(completer, "info space s") == ["sigma0", "server", "scheduler"]
    assert words(completer, "info threads ") == []


def test_break_offers_phase_labels_and_prefixes(completer: CommandCompleter) -> None:
    got = words(completer, "break ipc.se")
    assert "ipc.send.*" in got and "ipc.send.lock" in got
    assert all(w.startswith("ipc.se") for w in got)
    assert got == sorted(got)
    everything = set(words(completer, "break "))
    assert set(phase_labels()) | set(phase_prefixes()) <= everything
    assert {"syscall", "ipi", "migration", "pagefault"} <= everything
    assert words(completer, "tbreak xp.pr") == [
        "xp.proxy.*",
        *[label for label in phase_labels() if label.startswith("xp.pr")],
    ]


def test_break_events_and_filters(completer: CommandCompleter) -> None:
    assert words(completer, "break syscall ") == list(SYSCALLS)
    assert words(completer, "break syscall re") == ["recv", "reply_wait"]
    assert words(completer, "break ipi ") == [
        "sent",
        "delivered",
        "thread",
        "cpu",
        "after",
        "log",
        "if",
    ]
    assert words(completer, "break ipc.* ") == ["thread", "cpu", "after", "log", "if"]
    assert words(completer, "break ipc.* log ") == ["thread", "cpu", "after", "if"]
    assert words(completer, "break syscall call thread ") == THREADS
    assert words(completer, "break migration cpu ") == ["1", "2"]
    assert words(completer, "break ipc.* after ") == []
    assert words(completer, "break ipc.* after 3 l") == ["log"]
    assert words(completer, "tbreak ipc.* if cli.part") == ["partner"]
    assert words(completer, "break ipc.* if cli.partner == s") == ["srv.", "sched.", "srv", "sched"]


def test_phase_labels_come_from_the_kernels_list() -> None:
    labels = phase_labels()
    assert labels == tuple(sorted(set(labels)))
    assert {"ipc.send.check_target", "xp.proxy.send", "boot.done", "idle"} <= set(labels)
    assert not any("{" in label for label in labels)  # f-strings are left out
    assert {"ipc.*", "ipc.send.*", "xp.*", "migrate.A.*"} <= set(phase_prefixes())
    assert "idle.*" not in phase_prefixes()
    assert phase_labels() is phase_labels()  # cached


def test_small_argument_lists(completer: CommandCompleter) -> None:
    assert words(completer, "sched ") == ["timed", "manual"]
    assert words(completer, "help ") == sorted([*SPECS, *ALIASES])
    assert words(completer, "help rev") == ["reverse-continue", "reverse-step", "reverse-stepi"]
    assert words(completer, "check ") == ["invariants"]
    assert words(completer, "step cpu ") == ["1", "2"]
    assert words(completer, "stepi ") == []


def test_injection_ops_and_targets(completer: CommandCompleter) -> None:
    assert words(completer, "cli: ") == list(OPS)
    assert words(completer, "cli: re") == ["recv", "reply_wait", "read_kip", "read_utcb_cpu"]
    assert words(completer, "cli: call ") == THREADS
    assert words(completer, "srv: recv ") == ["any", *THREADS]
    assert words(completer, "cli: compute ") == []


def test_paths_after_save_and_load(completer: CommandCompleter, tmp_path: Path) -> None:
    (tmp_path / "run1.json").write_text("{}")
    (tmp_path / "run2.json").write_text("{}")
    (tmp_path / "other.txt").write_text("")
    got = complete(completer, f"save {tmp_path}/ru")
    assert sorted(x.text for x in got) == ["n1.json", "n2.json"]
    assert all(x.start_position == 0 for x in got)  # PathCompleter appends to the word
    assert sorted(x.text for x in complete(completer, f"load {tmp_path}/")) == [
        "other.txt",
        "run1.json",
        "run2.json",
    ]
    assert words(completer, f"export perfetto {tmp_path}/o") == ["ther.txt"]
    assert words(completer, "save /no/such/dir/x") == []


def test_the_cursor_decides_not_the_end_of_the_line(completer: CommandCompleter) -> None:
    text = "info tcb srv"
    assert [x.text for x in complete(completer, text, cursor=6)] == ["threads", "tcb", "tlb"]
    second_line = "stepi\nfocus thr"
    assert words(completer, second_line) == ["thread"]


def test_delete_offers_breakpoint_numbers() -> None:
    s = Session(demo_scenario())
    execute(s, "break ipc.send.*")
    c = CommandCompleter(lambda: s)
    (one,) = complete(c, "delete ")
    assert one.text == "1" and "ipc.send.*" in one.display_meta_text


def test_disable_and_enable_offer_breakpoint_numbers_and_say_which_are_off() -> None:
    s = Session(demo_scenario())
    execute(s, "break ipc.send.*")
    execute(s, "break syscall call")
    execute(s, "disable 2")
    c = CommandCompleter(lambda: s)
    for command in ("disable", "enable"):
        got = [(x.text, x.display_meta_text) for x in complete(c, f"{command} ")]
        assert got == [("1", "ipc.send.*"), ("2", "syscall call (disabled)")]
    assert words(c, "enable 1 ") == []


def test_x_offers_threads_then_their_fields(completer: CommandCompleter, session: Session) -> None:
    got = complete(completer, "x ")
    assert [x.text for x in got] == [f"{t}." for t in THREADS] + [f"{t}:" for t in THREADS]
    assert {x.display_meta_text for x in got} == {"a TCB field", "a user address in its space"}
    assert words(completer, "x sr") == ["srv.", "srv:"]
    assert words(completer, "x srv.pa") == ["pager", "partner"]
    assert words(completer, "x srv.") == list(session.system.kernel.by_name["srv"].f)
    assert "proxy2.1." in words(completer, "x pro")  # the proxies, once asked for
    assert words(completer, "x proxy2.1.my") == ["myself"]
    assert words(completer, "x cli:") == words(completer, "x cli:0x10") == []
    assert words(completer, "x srv.partner ") == []


def test_info_topics_each_say_what_they_show(completer: CommandCompleter) -> None:
    got = {x.text: x.display_meta_text for x in complete(completer, "info ")}
    assert got == INFO_HELP
    assert got["tcb"] == "a TCB by cache line, MESI per CPU"
    assert len(set(got.values())) == len(got)  # no two alike, none the old "view"


def test_the_new_commands_complete_with_their_help(completer: CommandCompleter) -> None:
    for name in ("disable", "enable", "x", "lab"):
        (hit,) = [x for x in complete(completer, name) if x.text == name]
        assert hit.display_meta_text == SPECS[name].help


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "\n",
        "\t\t",
        "info tcb nosuch.",
        'print "',
        "print '",
        "print ..",
        "print .",
        "print srv..x",
        "print nosuch.",
        "print cpu.",
        "print cpux.",
        "watch srv.partner.extra",
        ":",
        "::",
        " : ",
        "nosuch: ",
        "cli: call srv ",
        "cli: ",
        "# comment ",
        "focus",
        "focus cpu 1 2 3 ",
        "break syscall send extra ",
        "save ~nosuchuser/",
        'save "',
        "help help help ",
        "\x00",
        "info \x1b[A",
        "delete ",
        "disable ",
        "enable 1 2 ",
        "x ",
        "x .",
        "x ..",
        "x :",
        "x srv.partner.extra",
        "x proxy2.",
        "x nosuch:",
        "lab ",
        "watch line ",
        "watch line srv.x.",
        "watch line nosuch.",
        "watch line srv.1 cpu 1 2 ",
        "print cli.partner == ",
        "print == == ",
        "break ipc.* if ",
        "break if if ",
        "break ipc.* after after ",
        "info space ",
        "info ready 1 2 ",
    ],
)
def test_garbage_never_raises(completer: CommandCompleter, text: str) -> None:
    for cursor in range(len(text) + 1):
        for x in complete(completer, text, cursor):
            assert isinstance(x, Completion)
            assert -x.start_position <= cursor


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
@settings(max_examples=300, deadline=None)
def test_random_text_never_raises(completer: CommandCompleter, text: str) -> None:
    for x in complete(completer, text):
        assert -x.start_position <= len(text)
