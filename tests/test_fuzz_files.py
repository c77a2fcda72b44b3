"""Fuzzing every file and path the CLI takes, through the real CLI (issue 14).

Saved sessions, schedules and lab files are mutated from real ones (written by the CLI at
the start of the module), output and input paths are every kind of node a careless or
hostile user can name. Each run is held to the contract in `tests/fuzzing.py`: exit
0/1/2, no traceback, one `error:` line for exit 2, no hang, and no file outside the
test's directory changed — and each surface to what it promises beyond that: a session
that loads saves one that loads again, a failed load changes nothing, `lab-status`
grades the good sessions beside a bad one, a write through a symlink writes its target,
a device or FIFO stays what it was, a file keeps its mode.

Bounded for CI (10 to 20 examples a surface, under a minute in all); `L4TUI_FUZZ=long`
runs 20 times as many. Scenario YAML is fuzzed in test_bounds.py and console command
lines in test_console_fuzz.py; not here.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import (
    HOME,
    SCRIPTS,
    WATCHED,
    Guard,
    Raw,
    check,
    cli,
    damaged,
    dumps,
    failed,
    fresh,
    fuzz,
    make_decoy,
    mutated,
    run_cli,
    transcript,
)

# The seed files are made once, on one worker (an xdist_group
# runs on one worker under `--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fuzz-files")]


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


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    d = tmp_path_factory.mktemp("seeds")
    cli(["console", str(PINGPONG)], d, stdin=SESSION_COMMANDS, codes=(0,))
    cli(["explore", str(UHLIG), "--save", "sched.json"], d, codes=(1,))
    cli(["console", str(XP_DEMO)], d, stdin=LAB_COMMANDS, codes=(0,))
    seeds = Seeds(d)
    # The format-2 seed is one l4tui still loads: else its mutations would test nothing.
    (d / "v2.json").write_bytes(dumps(version_2(seeds.session)))
    cli(["console"], d, stdin="load v2.json\n", codes=(0,))
    state = d / "state"
    state.mkdir()
    (d / "xp-ipc.yaml").write_text(yaml.safe_dump(seeds.labs["xp-ipc.yaml"]))
    write_session(state / "alice.json", seeds.lab_session, d / "xp-ipc.yaml")
    rows = lab_status(d, state)
    assert [r["user"] for r in rows] == ["alice"] and "error" not in rows[0], rows
    assert 0 < rows[0]["done"] < rows[0]["of"], rows
    seeds.graded = rows[0]
    return seeds


@pytest.fixture
def decoy(tmp_path: Path) -> Path:
    """Someone else's files, beside this test's directory."""
    return make_decoy(tmp_path.parent / f"{tmp_path.name}-decoy")


@pytest.fixture
def guard(seeds: Seeds, decoy: Path) -> Guard:
    """What must not change: the project's scripts and test data, the seeds, the decoy."""
    return Guard(*WATCHED, seeds.dir, decoy)


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


def console_line(command: str, path: str) -> str:
    return f"{command} {shlex.quote(path)}" if path else f"{command} ''"


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


# --- output paths -----------------------------------------------------------------------------

OLD = b'{"old": true}\n'
KINDS = (
    "new",
    "regular",
    "private 0600",
    "read-only",
    "symlink",
    "dangling symlink",
    "fifo",
    "directory",
    "character device",
    "empty name",
    "nul in name",
    "missing directory",
    "parent is a file",
)
MUST_WRITE = {"new", "regular", "private 0600", "symlink"}
FILES = {"new", "regular", "private 0600", "read-only"}  # a regular file after a write
MUST_REFUSE = {"directory", "empty name", "nul in name", "missing directory", "parent is a file"}
ARGUMENT_KINDS = tuple(k for k in KINDS if k != "nul in name")  # argv cannot hold a NUL


def can_make_devices() -> bool:
    return os.geteuid() == 0


def make_target(work: Path, kind: str) -> str:
    """A path to write, made as `kind` in `work` under a name of its own (relative to it)."""
    name = "out-" + kind.replace(" ", "-") + ".json"
    p = work / name
    if kind in ("regular", "private 0600", "read-only"):
        p.write_bytes(OLD)
        p.chmod({"regular": 0o644, "private 0600": 0o600, "read-only": 0o444}[kind])
    elif kind == "symlink":
        (work / f"target-{name}").write_bytes(OLD)
        p.symlink_to(f"target-{name}")
    elif kind == "dangling symlink":
        p.symlink_to(f"target-{name}")
    elif kind == "fifo":
        os.mkfifo(p)  # nobody reads it: opening it to write would wait for ever
    elif kind == "directory":
        p.mkdir()
        (p / "inside").write_bytes(OLD)
    elif kind == "character device":
        # A device of our own with /dev/null's numbers, never /dev/null itself.
        os.mknod(p, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
    elif kind == "empty name":
        return ""
    elif kind == "nul in name":
        return "out\0.json"
    elif kind == "missing directory":
        return "nowhere/" + name
    elif kind == "parent is a file":
        (work / "plain").write_bytes(OLD)
        return "plain/" + name
    return name


Listing = dict[str, tuple[int, int, int, bytes | None]]  # type, mode, device, bytes or link


def listing(work: Path) -> Listing:
    """Every entry under `work` but the run's HOME."""
    out = {}
    for path in sorted(work.rglob("*")):
        rel = path.relative_to(work)
        if rel.parts[0] == HOME:
            continue
        s = path.lstat()
        body = None
        if stat.S_ISREG(s.st_mode):
            body = path.read_bytes()
        elif stat.S_ISLNK(s.st_mode):
            body = os.fsencode(os.readlink(path))
        out[str(rel)] = (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), s.st_rdev, body)
    return out


