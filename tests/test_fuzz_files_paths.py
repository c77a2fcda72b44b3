"""Fuzzing the paths the CLI takes, through the real CLI (issue 14): output and
input paths of every kind of node a careless or hostile user can name.

A write through a symlink writes its target, a device or FIFO stays what it
was, a file keeps its mode; a path that cannot be read is one error line;
`lab-status` rows a state file of any kind and grades the rest.

Each run is held to the contract in `tests/fuzzing.py`: exit 0/1/2, no
traceback, one `error:` line for exit 2, no hang, and no file outside the
test's directory changed. The seed files are written by the CLI once per
module (the `seeds` fixture, tests/conftest.py). Bounded for CI (10 to 20
examples a surface); `L4TUI_FUZZ=long` runs 20 times as many.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_seeds import PINGPONG, UHLIG, Seeds, console_line, lab_status, write_session
from fuzzing import HOME, Guard, check, failed, fresh, run_cli, transcript

# The file fuzzers share one worker (an xdist_group runs on one worker under
# `--dist loadgroup`); each module makes its seed files once there.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fuzz-files")]


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
