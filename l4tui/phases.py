"""The phase labels the kernel can emit, for breakpoints, completion and help.

A kernel path marks where each of its phases starts with `yield Phase("ipc.send.lock")`
(machine/ops.py). Breakpoints are globs over these labels; the kernel declares them
once, in `kernel.phases` (tests/test_phase_labels.py checks that list against the
kernel's source). Headless: imports no UI library.
"""

from __future__ import annotations

import functools

from kernel.phases import LABELS


@functools.cache
def phase_labels() -> tuple[str, ...]:
    """Every literal phase label of the kernel, sorted and unique."""
    return tuple(sorted(set(LABELS)))


@functools.cache
def phase_prefixes() -> tuple[str, ...]:
    """Glob prefixes over the labels: `ipc.send.lock` gives `ipc.*` and `ipc.send.*`."""
    prefixes: set[str] = set()
    for label in phase_labels():
        parts = label.split(".")
        for i in range(1, len(parts)):
            prefixes.add(".".join(parts[:i]) + ".*")
    return tuple(sorted(prefixes))
