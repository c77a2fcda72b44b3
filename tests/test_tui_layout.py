"""Every pane at 80×24, 120×36, 160×48 and 200×60, on machines of 2, 4 and 16 CPUs whose
threads have three-digit priorities: no value is ever cut.

Each pane is brought forward (its tab, in the layouts that have tabs) and the
screen is read back as a person would read it (tests/screen.py). Whatever a
pane shows of a value, it shows whole: a priority of 200 never reads `20`, a
cycle count never loses its last digits, a state is never `locked_wai`, a
phase label is never cut, a TCB field keeps its offset. A pane may hold more
than its height (it scrolls), never more than its width.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from kernel.phases import DYNAMIC
from kernel.scenario import Scenario, parse_scenario
from l4tui import panes
from l4tui.executor import execute
from l4tui.phases import phase_labels
from l4tui.session import Session
from l4tui.tui.app import MonitorApp
from l4tui.tui.cpus import CpuColumn
from l4tui.tui.layout import PANES

sys.path.insert(0, str(Path(__file__).parent))
from screen import screen_rows

SIZES = [(80, 24), (120, 36), (160, 48), (200, 60)]
CPUS = [2, 4, 16]
STATES = {"running", "ready", "waiting", "polling", "locked_running", "locked_waiting", "inactive"}
BORDER = "│╭╮╰╯─▕▊ "


def machine(cpus: int) -> Scenario:
    """On each CPU a server (priority 200+), a client calling the next CPU's server (150) and
    a worker (90): cross-processor calls keep mailboxes, proxies and APIC slots busy."""
    lines = [
        "name: layout",
        "seed: 1",
        f"machine: {{profile: p3-dual-450, cpus: {cpus}}}",
        "tasks:",
        "  - name: t",
        "    threads:",
    ]
    for i in range(1, cpus + 1):
        other = i % cpus + 1
        lines += [
            f"      - {{name: srv{i}, cpu: {i}, priority: {200 + i},"
            " program: [{recv: {from: any}},"
            " {loop: [{compute: 200}, {reply_wait: {words: [7]}}]}]}",
            f"      - {{name: client{i}, cpu: {i}, priority: 150,"
            f" program: [{{repeat: 3, do: [{{call: {{to: srv{other}, words: [1, 2]}}}}]}}]}}",
            f"      - {{name: worker{i}, cpu: {i}, priority: 90,"
            " program: [{loop: [{compute: 5000}, {sleep: 20000}]}]}",
        ]
    return parse_scenario("\n".join(lines) + "\n", f"<layout-{cpus}>")


_SHOT: dict[int, list[str]] = {}  # the screen, read once per pane checked


def text_of(app: MonitorApp, widget) -> list[str]:  # a Widget
    """The rows inside a widget's frame, borders and scrollbars stripped."""
    rows = _SHOT.get(id(app))
    if rows is None:
        rows = _SHOT[id(app)] = screen_rows(app)
    r = widget.content_region
    inside = [row[r.x : r.x + r.width] for row in rows[r.y : r.y + r.height]]
    return [row.strip(BORDER + "▁▂▃▄▅▆▇█") for row in inside]


def check_threads(app: MonitorApp, s: Session) -> None:
    table = app.query_one("#threads")
    shown = table.shown_columns
    assert {"name", "state", "prio"} <= set(shown), shown
    views = {v.name: v for v in s.threads()}
    rows = text_of(app, table)
    assert any("prio" in r.split() for r in rows[:2]), rows[:2]  # the header, whole
    seen = 0
    for row in rows:
        words = row.split()
        if not words or words[0] not in views:
            continue
        v = views[words[0]]
        assert str(v.priority) in words, (row, v.priority)
        assert v.state in words, (row, v.state)
        seen += 1
    assert seen >= min(3, len(views))


def check_cpus(app: MonitorApp, s: Session) -> None:
    data = {c.number: c for c in panes.cpu_panes(s)}
    for col in app.query(CpuColumn):
        c = data[col.number]
        text = "\n".join(text_of(app, col))
        if not text.strip():
            continue  # scrolled out of a short pane
        assert f"{c.cycle:,} cyc" in text, (text, c.cycle)
        prios = {str(p) for p, _ in c.ready}
        for got in re.findall(r"\[(\d+)\]", text):
            assert got in prios, (got, prios)
        assert not re.search(r"\[\d+(?![\d\]])", text), text  # a priority without its ]
        names = {n for _, ns in c.ready for n in ns}
        for line in text.split("\n"):
            if "[" in line:
                for word in line.split("]", 1)[1].split():
                    assert word in names or word == "→", (word, line)


