"""The phase labels the kernel can emit, read from the kernel's own source.

A kernel path marks where each of its phases starts with `yield Phase("ipc.send.lock")`
(machine/ops.py). Breakpoints are globs over these labels, so the completer and
the help offer the labels found here: every `Phase("...")` string literal in the
`kernel` package. Labels built at run time (`Phase(f"{label}.remote")`) are not
literals and are left out; the prefixes (`ipc.*`) still cover most of them.
Headless: imports no UI library.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import kernel

# The fallback for a file that does not parse (say, half-way through an edit).
_LITERAL = re.compile(r"""\bPhase\(\s*(?:label\s*=\s*)?(["'])([^"'{}\\\n]+)\1\s*\)""")


def _is_phase(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "Phase") or (
        isinstance(func, ast.Attribute) and func.attr == "Phase"
    )


def _literal_labels(source: str) -> set[str]:
    """The string literals passed to `Phase(...)` in one module's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {m.group(2) for m in _LITERAL.finditer(source)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _is_phase(node.func):
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "label")]
        for arg in args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                found.add(arg.value)
    return found


@functools.cache
def phase_labels() -> tuple[str, ...]:
    """Every literal phase label in the kernel's source, sorted and unique."""
    root = Path(kernel.__file__).parent
    labels: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        labels |= _literal_labels(source)
    return tuple(sorted(labels))


@functools.cache
def phase_prefixes() -> tuple[str, ...]:
    """Glob prefixes over the labels: `ipc.send.lock` gives `ipc.*` and `ipc.send.*`."""
    prefixes: set[str] = set()
    for label in phase_labels():
        parts = label.split(".")
        for i in range(1, len(parts)):
            prefixes.add(".".join(parts[:i]) + ".*")
    return tuple(sorted(prefixes))
