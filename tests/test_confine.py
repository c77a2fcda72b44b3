"""A served student's file commands stay in their own directory (`l4tui lab --confine DIR`).

Over `l4tui serve`, Alice's console could `save ../../bob.json` (overwriting Bob's
session), `load ../../bob.json` (taking his progress) and write anywhere (issue 14). A
confined session resolves every file command's name inside DIR — symlinks followed, `..`
applied — and refuses what lands outside, by the resolved path; it loads no session of
another scenario or lab; Tab lists nothing outside; and the rule holds through `load`,
`layout` and every front end, as they all run the one executor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from l4tui import console
from l4tui.cli import main
from l4tui.cli.sessions import lab_session
from l4tui.complete import CommandCompleter
from l4tui.executor import execute
from l4tui.files import ANYWHERE, FileError, FileRoot, confine, root_of
from l4tui.session import Session

LABS = Path(__file__).parent.parent / "scripts" / "labs"
XP_LAB = LABS / "xp-ipc.yaml"
MIGRATION_LAB = LABS / "migration.yaml"


@pytest.fixture
def homes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A state directory as `l4tui serve` keeps it: Bob's session and files, Alice's files."""
    state = tmp_path / "state"
    alice, bob = state / "files" / "alice", state / "files" / "bob"
    alice.mkdir(parents=True)
    bob.mkdir(parents=True)
    _, s = lab_session(str(XP_LAB), None, True)
    execute(s, "stepi 30")
    execute(s, f"save {state / 'bob.json'}")
    execute(s, f"save {bob / 'mine.json'}")
    return state, alice, bob


def alice_session(alice: Path) -> Session:
    _, s = lab_session(str(XP_LAB), None, True, confine=str(alice))
    execute(s, "stepi 10")
    return s


def refused(s: Session, command: str, directory: Path) -> str:
    before = (s.position, s.system.machine.fingerprint())
    out = execute(s, command)
    assert out.startswith("error: ") and "\n" not in out, (command, out)
    assert f"outside your directory {directory.resolve()}" in out, (command, out)
    assert (s.position, s.system.machine.fingerprint()) == before
    return out