def whole_json(body: bytes | None) -> bool:
    """Whether a file holds a whole JSON document that is not the old one."""
    if not body or body == OLD:
        return False
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def judge(kind: str, path: str, wrote: bool, before: Listing, after: Listing) -> list[str]:
    """What is wrong with how a write to `path`, made as `kind`, went."""
    bad = []
    if kind in MUST_WRITE and not wrote:
        bad.append("not written")
    if kind in MUST_REFUSE and wrote:
        bad.append("said it wrote")
    if path in before and path in after:
        (t0, m0, d0, _), (t1, m1, d1, _) = before[path], after[path]
        if t1 != t0 or d1 != d0:
            bad.append(f"the {stat.filemode(t0)[0]} node is a {stat.filemode(t1)[0]} now")
        if m1 != m0 and t0 != stat.S_IFLNK:
            bad.append(f"mode {m1:o}, was {m0:o}")
    elif path in before:
        bad.append("the node is gone")
    target = f"target-{path}"
    nothing = (0, 0, 0, None)
    if kind in ("symlink", "dangling symlink"):
        if after.get(path) != before[path]:
            bad.append("the link is not the same link now")
        if wrote and not whole_json(after.get(target, nothing)[3]):
            bad.append("the link's target was not written")
    elif kind in FILES and wrote and not whole_json(after.get(path, nothing)[3]):
        bad.append("not a whole new file")
    if kind == "directory" and after.get(f"{path}/inside") != before[f"{path}/inside"]:
        bad.append("a file inside the directory changed")
    if not wrote and path and "\0" not in path:
        mine = (path.split("/")[0], target)
        changed = sorted(k for k in before if k.startswith(mine) and after.get(k) != before[k])
        if changed:
            bad.append(f"refused, yet changed {changed}")
    return bad


def left_behind(before: Listing, after: Listing) -> list[str]:
    """New entries that no write asked for (a temporary file not cleaned up)."""
    asked = {p for p in after if p.startswith("out-new") or p.startswith("target-out-dangling")}
    return sorted(set(after) - set(before) - asked)


def device_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    return kinds if can_make_devices() else tuple(k for k in kinds if k != "character device")


@pytest.mark.parametrize("command", ["save", "export perfetto"])
def test_a_console_write_to_a_path_of_any_kind_writes_it_as_itself_or_refuses(
    command: str, tmp_path: Path, guard: Guard
) -> None:
    """Every kind in one console run: each `save`/`export perfetto` line is judged alone."""
    work = fresh(tmp_path)
    kinds = device_kinds(KINDS)
    paths = {kind: make_target(work, kind) for kind in kinds}
    before = listing(work)
    lines = [console_line(command, paths[kind]) for kind in kinds]
    r = check(
        run_cli(["console", str(PINGPONG)], work, stdin="stepi 20\n" + "\n".join(lines) + "\n")
    )
    guard.check(r)
    after = listing(work)
    said = transcript(r.out)
    bad = []
    for kind, line in zip(kinds, lines, strict=True):
        if line not in said:
            bad.append(f"{kind}: {line!r} did not run")
            continue
        for why in judge(kind, paths[kind], not failed(r.out, line), before, after):
            bad.append(f"{kind} ({line!r}): {why}")
    bad += [f"left behind: {p}" for p in left_behind(before, after)]
    assert not bad, "\n".join(bad) + "\n" + r.report()


@pytest.mark.parametrize("kind", device_kinds(ARGUMENT_KINDS))
def test_run_trace_to_a_path_of_any_kind_writes_it_as_itself_or_is_one_error(
    kind: str, tmp_path: Path, guard: Guard
) -> None:
    work = fresh(tmp_path)
    path = make_target(work, kind)
    before = listing(work)
    # Exit 1: the run stops at --max-steps, before the scenario's expectations hold.
    r = check(run_cli(["run", str(PINGPONG), "--max-steps", "300", "--trace", path], work))
    guard.check(r)
    after = listing(work)
    bad = judge(kind, path, r.rc != 2, before, after) + left_behind(before, after)
    assert not bad, f"{kind}: " + "; ".join(bad) + "\n" + r.report()


EXPLORE_KINDS = (
    "new",
    "private 0600",
    "symlink",
    "fifo",
    "directory",
    "character device",
    "empty name",
)


