"""`l4tui bench explore`: how fast the race explorer searches (issue 8; issue 15, goals).

- **The shipped races** (scripts/races/): schedules per second over each
  race's first `CAP` schedules (bound 2), one worker, against the figures
  measured before issue 15 (`BEFORE`: replay from the start, a peek at every
  step and a hash of all memory at each branch point; same host and cap,
  load average 0.5-1.5). Goal: 10x at 2 CPUs. The 2-CPU races again on
  every core (`explore`'s default), against the same one-worker figures.
- **Scaling with CPUs**: one finite cross-processor conversation per pair of
  CPUs (a client calls a server on the next CPU once), 1, 2 and 4 pairs on 2,
  4 and 8 CPUs, `CAP` schedules each, one worker, the median of `REPEAT`
  runs. Goal: at 8 CPUs at least half the 2-CPU rate (before: 70, 12.8 and
  3.9 schedules/s). The pairs are independent groups of CPUs
  (l4tui/explore/groups.py): no preemption across pairs, each group has its
  own root, and a schedule steps its own group first and ends once its
  group's state joins a known one.
- **All cores**: the proxy design of Uhlig's send/receive exhausted with
  `--jobs 1` and with every core, the same counts either way.
- **The 4-CPU proxy benchmark**: scripts/races/proxy-two-conversations.yaml
  (two cross-processor conversations at once) with bound 2, exhausted on
  every core. Goal: at most 2 minutes on the 2-core host of issue 15.

Host time, so the figures vary with the host and its load: the load average
is reported with them, and the CPU time the parallel runs took (on a host
whose other work takes a core, `--jobs 2` cannot be faster than one).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from kernel.scenario import Scenario, load_scenario, parse_scenario
from l4tui.explore import Explorer, default_jobs

RACES = Path(__file__).parents[2] / "scripts" / "races"
CAP = 150  # schedules per race: the rate over the first levels, as BEFORE measured it
REPEAT = 5  # runs of each conversation (the median is reported)
# Schedules per second over the first CAP schedules before issue 15 (uhlig-naive: the 25
# it ran to find its race), and the conversations' (60, 60 and 60 schedules).
BEFORE = {
    "exregs-migrate": 13.6,
    "exregs-xp-ipc": 121.6,
    "migrate-in-timer": 34.6,
    "migrate-ipc": 68.9,
    "migrate-priority": 27.0,
    "migrate-restart-sender": 14.9,
    "migrate-twice": 13.8,
    "migrate-waiting-receiver": 19.8,
    "pager-replies": 26.1,
    "priority-remote": 139.3,
    "shootdown-concurrent": 37.5,
    "uhlig-naive": 99.2,
    "uhlig-proxy": 106.2,
    "xp-send-migrate": 27.4,
    "proxy-two-conversations": 19.0,  # new in issue 15: the old explorer on the new kernel
}
BEFORE_PAIRS = {1: 69.9, 2: 12.8, 4: 3.9}


def conversation(pairs: int) -> Scenario:
    """`pairs` clients, each calling a server on the next CPU once: 2 x `pairs` CPUs."""
    lines = [
        f"name: conversation-{pairs}",
        "seed: 1",
        f"machine: {{profile: p3-dual-450, cpus: {2 * pairs}}}",
        "kernel: {xp_ipc: proxy}",
        "tasks:",
    ]
    for i in range(pairs):
        client, server = 2 * i + 1, 2 * i + 2
        lines += [
            f"  - name: p{i}",
            "    threads:",
            f"      - {{name: cli{i}, cpu: {client}, program: [{{call: {{to: srv{i}}}}}]}}",
            f"      - {{name: srv{i}, cpu: {server}, "
            f"program: [{{recv: {{from: cli{i}}}}}, {{send: {{to: cli{i}}}}}]}}",
        ]
    return parse_scenario("\n".join(lines) + "\n", f"<conversation-{pairs}>")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0


def _cpu() -> float:
    """CPU seconds of this process and of its workers and their children, once ended."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_explore() -> dict[str, Any]:
    rows: list[tuple[str, str, float]] = [("load average (1 min) at the start", "", _load())]
    total = {2: [0, 0.0, 0.0], 3: [0, 0.0, 0.0], 4: [0, 0.0, 0.0]}  # schedules, s, before s
    for path in sorted(RACES.glob("*.yaml")):
        scenario = load_scenario(str(path))
        r = Explorer(scenario, max_schedules=CAP, jobs=1).explore()
        rate = r.schedules / r.seconds
        rows.append((f"{path.stem} ({scenario.profile.cpus} CPUs)", "1/s", rate))
        before = BEFORE.get(path.stem)
        if before:
            rows.append(("  x before", "", rate / before))
            t = total.setdefault(scenario.profile.cpus, [0, 0.0, 0.0])
            t[0] += r.schedules
            t[1] += r.seconds
            t[2] += r.schedules / before
    for cpus, (n, s, before_s) in sorted(total.items()):
        if n:
            rows.append((f"races on {cpus} CPUs: schedules/s, one worker", "1/s", n / s))
            rows.append((f"races on {cpus} CPUs: x before (goal at 2 CPUs: 10)", "", before_s / s))
    n, s, before_s = 0, 0.0, 0.0
    jobs = max(2, default_jobs())
    for path in sorted(RACES.glob("*.yaml")):  # the 2-CPU races again, as `explore` runs them
        scenario = load_scenario(str(path))
        if scenario.profile.cpus == 2 and path.stem in BEFORE:
            r = Explorer(scenario, max_schedules=CAP, jobs=jobs).explore()
            n, s, before_s = (
                n + r.schedules,
                s + r.seconds,
                before_s + r.schedules / BEFORE[path.stem],
            )
    rows.append((f"races on 2 CPUs: schedules/s, --jobs {jobs}", "1/s", n / s))
    rows.append((f"races on 2 CPUs: x before, --jobs {jobs}", "", before_s / s))
    # The median of REPEAT runs, taken in turns: one run of a second or less on a shared
    # host varies by a third from one run to the next.
    runs: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for _ in range(REPEAT):
        for pairs in runs:
            r = Explorer(conversation(pairs), max_schedules=CAP, jobs=1).explore()
            runs[pairs].append(r.schedules / r.seconds)
    rates = {pairs: statistics.median(got) for pairs, got in runs.items()}
    for pairs, rate in rates.items():
        rows.append((f"conversation, {pairs} pair(s) on {2 * pairs} CPUs (median)", "1/s", rate))
        rows.append(("  x before", "", rate / BEFORE_PAIRS[pairs]))
    rows.append(("8 CPUs against 2 (goal: at least 0.5)", "", rates[4] / rates[1]))
    proxy = load_scenario(str(RACES / "uhlig-proxy.yaml"))
    jobs = max(2, default_jobs())
    one = Explorer(proxy, jobs=1).explore()
    cpu = _cpu()
    many = Explorer(proxy, jobs=jobs).explore()
    many_cpu = _cpu() - cpu
    same = (one.schedules, one.states, one.pruned) == (many.schedules, many.states, many.pruned)
    rows += [
        ("uhlig-proxy, bound 2 exhausted: schedules", "", one.schedules),
        ("  --jobs 1", "s", one.seconds),
        (f"  --jobs {jobs}", "s", many.seconds),
        (f"  --jobs {jobs}: CPU time of all its processes", "s", many_cpu),
        (f"  --jobs {jobs} against --jobs 1 (speed-up)", "", one.seconds / many.seconds),
        ("  the same counts (1: yes)", "", 1.0 if same else 0.0),
    ]
    two = Explorer(load_scenario(str(RACES / "proxy-two-conversations.yaml")), jobs=None)
    cpu = _cpu()
    r = two.explore()
    cpu = _cpu() - cpu
    rows += [
        ("proxy-two-conversations (4 CPUs), bound 2: schedules", "", r.schedules),
        ("  exhausted (1: yes)", "", 1.0 if r.exhausted and r.failure is None else 0.0),
        (f"  time on {r.jobs} workers (goal: at most 120)", "s", r.seconds),
        ("  schedules/s", "1/s", r.schedules / r.seconds),
        ("  CPU time of all its processes (a loaded host: more than the time)", "s", cpu),
        ("load average (1 min) at the end", "", _load()),
    ]
    return {"rows": [{"name": n, "unit": u, "value": round(v, 2)} for n, u, v in rows]}
