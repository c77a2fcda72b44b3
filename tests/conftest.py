"""Fixtures and ordering every test shares.

`private_dirs`: the monitor's history, autosaves, schedules and keymap go to
the test's own directories, never the user's (`$XDG_STATE_HOME`,
`$XDG_CONFIG_HOME`); a test that needs other directories sets its own.

Tests marked `slow` run first, the longest first (`slow(seconds)`: a rough
duration on an idle machine, for the few that take much longer than the rest):
under `--dist loadgroup` (pyproject's addopts) xdist hands out one work unit
at a time, in collection order, so the long tests start at once on every
worker and the many short ones fill in at the end instead of one long test
running alone at the tail. `-m "not slow"` leaves them out while developing;
CI runs them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _slowness(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.args[0]) if mark.args else 1.0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: a module's tests stay together (its module-scoped fixtures are built
    # once per worker), slow modules and tests move ahead of the rest as they are.
    items.sort(key=lambda item: -_slowness(item))


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path
