"""Keymap files cannot hurt the monitor (issue 14): a bad `$XDG_CONFIG_HOME/l4tui/keymap.yaml`
— not UTF-8, 5,000-deep lists, an alias bomb, a huge file, a FIFO, a directory, a device —
gives one notification line and is ignored: the monitor starts with its default keys."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from l4tui.demo import demo_scenario
from l4tui.session import Session
from l4tui.tui import keys
from l4tui.tui.app import MonitorApp

WIDE = (160, 48)


@pytest.fixture(autouse=True)
def config(tmp_path: Path) -> Path:
    """The keymap's directory, in the test's own config home (tests/conftest.py)."""
    where = tmp_path / "config" / "l4tui"
    where.mkdir(parents=True)
    return where


def alias_bomb() -> str:
    """Nine times nine times ... : a few hundred bytes, 9**12 strings once expanded."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 13):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\nstep: x\n"


def write(text: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return make


def fifo(path: Path) -> None:
    os.mkfifo(path)  # no writer: opening it for reading in the usual way would block


def directory(path: Path) -> None:
    path.mkdir()


def device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # endless: a read that trusts it never ends


BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-utf8": (write(b"step: \xff\xfe\n"), "not UTF-8"),
    "deep": (write("step: " + "[" * 5000 + "]" * 5000 + "\n"), "nesting deeper than"),
    "alias-bomb": (write(alias_bomb()), "aliases are not supported"),
    "huge": (write("# padding\n" * 200_000 + "step: x\n"), "keymaps are limited to 64 kB"),
    "fifo": (fifo, "not a regular file"),
    "directory": (directory, "it is a directory"),
    "device": (device, "not a regular file"),
    "a-list": (write("step: [x, y]\n"), "step takes keys as text"),
    "a-number": (write("step: 5\n"), "step takes keys as text"),
    "not-a-key": (write("step: 'ctrl x'\n"), "is not a key name"),
    "no-action": (write("frobnicate: x\n"), "no action 'frobnicate'"),
    "a-list-of-actions": (write("- step\n- x\n"), "a keymap maps action ids to keys"),
    "bad-yaml": (write("step: [x\n"), "invalid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_keymap_is_one_line_and_no_keys(config: Path, case: str) -> None:
    make, said = BAD[case]
    path = config / "keymap.yaml"
    make(path)
    keymap, problem = keys.load_keymap(path, keys.ACTION_IDS)
    assert keymap == {}
    assert problem is not None and said in problem, problem
    assert "\n" not in problem and len(problem) < 600
    assert problem.startswith(str(path))


def test_positions_point_into_the_file(config: Path) -> None:
    path = config / "keymap.yaml"
    path.write_text("step: f10\nnext: [n]\n")
    assert keys.load_keymap(path, keys.ACTION_IDS)[1] == (
        f"{path}:2:7: next takes keys as text, e.g. next: f10 or next: x,f10"
    )


def test_no_keymap_and_an_empty_one_are_the_defaults_without_a_word(config: Path) -> None:
    path = config / "keymap.yaml"
    assert keys.load_keymap(path, keys.ACTION_IDS) == ({}, None)
    path.write_text("# nothing rebound yet\n")
    assert keys.load_keymap(path, keys.ACTION_IDS) == ({}, None)
    path.write_text("step: x, f10\n")
    assert keys.load_keymap(path, keys.ACTION_IDS) == ({"step": "x, f10"}, None)


@pytest.mark.parametrize("case", ["not-utf8", "deep", "alias-bomb", "huge", "fifo", "device"])
async def test_the_monitor_starts_says_so_and_the_default_keys_work(
    config: Path, case: str
) -> None:
    make, said = BAD[case]
    make(config / "keymap.yaml")
    app = MonitorApp(Session(demo_scenario()))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert len(notes) == 1 and said in notes[0] and "\n" not in notes[0]
        await pilot.press("escape", "s")  # `s` is step by default
        await pilot.pause()
        assert app.session.position > 0
        await pilot.press("i")  # and `i` stepi
        await pilot.pause()
        assert app.session.stop_reason.startswith("stepped")
