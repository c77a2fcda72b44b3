"""The `run --json` summary of a run, and its plain-text form (DESIGN.md §2, "run --json").

Built from the kernel's plain queries (`System`: the end, the wait-for
graph, the ready lists; `Kernel`: thread fields and counters; the machine's
APICs and MESI transitions). The output holds no wall-clock figures: the
same scenario and seed print the same bytes.
"""

from __future__ import annotations

from typing import Any

from kernel import query
from kernel.system import System
from l4tui.report import format_table
from l4tui.runner.expect import verdicts
from l4tui.runner.figures import counters, thread_view


def deadlock_message(system: System) -> str:
    """The deadlock's cycle in words, or "" when there is none."""
    return ", ".join(map(str, system.wait_cycle()))


def summary(system: System) -> dict[str, Any]:
    """The `run --json` summary (DESIGN.md §2)."""
    k, m = system.kernel, system.machine
    cycle = system.wait_cycle() if system.ended in ("deadlock", "end") else []
    out: dict[str, Any] = {
        "scenario": system.scenario.name,
        "seed": system.seed,
        "cycles": max(c.clock for c in m.cpus) // m.tpc,
        "steps": m.steps,
        "deadlock": bool(cycle),
        "ended": system.ended,
        "cpus": [
            {
                "id": cd.number,
                "cycles": m.cpu(cd.number).clock // m.tpc,
                "current": None if cd.current is cd.idle else cd.current.name,
                "ready": query.ready_names(k, cd.number),
                "ipis_received": m.apics.apics[cd.number - 1].ipis_received,
            }
            for cd in k.cpus
        ],
        "threads": {
            th.name: thread_view(system, k.by_name[th.name]) for th in system.scenario.threads()
        },
        "counters": counters(system),
    }
    if cycle:
        out["waits"] = [str(w) for w in cycle]
    if system.violations:
        out["violations"] = list(system.violations)
    if system.ended == "stuck":
        out["stuck"] = system.stuck()
    if system.scenario.boot:
        out["boot"] = dict(k.boot_report)
    out["expect"] = verdicts(system)
    return out


def failed(summary: dict[str, Any]) -> bool:
    """Whether `l4tui run` exits 1: a deadlock, violation, stuck thread or failed expectation."""
    return (
        summary["deadlock"]
        or bool(summary.get("violations"))
        or bool(summary.get("stuck"))
        or not all(e["ok"] for e in summary["expect"])
    )


def format_run(summary: dict[str, Any]) -> str:
    """`l4tui run` without --json: where the run ended, each thread, the counters."""
    lines = [
        f"scenario {summary['scenario']} (seed {summary['seed']}): {summary['ended']} "
        f"after {summary['cycles']:,} cycles, {summary['steps']:,} micro-ops"
    ]
    if summary.get("waits"):
        lines.append("deadlock: " + ", ".join(summary["waits"]))
    if summary.get("stuck"):
        lines.append(
            "stuck: locked with nothing left to unlock them: " + ", ".join(summary["stuck"])
        )
    for v in summary.get("violations", []):
        lines.append(f"invariant violated: {v}")
    header = ("thread", "id", "cpu", "state", "prio", "syscalls", "last result")
    rows = []
    for name, t in summary["threads"].items():
        last = t["results"][-1] if t["results"] else None
        if last is None:
            text = "-"
        elif last["ok"]:
            text = f"{last['op']} ok" + (f" {last['words']}" if last.get("words") else "")
        else:
            text = f"{last['op']} {last['error']}"
        rows.append(
            (
                name,
                t["id"],
                str(t["cpu"]),
                t["state"],
                str(t["priority"]),
                str(len(t["results"])),
                text,
            )
        )
    lines.append(format_table(header, rows, right=(False, False, True, False, True, True, False)))
    cpus = ", ".join(
        f"cpu{c['id']}: {c['current'] or 'idle'}"
        + (f" (ready {' '.join(c['ready'])})" if c["ready"] else "")
        for c in summary["cpus"]
    )
    lines.append(cpus)
    counters = summary["counters"]
    plain = ", ".join(f"{k} {v}" for k, v in counters.items() if k != "mesi")
    mesi = ", ".join(f"{k} {v}" for k, v in counters["mesi"].items())
    lines.append(f"counters: {plain}")
    if mesi:
        lines.append(f"mesi: {mesi}")
    for e in summary["expect"]:
        lines.append(f"expect {'ok  ' if e['ok'] else 'FAIL'} {e['check']}")
    return "\n".join(lines)
