"""`l4tui bench`: the thesis's measurements, the engine's speed and more (DESIGN.md §2).

Each benchmark's module is imported inside `bench`, only when it runs:
`bench tui` needs Textual and `bench serve` the SSH extra, which `bench
thesis` must not need, and each costs seconds to import.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from l4tui import report
from l4tui.cli.serving import need_asyncssh
from machine.errors import ConfigError
from machine.profile import load_profile


def bench(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {}
    if args.which in ("serve", "all"):
        need_asyncssh(f"l4tui bench {args.which}")  # said before anything runs
    if args.which in ("thesis", "all"):
        overrides = {"cpus": args.cpus} if args.cpus else None
        profile = load_profile(args.profile, overrides=overrides)  # bad input first

        from l4tui.bench.thesis import run_thesis

        result["thesis"] = run_thesis(profile)
    if args.which in ("engine", "all"):
        from l4tui.bench.engine import run_engine

        result["engine"] = run_engine()
    if args.which in ("kernel", "all"):
        from l4tui.bench.kernel import run_kernel

        result["kernel"] = run_kernel()
    if args.which in ("debugger", "all"):
        from l4tui.bench.debugger import run_debugger

        if args.history < 1:
            raise ConfigError(f"--history must be at least 1, not {args.history}")
        result["debugger"] = run_debugger(args.history)
    if args.which in ("tui", "all"):
        from l4tui.bench.tui import run_tui

        result["tui"] = run_tui()
    if args.which in ("serve", "all"):
        from l4tui.bench.serve import run_serve

        result["serve"] = run_serve()
    if args.which in ("explore", "all"):
        from l4tui.bench.explore import run_explore

        result["explore"] = run_explore()

    if args.json:
        payload = result if args.which == "all" else result[args.which]
        print(json.dumps(payload, indent=2))
        return 0
    parts = []
    if "thesis" in result:
        parts.append(report.format_thesis(result["thesis"]))
    if "engine" in result:
        parts.append(report.format_engine(result["engine"]))
    if "kernel" in result:
        parts.append(report.format_rows(result["kernel"]))
    if "debugger" in result:
        parts.append(report.format_rows(result["debugger"]))
    if "tui" in result:
        parts.append(report.format_rows(result["tui"]))
    for name in ("serve", "explore"):
        if name in result:
            parts.append(report.format_rows(result[name]))
    print("\n\n".join(parts))
    return 0
