"""`l4tui bench thesis` reproduces the thesis's measurements (§3.2, §3.3.1, §6.1.1, §8.3.4).

These assert simulated *cycles*, which are deterministic — never host time.
"""

from __future__ import annotations

import pytest

from l4tui.bench.thesis import DERIVED, TABLE, UNITS, run_thesis
from machine import load_profile


@pytest.fixture(scope="module")
def p3() -> dict:
    return run_thesis(load_profile("p3-dual-450"))


def test_rows_are_exactly_the_contracts(p3: dict) -> None:
    names = [(r["name"], r["unit"]) for r in p3["rows"]]
    expected = [(n, u) for n in TABLE for u in UNITS] + [(n, "cycles") for n in DERIVED]
    assert names == expected
    assert p3["profile"] == "p3-dual-450"
    for row in p3["rows"]:
        assert set(row) == {"name", "unit", "thesis", "simulated", "ratio"}


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
