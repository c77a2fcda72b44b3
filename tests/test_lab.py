"""Lab sheets: loading with positioned errors, checks against a session, the three labs solvable."""

from __future__ import annotations

from pathlib import Path

import pytest

from l4tui.cli.sessions import lab_session
from l4tui.demo import demo_scenario
from l4tui.executor import execute, load_session
from l4tui.lab import load_lab, progress, sheet
from l4tui.lab import text as lab_text
from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from l4tui.tui.labpane import LabPane
from machine.errors import ConfigError

LABS = Path(__file__).parent.parent / "scripts" / "labs"
SOLUTIONS = {
    "xp-ipc.yaml": [
        "break xp.proxy.send",
        "continue",
        "reverse-step 3",
        "info mailboxes",
        "info apic",
        "info tcb srv",
        "info sendq srv",
        "delete",
        "watch srv.partner",
        "continue",
        "reverse-continue",
    ],
    "migration.yaml": [
        "break migrate.*barrier1",
        "continue",
        "info mailboxes",
        "delete 1",
        "break migrate.*barrier2",
        "continue",
        "delete",
        "break migrate.C.insert",
        "continue",
        "step",
        "info ready",
    ],
    "uhlig.yaml": (Path(LABS.parent / "demos" / "uhlig-race.cmds").read_text().splitlines()),
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_each_lab_starts_undone_and_its_solution_ticks_every_exercise(name: str) -> None:
    lab = load_lab(LABS / name)
    s = Session(lab.scenario())
    assert progress(lab, s) == [False] * len(lab.exercises)
    for line in SOLUTIONS[name]:
        out = execute(s, line)
        assert not out.startswith("error"), (line, out)
    assert progress(lab, s) == [True] * len(lab.exercises), sheet(lab, s)
    assert f"{len(lab.exercises)} of {len(lab.exercises)} done" in sheet(lab, s)


def test_the_labs_in_scripts_are_the_ones_tested() -> None:
    assert sorted(p.name for p in LABS.glob("*.yaml")) == sorted(SOLUTIONS)


def test_a_saved_session_is_graded_the_same(tmp_path: Path) -> None:
    lab = load_lab(LABS / "xp-ipc.yaml")
    s = Session(lab.scenario())
    for line in SOLUTIONS["xp-ipc.yaml"][:5]:
        execute(s, line)
    execute(s, f"save {tmp_path / 's.json'}")

    again = load_session(str(tmp_path / "s.json"))
    assert progress(lab, again) == progress(lab, s) == [True, True, False, False, False]


def test_the_lab_command_prints_the_sheet_as_text_in_78_columns(tmp_path: Path) -> None:
    lab, s = lab_session(str(LABS / "xp-ipc.yaml"), None, fresh=True)
    out = execute(s, "lab")
    assert out == lab_text(lab, s)
    lines = out.splitlines()
    assert lines[0] == "Lab 1 — Cross-processor IPC"
    assert max(len(line) for line in lines) <= 78
    assert lines[-1] == "0 of 5 done"
    assert "[ ] 1. Stop where the proxy sends on the receiver's CPU" in lines
    heads = [line for line in lines if line.startswith("[")]
    assert [h[:7] for h in heads] == [f"[ ] {i}. " for i in range(1, 6)]
    # An exercise's text hangs under its title.
    i = lines.index(heads[0])
    assert lines[i + 1].startswith("       Set a breakpoint") and lines[i + 2].startswith(
        "       `"
    )
    for line in SOLUTIONS["xp-ipc.yaml"][:2]:
        execute(s, line)
    out = execute(s, "lab")
    assert "[x] 1. Stop where the proxy sends" in out and out.endswith("1 of 5 done")
    # The markdown sheet the monitor shows is a different rendering of the same.
    assert "## ✅ 1. Stop where the proxy sends" in sheet(lab, s)


def test_the_lab_command_wraps_long_words_lists_and_many_exercises(tmp_path: Path) -> None:
    many = "".join(
        f"  - {{title: exercise number {i} with a rather long title that has to wrap somewhere, "
        f'text: "first paragraph\\n\\n- an item\\n- another item", check: {{ran: [where]}}}}\n'
        for i in range(1, 12)
    )
    path = LABS / "wide-lab-under-test.yaml"
    path.write_text(f"title: Wide\nscenario: ../demos/xp-ipc.yaml\nexercises:\n{many}")
    try:
        lab = load_lab(path)
    finally:
        path.unlink()
    out = lab_text(lab, Session(lab.scenario()), width=40)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert "[ ]  1. exercise number 1 with a rather" in lines  # numbers right-aligned
    assert "[ ] 11. exercise number 11 with a rather" in lines
    assert "        - an item" in lines  # items keep their dash under the hanging indent
    assert lines[-1] == "0 of 11 done"


def test_the_lab_command_without_a_lab_is_an_error_that_changes_nothing() -> None:
    s = Session(demo_scenario())
    assert execute(s, "lab") == (
        "error: this session has no lab sheet (open one with l4tui lab LAB)"
    )
    assert s.commands == []
    assert execute(s, "lab now").startswith("error: usage: lab")


def test_a_lab_session_saved_and_loaded_still_has_its_sheet(tmp_path: Path) -> None:
    lab, s = lab_session(str(LABS / "uhlig.yaml"), None, fresh=True)
    execute(s, f"save {tmp_path / 's.json'}")
    again = load_session(str(tmp_path / "s.json"))
    assert execute(again, "lab") == execute(s, "lab")


HEAD = "title: x\nscenario: ../demos/xp-ipc.yaml\n"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("title: x\n", ":", "missing 'scenario'"),
        ("title: x\nscenario: nope.yaml\nexercises: []\n", ":2:", "no scenario file"),
        ("title: x\nscenario: ../demos/xp-ipc.yaml\nexercises: []\n", ":3:", "list of exercises"),
        (
            HEAD + "exercises:\n  - {title: a, check: {rann: []}}\n",
            ":4:",
            "unknown check 'rann'",
        ),
        (
            HEAD + "exercises:\n  - {title: a, check: {ended: never}}\n",
            ":4:",
            "ended takes deadlock or end",
        ),
        (
            "title: x\nscenario: ../demos/xp-ipc.yaml\nbogus: 1\nexercises: []\n",
            ":3:",
            "unknown lab key",
        ),
    ],
)
def test_bad_lab_files_are_refused_with_a_position(
    text: str, where: str, message: str, tmp_path: Path
) -> None:
    # The shipped tree's shape in a directory of the test's own: never a file written into
    # the repository (xdist runs the cases side by side).
    (tmp_path / "labs").mkdir()
    (tmp_path / "demos").mkdir()
    demo = LABS.parent / "demos" / "xp-ipc.yaml"
    (tmp_path / "demos" / "xp-ipc.yaml").write_text(demo.read_text())
    path = tmp_path / "labs" / "bad-lab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_lab(path)
    formatted = e.value.format()
    assert message in formatted and where in formatted


