"""Bootstrapping the SMP (thesis §8.2).

With `machine: {boot: true}` the bootstrap processor (CPU 1) initialises
the kernel and sends the startup IPI; each application processor takes its
processor number by atomic xadd (2..k, each exactly once), programs its
APIC, and meets the others at a barrier. Only then do threads start on their
CPUs. An AP that never reaches the barrier is reported missing and the boot
goes on without it. `summary()["boot"]` has `numbers` (AP -> number),
`cycles` (when the BSP was through) and `missing`.

The machine's `step` is wrapped to note which CPU appended each result, and
at which cycle of that CPU — the cycle a thread first ran at.
"""

from __future__ import annotations

from typing import Any

import pytest

from kernel import boot
from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from machine import ops
from tests.kernel_helpers import Log, results, system, watch

MAX_STEPS = 400_000


def scenario(n: int, on: list[int] | None = None) -> str:
    """A thread per CPU in `on` (default: all), reading its UTCB CPU and the KIP."""
    cpus = on if on is not None else list(range(1, n + 1))
    threads = "".join(
        f"""
              - name: t{c}
                cpu: {c}
                program:
                  - read_utcb_cpu
                  - read_kip"""
        for c in cpus
    )
    return f"""
        machine: {{cpus: {n}, boot: true}}
        tasks:
          - name: root
            threads:{threads}
        """


def booted(n: int, on: list[int] | None = None, dead: int | None = None) -> tuple[System, Log]:
    """Build the scenario; CPU `dead`'s startup handler only acknowledges the IPI."""
    s = system(scenario(n, on))
    if dead is not None:
        handlers = s.machine.vector_handlers
        inner = handlers[boot.VECTOR]

        def handle(c: Any, vector: int) -> Any:
            if c.number == dead:
                return _eoi_only()
            return inner(c, vector)

        handlers[boot.VECTOR] = handle
    log = watch(s, [f"t{c}" for c in (on if on is not None else range(1, n + 1))])
    ended = s.run(max_steps=MAX_STEPS, check_invariants=True)
    assert ended == "end", (ended, s.violations)
    return s, log


def _eoi_only() -> Any:
    yield ops.EOI()


@pytest.mark.parametrize("n", [2, 3, 4, 8, 10])
def test_processor_numbers_taken_exactly_once(n: int) -> None:
    s, _ = booted(n)
    report = run_summary(s)["boot"]
    numbers = report["numbers"]
    # Every AP — and only the APs — took a number; the numbers are 2..k, each once.
    assert sorted(numbers) == list(range(2, n + 1))
    assert sorted(numbers.values()) == list(range(2, n + 1))
    assert "missing" not in report
    assert report["cycles"] >= boot.BSP_INIT_CYCLES


def test_single_cpu_boots_without_aps() -> None:
    s, log = booted(1)
    report = run_summary(s)["boot"]
    assert report.get("numbers", {}) == {}
    assert "missing" not in report
    assert log["t1"][0][2] > report["cycles"]


@pytest.mark.parametrize("n", [2, 3, 4])
def test_threads_run_on_their_cpus_after_boot(n: int) -> None:
    s, log = booted(n)
    boot_cycles = run_summary(s)["boot"]["cycles"]
    for c in range(1, n + 1):
        name = f"t{c}"
        assert [r["value"] for r in results(s, name)] == [c, n]
        assert {cpu for _, cpu, _ in log[name]} == {c}
        first = log[name][0][2]
        assert first > boot_cycles, (name, first, boot_cycles)


@pytest.mark.parametrize("n", [3, 4])
def test_missing_cpu_is_reported_and_the_run_ends(n: int) -> None:
    """CPU 3 never reaches the barrier: one missing, the others numbered, all else runs."""
    on = [c for c in range(1, n + 1) if c != 3]
    s, log = booted(n, on=on, dead=3)
    report = run_summary(s)["boot"]
    assert report["missing"] == 1
    assert 3 not in report["numbers"]
    assert sorted(report["numbers"]) == [c for c in range(2, n + 1) if c != 3]
    assert len(set(report["numbers"].values())) == len(report["numbers"])
    # The BSP waited for the barrier's timeout before giving up.
    assert report["cycles"] >= boot.BARRIER_TIMEOUT
    for c in on:
        assert results(s, f"t{c}")[0]["value"] == c
        assert log[f"t{c}"][0][1] == c


@pytest.mark.parametrize("n", [3, 4])
def test_missing_cpu_threads_still_start_after_boot(n: int) -> None:
    """Even when the BSP waited long for the barrier, no thread ran before it was through."""
    on = [c for c in range(1, n + 1) if c != 3]
    s, log = booted(n, on=on, dead=3)
    boot_cycles = run_summary(s)["boot"]["cycles"]
    for c in on:
        first = log[f"t{c}"][0][2]
        assert first > boot_cycles, (f"t{c}", first, boot_cycles)