@pytest.mark.parametrize("kind", device_kinds(EXPLORE_KINDS))
def test_explore_save_to_a_path_of_any_kind_writes_it_as_itself_or_warns(
    kind: str, tmp_path: Path, guard: Guard
) -> None:
    work = fresh(tmp_path)
    path = make_target(work, kind)
    before = listing(work)
    # Exit 1 either way: the race is found; a schedule that cannot be saved is a warning.
    # An empty name is no name at all: refused (exit 2) before anything is explored.
    if kind == "empty name":
        r = check(run_cli(["explore", str(UHLIG), "--save", path], work), (2,))
        guard.check(r)
        assert "an empty file name" in r.err and listing(work) == before
        return
    r = check(run_cli(["explore", str(UHLIG), "--save", path], work), (1,))
    guard.check(r)
    after = listing(work)
    bad = judge(kind, path, "cannot save" not in r.err, before, after) + left_behind(before, after)
    assert not bad, f"{kind}: " + "; ".join(bad) + "\n" + r.report()


# --- input paths ------------------------------------------------------------------------------

INPUTS = (
    "missing",
    "directory",
    "empty",
    "not utf-8",
    "symlink loop",
    "zero device",
    "fifo",
    "nul in name",
    "huge",
)


def make_input(work: Path, kind: str) -> str:
    """A path to read, made as `kind` in `work`."""
    name = "in-" + kind.replace(" ", "-") + ".json"
    p = work / name
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "not utf-8":
        p.write_bytes(b'{"l4tui_session": 2, "l4tui_schedule": 1, "scenario": "\xff\xfe"}')
    elif kind == "symlink loop":
        p.symlink_to(name)
    elif kind == "zero device":
        return "/dev/zero"  # read only: zeros without end
    elif kind == "fifo":
        os.mkfifo(p)  # nobody writes it: a reader that waits for one waits for ever
    elif kind == "nul in name":
        return "in\0.json"
    elif kind == "huge":
        p.write_bytes(b"[" + b"null, " * 3_000_000 + b"null]")
    return name


def test_console_load_of_a_path_of_any_kind_is_one_error_line_each(
    tmp_path: Path, guard: Guard
) -> None:
    work = fresh(tmp_path)
    paths = {kind: make_input(work, kind) for kind in INPUTS}
    lines = [console_line(how, paths[kind]) for how in ("load", "load schedule") for kind in INPUTS]
    r = check(
        run_cli(["console", str(PINGPONG)], work, stdin="stepi 5\n" + "\n".join(lines) + "\n")
    )
    guard.check(r)
    said = transcript(r.out)
    quiet = [line for line in lines if line not in said or not failed(r.out, line)]
    assert r.rc == 2 and not quiet, f"not one error line each: {quiet}\n{r.report()}"


OPTION_INPUTS = [
    *(("console --schedule", k) for k in INPUTS if k != "nul in name"),
    # Not a FIFO: a script may come from one (`--script <(...)`), and its reader waits.
    *(("console --script", k) for k in ("directory", "not utf-8", "zero device", "huge")),
    *(("lab-status --state-dir", k) for k in ("missing", "empty", "zero device", "fifo")),
]


@pytest.mark.parametrize(("option", "kind"), OPTION_INPUTS)
def test_a_cli_option_naming_a_path_of_any_kind_is_one_error(
    option: str, kind: str, tmp_path: Path, guard: Guard
) -> None:
    work = fresh(tmp_path)
    path = make_input(work, kind)
    if option == "console --schedule":
        args = ["console", "--schedule", path, str(UHLIG)]
    elif option == "console --script":
        args = ["console", "--script", path, str(PINGPONG)]
    else:
        args = ["lab-status", "--state-dir", path]
    r = check(run_cli(args, work, stdin="where\n"), (2,))
    guard.check(r)


STATE_KINDS = ("directory", "fifo", "zero device", "symlink loop", "empty", "not utf-8")


def test_lab_status_rows_each_state_file_of_any_kind_and_grades_the_rest(
    seeds: Seeds, tmp_path: Path, guard: Guard
) -> None:
    work = fresh(tmp_path)
    lab = work / "xp-ipc.yaml"
    lab.write_text(yaml.safe_dump(seeds.labs["xp-ipc.yaml"]))
    state = work / "state"
    state.mkdir()
    for kind in STATE_KINDS:
        p = state / f"{kind.replace(' ', '-')}.json"
        if kind == "directory":
            p.mkdir()
        elif kind == "fifo":
            os.mkfifo(p)  # nobody writes it: reading it would wait for ever
        elif kind == "zero device":
            p.symlink_to("/dev/zero")
        elif kind == "symlink loop":
            p.symlink_to(p.name)
        elif kind == "empty":
            p.write_bytes(b"")
        else:
            p.write_bytes(b'{"l4tui_session": 2, "scenario": "\xff"}')
    write_session(state / "good.json", seeds.lab_session, lab)
    rows = {r["user"]: r for r in lab_status(work, state)}
    guard.check()
    users = sorted(k.replace(" ", "-") for k in STATE_KINDS) + ["good"]
    assert sorted(rows) == sorted(users), rows
    assert [u for u in rows if u != "good" and "error" not in rows[u]] == [], rows
    assert {k: v for k, v in rows["good"].items() if k != "user"} == {
        k: v for k, v in seeds.graded.items() if k != "user"
    }, rows
