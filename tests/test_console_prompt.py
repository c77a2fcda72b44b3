"""The interactive console, driven with no terminal: keys through a pipe, output to nowhere.

prompt-toolkit's own way (STYLE.md point 8): `create_pipe_input()` feeds the keys,
`DummyOutput()` swallows the screen, and `create_app_session` makes both the
defaults for the `PromptSession` that `prompt.interactive` builds. The history
goes to a temporary `XDG_STATE_HOME`, never the user's.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import DummyOutput

from l4tui import console
from l4tui import prompt as console_prompt
from l4tui.complete import CommandCompleter
from l4tui.demo import demo_scenario
from l4tui.lexer import CommandLexer
from l4tui.paths import history_path, state_dir
from l4tui.session import Session


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    yield home


@pytest.fixture
def session() -> Session:
    return Session(demo_scenario())


def drive(session: Session, keys: str) -> int:
    """Run the interactive console on `keys`; its exit code.

    Ctrl-C Ctrl-D follow the keys, so a console that missed its `quit` ends
    (and the test fails on its asserts) rather than waiting for keys forever.
    """
    with create_pipe_input() as inp:
        inp.send_text(keys + "\x03\x04")
        with create_app_session(input=inp, output=DummyOutput()):
            return console_prompt.interactive(session)


def test_state_dir_follows_xdg_state_home(state_home: Path, monkeypatch) -> None:
    assert state_dir() == state_home / "l4tui"
    assert console.state_dir() == state_dir()
    assert history_path() == state_home / "l4tui" / "history"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # invalid by the spec: ignored
    monkeypatch.setenv("HOME", "/home/someone")
    assert state_dir() == Path("/home/someone/.local/state/l4tui")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_dir() == Path("/home/someone/.local/state/l4tui")


def test_commands_run_and_quit_ends_the_console(session: Session, capsys) -> None:
    assert drive(session, "stepi 3\rinfo threads\rquit\rstepi 5\r") == 0
    out = capsys.readouterr().out
    assert "stepped" in out and "srv" in out
    assert session.position == 3  # stopped at quit: `stepi 5` never ran


def test_a_newline_also_accepts_the_line(session: Session) -> None:
    assert drive(session, "stepi\nquit\n") == 0
    assert session.position == 1


def test_the_history_file_gets_written(session: Session, state_home: Path) -> None:
    drive(session, "stepi 2\rwhere\rquit\r")
    text = (state_home / "l4tui" / "history").read_text()
    assert "+stepi 2\n" in text and "+where\n" in text and "+quit\n" in text


def test_history_is_read_back_and_up_recalls_it(session: Session) -> None:
    drive(session, "stepi 2\rquit\r")
    again = Session(demo_scenario())
    drive(again, "\x1b[A\x1b[A\rquit\r")  # up, up: `stepi 2` again
    assert again.position == 2


def test_ctrl_c_clears_the_line_and_does_not_quit(session: Session, capsys) -> None:
    assert drive(session, "stepi 7\x03stepi\r\x03where\rquit\r") == 0
    assert session.position == 1  # the interrupted `stepi 7` never ran
    assert "cycle" in capsys.readouterr().out  # `where` ran after the Ctrl-C


def test_ctrl_d_quits(session: Session) -> None:
    assert drive(session, "stepi\r\x04") == 0
    assert session.position == 1


def test_a_bad_command_is_reported_and_the_console_goes_on(session: Session, capsys) -> None:
    assert drive(session, "frobble\rstepi\rquit\r") == 0
    assert "error: unknown command 'frobble'" in capsys.readouterr().out
    assert session.position == 1


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_tab_completes_commands_and_arguments(session: Session) -> None:
    # Completion runs on the prompt's event loop: type as a person does, pressing
    # Tab once the menu for the typed word is up, and the next word once Tab took.
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        prompt = console_prompt.make_prompt(session)
        buf = prompt.default_buffer
        seen: list[bool] = []

        def menu_for(text: str) -> Callable[[], bool]:
            def up() -> bool:
                state = buf.complete_state
                return state is not None and state.original_document.text == text

            return up

        def type_keys() -> None:
            for typed, done in (
                ("foc", "focus"),
                (" th", "focus thread"),
                (" sr", "focus thread srv"),
            ):
                before = buf.text
                inp.send_text(typed)
                seen.append(wait_for(menu_for(before + typed)))
                inp.send_text("\t")
                seen.append(wait_for(lambda done=done: buf.text == done))
            inp.send_text("\r")  # always: the prompt must not wait forever

        typist = threading.Thread(target=type_keys)
        typist.start()
        line = prompt.prompt("(l4tui) ")
        typist.join()
    assert line == "focus thread srv" and all(seen)
    assert console.one(session, line) is False
    assert session.focus_thread == "srv"


def test_the_prompt_is_wired_like_pgcli(session: Session) -> None:
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        prompt = console_prompt.make_prompt(session)
    assert isinstance(prompt.completer, CommandCompleter)
    assert isinstance(prompt.lexer, PygmentsLexer)
    assert prompt.lexer.pygments_lexer_cls is CommandLexer
    assert isinstance(prompt.auto_suggest, AutoSuggestFromHistory)
    assert prompt.complete_while_typing
    assert callable(prompt.bottom_toolbar) and "micro-op 0" in prompt.bottom_toolbar()


def test_history_falls_back_to_memory_when_the_directory_cannot_be_made(
    state_home: Path,
) -> None:
    state_home.parent.mkdir(parents=True, exist_ok=True)
    state_home.write_text("a file where the directory should be")
    assert isinstance(console_prompt.make_history(), InMemoryHistory)
    assert isinstance(console_prompt.make_history(), InMemoryHistory)


def test_history_is_a_file_in_the_state_dir(state_home: Path) -> None:
    history = console_prompt.make_history()
    assert isinstance(history, FileHistory)
    assert Path(history.filename) == state_home / "l4tui" / "history"


def test_the_console_works_without_a_history_file(session: Session, state_home: Path) -> None:
    state_home.parent.mkdir(parents=True, exist_ok=True)
    state_home.write_text("")
    assert drive(session, "stepi\rquit\r") == 0
    assert session.position == 1


def test_toolbar_shows_cycle_focus_stop_and_position(session: Session) -> None:
    assert console_prompt.toolbar(session) == " cycle 0 │ focus cpu1 │ stop: start │ micro-op 0"
    session.stepi(200)
    session.focus_cpu, session.focus_thread = 2, "srv"
    bar = console_prompt.toolbar(session)
    cycle = min(c.cycle for c in session.cpus())
    assert bar.startswith(f" cycle {cycle:,} │ focus cpu2/srv │ stop: ")
    assert bar.endswith(f"│ micro-op {session.position}")


def test_ctrl_c_while_a_command_runs_stops_the_machine_not_the_console(
    session: Session, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    step = session._step
    calls = [0]

    def step_then_ctrl_c(*args: object) -> object:
        calls[0] += 1
        if calls[0] == 100:
            signal.raise_signal(signal.SIGINT)  # as the terminal does on Ctrl-C
        return step(*args)

    monkeypatch.setattr(session, "_step", step_then_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    assert drive(session, "continue\rwhere\rquit\r") == 0
    assert session.stop_reason == "interrupted at micro-op 100"
    assert "interrupted at micro-op 100" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is before  # the prompt's own Ctrl-C is back
