"""`l4tui bench explore`: how fast the race explorer searches, and how soon it finds Uhlig's race.

Runs `l4tui explore`'s search (l4tui/explore.py) on the two-thread send/receive
of §8.3.3: in the `naive` kernel until it finds the lost wake-up, in the
thesis's `proxy` design until the bound (2 preemptions) is exhausted; then
the ex_regs and migration races of §8.4.3 and §8.5 (scripts/races/). Host
time, so the figures vary from run to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernel.scenario import load_scenario
from l4tui.explore import Explorer

RACES = Path(__file__).parents[2] / "scripts" / "races"


def run_explore() -> dict[str, Any]:
    rows: list[tuple[str, str, float]] = []
    naive = Explorer(load_scenario(str(RACES / "uhlig-naive.yaml"))).explore()
    found = naive.failure
    rows += [
        ("naive kernel: time to find Uhlig's lost wake-up", "s", naive.seconds),
        ("  schedules run before it", "", naive.schedules),
        ("  preemptions in the schedule found", "", len(found.shown) if found else -1),
    ]
    total_s, total_n = naive.seconds, naive.schedules
    for name, what in (
        ("uhlig-proxy", "proxy design, bound of 2 exhausted"),
        ("exregs-xp-ipc", "ex_regs racing an XP-IPC, bound of 2"),
        ("migrate-ipc", "migration racing an IPC, bound of 2"),
    ):
        r = Explorer(load_scenario(str(RACES / f"{name}.yaml"))).explore()
        rows += [
            (f"{what}: schedules", "", r.schedules),
            (f"{what}: time", "s", r.seconds),
            (f"{what}: failures", "", 0 if r.failure is None else 1),
        ]
        total_s += r.seconds
        total_n += r.schedules
    rows.append(("schedules per second (all of the above)", "1/s", total_n / total_s))
    return {"rows": [{"name": n, "unit": u, "value": round(v, 2)} for n, u, v in rows]}
