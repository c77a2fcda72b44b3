"""The `l4tui` command line (DESIGN.md §2, "Commands").

Exit codes: 0 success, 1 an expectation failed, 2 bad input with a one-line
``error: ...`` on stderr and never a traceback. The parser is in `parser`;
each group of subcommands has its module (`run`, `explore`, `frontends`,
`serving`, `bench`), imported when one of its commands runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from l4tui.cli.parser import build_parser
from machine.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `l4tui` command with `argv` (default: `sys.argv[1:]`); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, bad usage
        return 0 if stop.code is None else int(stop.code)
    if args.command is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            demo = parser.parse_args(["open"])  # the monitor on the built-in demo
            return int(demo.func(demo))
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`l4tui bench | head`): not an error of ours.
        sys.stdout = None  # no flush at exit
        return 0
