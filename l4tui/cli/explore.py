"""`l4tui explore`: search a scenario's interleavings for races (DESIGN.md §2, "explore --json").

Exit 0 when none is found within the bound (or the search was cut short and
says so), 1 when one is found — its schedule saved for `l4tui open FILE
--schedule S` — and 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kernel.scenario import load_scenario
from l4tui import explore as races
from l4tui.files import check_name
from l4tui.paths import schedule_path
from machine.errors import ConfigError, MachineError


def explore(args: argparse.Namespace) -> int:

    scenario = load_scenario(args.file)
    if args.save is not None:  # "" is a bad name, not "the default name": refused before exploring
        try:
            check_name(args.save)
        except ConfigError as e:
            print(f"error: --save {args.save!r}: {e.message}", file=sys.stderr)
            return 2
    pool = None
    if args.cluster is not None:
        try:  # an optional extra (dask): imported only when asked for
            from l4tui import cluster
        except ImportError:
            print(
                "error: --cluster needs the cluster extra: pip install 'l4tui[cluster]'",
                file=sys.stderr,
            )
            return 2
        pool = cluster.DaskPool(args.cluster, args.jobs)  # ClusterError: one line, exit 2
    explorer = races.Explorer(
        scenario,
        args.seed,
        preemptions=args.preemptions,
        max_schedules=args.max_schedules,
        jobs=args.jobs,
        pool=pool,
    )
    shown: Any = None
    if args.progress == "json":
        shown = races.JsonProgress(sys.stderr)
    elif args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty()):
        shown = races.ProgressBar(sys.stderr)
    try:
        report = explorer.explore(shown.show if shown else None)  # Ctrl-C: the result so far
    except KeyboardInterrupt:  # between the search and its report
        report = explorer.report
        report.interrupted = True
    except MachineError as e:
        print(f"error: {args.file}: the simulated machine stopped: {e}", file=sys.stderr)
        return 2
    except races.WorkerError as e:
        print(f"error: {args.file}: {e}", file=sys.stderr)
        return 2
    finally:
        if shown is not None:
            shown.clear()
        if pool is not None:
            pool.close()
    if isinstance(shown, races.JsonProgress):
        shown.end(report)
    if report.interrupted:
        print("interrupted: the result so far", file=sys.stderr)
    saved = None
    if report.failure is not None:
        saved = args.save
        try:
            if saved is None:
                where = schedule_path(scenario.name)
                saved = str(where)
                where.parent.mkdir(parents=True, exist_ok=True)
            races.write_schedule(saved, races.schedule_data(scenario, args.seed, report))
        except OSError as e:  # the state directory cannot be made
            print(f"warning: cannot save the schedule to {saved!r}: {e.strerror}", file=sys.stderr)
            saved = None
        except ConfigError as e:  # files.FileError: the name and why, on one line
            print(f"warning: cannot save the schedule to {saved!r}: {e.message}", file=sys.stderr)
            saved = None
    if args.json:
        data = report.data()
        data["saved"] = saved
        print(json.dumps(data, indent=2))
    else:
        print(races.format_report(report))
        if saved:
            print(
                f"schedule saved to {saved}: step through it with "
                f"`l4tui open {args.file} --schedule {saved}`"
            )
    return 1 if report.failure is not None else 0
