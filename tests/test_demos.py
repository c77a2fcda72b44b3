"""The narrated demos in scripts/demos/: each transcript runs clean and shows its point.

Each demo is a scenario `NAME.yaml` and a console script `NAME.cmds`; an
instructor runs `l4tui console NAME.yaml --script NAME.cmds --echo`. Here the
same command runs in-process: it must exit 0, print no `error:` line, and show
the one fact the demo is about. The scenario alone must also run clean with the
kernel invariants checked at every kernel exit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from l4tui.cli import main

DEMOS = Path(__file__).resolve().parent.parent / "scripts" / "demos"

# The key fact of each demo, as a regular expression over its transcript.
KEY_FACT = {
    # §8.3.2: the client found the server not receiving and went polling.
    "local-ipc": r"^cli\.state = polling$",
    # §8.3.4: the request travels in a mailbox, which is free again at the end.
    "xp-ipc": r"^mailbox \d+: ipc_send from cli to srv",
    # §8.7.2: B set the new processor number.
    "migration": r"^worker\.cpu = 2 ",
    # ID 5: one shootdown for the unmap.
    "shootdown": r"^tlb_shootdowns 1$",
    # §8.3.3: Uhlig's lost wake-up, both partners waiting for each other.
    "uhlig-race": r"^deadlock: snd polling on rcv, rcv waiting for snd$",
}


def test_every_demo_is_listed() -> None:
    names = {p.stem for p in DEMOS.glob("*.yaml")}
    assert names == set(KEY_FACT)
    assert names == {p.stem for p in DEMOS.glob("*.cmds")}


@pytest.mark.parametrize("name", sorted(KEY_FACT))
def test_demo_transcript(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    scenario, script = DEMOS / f"{name}.yaml", DEMOS / f"{name}.cmds"
    code = main(["console", str(scenario), "--script", str(script), "--echo"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert not [line for line in lines if line.startswith("error:")]
    # Every command of the script was echoed (none was swallowed by a `quit`), every
    # comment printed as it is.
    text = script.read_text().splitlines()
    commands = [c for c in text if c.strip() and not c.lstrip().startswith("#")]
    assert sum(line.startswith("(l4tui) ") for line in lines) == len(commands)
    assert [line for line in lines if line.startswith("#")] == [
        c for c in text if c.startswith("#")
    ]
    assert re.search(KEY_FACT[name], out, re.MULTILINE), f"{name}: {KEY_FACT[name]!r} not shown"


@pytest.mark.parametrize("name", sorted(KEY_FACT))
def test_demo_scenario_runs_with_invariants(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(DEMOS / f"{name}.yaml"), "--check-invariants"])
    out = capsys.readouterr().out
    assert code == 0, out