def check_strip(app: MonitorApp, s: Session) -> None:
    rows = text_of(app, app.query_one("#strip"))
    data = {f"cpu{c.number}": c for c in panes.cpu_panes(s)}
    seen = 0
    for row in rows:
        words = row.replace("◀", " ").split()
        if words and words[0] in data:
            assert f"{data[words[0]].cycle:,}" in words, (row, data[words[0]].cycle)
            seen += 1
    assert seen >= 1


def check_tcb(app: MonitorApp, s: Session) -> None:
    name = s.focused_thread()
    lines = panes.tcb_lines(s, name)
    fields = {f"{f}@{off}" for x in lines for f, off in x.fields}
    rows = text_of(app, app.query_one("#tcb"))
    for row in rows:
        for word in row.split():
            if "@" in word and re.match(r"^\w+@\d*$", word):
                assert word in fields, (word, row)
    by_index = {x.index: x for x in lines}
    for row in rows:
        words = row.split()
        if words and words[0].isdigit() and int(words[0]) in by_index:
            x = by_index[int(words[0])]
            assert str(x.transitions) in words, (row, x.transitions)


def check_apic(app: MonitorApp, s: Session) -> None:
    p = panes.apic_pane(s)
    rows = text_of(app, app.query_one("#apic"))
    text = "\n".join(rows)
    for a in p.apics:
        timer = f"{a.timer:,}" if a.timer else "-"
        for row in rows:
            words = row.split()
            if words and words[0] == f"cpu{a.cpu}":
                assert timer in words or "timer" in words, (row, timer)
    vectors = {f"{v:#x}" for a in p.apics for v in (*a.irr, *a.isr, *(x[0] for x in a.slots))}
    vectors |= {f"{f.vector:#x}" for f in p.in_flight}
    for got in re.findall(r"0x[0-9a-f]+", text):
        assert got in vectors, (got, vectors)  # a vector, whole
    assert "cpu" in text


def check_mailboxes(app: MonitorApp, s: Session) -> None:
    p = panes.mailbox_pane(s)
    text = "\n".join(text_of(app, app.query_one("#mailboxes")))
    whole = {f"{word:#010x}" for _, word in p.flags}  # flag words: 8 hex digits
    whole |= {f"{x:#x}" for q in p.proxies for x in (q.first, q.last)}  # mailbox addresses
    for word in re.findall(r"0x[0-9a-f]+", text):
        assert word in whole, (word, whole)
    for cpu, word in p.flags:
        if f"cpu{cpu} " in text:
            assert f"{word:#010x}" in text


def check_phase(app: MonitorApp, s: Session) -> None:
    text = "\n".join(text_of(app, app.query_one("#phase")))
    label = s.last_phase.get(s.focus_via or s.focused_thread())
    if label:
        assert "▶" in text, text


def check_log(app: MonitorApp, s: Session) -> None:
    labels = set(phase_labels()) | set(DYNAMIC)
    rows = text_of(app, app.query_one("#log"))
    seen = 0
    for row in rows:
        words = row.split()
        if len(words) >= 4 and words[0].isdigit() and words[1].startswith("cpu"):
            assert words[-1] in labels, row
            seen += 1
    assert seen >= 1
    assert "micro-op" in "\n".join(text_of(app, app.query_one("#log-header")))


CHECKS = {
    "threads": check_threads,
    "cpus": check_cpus,
    "tcb": check_tcb,
    "apic": check_apic,
    "mailboxes": check_mailboxes,
    "phase": check_phase,
    "log": check_log,
}


@pytest.mark.slow(30)
@pytest.mark.parametrize("cpus", CPUS[::-1])  # the 16-CPU machine, the longest, first
async def test_no_pane_cuts_a_value(cpus: int) -> None:
    """Each size in turn (a resize lays the panes out again), every pane brought forward."""
    s = Session(machine(cpus))
    execute(s, "break xp.proxy.send")
    execute(s, "continue")
    execute(s, "continue")  # a little further: more queued, more traffic
    app = MonitorApp(s)
    async with app.run_test(size=SIZES[0]) as pilot:
        for size in SIZES:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            _SHOT.pop(id(app), None)
            if app.mode == "tabs":
                check_strip(app, s)
            for pane in PANES:
                if pane == "lab":
                    continue
                app.action_show_pane(pane)
                await pilot.pause()
                await pilot.pause()
                _SHOT.pop(id(app), None)  # a new screen to read
                try:
                    CHECKS[pane](app, s)
                except AssertionError as e:
                    raise AssertionError(f"{pane} at {size[0]}x{size[1]}: {e}") from None
            # the console: an answer wider than the pane wraps, never runs off its edge
            app.run_line("info threads")
            await pilot.pause()
            out = app.query_one("#console-out")
            width = out.scrollable_content_region.width
            assert all(len(line) <= width for line in out.lines), size
