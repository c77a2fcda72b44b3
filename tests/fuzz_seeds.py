"""The seed files of the file fuzzers (issue 14): what the CLI writes at the start
of a fuzz module, read back as data for the mutations to start from.

`Seeds` holds a saved session, a schedule and a lab session the CLI wrote; the
`seeds` fixture in tests/conftest.py builds one per module. The helpers here
write sessions, read lab files and run `lab-status`, for the seeds and the tests
alike.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import SCRIPTS, cli, dumps

PINGPONG = SCRIPTS / "xp-pingpong.yaml"
UHLIG = SCRIPTS / "races" / "uhlig-naive.yaml"
XP_DEMO = SCRIPTS / "demos" / "xp-ipc.yaml"
XP_LAB = SCRIPTS / "labs" / "xp-ipc.yaml"
LABS = sorted((SCRIPTS / "labs").glob("*.yaml"))

# A session with a breakpoint that has stopped, a watchpoint, and steps of both kinds.
SESSION_COMMANDS = "break xp.proxy.send\nwatch srv.partner\nstepi 50\ncontinue\nsave s.json\n"
# The first exercises of the xp-ipc lab, done: a graded row is not all zeros.
LAB_COMMANDS = (
    "break xp.proxy.send\ncontinue\nreverse-step 3\ninfo mailboxes\ninfo apic\n"
    "info tcb srv\nsave lab.json\n"
)


class Seeds:
    """Real files the CLI wrote, as data: what the mutations start from. (A plain class:
    hypothesis prints a failing test's arguments, and a dataclass field by field.)"""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.session: dict[str, Any] = json.loads((folder / "s.json").read_text())
        self.schedule: dict[str, Any] = json.loads((folder / "sched.json").read_text())
        # On the xp-ipc lab's scenario; each test sets its meta.lab.
        self.lab_session: dict[str, Any] = json.loads((folder / "lab.json").read_text())
        # Lab file name -> its data, the scenario made absolute.
        self.labs = {path.name: lab_data(path) for path in LABS}
        self.graded: dict[str, Any] = {}  # lab-status's row for lab_session on the xp-ipc lab

    def __repr__(self) -> str:
        return f"Seeds({self.dir})"


def lab_data(path: Path) -> dict[str, Any]:
    """A lab file's data with its scenario as an absolute path (so a copy works anywhere)."""
    data = yaml.safe_load(path.read_text())
    data["scenario"] = str((path.parent / data["scenario"]).resolve())
    return data


def write_session(path: Path, data: dict[str, Any], lab: Path | None) -> None:
    doc = dict(data)
    if lab is not None:
        doc["meta"] = {"lab": str(lab)}
    path.write_bytes(dumps(doc))


def lab_status(cwd: Path, state: Path) -> list[dict[str, Any]]:
    """`l4tui lab-status --json`: it exits 0 whatever the sessions hold, one row each."""
    r = cli(["lab-status", "--state-dir", str(state), "--json"], cwd, codes=(0,))
    try:
        rows = json.loads(r.out)
    except ValueError:
        pytest.fail(f"lab-status --json printed no JSON\n{r.report()}")
    return rows


def version_2(doc: dict[str, Any]) -> dict[str, Any]:
    """A session as l4tui wrote it before issue 14 (format 2): breakpoints and watches as
    command lines. Still loaded — as specs, never run."""
    old = json.loads(json.dumps(doc))
    if doc.get("l4tui_session") == 2:
        return old
    old["l4tui_session"] = 2
    old["breakpoints"] = [
        {
            "command": ("tbreak " if b.get("temporary") else "break ") + str(b["what"]),
            "number": b["number"],
            "hits": b.get("hits", 0),
            "enabled": b.get("enabled", True),
        }
        for b in doc["breakpoints"]
    ]
    old["watches"] = [f"watch {w['expr']}" for w in doc["watches"]]
    return old


def console_line(command: str, path: str) -> str:
    return f"{command} {shlex.quote(path)}" if path else f"{command} ''"
