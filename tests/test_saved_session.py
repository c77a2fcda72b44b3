"""Saved sessions are data (l4tui/saved.py): nothing in a saved file is run, every field checked.

A saved file whose breakpoint "command" is `save PATH`, `export perfetto PATH` or `load`
of itself used to write that file or recurse while being loaded — by `load`, `open
--load`, `lab --state` and `lab-status` (issue 14). Format 3 stores breakpoints and
watchpoints as fields and loading builds them; the older formats' text is read only as a
break/tbreak/watch spec. Each bad field is one `error:` line naming the file and the field,
and `lab-status` gives a bad session a row of its own.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l4tui.cli import main
from l4tui.cli.sessions import lab_session
from l4tui.demo import demo_scenario
from l4tui.executor import execute, load_session
from l4tui.labstatus import grade
from l4tui.saved import _shown
from l4tui.session import Session
from machine.errors import ConfigError

LABS = Path(__file__).parent.parent / "scripts" / "labs"
XP_LAB = LABS / "xp-ipc.yaml"


def saved_demo(path: Path) -> dict[str, Any]:
    """A demo session with every kind of breakpoint field and both kinds of watch, saved."""
    s = Session(demo_scenario())
    for line in (
        "break syscall call thread cli cpu 1 after 1",
        "tbreak xp.proxy.* if cli.state == polling",
        "break ipi sent log",
        "break migration",
        "watch srv.partner",
        "watch line srv.0 cpu 2",
        "stepi 40",
        "continue",
        "disable 3",
        "focus thread srv pin",
    ):
        assert not execute(s, line).startswith("error"), line
    assert execute(s, f"save {path}").startswith("saved ")
    return json.loads(path.read_text())


def rewrite(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def load_error(path: Path) -> str:
    """Load `path` in a session through the console: its one error line (nothing changed)."""
    s = Session(demo_scenario())
    execute(s, "stepi 5")
    before = (s.position, s.system.machine.fingerprint(), len(s.breakpoints))
    out = execute(s, f"load {path}")
    assert out.startswith("error: ") and "\n" not in out, out
    assert (s.position, s.system.machine.fingerprint(), len(s.breakpoints)) == before
    return out


# --- format 3 -------------------------------------------------------------------------------


def test_breakpoints_and_watches_are_saved_as_fields_and_load_identically(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    data = saved_demo(path)
    assert data["l4tui_session"] == 3
    assert all("command" not in b for b in data["breakpoints"])
    first = data["breakpoints"][0]
    assert (first["kind"], first["what"], first["thread"], first["cpu"], first["after"]) == (
        "syscall",
        "call",
        "cli",
        1,
        1,
    )
    assert [w["expr"] for w in data["watches"]] == ["srv.partner", "line srv.0 cpu 2"]
    s = Session(demo_scenario())
    for line in ("stepi 40", "continue"):  # the same session, built again to compare
        execute(s, line)
    again = load_session(str(path))
    assert again.position == data["log"].count(None) + sum(
        1 for x in data["log"] if isinstance(x, int)
    )
    assert again.state() == data
    assert (again.focus_thread, again.focus_pinned) == ("srv", True)
    other = Session(demo_scenario())
    assert execute(other, f"load {path}").startswith("loaded ")
    assert execute(other, "info breakpoints") == execute(again, "info breakpoints")
    assert execute(other, "continue") == execute(again, "continue")


# --- nothing in a saved file is run ---------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_format_breakpoint_that_is_a_file_command_is_refused(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "s.json"
    data = saved_demo(path)
    victim = tmp_path / "pwned.json"
    for command in (
        f"save {victim}",
        f"export perfetto {victim}",
        f"load {path}",  # itself: it used to recurse
        f"load schedule {victim}",
        "cli: call srv 1",
        "quit",
    ):
        old = copy.deepcopy(data)
        old["l4tui_session"] = version
        if version == 1:
            for key in ("next_breakpoint", "focus", "focus_pinned", "tcb_layout", "commands"):
                old.pop(key)
            for key in ("stops", "meta", "schedule"):
                old.pop(key)
            old["breakpoints"] = ["syscall call", command.replace("break ", "")]
            old["watches"] = []
            # A v1 glob is put after `break`: a command in it is words `break` refuses.
            where = "breakpoints[1]"
        else:
            old["breakpoints"] = [{"command": command, "number": 1, "hits": 0}]
            old["watches"] = []
            where = "breakpoints[0].command"
        rewrite(path, old)
        if version == 1 and command == "quit":
            # A version-1 breakpoint was a bare glob: `quit` is one, matching no label.
            (_, never) = load_session(str(path)).breakpoints
            assert (never.kind, never.what) == ("phase", "quit")
        else:
            out = load_error(path)
            assert where in out and str(path) in out, out
        assert not victim.exists()
        # and as a watch
        old["breakpoints"] = []
        old["watches"] = [[command, 0]] if version == 1 else [command]
        rewrite(path, old)
        out = load_error(path)
        assert "watches[0]" in out, out
        assert not victim.exists()


def test_old_formats_still_load(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    data = saved_demo(path)
    v2 = copy.deepcopy(data)
    v2["l4tui_session"] = 2
    v2["breakpoints"] = [
        {"command": "break syscall call thread cli cpu 1 after 1", "number": 1, "hits": 2},
        {"command": "tbreak xp.proxy.* if cli.state == polling", "number": 4, "hits": 0},
        {"command": "break never.a.label", "number": 5, "hits": 0, "enabled": False},
    ]
    v2["watches"] = ["watch srv.partner", "watch line srv.0 cpu 2"]
    rewrite(path, v2)
    s = load_session(str(path))
    assert [(b.number, b.kind, b.what, b.hits, b.temporary, b.enabled) for b in s.breakpoints] == [
        (1, "syscall", "call", 2, False, True),
        (4, "phase", "xp.proxy.*", 0, True, True),
        (5, "phase", "never.a.label", 0, False, False),
    ]
    assert s.breakpoints[0].thread == "cli" and s.breakpoints[0].after == 1
    assert [w.expr for w in s.watches] == ["srv.partner", "line srv.0 cpu 2"]
    assert s.state()["l4tui_session"] == 3  # saved again: the new format
    v1 = {
        "l4tui_session": 1,
        "scenario": "<demo>",
        "seed": None,
        "log": [None] * 30,
        "breakpoints": ["xp.*", "syscall call"],
        "watches": [["cli.thread_state", 0]],
    }
    rewrite(path, v1)
    s = load_session(str(path))
    assert [(b.number, b.what) for b in s.breakpoints] == [(1, "xp.*"), (2, "call")]
    assert [w.expr for w in s.watches] == ["cli.thread_state"] and s.position == 30


# --- every bad field: one line, naming the file and the field --------------------------------


def _set(data: dict[str, Any], where: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in where.split("/")]
    for k in keys[:-1]:
        data = data[k]
    data[keys[-1]] = value


BAD_FIELDS = [
    ("meta", 5, "meta: must be a mapping"),
    ("meta/lab", ["x"], "meta.lab: must be text"),
    ("log/3", 99, "log[3]: must be 1..2, not 99"),
    ("log/3", ["idle", 99], "log[3][1]: must be 1..2"),
    ("log/3", ["inject", "nobody", "call", "srv"], "log: does not replay"),
    ("log/3", "save /tmp/x", "log[3]: not an input"),
    ("log/3", True, "log[3]: not an input"),
    ("log", {"a": 1}, "log: must be a list"),
    ("seed", [1, 2], "seed: must be a whole number or null"),
    ("seed", 2**80, "seed: must be a whole number or null"),
    ("schedule", {"log": [1], "stops": []}, "schedule.stops: must be a mapping"),
    ("schedule", {"log": [9], "stops": {}}, "schedule.log[0]: must be 1..2"),
    ("schedule", {"log": [1], "stops": {"x": "y"}}, "schedule.stops: keyed by micro-op"),
    ("schedule", [1], "schedule: must be a mapping"),
    ("focus", [9, None], "focus[0]: must be 1..2"),
    ("focus", [1, "nobody"], "focus[1]: no thread"),
    ("focus", "cli", "focus: must be a list"),
    ("focus_pinned", "yes", "focus_pinned: must be true or false"),
    ("tcb_layout", "fancy", "tcb_layout: must be thesis or naive"),
    ("commands", "continue", "commands: must be a list"),
    ("stops", [1], "stops[0]: must be text"),
    ("breakpoints/0/cpu", 9, "breakpoints[0].cpu: must be 1..2, not 9"),
    ("breakpoints/0/cpu", "1", "breakpoints[0].cpu: must be a whole number"),
    ("breakpoints/0/thread", "nobody", "breakpoints[0].thread: no thread 'nobody'"),
    ("breakpoints/0/kind", "exec", "breakpoints[0].kind: one of phase"),
    ("breakpoints/0/what", "exit", "breakpoints[0].what: one of send"),
    ("breakpoints/1/what", "xp proxy", "breakpoints[1].what: not a phase glob"),
    ("breakpoints/1/what", "", "breakpoints[1].what: not a phase glob"),
    ("breakpoints/1/what", "x" * 300, "breakpoints[1].what: longer than 200"),
    ("breakpoints/1/cond", "cli.nosuch == 1", "breakpoints[1].cond:"),
    ("breakpoints/2/what", "received", "breakpoints[2].what: sent, delivered or empty"),
    ("breakpoints/3/what", "x", "breakpoints[3].what: empty for a migration"),
    ("breakpoints/0/after", -1, "breakpoints[0].after: must be 0 or more"),
    ("breakpoints/0/hits", 1.5, "breakpoints[0].hits: must be a whole number"),
    ("breakpoints/0/enabled", 1, "breakpoints[0].enabled: must be true or false"),
    ("breakpoints/0/command", "save x", "breakpoints[0].command: not a field of a breakpoint"),
    ("breakpoints/1/number", 1, "breakpoints[1].number: breakpoint 1 twice"),
    ("next_breakpoint", 2, "next_breakpoint: must be 5 or more"),
    ("watches/0", "watch srv.partner", "watches[0]: must be a mapping"),
    ("watches/0/expr", "srv.nosuch", "watches[0].expr: no TCB field"),
    ("watches/0/expr", "save x", "watches[0].expr: usage: watch"),
    ("watches/0/paddr", 12, "watches[0].paddr: not the address of srv.partner"),
    ("watches/1/cpu", 1, "watches[1].cpu: not the CPU of line srv.0 cpu 2"),
    ("extra", 1, "extra: not a field of a version-3 saved session"),
    ("scenario", 7, "scenario: must be text"),
    ("scenario", "/nonexistent/x.yaml", "scenario: cannot read /nonexistent/x.yaml"),
    ("scenario", "/dev/zero", "scenario: /dev/zero is not a regular file"),
]


@pytest.mark.parametrize(("where", "value", "message"), BAD_FIELDS)
def test_a_bad_field_is_one_line_naming_the_file_and_the_field(
    tmp_path: Path, where: str, value: Any, message: str
) -> None:
    path = tmp_path / "s.json"
    data = saved_demo(path)
    _set(data, where, value)
    rewrite(path, data)
    out = load_error(path)
    assert out.startswith(f"error: {path}: ") and message in out, out


def test_a_scenario_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    data = saved_demo(path)
    fifo = tmp_path / "scenario.yaml"
    os.mkfifo(fifo)
    data["scenario"] = str(fifo)
    rewrite(path, data)
    assert "is not a regular file" in load_error(path)


def test_not_a_session_and_not_json_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    for text, message in (
        ("[1, 2]", "not a saved l4tui session"),
        ('{"l4tui_session": 4}', "not a saved l4tui session"),
        ('{"l4tui_session": 3}', "scenario: missing"),
        ("[" * 100_000 + "]" * 100_000, "nested"),  # a RecursionError once
        ("{not json", "cannot read the session"),
    ):
        path.write_text(text)
        assert message in load_error(path), text


# --- the command line and lab-status -----------------------------------------------------------


def test_a_lab_session_resumes_whatever_name_its_scenario_was_saved_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A session saved from `console scripts/...` (relative) is the lab's own scenario.
    lab, s = lab_session(str(XP_LAB), None, True)
    execute(s, "stepi 10")
    path = tmp_path / "alice.json"
    execute(s, f"save {path}")
    data = json.loads(path.read_text())
    data["scenario"] = os.path.relpath(data["scenario"], tmp_path)
    rewrite(path, data)
    monkeypatch.chdir(tmp_path)
    _, resumed = lab_session(str(XP_LAB), str(path), False)
    assert resumed.position == s.position


def test_a_refused_breakpoint_entry_is_quoted_cut() -> None:
    assert _shown("save /tmp/x") == "'save /tmp/x'"
    assert _shown("x" * 100) == repr("x" * 40) + "... (100 characters)"


def test_open_load_and_lab_state_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, s = lab_session(str(XP_LAB), None, True)
    execute(s, "stepi 10")
    path = tmp_path / "alice.json"
    execute(s, f"save {path}")
    data = json.loads(path.read_text())
    data["log"][2] = 99  # a CPU the machine has not: a MachineError in the replay once
    rewrite(path, data)
    for argv in (["open", "--load", str(path)], ["lab", str(XP_LAB), "--state", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, err
        assert "log[2]" in err
    for argv in (["lab", str(XP_LAB), "--state", ""], ["open", "--load", ""]):
        assert main(argv) == 2
        assert capsys.readouterr().err == "error: an empty file name\n"


def test_a_deep_schedule_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["console", "--schedule", str(deep)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the schedule: nested" in err and err.count("\n") == 1
    s = Session(demo_scenario())
    out = execute(s, f"load schedule {deep}")
    assert out.startswith("error: ") and "nested" in out


def test_lab_status_gives_each_bad_session_its_row_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    lab, s = lab_session(str(XP_LAB), None, True)
    for line in ("break xp.proxy.send", "continue"):
        execute(s, line)
    good = state / "good.json"
    execute(s, f"save {good}")
    data = json.loads(good.read_text())
    victim = tmp_path / "written-while-grading.json"

    def bad(user: str, change: Any) -> None:
        d = copy.deepcopy(data)
        change(d)
        rewrite(state / f"{user}.json", d)

    bad("cpu99", lambda d: d["log"].__setitem__(1, 99))
    bad("meta5", lambda d: d.__setitem__("meta", 5))
    bad("zero", lambda d: d["meta"].__setitem__("lab", "/dev/zero"))
    bad("stops", lambda d: d.__setitem__("schedule", {"log": [], "stops": []}))
    bad("seed", lambda d: d.__setitem__("seed", [1, 2]))

    def v2_save(d: dict[str, Any]) -> None:
        d["l4tui_session"] = 2
        d["breakpoints"] = [{"command": f"save {victim}", "number": 1, "hits": 0}]

    bad("saver", v2_save)
    (state / "dir.json").mkdir()
    os.mkfifo(state / "fifo.json")
    rows = {r["user"]: r for r in grade(state)}
    assert set(rows) == {"cpu99", "meta5", "zero", "stops", "seed", "saver", "dir", "fifo", "good"}
    assert rows["good"]["done"] == 1 and "error" not in rows["good"]
    for user, why in (
        ("cpu99", "log[1]"),
        ("meta5", "meta: must be a mapping"),
        ("zero", "not a regular file"),
        ("stops", "schedule.stops"),
        ("seed", "seed"),
        ("saver", "breakpoints[0].command"),
        ("dir", "directory"),
        ("fifo", "not a regular file"),
    ):
        assert why in rows[user]["error"] and "\n" not in rows[user]["error"], (user, rows[user])
    assert not victim.exists()
    assert main(["lab-status", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "1/5" in out and out.count("error:") == 8


# --- any mutation: loads, or one line --------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data[:4]):
            out += _paths(v, prefix + (i,))
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return saved_demo(tmp_path_factory.mktemp("saved") / "s.json")


@settings(
    max_examples=800 if os.environ.get("L4TUI_FUZZ") == "long" else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_mutated_session_loads_or_is_one_line(
    saved: dict[str, Any], tmp_path: Path, data: st.DataObject
) -> None:
    d = copy.deepcopy(saved)
    where = data.draw(st.sampled_from(_paths(d)))
    target = d
    for k in where[:-1]:
        target = target[k]
    target[where[-1]] = data.draw(_JSON)
    path = tmp_path / "mutated.json"
    rewrite(path, d)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        s = load_session(str(path))
    except ConfigError as e:
        assert "\n" not in e.format() and e.format().startswith(f"error: {path}: ")
    else:
        assert load_session(str(path)).state() == s.state()  # what loads, loads the same
    assert sorted(p.name for p in tmp_path.iterdir()) == before
