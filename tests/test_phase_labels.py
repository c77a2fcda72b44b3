"""`kernel.phases` lists exactly the phase labels the kernel's source emits (issue 17).

The debugger reads the labels from that list (breakpoint globs, completion, help),
not from the source at run time; this test reads the source, once, to keep the
list true: every literal `Phase("...")` is in `LABELS` and nothing else is, and
every label built at run time (`Phase(f"...")`) is matched by `DYNAMIC`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kernel
from kernel.phases import DYNAMIC, LABELS
from l4tui.phases import phase_labels

KERNEL = Path(kernel.__file__).parent


def _phase_args() -> list[ast.expr]:
    """The first argument of every `Phase(...)` call in kernel/*.py."""
    found = []
    for path in sorted(KERNEL.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "Phase" and node.args:
                found.append(node.args[0])
    return found


def test_labels_are_exactly_the_literals_in_the_kernel() -> None:
    literals = {
        a.value for a in _phase_args() if isinstance(a, ast.Constant) and isinstance(a.value, str)
    }
    assert set(LABELS) == literals
    assert len(LABELS) == len(set(LABELS))
    assert phase_labels() == tuple(sorted(literals))


def _pattern(template: ast.JoinedStr) -> str:
    """An f-string label as a regex: each `{...}` part any dotted word."""
    return "".join(
        re.escape(part.value) if isinstance(part, ast.Constant) else r"[\w.]+"
        for part in template.values
    )


def test_each_label_built_at_run_time_is_listed() -> None:
    patterns = [_pattern(a) for a in _phase_args() if isinstance(a, ast.JoinedStr)]
    assert patterns, "the kernel builds some labels at run time"
    for pattern in patterns:
        assert any(re.fullmatch(pattern, label) for label in DYNAMIC), pattern
    for label in DYNAMIC:
        assert label in LABELS or any(re.fullmatch(p, label) for p in patterns), label
