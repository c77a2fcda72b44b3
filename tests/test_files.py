"""The atomic writer and the bounded reader (l4tui/files.py): no file that is not ours replaced.

Each output path a careless or hostile user could give — a FIFO, a device, a symlink, a
directory, a read-only or private file, an empty name, a NUL — and every front end that
writes (`run --trace`, `save`, `export perfetto`, `explore --save`): a one-line error or
the right file written, and the node that was there still the node it was (issue 14).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from l4tui.cli import main
from l4tui.demo import demo_scenario
from l4tui.executor import execute
from l4tui.files import FileError, atomic_text, load_json
from l4tui.session import Session
from machine.errors import ConfigError

PINGPONG = Path(__file__).parent.parent / "scripts" / "demos" / "xp-ipc.yaml"
ROOT = os.geteuid() == 0


def write(path: str | Path, text: str = "new\n") -> None:
    with atomic_text(path) as f:
        f.write(text)


def node(path: Path) -> tuple[int, int, int, int, int]:
    """What a node is, not what it holds: type and permissions, owner, device, inode."""
    st = os.lstat(path)
    return st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_ino


def one_line(e: ConfigError) -> str:
    text = e.format()
    assert "\n" not in text and text.startswith("error: "), text
    return text


# --- the writer -----------------------------------------------------------------------------


def test_a_missing_file_is_made_whole_with_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    write(target, "whole\n")
    assert target.read_text() == "whole\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["new.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_text(target) as f:
        f.write("half")
        raise RuntimeError("crash half-way")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_a_private_file_stays_private(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    target.write_text("old\n")
    target.chmod(0o600)
    before = node(target)
    write(target)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert node(target)[:3] == before[:3]  # type, mode, owner and group kept


@pytest.mark.skipif(not ROOT, reason="giving a file to another owner needs root")
def test_a_file_of_another_owner_keeps_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "theirs.json"
    target.write_text("old\n")
    os.chown(target, 12345, 12345)
    write(target)
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (12345, 12345)
    assert target.read_text() == "new\n"


def test_a_symlink_writes_its_target_and_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target.name)
    write(link)
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert target.read_text() == "new\n"
    dangling = tmp_path / "dangling"
    dangling.symlink_to("made-through-the-link")
    write(dangling)
    assert dangling.is_symlink()
    assert (tmp_path / "made-through-the-link").read_text() == "new\n"


def test_a_hard_linked_file_stays_one_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("old\n")
    other = tmp_path / "b.json"
    os.link(target, other)
    write(target)
    assert other.read_text() == "new\n"  # renaming would have split the two names


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "an empty file name"), ("a\0b", "a NUL character in the file name")],
)
def test_an_impossible_name_is_one_line(name: str, message: str) -> None:
    with pytest.raises(FileError) as e:
        write(name)
    assert message in one_line(e.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    for name in (tmp_path, f"{tmp_path}/", tmp_path / "missing-dir/"):
        with pytest.raises(FileError) as e:
            write(str(name) + ("/" if str(name).endswith("missing-dir") else ""))
        assert "is a directory" in one_line(e.value)
    assert tmp_path.is_dir() and not (tmp_path / "missing-dir").exists()


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileError) as e:
        write(tmp_path / "no" / "x.json")
    assert "No such file or directory" in one_line(e.value)


def test_a_read_only_file_is_as_open_would_have_it(tmp_path: Path) -> None:
    target = tmp_path / "ro.json"
    target.write_text("old\n")
    target.chmod(0o444)
    if ROOT:  # root may write it, as with open(); it stays read-only
        write(target)
        assert target.read_text() == "new\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o444
    else:
        with pytest.raises(FileError) as e:
            write(target)
        assert "Permission denied" in one_line(e.value)
        assert target.read_text() == "old\n"


def test_a_fifo_without_a_reader_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = node(fifo)
    with pytest.raises(FileError) as e:
        write(fifo)  # an ordinary open would wait for a reader forever
    assert "no reader" in one_line(e.value)
    assert node(fifo) == before


def test_a_fifo_with_a_reader_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = node(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader there; a small write fits
    try:
        write(fifo, "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert node(fifo) == before  # still the FIFO: nothing renamed over it


def test_a_character_device_stays_a_device(tmp_path: Path) -> None:
    # /dev/null itself: the write goes into it and the node is the same node after (a
    # rename over it as root would have made it a regular file: issue 14). Any user may
    # write /dev/null, so this runs as root and not alike.
    before = node(Path("/dev/null"))
    assert stat.S_ISCHR(before[0])
    write("/dev/null", "nothing\n")
    assert node(Path("/dev/null")) == before


# --- every front end that writes --------------------------------------------------------------


def test_run_trace_refuses_an_empty_name_and_keeps_a_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(PINGPONG), "--max-steps", "10", "--trace", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "an empty file name" in err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["run", str(PINGPONG), "--max-steps", "10", "--trace", str(fifo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no reader" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert main(["run", str(PINGPONG), "--max-steps", "10", "--trace", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    before = node(Path("/dev/null"))
    assert main(["run", str(PINGPONG), "--max-steps", "10", "--trace", "/dev/null"]) in (0, 1)
    assert node(Path("/dev/null")) == before


def test_save_and_export_say_one_line_and_change_nothing(tmp_path: Path) -> None:
    s = Session(demo_scenario())
    execute(s, "stepi 20")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for command, why in (
        (f"save {tmp_path}", "is a directory"),
        (f"save {fifo}", "no reader"),
        ("save ''", "an empty file name"),
        ("save 'a\0b'", "NUL"),
        (f"export perfetto {tmp_path}", "is a directory"),
        (f"export perfetto {fifo}", "no reader"),
        (f"save {tmp_path / 'no' / 's.json'}", "No such file or directory"),
    ):
        position = s.position
        out = execute(s, command)
        assert out.startswith("error: ") and "\n" not in out and why in out, (command, out)
        assert s.position == position
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
    before = node(Path("/dev/null"))
    assert execute(s, "save /dev/null").startswith("saved ")
    assert execute(s, "export perfetto /dev/null").startswith("wrote ")
    assert node(Path("/dev/null")) == before


def test_explore_save_to_a_directory_is_a_one_line_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    naive = Path(__file__).parent.parent / "scripts" / "races" / "uhlig-naive.yaml"
    assert main(["explore", str(naive), "--save", str(tmp_path), "--max-schedules", "60"]) == 1
    err = capsys.readouterr().err
    assert "warning: cannot save the schedule" in err and "is a directory" in err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# --- the reader -------------------------------------------------------------------------------


def test_the_reader_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 600_000 + "0]")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 150 + "]" * 150)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe{}")
    for path, why in (
        (fifo, "not a regular file"),  # and no hang: the open does not wait for a writer
        (Path("/dev/zero"), "not a regular file"),  # no MemoryError reading forever
        (tmp_path, "it is a directory"),
        (big, "limited to 1 MB"),
        (deep, "nested"),
        (nested, "nested deeper than 100 levels"),
        (binary, "is not UTF-8 text"),
        (tmp_path / "missing.json", "No such file or directory"),
    ):
        with pytest.raises(ConfigError) as e:
            load_json(path, "the session", "saved sessions")
        assert why in one_line(e.value), (path, e.value)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"a": [1, 2, {"b": None}]}))
    assert load_json(ok, "the session", "saved sessions") == {"a": [1, 2, {"b": None}]}
