"""Plain-text tables for `l4tui bench` (DESIGN.md §2, "bench --json row names").

Pure functions from the bench result dicts to strings, so the layout is
tested without running a benchmark.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

#: A simulated value whose ratio to the thesis's lies in this band is `ok`.
RATIO_LOW, RATIO_HIGH = 0.97, 1.03

SIMPY_MISSING = "SimPy not installed: pip install l4tui[bench]"


def format_number(value: Any, digits: int = 2) -> str:
    """A number for a table cell: whole numbers as such, others to `digits` places.

    Two places by default, as the thesis prints its tables.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) >= 100:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def format_thesis_value(thesis: Any) -> str:
    """The thesis's figure: a number, a `[low, high]` range as `low-high`, or `-`."""
    if isinstance(thesis, list | tuple):
        low, high = thesis
        return f"{format_number(low)}-{format_number(high)}"
    return format_number(thesis)


def mark(row: dict[str, Any]) -> str:
    """`ok` when the simulation reproduces the thesis's figure, `OFF` when not, `-` if none.

    For a number, ok means the ratio simulated/thesis lies in [0.97, 1.03] —
    in [0.95, 1.05] for a predicted row (issue 16: a prediction within 5%);
    for a `[low, high]` range, that the simulated value lies inside it.
    """
    thesis = row.get("thesis")
    simulated = row.get("simulated")
    if thesis is None or simulated is None:
        return "-"
    if isinstance(thesis, list | tuple):
        low, high = thesis
        return "ok" if low <= simulated <= high else "OFF"
    ratio = row.get("ratio")
    if ratio is None:
        if thesis == 0:
            return "ok" if simulated == 0 else "OFF"
        ratio = simulated / thesis
    if row.get("basis") == "predicted":
        return "ok" if 0.95 <= ratio <= 1.05 else "OFF"
    return "ok" if RATIO_LOW <= ratio <= RATIO_HIGH else "OFF"


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]
) -> str:
    """Columns padded to their widest cell; `right[i]` right-aligns column i."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_thesis(result: dict[str, Any]) -> str:
    """The `bench thesis` table: simulated figures next to the thesis's (§3.2, §3.3)."""
    header = ("experiment", "unit", "thesis", "simulated", "ratio", "", "basis")
    rows = [
        (
            str(row["name"]),
            str(row["unit"]),
            format_thesis_value(row.get("thesis")),
            format_number(row.get("simulated")),
            format_number(row.get("ratio"), digits=3),
            mark(row),
            str(row.get("basis", "")),
        )
        for row in result.get("rows", [])
    ]
    table = format_table(header, rows, right=(False, False, True, True, True, False, False))
    profile = result.get("profile", "?")
    note = "" if profile == "p3-dual-450" else " (the thesis measured p3-dual-450)"
    # Each experiment's constants once, and the notes: what makes a row calibrated, or miss.
    chosen: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    for row in result.get("rows", []):
        if row.get("constants"):
            chosen.setdefault(str(row["name"]), row["constants"])
        if row.get("note"):
            notes[str(row["name"])] = str(row["note"])
    lines = [f"profile: {profile}{note}", table]
    if chosen:
        lines.append("calibrated: a constant was chosen to match the row; predicted: none was")
        lines += [f"  {name}: {', '.join(c)}" for name, c in chosen.items()]
    for name, text in notes.items():
        lines += textwrap.wrap(f"note: {name}: {text}", 100, subsequent_indent="  ")
    return "\n".join(lines)


def format_simpy(simpy: dict[str, Any] | None) -> str:
    """One line comparing our engine's speed with SimPy's, or how to get SimPy."""
    if simpy is None:
        return SIMPY_MISSING
    line = (
        f"SimPy: ours {format_number(simpy.get('ours'), 0)}, "
        f"simpy {format_number(simpy.get('simpy'), 0)}, "
        f"ratio {format_number(simpy.get('ratio'), 2)}"
    )
    if "message_ratio" not in simpy:
        return line
    return (
        f"{line} (events that execute something per second, on the 8-CPU IPI ring)\n"
        f"  per message: ours {format_number(simpy.get('ours_messages'), 0)}, "
        f"simpy {format_number(simpy.get('simpy_messages'), 0)}, "
        f"ratio {format_number(simpy.get('message_ratio'), 2)} "
        f"({format_number(simpy.get('steps_per_message'), 1)} steps a message here, "
        f"{format_number(simpy.get('events_per_message'), 1)} events there; "
        f"{format_number(simpy.get('retries'), 0)} ICR-busy retries not counted)"
    )


def format_rows(result: dict[str, Any]) -> str:
    """A table of `{name, unit, value}` rows (`bench kernel`)."""
    header = ("measurement", "value", "unit")
    rows = [
        (str(row["name"]), format_number(row.get("value"), 1), str(row["unit"]))
        for row in result.get("rows", [])
    ]
    return format_table(header, rows, right=(False, True, False))


def format_engine(result: dict[str, Any]) -> str:
    """The `bench engine` table: micro-ops per second, then the SimPy line."""
    header = ("benchmark", "value", "unit")
    rows = [
        (str(row["name"]), format_number(row.get("value"), 0), str(row["unit"]))
        for row in result.get("rows", [])
    ]
    table = format_table(header, rows, right=(False, True, False))
    return f"{table}\n{format_simpy(result.get('simpy'))}"