async def test_the_monitor_shows_the_sheet_ticks_it_and_saves_after_every_command(
    tmp_path: Path,
) -> None:
    state = tmp_path / "alice.json"
    lab, s = lab_session(str(LABS / "xp-ipc.yaml"), str(state), fresh=False)
    app = MonitorApp(s, lab=lab, autosave=state)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(LabPane)
        assert pane.shown == (False,) * 5
        await pilot.click("#console-in")
        for line in ("break xp.proxy.send", "continue"):
            await pilot.press(*line, "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.shown == (True, False, False, False, False)
    assert state.exists()
    lab2, resumed = lab_session(str(LABS / "xp-ipc.yaml"), str(state), fresh=False)
    assert resumed.position == s.position and resumed.stops == s.stops
    assert progress(lab2, resumed) == [True, False, False, False, False]
    _, fresh = lab_session(str(LABS / "xp-ipc.yaml"), str(state), fresh=True)
    assert fresh.position == 0


def test_the_migration_lab_shows_the_worker_on_its_new_cpus_ready_list() -> None:
    lab = load_lab(LABS / "migration.yaml")
    s = Session(lab.scenario())
    for line in SOLUTIONS["migration.yaml"][:-1]:
        execute(s, line)
    ready = execute(s, "info ready")
    assert "worker" in next(line for line in ready.split("\n") if line.startswith("cpu2:"))
