"""The IPC phase pane's pseudo-code: each kernel phase label has a line or is known to have none.

The labels come from a plain scan of kernel/*.py for `Phase("...")`, so a
label added to the kernel without a line here (or in `UNPLACED`) fails.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import kernel
import l4tui.pseudocode as pseudocode
from kernel.phases import DYNAMIC
from l4tui.pseudocode import DEFAULT, PATHS, UNPLACED, locate, path_for
from l4tui.pseudocode.lines import Line

KERNEL = Path(kernel.__file__).parent
LITERAL = re.compile(r'\bPhase\(\s*"([^"{}\\\n]+)"\s*\)')
TEMPLATE = re.compile(r'\bPhase\(\s*f"([^"\\\n]+)"\s*\)')


def _sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(KERNEL.glob("*.py")))


def kernel_labels() -> set[str]:
    """Every literal `Phase("...")` label in kernel/*.py."""
    return set(LITERAL.findall(_sources()))


def kernel_templates() -> list[re.Pattern[str]]:
    """The `Phase(f"...")` labels built at run time, each `{...}` part as a wildcard."""
    out = []
    for template in TEMPLATE.findall(_sources()):
        parts = re.split(r"\{[^}]*\}", template)
        out.append(re.compile(r"[\w.]+".join(re.escape(p) for p in parts)))
    return out


def placed() -> list[str]:
    return [line.label for lines in PATHS.values() for line in lines if line.label is not None]


def test_the_scan_finds_the_kernel_labels() -> None:
    labels = kernel_labels()
    assert {"ipc.send.check_target", "xp.proxy.send", "xcpu.check_n_ack"} <= labels
    assert len(labels) > 50


def test_every_kernel_label_is_placed_or_unplaced() -> None:
    missing = sorted(x for x in kernel_labels() if locate(x) is None and x not in UNPLACED)
    assert missing == []


def test_unplaced_labels_are_kernel_labels_and_not_placed() -> None:
    labels = kernel_labels()
    assert sorted(x for x in UNPLACED if x not in labels) == []
    assert sorted(set(UNPLACED) & set(placed())) == []
    assert len(set(UNPLACED)) == len(UNPLACED)


def test_no_label_is_placed_twice() -> None:
    twice = sorted(x for x, n in Counter(placed()).items() if n > 1)
    assert twice == []


def test_every_placed_label_is_emitted_by_the_kernel() -> None:
    """A typo in a label here would never mark its line."""
    labels = kernel_labels()
    templates = kernel_templates()
    assert templates, "the scan found no run-time labels"
    for label in placed():
        if label in labels:
            continue
        assert label in DYNAMIC, label
        assert any(t.fullmatch(label) for t in templates), label


def test_locate_finds_exact_labels_on_their_line() -> None:
    for label in placed():
        found = locate(label)
        assert found is not None
        title, index = found
        assert PATHS[title][index].label == label


def test_every_path_has_lines() -> None:
    assert DEFAULT in PATHS
    for title, lines in PATHS.items():
        assert len(lines) >= 5, title
        assert all(isinstance(line, Line) for line in lines)
        assert all(line.text == line.text.rstrip() for line in lines), title
        assert any(line.label is not None for line in lines), title


def test_send_check_target_is_on_the_send_path() -> None:
    found = locate("ipc.send.check_target")
    assert found is not None
    title, index = found
    assert title == "send (§8.3.2)"
    assert "myself" in PATHS[title][index].text


def test_locate_falls_back_to_a_placed_parent() -> None:
    assert locate("xp.proxy.foo") is None
    assert locate("nothing") is None
    assert locate("") is None
    assert locate("ipc.send.foo") == locate("ipc.send")
    assert locate("xp.send.foo") == locate("xp.send")


def test_path_for_defaults_to_the_send_path_unmarked() -> None:
    title, lines, mark = path_for(None)
    assert (title, mark) == (DEFAULT, None)
    assert lines == PATHS[DEFAULT]
    assert path_for("boot.done") == (DEFAULT, PATHS[DEFAULT], None)
    assert path_for("no.such.label") == (DEFAULT, PATHS[DEFAULT], None)


def test_path_for_marks_the_labelled_line() -> None:
    title, lines, mark = path_for("xp.wakeup_sender")
    assert title == "proxy (§8.4)"
    assert mark is not None
    assert "xp_cc" in lines[mark].text
    title, lines, mark = path_for("xcpu.check_n_ack")
    assert mark is not None
    assert lines[mark].label == "xcpu.check_n_ack"


def test_headless() -> None:
    for path in Path(pseudocode.__file__).parent.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for ui in ("textual", "rich", "prompt_toolkit"):
            assert not re.search(rf"^\s*(import|from)\s+{ui}\b", source, re.M), (path, ui)
