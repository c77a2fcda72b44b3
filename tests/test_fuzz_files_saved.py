"""Fuzzing the files the CLI reads, through the real CLI (issue 14): saved
sessions, schedules and lab files, mutated from real ones.

A session that loads saves one that loads again, a failed load changes nothing,
`lab-status` grades the good sessions beside a bad one, a broken lab is a row
of its own. Scenario YAML is fuzzed in test_bounds.py and console command lines
in test_console_fuzz.py; not here.

Each run is held to the contract in `tests/fuzzing.py`: exit 0/1/2, no
traceback, one `error:` line for exit 2, no hang, and no file outside the
test's directory changed. The seed files are written by the CLI once per
module (the `seeds` fixture, tests/conftest.py). Bounded for CI (10 to 20
examples a surface); `L4TUI_FUZZ=long` runs 20 times as many.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_seeds import PINGPONG, UHLIG, XP_LAB, Seeds, lab_status, version_2, write_session
from fuzzing import (
    SCRIPTS,
    Guard,
    Raw,
    cli,
    damaged,
    dumps,
    failed,
    fresh,
    fuzz,
    mutated,
    transcript,
)

# The file fuzzers share one worker (an xdist_group runs on one worker under
# `--dist loadgroup`); each module makes its seed files once there.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fuzz-files")]


def commands(itself: Path, decoy: Path) -> list[str]:
    """Console commands a saved file may hold where a breakpoint or a watch goes: a saved
    file is data, so none may run (one writes someone else's file, one loads the file
    itself, one runs without end)."""
    rel = f"../../{decoy.name}"  # from a test's work directory (tmp_path/ex-*) to the decoy
    return [
        f"save {decoy}/victim.json",
        f"save {rel}/new.json",
        f"export perfetto {decoy}/victim.json",
        f"load {itself}",
        f"load schedule {itself}",
        "break xp.*",
        "tbreak syscall call",
        "break ipc.* if cpu == 99",
        "watch srv.partner",
        "watch cli.state",
        "stepi 100000000",
        "continue",
        "reverse-step 0",
        "quit",
        "cli: compute -5",
        "focus cpu 99",
        "info ready",
        "layout naive",
        "print 1" + "0" * 4300,
    ]


def strings(itself: Path, decoy: Path) -> list[str]:
    """Values that mean something in a saved file: other people's files, the file itself,
    devices, other scenarios and labs, names of scenarios, and `commands`."""
    return [
        str(decoy / "victim.json"),
        f"../../{decoy.name}/new.json",
        str(decoy / "fifo"),
        str(decoy),
        "/dev/zero",
        str(itself),
        str(itself.parent),
        str(SCRIPTS / "client-server.yaml"),
        str(PINGPONG),
        str(UHLIG),
        str(XP_LAB),
        "<demo>",
        "xp-pingpong",
        "uhlig-naive",
        *commands(itself, decoy),
    ]


@st.composite
def a_session(draw: st.DrawFn, seed: dict[str, Any], itself: Path, decoy: Path) -> Any:
    """A saved session to load: the seed as l4tui writes it now or in format 2 (where a
    breakpoint is a command line: often one of `commands`), then mutated."""
    doc = seed
    if draw(st.booleans()):
        doc = version_2(seed)
        if draw(st.booleans()):
            line = draw(st.sampled_from(commands(itself, decoy)))
            doc["breakpoints"][:1] = [{"command": line, "number": 1, "hits": 0, "enabled": True}]
        if draw(st.booleans()):
            doc["watches"][:1] = [draw(st.sampled_from(commands(itself, decoy)))]
    if draw(st.integers(0, 3)) == 0:
        return doc  # as it is: what must not run runs here if anywhere
    return draw(mutated(doc, strings(itself, decoy)))


# --- saved sessions ---------------------------------------------------------------------------


@fuzz(20)
@given(data=st.data())
def test_a_mutated_saved_session_loads_or_is_one_error_that_changes_nothing(
    seeds: Seeds, tmp_path: Path, decoy: Path, guard: Guard, data: st.DataObject
) -> None:
    work = fresh(tmp_path)
    doc = data.draw(a_session(seeds.session, work / "s.json", decoy), label="session")
    text = data.draw(damaged(dumps(doc, ascii_only=data.draw(st.booleans()))), label="bytes")
    (work / "s.json").write_bytes(text)
    commands = [
        "stepi 7",
        "info cpus",
        "load s.json",
        "info  cpus",
        "info breakpoints",
        "stepi 3",
        "save again.json",
        "load again.json",
    ]
    r = cli(["console", str(PINGPONG)], work, stdin="\n".join(commands) + "\n")
    guard.check(r)
    said = transcript(r.out)
    if failed(r.out, "load s.json"):
        assert said["info cpus"] == said["info  cpus"], "a failed load changed the session\n" + (
            r.report()
        )
    else:
        assert not failed(r.out, "save again.json"), r.report()
        assert not failed(r.out, "load again.json"), (
            "a session that loaded saves one that does not load\n" + r.report()
        )


@fuzz(12)
@given(data=st.data())
def test_lab_status_grades_the_good_sessions_beside_a_mutated_one(
    seeds: Seeds, tmp_path: Path, decoy: Path, guard: Guard, data: st.DataObject
) -> None:
    work = fresh(tmp_path)
    lab = work / "xp-ipc.yaml"
    lab.write_text(yaml.safe_dump(seeds.labs["xp-ipc.yaml"]))
    state = work / "state"
    state.mkdir()
    base = dict(seeds.lab_session, meta={"lab": str(lab)})
    doc = data.draw(a_session(base, state / "bob.json", decoy), label="session")
    write_session(state / "alice.json", seeds.lab_session, lab)
    (state / "bob.json").write_bytes(data.draw(damaged(dumps(doc)), label="bytes"))
    write_session(state / "carol.json", seeds.lab_session, lab)
    rows = lab_status(work, state)
    guard.check()
    assert [r["user"] for r in rows] == ["alice", "bob", "carol"], rows
    for row in (rows[0], rows[2]):
        assert {k: v for k, v in row.items() if k != "user"} == {
            k: v for k, v in seeds.graded.items() if k != "user"
        }, rows


# --- schedules --------------------------------------------------------------------------------


@fuzz(20)
@given(data=st.data())
def test_a_mutated_schedule_is_followed_or_is_one_error(
    seeds: Seeds, tmp_path: Path, decoy: Path, guard: Guard, data: st.DataObject
) -> None:
    work = fresh(tmp_path)
    doc = data.draw(mutated(seeds.schedule, strings(work / "sched.json", decoy)), label="schedule")
    (work / "sched.json").write_bytes(data.draw(damaged(dumps(doc)), label="bytes"))
    steps = "continue\ncontinue\ncontinue\nwhere\nreverse-continue\ninfo threads\n"
    if data.draw(st.booleans(), label="as an option"):
        r = cli(["console", "--schedule", "sched.json", str(UHLIG)], work, stdin=steps)
        guard.check(r)
        return
    before = "stepi 9\ninfo cpus\nload schedule sched.json\ninfo  cpus\n"
    r = cli(["console", str(UHLIG)], work, stdin=before + steps)
    guard.check(r)
    if failed(r.out, "load schedule sched.json"):
        said = transcript(r.out)
        assert said["info cpus"] == said["info  cpus"], "a failed load changed the session\n" + (
            r.report()
        )


# --- lab files --------------------------------------------------------------------------------

SCENARIOS = {
    "long scenario name": "s" * 256 + ".yaml",
    "scenario a device": "/dev/zero",
    "scenario a directory": ".",
    "scenario itself": "lab.yaml",
}
YAML_DAMAGE = (
    "alias bomb",
    "deep",
    "tab",
    "python tag",
    "long scenario name",
    "duplicate key",
    "not utf-8",
    "huge number",
    "scenario a device",
    "scenario a directory",
    "scenario itself",
)


def lab_yaml(doc: Any) -> bytes:
    """A lab as YAML, or as JSON (YAML too) when it holds what YAML cannot write."""
    try:
        return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, TypeError, ValueError):
        return dumps(doc)  # a Raw part, a lone surrogate


def broken_lab(how: str, doc: Any) -> bytes:
    """A lab file's bytes broken in a YAML way, or with a scenario that is no file."""
    if isinstance(doc, dict) and how in SCENARIOS:  # the key replaced: a second one is an error
        return lab_yaml(dict(doc, scenario=SCENARIOS[how]))
    if isinstance(doc, dict) and how == "huge number":
        return lab_yaml(dict(doc, title=Raw("1" * 5000)))
    text = lab_yaml(doc)
    if how == "alias bomb":  # 9**9 strings if expanded
        lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        lines += [
            f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        return ("\n".join(lines) + "\n").encode() + text
    if how == "deep":
        return b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n" + text
    if how == "tab":
        return text.replace(b"\n  ", b"\n\t", 1)
    if how == "python tag":
        return b"!!python/object/apply:os.system ['touch pwned']\n"  # the whole document
    if how == "duplicate key":
        return text + b"\ntitle: again\n"
    if how == "not utf-8":
        return b"x: \xff\xfe\n" + text
    return text  # a key to replace, and the lab is not a mapping


def grades_beside(seeds: Seeds, work: Path, labs: dict[str, bytes]) -> list[dict[str, Any]]:
    """lab-status over alice (the xp-ipc lab, good) and one session per lab in `labs`
    (user name -> the lab file's bytes): alice graded as ever, one row each for the rest."""
    good = work / "xp-ipc.yaml"
    good.write_text(yaml.safe_dump(seeds.labs["xp-ipc.yaml"]))
    state = work / "state"
    state.mkdir()
    write_session(state / "alice.json", seeds.lab_session, good)
    for user, text in labs.items():
        (work / user).mkdir()
        (work / user / "lab.yaml").write_bytes(text)
        write_session(state / f"{user}.json", seeds.lab_session, work / user / "lab.yaml")
    rows = lab_status(work, state)
    assert [r["user"] for r in rows] == sorted(["alice", *labs]), rows
    alice = next(r for r in rows if r["user"] == "alice")
    assert alice == seeds.graded, rows
    return rows


def test_labs_broken_in_every_yaml_way_are_each_a_row_of_their_own(
    seeds: Seeds, tmp_path: Path, guard: Guard
) -> None:
    lab = seeds.labs["xp-ipc.yaml"]
    labs = {how.replace(" ", "-"): broken_lab(how, lab) for how in YAML_DAMAGE}
    rows = grades_beside(seeds, fresh(tmp_path), labs)
    guard.check()
    graded = [r["user"] for r in rows if "error" not in r and r["user"] != "alice"]
    assert graded == [], rows


@fuzz(10)
@given(data=st.data())
def test_a_mutated_lab_is_graded_or_is_its_own_row_and_the_lab_command_one_error(
    seeds: Seeds, tmp_path: Path, decoy: Path, guard: Guard, data: st.DataObject
) -> None:
    work = fresh(tmp_path)
    name = data.draw(st.sampled_from(sorted(seeds.labs)), label="lab file")
    doc = data.draw(
        mutated(seeds.labs[name], strings(work / "bob" / "lab.yaml", decoy)), label="lab"
    )
    how = data.draw(st.sampled_from((None,) * 8 + YAML_DAMAGE), label="yaml damage")
    text = broken_lab(how, doc) if how else data.draw(damaged(lab_yaml(doc)), label="bytes")
    grades_beside(seeds, work, {"bob": text})
    guard.check()
    if data.draw(st.booleans(), label="the lab command too"):
        guard.check(cli(["console"], work, stdin="load state/bob.json\nlab\n"))
