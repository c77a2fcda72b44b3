"""`l4tui bench thesis` reproduces the thesis's measurements (§3.2, §3.3.1, §6.1.1, §8.3.4).

These assert simulated *cycles*, which are deterministic — never host time.
"""

from __future__ import annotations

import pytest
import yaml

from l4tui.bench import thesis as thesis_module
from l4tui.bench.thesis import BASIS, DERIVED, TABLE, UNITS, run_thesis
from machine import load_profile
from machine.profile import PROFILE_DIR

# The thesis rows are computed once, on one worker (an xdist_group
# runs on one worker under `--dist loadgroup`).
pytestmark = [pytest.mark.xdist_group("bench-thesis")]


@pytest.fixture(scope="module")
def p3() -> dict:
    return run_thesis(load_profile("p3-dual-450"))


def test_rows_are_exactly_the_contracts(p3: dict) -> None:
    names = [(r["name"], r["unit"]) for r in p3["rows"]]
    expected = [(n, u) for n in TABLE for u in UNITS] + [(n, "cycles") for n in DERIVED]
    assert names == expected
    assert p3["profile"] == "p3-dual-450"
    for row in p3["rows"]:
        assert {"name", "unit", "thesis", "simulated", "ratio", "basis", "constants"} <= set(row)
        assert set(row) <= {"name", "unit", "thesis", "simulated", "ratio", "basis", "constants",
                            "note"}  # fmt: skip
        assert row["basis"] in ("calibrated", "predicted")
        assert bool(row["constants"]) == (row["basis"] == "calibrated")


def test_calibrated_rows_within_three_percent(p3: dict) -> None:
    off = [
        (r["name"], r["unit"], r["thesis"], r["simulated"])
        for r in p3["rows"]
        if isinstance(r["thesis"], int | float)
        and r["unit"] != "cycles"
        and not 0.97 <= r["simulated"] / r["thesis"] <= 1.03
    ]
    assert off == []


def test_derived_rows_inside_the_thesis_ranges(p3: dict) -> None:
    rows = {r["name"]: r for r in p3["rows"] if r["unit"] == "cycles"}
    for name, thesis in DERIVED.items():
        if "note" in rows[name]:
            continue  # a miss reported with its reason (test_predictions_...)
        simulated = rows[name]["simulated"]
        if isinstance(thesis, tuple):
            low, high = thesis
            assert low <= simulated <= high, (name, simulated)
        else:
            assert simulated == pytest.approx(thesis, rel=0.03), (name, simulated)


def test_mesi_costs_keep_the_thesis_order(p3: dict) -> None:
    """E to S ~1.5x an L2 miss; a modified line about double (§3.2.2)."""
    per_line = {r["name"]: r["simulated"] for r in p3["rows"] if r["unit"] == "cycles/line"}
    assert per_line["L1 hit"] < per_line["L1 miss"] < per_line["L2 miss"]
    assert 1.3 < per_line["E to S"] / per_line["L2 miss"] < 1.7
    assert 1.9 < per_line["M to S"] / per_line["L2 miss"] < 2.3
    assert per_line["E to M"] == per_line["S to M"]


def test_same_profile_same_figures(p3: dict) -> None:
    assert run_thesis(load_profile("p3-dual-450")) == p3


def test_other_profiles_run_the_same_experiments() -> None:
    p4 = run_thesis(load_profile("p4-dual-2000"))
    assert p4["profile"] == "p4-dual-2000"
    per_line = {r["name"]: r["simulated"] for r in p4["rows"] if r["unit"] == "cycles/line"}
    # The thesis's 256-line loop overflows the P4's 8 KB L1: its "L1 hit" row
    # shows L2 hits, which is what the experiment finds on that machine.
    assert per_line["M to S"] > per_line["L2 miss"] > per_line["L1 miss"] >= per_line["L1 hit"] > 0
    four = run_thesis(load_profile("p3-dual-450", {"cpus": 4}))
    assert [r["simulated"] for r in four["rows"]] == [
        r["simulated"] for r in run_thesis(load_profile("p3-dual-450"))["rows"]
    ]


def test_predictions_hit_or_say_why_they_miss(p3: dict) -> None:
    """Issue 16: at least 4 predicted rows, each within the thesis's range or 5% of its
    figure — or reported as a miss with the reason."""
    predicted = [r for r in p3["rows"] if r["basis"] == "predicted" and r["thesis"] is not None]
    assert len(predicted) >= 4
    for r in predicted:
        if isinstance(r["thesis"], list):
            low, high = r["thesis"]
            hit = low <= r["simulated"] <= high
        else:
            hit = abs(r["simulated"] / r["thesis"] - 1) <= 0.05
        assert hit or r.get("note"), r
    names = {r["name"] for r in predicted}
    assert {"M to M", "migration, dirty lines only", "migration, all lines"} <= names
    assert "poll 256 mailboxes, check_n_ack" in names


# The profile's constants as load_profile overrides: "bus.write_line" -> {"bus": {...}}.
def _raised(constant: str, profile: dict) -> dict:
    *path, leaf = constant.split(".")
    node = profile
    for key in path:
        node = node[key]
    over: dict = {}
    inner = over
    for key in path[:-1]:
        inner = inner.setdefault(key, {})
    inner[path[-1]] = {leaf: node[leaf] * 1.2}
    return over


def test_each_calibrated_row_moves_with_the_constants_it_names(
    p3: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `basis` claims, checked as issue 16 found it: raise a named constant by 20%
    and its row moves."""
    data = yaml.safe_load((PROFILE_DIR / "p3-dual-450.yaml").read_text())
    before = {(r["name"], r["unit"]): r["simulated"] for r in p3["rows"]}
    for name, (_basis, constants) in BASIS.items():
        for constant in constants:
            if constant == "bench LOOP_CYCLES":
                monkeypatch.setattr(thesis_module, "LOOP_CYCLES", thesis_module.LOOP_CYCLES * 1.2)
                after = run_thesis(load_profile("p3-dual-450"))
                monkeypatch.undo()
            else:
                after = run_thesis(load_profile("p3-dual-450", _raised(constant, data)))
            moved = {(r["name"], r["unit"]) for r in after["rows"]
                     if r["simulated"] != before[(r["name"], r["unit"])]}  # fmt: skip
            assert any(n == name for n, _ in moved), (name, constant)