def test_escapes_absolute_paths_and_symlinks_out_are_refused(
    homes: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    state, alice, bob = homes
    s = alice_session(alice)
    bob_before = (state / "bob.json").read_bytes()
    (alice / "out").symlink_to(bob)  # a link in her directory to Bob's
    (alice / "bobs.json").symlink_to(state / "bob.json")
    (alice / "loop").symlink_to("loop")
    for command in (
        "save ../../bob.json",
        "save ../bob/mine.json",
        f"save {state / 'bob.json'}",
        "save /tmp/anywhere.json",
        "save out/mine.json",
        "save bobs.json",
        "load ../../bob.json",
        "load bobs.json",
        "load out/mine.json",
        f"load {bob / 'mine.json'}",
        "export perfetto ../../trace.json",
        "export perfetto /tmp/trace.json",
        "load schedule ../../bob.json",
        "save sub/../../bob/x.json",
    ):
        refused(s, command, alice)
    assert (state / "bob.json").read_bytes() == bob_before
    assert sorted(p.name for p in (state / "files" / "bob").iterdir()) == ["mine.json"]
    assert not Path("/tmp/anywhere.json").exists() and not Path("/tmp/trace.json").exists()
    out = execute(s, "save loop")
    assert out.startswith("error: ") and "\n" not in out


def test_plain_names_inside_are_accepted(homes: tuple[Path, Path, Path]) -> None:
    _, alice, _ = homes
    s = alice_session(alice)
    (alice / "sub").mkdir()
    assert execute(s, "save mine.json").startswith("saved ")
    assert execute(s, "save sub/../again.json").startswith("saved ")
    assert execute(s, f"save {alice / 'sub' / 'abs.json'}").startswith("saved ")
    assert execute(s, "export perfetto trace.json").startswith("wrote ")
    assert sorted(p.name for p in alice.rglob("*.json")) == [
        "abs.json",
        "again.json",
        "mine.json",
        "trace.json",
    ]
    execute(s, "stepi 5")
    out = execute(s, "load mine.json")
    assert "loaded " in out and "at micro-op 10" in out, out


def test_a_session_of_another_lab_or_scenario_is_refused(homes: tuple[Path, Path, Path]) -> None:
    _, alice, _ = homes
    s = alice_session(alice)
    _, other = lab_session(str(MIGRATION_LAB), None, True)
    execute(other, f"save {alice / 'migration.json'}")
    out = execute(s, "load migration.json")
    assert out.startswith("error: ") and "scenario: of another scenario" in out, out
    execute(s, "save mine.json")
    data = json.loads((alice / "mine.json").read_text())
    data["meta"]["lab"] = str(MIGRATION_LAB)
    (alice / "forged.json").write_text(json.dumps(data))
    out = execute(s, "load forged.json")
    assert "meta.lab: of another lab" in out, out
    data["scenario"] = "/etc/passwd"  # never read: refused before anything it names is
    (alice / "forged.json").write_text(json.dumps(data))
    assert "scenario: of another scenario" in execute(s, "load forged.json")


def test_the_confinement_survives_load_and_layout_and_cannot_be_widened(
    homes: tuple[Path, Path, Path],
) -> None:
    _, alice, _ = homes
    s = alice_session(alice)
    execute(s, "save mine.json")
    assert execute(s, "load mine.json").startswith("loaded ")
    refused(s, "save ../../bob.json", alice)
    assert not execute(s, "layout naive").startswith("error")
    refused(s, "save ../../bob.json", alice)
    with pytest.raises(FileError):
        confine(s, ANYWHERE)
    with pytest.raises(FileError):
        confine(s, FileRoot.confined_to(alice.parent))
    confine(s, FileRoot.confined_to(alice / "deeper"))  # narrower is allowed
    refused(s, "save ../mine.json", alice / "deeper")
    assert root_of(Session(s.scenario)) == ANYWHERE  # another session is not confined


def test_the_line_console_and_tab_go_through_the_same_rule(
    homes: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, alice, _ = homes
    s = alice_session(alice)
    script = tmp_path / "cmds"
    script.write_text("save ../../bob.json\nsave ok.json\n")
    before = (state / "bob.json").read_bytes()
    assert console.main(s, str(script), echo=False) == 2
    assert "outside your directory" in capsys.readouterr().err
    assert (state / "bob.json").read_bytes() == before and (alice / "ok.json").exists()
    completer = CommandCompleter(lambda: s)

    def tab(line: str) -> list[str]:
        doc = Document(line, len(line))
        return sorted(c.text for c in completer.get_completions(doc, CompleteEvent()))

    assert tab("load o") == ["k.json"]
    assert tab("load ../") == ["alice"]  # her own directory, seen from its parent, only
    assert tab("load ../../") == []
    assert tab("save /") == []
    (alice / "out").symlink_to(state)
    assert tab("load out/") == []
    unconfined = Session(s.scenario)
    free = CommandCompleter(lambda: unconfined)
    assert list(free.get_completions(Document("load /", 6), CompleteEvent()))  # as before


def test_lab_confine_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert main(["lab", str(XP_LAB), "--fresh", "--confine", str(plain)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {plain}: cannot use it as the files directory") and (
        err.count("\n") == 1
    )
    made = tmp_path / "files" / "carol"
    state = tmp_path / "carol.json"
    # Without a terminal the monitor does not start, but the directory is made first, private.
    assert main(["lab", str(XP_LAB), "--state", str(state), "--confine", str(made)]) == 2
    assert "needs a terminal" in capsys.readouterr().err
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700
    assert main(["lab", "--help"]) == 0
    assert "--confine DIR" in capsys.readouterr().out


def test_an_unconfined_session_writes_where_it_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, s = lab_session(str(XP_LAB), None, True)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert execute(s, "save ../up.json").startswith("saved ")
    assert (tmp_path / "up.json").exists()
