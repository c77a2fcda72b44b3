"""Fixtures every test shares.

`private_dirs`: the monitor's history, autosaves, schedules and keymap go to
the test's own directories, never the user's (`$XDG_STATE_HOME`,
`$XDG_CONFIG_HOME`); a test that needs other directories sets its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path
