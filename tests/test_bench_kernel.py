"""`l4tui bench kernel`: the rows' shape and the behaviour they show, never host time.

`run_kernel()` measures short IPCs in simulated cycles: local, across CPUs
through a proxy with an IPI and polling only, the naive path, and the cache
coherence transitions per cross-processor IPC with the thesis's TCB layout
(Table 3) and the naive declaration order. The figures are simulated, so the
same call gives the same rows. One call costs a few seconds: the rows are
computed once per module, and once more for the determinism check.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from l4tui.bench.kernel import run_kernel

# The bench rows are computed once, on one worker (an xdist_group
# runs on one worker under `--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench-kernel")]


LOCAL = "short IPC, same CPU"
XP_IPI = "short XP-IPC, proxy with IPI (ipi_policy always)"
XP_POLL = "short XP-IPC, proxy polling only (ipi_policy poll_only, tick 50,000 cycles)"
XP_NAIVE = "short XP-IPC, naive path"
MESI_THESIS = "coherence transitions per XP-IPC, thesis TCB layout (ipi_policy always)"
MESI_NAIVE = "coherence transitions per XP-IPC, naive TCB layout (ipi_policy always)"
MESI_LOCAL = "coherence transitions per local IPC"


@pytest.fixture(scope="module")
def bench() -> dict[str, Any]:
    return run_kernel()


@pytest.fixture(scope="module")
def values(bench: dict[str, Any]) -> dict[str, float]:
    return {row["name"]: row["value"] for row in bench["rows"]}


def test_rows_have_name_unit_value(bench: dict[str, Any]) -> None:
    rows = bench["rows"]
    assert rows
    for row in rows:
        assert set(row) == {"name", "unit", "value"}
        assert isinstance(row["name"], str) and row["name"]
        assert row["unit"] in ("cycles", "transitions")
        assert isinstance(row["value"], int | float)
        assert math.isfinite(row["value"]) and row["value"] >= 0
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names))
    expected = {LOCAL, XP_IPI, XP_POLL, XP_NAIVE, MESI_THESIS, MESI_NAIVE, MESI_LOCAL}
    assert expected <= set(names)
    units = {row["name"]: row["unit"] for row in rows}
    assert {units[n] for n in (LOCAL, XP_IPI, XP_POLL, XP_NAIVE)} == {"cycles"}
    assert {units[n] for n in (MESI_THESIS, MESI_NAIVE, MESI_LOCAL)} == {"transitions"}


def test_every_cost_was_measured(values: dict[str, float]) -> None:
    """A zero would mean no send was seen at all."""
    for name in (LOCAL, XP_IPI, XP_POLL, XP_NAIVE, MESI_THESIS, MESI_NAIVE):
        assert values[name] > 0, name


def test_local_ipc_is_cheaper_than_xp_ipc_with_ipi(values: dict[str, float]) -> None:
    assert values[LOCAL] < values[XP_IPI]
    assert values[LOCAL] < values[XP_NAIVE]


def test_polling_only_costs_more_than_with_an_ipi(values: dict[str, float]) -> None:
    assert values[XP_POLL] > values[XP_IPI]


def test_naive_tcb_layout_causes_more_coherence_transitions(values: dict[str, float]) -> None:
    assert values[MESI_NAIVE] > values[MESI_THESIS]
    # A local IPC keeps its lines in one cache: fewer transitions than any XP-IPC.
    assert values[MESI_LOCAL] < values[MESI_THESIS]


def test_same_call_gives_identical_rows(bench: dict[str, Any]) -> None:
    assert run_kernel() == bench
