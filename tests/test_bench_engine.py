"""`l4tui bench engine` at tiny sizes: the result's shape, never its timing (DESIGN.md §3)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from l4tui.bench import engine

HAVE_SIMPY = importlib.util.find_spec("simpy") is not None


def test_run_engine_structure() -> None:
    result = engine.run_engine(seconds=0, chunk=50, rounds=3, repeats=1)
    assert set(result) == {"rows", "simpy"}
    assert [row["name"] for row in result["rows"]] == [
        "L1-hit reads",
        "L2-hit reads",
        "coherence ping-pong",
    ]
    for row in result["rows"]:
        assert set(row) == {"name", "unit", "value"}
        assert row["unit"] == "micro-ops/s"
        assert isinstance(row["value"], float) and row["value"] > 0
    if HAVE_SIMPY:
        simpy = result["simpy"]
        assert {"ours", "simpy", "ratio"} <= set(simpy)  # DESIGN.md §2; the rest extends it
        assert set(simpy) == {
            "ours",
            "simpy",
            "ratio",
            "ours_all_steps",
            "retries",
            "ours_messages",
            "simpy_messages",
            "message_ratio",
            "steps_per_message",
            "events_per_message",
        }
        assert all(isinstance(v, float) and v >= 0 for v in simpy.values())
        assert all(v > 0 for k, v in simpy.items() if k != "retries")  # only retries may be 0
        # Compute, SendIPI, entry, EOI, exit, Hlt; and each CPU's last halt (3 rounds).
        assert simpy["steps_per_message"] == (6 * 24 + engine.RING) / 24
    else:
        assert result["simpy"] is None


@pytest.mark.skipif(not HAVE_SIMPY, reason="SimPy not installed")
def test_ring_same_messages_on_both_engines() -> None:
    delays = engine.ring_delays(rounds=4, seed=3)
    ours, theirs = engine.machine_ring(delays), engine.simpy_ring(delays)
    assert ours.messages == theirs.messages == engine.RING * 4
    assert ours.events > 0 and theirs.events > 0
    assert ours.events == 6 * ours.messages + engine.RING  # executed steps: retries apart


def test_simpy_missing_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "simpy", None)  # `import simpy` now fails
    assert engine.compare_simpy(rounds=2, repeats=1) is None
