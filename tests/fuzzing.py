"""Shared helpers of the fuzz suites (issue 14): the real CLI in a bounded subprocess, a
guard that no file outside the test's own directory changed, and mutations of JSON data.

Every surface that takes a file or a path is fuzzed through `python -m l4tui` as a user
runs it, never through the functions behind it: what a user sees is the exit code and
the two streams. The contract (DESIGN.md §2) each run is held to:

- exit 0, 1 or 2, never a signal (a hang is killed at `TIMEOUT` and fails as "hang"; a
  run that allocates past `MEMORY` or writes past `FILE_SIZE` dies and fails too);
- no Python traceback on either stream;
- exit 2 means exactly one line on stderr, starting `error: `;
- no file outside the test's directory created, changed or removed (`Guard`).

The CLI gets a private HOME and XDG directories (its history, a lab's default state)
and no byte-code cache, so a run writes nothing it was not asked to. `L4TUI_FUZZ=long`
multiplies every example count by 20 (a run before a release).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
WATCHED = (SCRIPTS, ROOT / "tests" / "data")  # the project's own files: never written by a run
LONG = os.environ.get("L4TUI_FUZZ", "") == "long"
TIMEOUT = 30.0  # seconds of wall clock for one CLI run; a normal one takes under one
MEMORY = 1 << 30  # address space of one CLI run: a run that needs gigabytes is a bug
FILE_SIZE = 64 << 20  # bytes any one file (stdout and stderr included) may grow to
HOME = ".l4tui-home"  # the private HOME a run gets, inside its working directory


def examples(n: int) -> int:
    """How many examples a fuzz test runs: `n` for CI, 20 times that for a long run."""
    return n * 20 if LONG else n


def fuzz(n: int) -> settings:
    """Hypothesis settings for a test that runs the CLI once or a few times per example."""
    return settings(
        max_examples=examples(n),
        deadline=None,  # a subprocess; the bound is TIMEOUT
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # each example makes its own directory
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


def fresh(parent: Path) -> Path:
    """A new, empty directory under `parent`: one per hypothesis example."""
    return Path(tempfile.mkdtemp(dir=parent, prefix="ex-"))


# --- the CLI, bounded --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """One CLI run: what was run, where, and what came out."""

    args: tuple[str, ...]
    cwd: Path
    stdin: bytes | None
    rc: int
    out: str
    err: str

    def reproducer(self) -> str:
        """A shell command line that runs it again."""
        cmd = f"cd {shlex.quote(str(self.cwd))} && "
        if self.stdin is not None:
            # Every byte but plain printable ASCII as an octal escape: a NUL, a newline and
            # bytes that are not UTF-8 come out as they went in.
            text = "".join(
                chr(b) if 32 <= b < 127 and chr(b) not in "\\%'" else f"\\{b:03o}"
                for b in self.stdin
            )
            cmd += f"printf '{text}' | "
        return cmd + shlex.join(["l4tui", *self.args])

    def report(self) -> str:
        return (
            f"reproduce: {self.reproducer()}\nexit {self.rc}\n"
            f"--- stdout (tail)\n{self.out[-2000:]}\n--- stderr (tail)\n{self.err[-2000:]}"
        )


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a CLI run: the user's own, with HOME and XDG under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTHON"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",  # no __pycache__ written into the project by a run
        LC_ALL="C.UTF-8",
        NO_COLOR="1",
        TERM="dumb",
    )
    return env


def _limits() -> None:  # pragma: no cover - runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_cli(
    args: Iterable[str],
    cwd: Path,
    timeout: float = TIMEOUT,
    stdin: str | bytes | None = None,
) -> Result:
    """Run `python -m l4tui ARGS` in `cwd`, in its own process group, bounded in time,
    memory and file size. A run still going at `timeout` is killed with its whole group
    and the test fails as a hang; so does a run that leaves a process of its group behind.

    Returns the result unchecked: `check` holds it to the contract.
    """
    args = tuple(args)
    data = stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else stdin
    home = cwd / HOME
    home.mkdir(exist_ok=True)
    # The streams go to files, not pipes: a run that prints without end is cut by FILE_SIZE
    # instead of filling this process's memory.
    with (
        tempfile.TemporaryFile(dir=home) as out,
        tempfile.TemporaryFile(dir=home) as err,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "l4tui", *args],
            cwd=cwd,
            env=cli_env(home),
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_limits,
        )
        try:
            proc.communicate(data, timeout=timeout)
            hang = False
        except subprocess.TimeoutExpired:
            hang = True
            _kill_group(proc.pid)
            proc.wait()
        left = not hang and _kill_group(proc.pid)
        out.seek(0)
        err.seek(0)
        result = Result(
            args,
            cwd,
            data,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )
    if hang:
        pytest.fail(f"hang: still running after {timeout:.0f} s\n{result.report()}")
    if left:
        pytest.fail(f"a process of the run outlived it\n{result.report()}")
    return result


def _kill_group(pgid: int) -> bool:
    """SIGKILL every process left in the group; whether there was one."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def problems(result: Result, codes: Iterable[int] = (0, 1, 2)) -> list[str]:
    """How `result` breaks the CLI contract (empty if it keeps it)."""
    found = []
    if result.rc not in set(codes):
        if result.rc < 0:
            found.append(f"killed by signal {signal.Signals(-result.rc).name}")
        else:
            found.append(f"exit {result.rc}, not one of {sorted(set(codes))}")
    for name, text in (("stdout", result.out), ("stderr", result.err)):
        if "Traceback (most recent call last)" in text:
            found.append(f"a traceback on {name}")
    if result.rc == 2:
        lines = result.err.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            found.append(f"exit 2 with {len(lines)} stderr line(s), not one `error: ` line")
    return found


