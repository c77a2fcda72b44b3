"""Schedule files and the human report of `l4tui explore` (DESIGN.md §2).

A failing run's inputs are exactly a debugger session's input log (`None` a
timed step, `N` a step of CPU N, `["idle", N]`), so the schedule file loads
into the debugger (`load schedule FILE`, `l4tui open FILE --schedule S`) with
a stop at each deviation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kernel.scenario import Scenario
from l4tui.explore.search import Report
from l4tui.files import atomic_text, load_json
from machine.errors import ConfigError

SCHEDULE_VERSION = 1


def schedule_data(scenario: Scenario, seed: int | None, report: Report) -> dict[str, Any]:
    """The schedule file: the explore result plus the input log that replays the failure."""
    f = report.failure
    stops: dict[str, str] = {}
    if f is not None:
        n = len(f.shown)
        for i, shown in enumerate(f.shown, 1):
            stops[str(shown.choice.at)] = f"schedule {i}/{n}: {shown.text()}"
        stops[str(f.steps)] = f"here the explorer found {f.kind}: {f.message}"
    return {
        "l4tui_schedule": SCHEDULE_VERSION,
        **report.data(),
        "file": str(Path(scenario.file).resolve()) if scenario.file else None,
        "seed": seed,
        "log": f.log if f else [],
        "stops": stops,
    }


def read_schedule(path: str) -> tuple[list[Any], dict[int, str], dict[str, Any]]:
    """A schedule file's inputs and stops (and the whole of it); ConfigError if it is none."""
    data = load_json(path, "the schedule", "schedules")  # regular, bounded, not too deep
    if not isinstance(data, dict) or data.get("l4tui_schedule") != SCHEDULE_VERSION:
        raise ConfigError("not an l4tui schedule (written by `l4tui explore`)", path)
    log, stops = data.get("log"), data.get("stops", {})
    if not isinstance(log, list) or not isinstance(stops, dict):
        raise ConfigError("a schedule needs a list `log` and a map `stops`", path)
    for i, entry in enumerate(log):
        ok = entry is None or (isinstance(entry, int) and entry > 0)
        ok = ok or (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] == "idle"
            and isinstance(entry[1], int)
            and entry[1] > 0
        )
        if not ok:
            raise ConfigError(f"log entry {i} is {entry!r}: not a step of the schedule", path)
    try:
        where = {int(k): str(v) for k, v in stops.items()}
    except ValueError:
        raise ConfigError("stops are keyed by micro-op counts", path) from None
    return log, where, data


def write_schedule(path: str, data: dict[str, Any]) -> None:
    """Write a schedule file whole (never half a file)."""
    with atomic_text(path) as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def format_report(report: Report) -> str:
    """The human report of `l4tui explore`."""
    rate = report.schedules / report.seconds if report.seconds > 0 else 0.0
    lines = [
        f"explored {report.schedules} schedules ({report.pruned} more skipped as seen), "
        f"{report.states} distinct states, up to {report.preemptions} preemptions, "
        f"{rate:.0f} schedules/s"
    ]
    f = report.failure
    if f is None:
        if report.exhausted:
            lines.append("no failure: the bound is exhausted")
        elif report.interrupted:
            lines.append("no failure found before it was interrupted (not exhausted)")
        else:
            lines.append("no failure found before the schedule limit (not exhausted)")
        return "\n".join(lines)
    lines.append(f"found: {f.kind}: {f.message}")
    if f.shown:
        lines.append(f"schedule ({len(f.shown)} preemption(s), {f.steps} micro-ops):")
        lines.extend(f"  {i}. {s.text()}" for i, s in enumerate(f.shown, 1))
    else:
        lines.append(f"in the timed order itself ({f.steps} micro-ops)")
    return "\n".join(lines)
