"""Helpers of the scenario-file tests: the example scenarios, writing a bad file,
and finding where an error points (DESIGN.md §2).

`bad` writes a scenario, loads it, and checks the `ConfigError` points at the
line and column of a given fragment of the text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel.scenario import load_scenario
from machine.errors import ConfigError

DATA = Path(__file__).parent / "data" / "scenarios"
PINGPONG = DATA / "xp-pingpong.yaml"
ALL_OPS = DATA / "all-ops.yaml"
TEXT = PINGPONG.read_text()


def write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str | bytes) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    return info.value, path


def position(err: ConfigError, path: Path) -> tuple[int, int]:
    """(line, column) from the error's one-line form, checking its shape."""
    text = err.format()
    assert "\n" not in text
    assert text.startswith(f"error: {path}:{err.line}:{err.col}: "), text
    match = re.match(rf"error: {re.escape(str(path))}:(\d+):(\d+): \S", text)
    assert match, text
    assert (err.file, err.line, err.col) == (str(path), int(match[1]), int(match[2]))
    return int(match[1]), int(match[2])


def at(text: str, fragment: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the `nth` occurrence of `fragment` in `text`."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(fragment, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def replaced(old: str, new: str, text: str = TEXT) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def bad(tmp_path: Path, text: str, fragment: str, nth: int = 0) -> ConfigError:
    """Load `text`; the error must sit at `fragment` (its nth occurrence)."""
    err, path = error_of(tmp_path, text)
    assert position(err, path) == at(text, fragment, nth), err.format()
    return err