def check(result: Result, codes: Iterable[int] = (0, 1, 2)) -> Result:
    """Fail the test, with a reproducer, if `result` breaks the CLI contract."""
    found = problems(result, codes)
    if found:
        pytest.fail("; ".join(found) + "\n" + result.report())
    return result


def cli(
    args: Iterable[str],
    cwd: Path,
    stdin: str | bytes | None = None,
    codes: Iterable[int] = (0, 1, 2),
) -> Result:
    """`run_cli` then `check`."""
    return check(run_cli(args, cwd, stdin=stdin), codes)


def transcript(out: str) -> dict[str, list[str]]:
    """A console transcript as {command line: its output lines} (the last run of each)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("(l4tui) "):
            current = blocks[line.removeprefix("(l4tui) ")] = []
        else:
            current.append(line)
    return blocks


def failed(out: str, command: str) -> bool:
    """Whether `command` printed an `error:` line in a console transcript."""
    return any(line.startswith("error:") for line in transcript(out).get(command, []))


# --- no file outside the test's directory changes ------------------------------------------

Entry = tuple[int, int, int, int, int, int]  # file type, permissions, size, mtime, inode, rdev


def snapshot(dirs: Iterable[Path]) -> dict[str, Entry]:
    """Every entry under `dirs` (the directories too, not following links) as it is now.

    Under the project's own directories (`WATCHED`) only the files git tracks: other tests,
    run at the same time by pytest-xdist, make and remove scratch files there.
    """
    seen: dict[str, Entry] = {}
    for root in dirs:
        paths = _tracked(root) if root in WATCHED else _walk(root)
        for path in paths:
            try:
                s = os.lstat(path)
            except FileNotFoundError:
                continue  # a tracked file not there: it was not there before either
            seen[str(path)] = (
                stat.S_IFMT(s.st_mode),
                stat.S_IMODE(s.st_mode),
                s.st_size,
                s.st_mtime_ns,
                s.st_ino,
                s.st_rdev,
            )
    return seen


def _tracked(root: Path) -> list[Path]:
    try:
        names = subprocess.run(
            ["git", "ls-files", "-z", "--", str(root)],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        return list(_walk(root))
    return [ROOT / os.fsdecode(n) for n in names if n]


def _walk(root: Path) -> Iterator[Path]:
    if not root.exists():
        return
    yield root
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            yield Path(top) / name


class Guard:
    """Remembers the files under some directories; `check` fails if any was created,
    changed (type, mode, size, mtime, inode) or removed since."""

    def __init__(self, *dirs: Path) -> None:
        self.dirs = dirs
        self.before = snapshot(dirs)

    def changes(self) -> list[str]:
        after = snapshot(self.dirs)
        out = []
        for path in sorted(self.before.keys() | after.keys()):
            old, new = self.before.get(path), after.get(path)
            if old == new:
                continue
            if old is None:
                out.append(f"created {path}")
            elif new is None:
                out.append(f"removed {path}")
            else:
                out.append(f"changed {path}: {_entry_text(old)} -> {_entry_text(new)}")
        return out

    def check(self, result: Result | None = None) -> None:
        found = self.changes()
        if found:
            why = "\n".join(found[:20])
            pytest.fail(
                f"files outside the test's directory changed:\n{why}"
                + (f"\n{result.report()}" if result is not None else "")
            )


def _entry_text(e: Entry) -> str:
    kind = {
        stat.S_IFREG: "file",
        stat.S_IFDIR: "dir",
        stat.S_IFLNK: "link",
        stat.S_IFIFO: "fifo",
        stat.S_IFCHR: "chardev",
        stat.S_IFSOCK: "socket",
        stat.S_IFBLK: "blockdev",
    }.get(e[0], "?")
    return f"{kind} {e[1]:o} {e[2]}B mtime {e[3]} inode {e[4]}"


def make_decoy(path: Path) -> Path:
    """Someone else's files, beside the test's directory: a run must leave them alone."""
    path.mkdir()
    (path / "victim.json").write_text('{"someone": "else"}\n')
    (path / "private").write_text("secret\n")
    (path / "private").chmod(0o600)
    (path / "readonly").write_text("read only\n")
    (path / "readonly").chmod(0o444)
    (path / "sub").mkdir()
    (path / "sub" / "notes.txt").write_text("notes\n")
    (path / "link").symlink_to("victim.json")
    os.mkfifo(path / "fifo")
    return path


# --- JSON mutations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text put in as it is: what `json.dumps` cannot write (a 5,000-digit number,
    nesting 5,000 deep, NaN)."""

    text: str


