"""Fixtures and ordering every test shares.

`private_dirs`: the monitor's history, autosaves, schedules and keymap go to
the test's own directories, never the user's (`$XDG_STATE_HOME`,
`$XDG_CONFIG_HOME`); a test that needs other directories sets its own.

`seeds`, `decoy`, `guard`: the file fuzzers' (test_fuzz_files_*.py) real files the
CLI wrote, someone else's files beside the test's directory, and the guard that
neither they nor the project's files change; `seeds` is built once per module.

Tests marked `slow` run first, the longest first (`slow(seconds)`: a rough
duration on an idle machine, for the few that take much longer than the rest):
under `--dist loadgroup` (pyproject's addopts) xdist hands out one work unit
at a time, in collection order, so the long tests start at once on every
worker and the many short ones fill in at the end instead of one long test
running alone at the tail. `-m "not slow"` leaves them out while developing;
CI runs them all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_seeds import (
    LAB_COMMANDS,
    PINGPONG,
    SESSION_COMMANDS,
    UHLIG,
    XP_DEMO,
    Seeds,
    lab_status,
    version_2,
    write_session,
)
from fuzzing import WATCHED, Guard, cli, dumps, make_decoy


def _slowness(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.kwargs.get("seconds", mark.args[0] if mark.args else 1.0))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The slowest first, so the last tests a worker gets are short ones. Under
    # `--dist loadgroup` each test is its own unit (an xdist_group keeps its tests on one
    # worker): a module whose tests are split by the sort may build a module fixture
    # twice; the expensive ones are grouped, or session-scoped.
    items.sort(key=lambda item: -_slowness(item))


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


@pytest.fixture(scope="session")  # the fuzz-files group: one worker, both modules
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
