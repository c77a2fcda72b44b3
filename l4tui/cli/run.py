"""`l4tui run` and `l4tui check`: a scenario headless, its summary and exit code (DESIGN.md §2).

`run` exits 0 when every expectation holds, 1 on a failed expectation, a
deadlock, a kernel-invariant violation or a stuck thread, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from kernel.scenario import load_scenario
from kernel.system import System
from l4tui.files import FileError, atomic_text
from l4tui.runner import summary as runs
from l4tui.trace import TraceWriter
from machine.errors import MachineError


def run(args: argparse.Namespace) -> int:

    scenario = load_scenario(args.file)
    system = System(scenario, seed=args.seed)
    limits = {
        "max_steps": args.max_steps,
        "until_cycle": args.until_cycle,
        "check_invariants": args.check_invariants,
    }

    try:
        if args.trace is not None:  # "" too: refused as a name, not taken for no trace
            with atomic_text(args.trace) as out:
                writer = TraceWriter(system, out)
                system.run(**limits, observer=writer.step)
                writer.close()
        else:
            system.run(**limits)
    except MachineError as e:
        print(f"error: {args.file}: the simulated machine stopped: {e}", file=sys.stderr)
        return 2
    except FileError as e:
        print(f"error: cannot write the trace {args.trace!r}: {e.message}", file=sys.stderr)
        return 2
    summary = runs.summary(system)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(runs.format_run(summary))
    return 1 if runs.failed(summary) else 0


def check(args: argparse.Namespace) -> int:

    scenario = load_scenario(args.file)
    System(scenario)  # what does not fit the machine (memory, threads) is found as by `run`
    threads = len(scenario.threads())
    print(
        f"{args.file}: ok ({len(scenario.tasks)} tasks, {threads} threads, "
        f"{scenario.profile.name} with {scenario.profile.cpus} CPUs)"
    )
    return 0