RAWS = (
    Raw("1" * 5000),  # past Python's int-to-str digit limit
    Raw("1e999"),  # a float that is infinite
    Raw("NaN"),
    Raw("-Infinity"),
    Raw("[" * 5000 + "]" * 5000),  # past the recursion limit of a recursive reader
    Raw('{"a":' * 3000 + "0" + "}" * 3000),
    Raw("-0"),
)
ATOMS = (
    None,
    True,
    False,
    0,
    1,
    2,
    3,
    -1,
    99,  # a CPU the machine does not have
    255,
    256,
    2**31,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 + 1,
    1.5,
    -0.0,
    1e308,
    "",
    "0",
    "1",
    "-1",
    "idle",
    "\x00",
    "a\x00b",
    "a\nb",
    "line\r\n",
    "\t",
    "\udc80",  # a lone surrogate: not encodable as UTF-8
    "é",
    "\u202e",
    "日本語",
    "x" * 300,  # longer than a file name may be
    "../" * 20 + "x",
    [],
    {},
    [None],
    [[]],
    ["idle"],
    ["idle", 99],
    ["idle", -1],
    ["idle", 1, 2],
)


def values(strings: Iterable[str] = ()) -> st.SearchStrategy[Any]:
    """A replacement value: edge cases of every JSON type, random ones, and `strings`
    (paths and commands that mean something to the surface under test)."""
    extra = tuple(strings)
    choices = [
        st.sampled_from(ATOMS),
        st.sampled_from(RAWS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.lists(st.integers(-2, 100), max_size=3),
        st.dictionaries(st.text(max_size=4), st.integers(-2, 5), max_size=2),
    ]
    if extra:
        choices.insert(0, st.sampled_from(extra))
    return st.one_of(*choices)


MUTATIONS = ("replace", "drop", "add", "duplicate", "list_of", "dict_of", "wrap")


@st.composite
def mutated(draw: st.DrawFn, base: Any, strings: Iterable[str] = (), most: int = 3) -> Any:
    """`base` (a real saved session, schedule or lab, as data) with 1..`most` mutations,
    each at a place reached by walking down from the root: a value replaced by another of
    any type, a key or element dropped, an extra key, an element repeated, a dict where a
    list was and the other way round, a value nested one level deeper."""
    doc = copy.deepcopy(base)
    vals = values(strings)
    for _ in range(draw(st.integers(1, most))):
        doc = _mutate_at(draw, doc, vals)
    return doc


def _mutate_at(draw: st.DrawFn, node: Any, vals: st.SearchStrategy[Any]) -> Any:
    """`node` with one mutation somewhere at or below it."""
    children = _children(node)
    if children and draw(st.integers(0, 3)) > 0:  # mostly deeper: the fields are down there
        key = draw(st.sampled_from(children))
        node[key] = _mutate_at(draw, node[key], vals)
        return node
    how = draw(st.sampled_from(MUTATIONS))
    if how == "drop" and children:
        key = draw(st.sampled_from(children))
        del node[key]
        return node
    if how == "add" and isinstance(node, dict):
        key = draw(st.one_of(st.sampled_from(("meta", "lab", "cpu", "log", "x")), st.text()))
        node[key] = draw(vals)
        return node
    if how == "add" and isinstance(node, list):
        node.insert(draw(st.integers(0, len(node))), draw(vals))
        return node
    if how == "duplicate" and isinstance(node, list) and node:
        node.extend(copy.deepcopy(node[-8:]) * draw(st.integers(1, 50)))
        return node
    if how == "list_of":
        return list(node.values()) if isinstance(node, dict) else [node]
    if how == "dict_of" and isinstance(node, list):
        return {str(i): v for i, v in enumerate(node)}
    if how == "wrap":
        return {"": node} if draw(st.booleans()) else [node]
    return draw(vals)


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def dumps(doc: Any, ascii_only: bool = True) -> bytes:
    """`doc` as JSON bytes, `Raw` parts spliced in as they are. Not ASCII-only: a lone
    surrogate goes out as the bytes it would be (not valid UTF-8), as a careless writer's."""
    raws: list[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(node.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(node, dict):
            return {str(k): swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(doc), ensure_ascii=ascii_only)
    for i, raw in enumerate(raws):
        text = text.replace(f'"\\u0000raw{i}\\u0000"', raw, 1)
    return text.encode("utf-8", "surrogatepass")


TEXT_DAMAGE = ("none", "truncate", "garbage", "bom", "empty", "latin1")


@st.composite
def damaged(draw: st.DrawFn, text: bytes) -> bytes:
    """File bytes, mostly as they are, else cut short, with a byte of garbage, behind a BOM,
    empty, or not UTF-8."""
    how = draw(st.sampled_from(TEXT_DAMAGE + ("none",) * 6))
    if how == "truncate" and text:
        return text[: draw(st.integers(0, len(text) - 1))]
    if how == "garbage":
        at = draw(st.integers(0, len(text)))
        return (
            text[:at] + draw(st.sampled_from((b"\xff", b"\x00", b"\xc3", b"}", b"\n"))) + text[at:]
        )
    if how == "bom":
        return b"\xef\xbb\xbf" + text
    if how == "empty":
        return b""
    if how == "latin1":
        return text.replace(b'"', b'"\xe9', 1)
    return text


@contextlib.contextmanager
def no_hang(seconds: float, what: str = "the block") -> Iterator[None]:
    """Fail (rather than hang the suite) if the body runs past `seconds`: a guard
    against a hang, not a time being measured."""

    def stop(signum: int, frame: object) -> None:
        raise AssertionError(f"{what} did not return in {seconds} s")

    before = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
