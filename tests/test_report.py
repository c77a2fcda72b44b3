"""Text tables for `l4tui bench` (l4tui/report.py)."""

from __future__ import annotations

import pytest

from l4tui import report


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"thesis": 100, "simulated": 100.0, "ratio": 1.0}, "ok"),
        ({"thesis": 100, "simulated": 97.0, "ratio": 0.97}, "ok"),
        ({"thesis": 100, "simulated": 103.0, "ratio": 1.03}, "ok"),
        ({"thesis": 100, "simulated": 96.0, "ratio": 0.96}, "OFF"),
        ({"thesis": 100, "simulated": 110.0, "ratio": 1.1}, "OFF"),
        ({"thesis": [1230, 1250], "simulated": 1240.0, "ratio": None}, "ok"),
        ({"thesis": [1230, 1250], "simulated": 1230.0, "ratio": None}, "ok"),
        ({"thesis": [1230, 1250], "simulated": 1251.0, "ratio": None}, "OFF"),
        ({"thesis": None, "simulated": 5.0, "ratio": None}, "-"),
        ({"thesis": 200, "simulated": 202.0, "ratio": None}, "ok"),
        ({"thesis": 0, "simulated": 0.0, "ratio": None}, "ok"),
        ({"thesis": 0, "simulated": 1.0, "ratio": None}, "OFF"),
    ],
)
def test_mark(row: dict, expected: str) -> None:
    assert report.mark(row) == expected


def test_format_number() -> None:
    assert report.format_number(None) == "-"
    assert report.format_number(1230) == "1,230"
    assert report.format_number(1239.96) == "1,239.96"
    assert report.format_number(1242.0) == "1,242"
    assert report.format_number(2.2) == "2.20"
    assert report.format_number(0.98765, digits=3) == "0.988"


def test_format_thesis_value() -> None:
    assert report.format_thesis_value(None) == "-"
    assert report.format_thesis_value(42) == "42"
    assert report.format_thesis_value([1230, 1250]) == "1,230-1,250"


def test_format_table_aligns_columns() -> None:
    text = report.format_table(("a", "n"), [("x", "1"), ("longer", "100")], right=(False, True))
    assert text.splitlines() == [
        "a         n",
        "------  ---",
        "x         1",
        "longer  100",
    ]


THESIS = {
    "profile": "p3-dual-450",
    "rows": [
        {
            "name": "L1 hit",
            "unit": "cycles/line",
            "thesis": 2,
            "simulated": 2.0,
            "ratio": 1.0,
            "basis": "calibrated",
            "constants": ["cache.l1.latency"],
        },
        {
            "name": "IPI delivery",
            "unit": "cycles",
            "thesis": [1230, 1250],
            "simulated": 1300.0,
            "ratio": None,
            "basis": "predicted",
            "constants": [],
            "note": "a reason",
        },
        {"name": "extra", "unit": "cycles", "thesis": None, "simulated": 7.5, "ratio": None},
    ],
}


def test_format_thesis() -> None:
    lines = report.format_thesis(THESIS).splitlines()
    assert lines[0] == "profile: p3-dual-450"
    assert lines[1].split() == ["experiment", "unit", "thesis", "simulated", "ratio", "basis"]
    assert lines[3].split() == [
        "L1", "hit", "cycles/line", "2", "2.00", "1.000", "ok", "calibrated"
    ]  # fmt: skip
    assert lines[4].split() == [
        "IPI", "delivery", "cycles", "1,230-1,250", "1,300", "-", "OFF", "predicted"
    ]  # fmt: skip
    assert lines[5].split() == ["extra", "cycles", "-", "7.50", "-", "-"]
    # The constants of calibrated rows, and the notes, under the table.
    assert "  L1 hit: cache.l1.latency" in lines
    assert "note: IPI delivery: a reason" in lines
    # Every row's cells start in the same columns as the header's.
    unit_col = lines[1].index("unit")
    assert all(line[unit_col - 2 : unit_col] == "  " for line in lines[3:6])
    assert all(line[unit_col] != " " for line in lines[3:6])


def test_format_engine_with_and_without_simpy() -> None:
    result = {
        "rows": [
            {"name": "L1-hit reads", "unit": "micro-ops/s", "value": 1234567.8},
            {"name": "coherence ping-pong", "unit": "micro-ops/s", "value": 98765.4},
        ],
        "simpy": {"ours": 1000000.0, "simpy": 250000.0, "ratio": 4.0},
    }
    text = report.format_engine(result)
    assert "L1-hit reads" in text and "1,234,568" in text
    assert text.splitlines()[-1] == "SimPy: ours 1,000,000, simpy 250,000, ratio 4.00"
    result["simpy"] = None
    assert report.format_engine(result).splitlines()[-1] == report.SIMPY_MISSING
