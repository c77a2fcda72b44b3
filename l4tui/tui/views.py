"""The monitor's panes: each renders one of the session's plain-data views and changes nothing.

Every pane has `show(session)`, called after the machine moved; panes that
are cheap re-render whole, the thread table updates only the cells that
changed. States are always spelled out (M/E/S/I, `waiting`, `IF=1`) so no
meaning rests on colour alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import HorizontalScroll
from textual.widgets import DataTable, Log, Markdown, Static

from l4tui import panes

if TYPE_CHECKING:
    from l4tui.session import Mark, Session

MESI_STYLE = {"M": "bold red", "E": "bold yellow", "S": "green", "I": "dim"}
STATE_STYLE = {
    "running": "bold green",
    "ready": "green",
    "waiting": "yellow",
    "polling": "magenta",
    "locked_running": "bold cyan",
    "locked_waiting": "cyan",
    "inactive": "dim",
}


class CpuColumn(Static):
    """One CPU: current thread, mode, IF, cycle, ready queue by priority, wakeups, proxies."""

    shown: tuple[panes.CpuPane, bool] | None = None

    def render_pane(self, c: panes.CpuPane, focused: bool) -> None:
        if self.shown == (c, focused):
            return  # the views are values: equal means nothing to repaint
        self.shown = (c, focused)
        # One line per item, cut at the column's edge: wrapping 32 names costs a repaint.
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(
            f"cpu{c.number}" + (" ◀" if focused else ""),
            style="bold reverse" if focused else "bold",
        )
        t.append(f"  {c.cycle:,} cyc\n")
        state = "halted" if c.halted else c.mode
        t.append("run  ", style="dim")
        t.append(c.thread, style="bold")
        t.append(f"  {state} IF={int(c.interrupts)}\n")
        t.append("at   ", style="dim")
        t.append(f"{c.phase}\n")
        t.append("ready", style="dim")
        if not c.ready:
            t.append(" -\n")
        for prio, names in c.ready[:3]:
            shown = " → ".join(names[:6]) + (f" +{len(names) - 6}" if len(names) > 6 else "")
            t.append(f" [{prio}] {shown}\n")
        if len(c.ready) > 3:
            t.append(f"  +{len(c.ready) - 3} priorities\n", style="dim")
        t.append("wake ", style="dim")
        t.append(" ".join(f"{n}@{at:,}" for n, at in c.wakeup) or "-")
        t.append("\nprox ", style="dim")
        t.append(" ".join(f"{n}:{s}" for n, s in c.proxies) or "-")
        self.update(t, layout=False)


class CpusPane(HorizontalScroll):
    """A column per CPU; scrolls sideways past what fits (1 to 16 CPUs)."""

    def show(self, s: Session) -> None:
        data = panes.cpu_panes(s)
        cols = list(self.query(CpuColumn))
        if len(cols) != len(data):
            self.remove_children()
            cols = [CpuColumn(classes="cpu") for _ in data]
            self.mount(*cols)
        for col, c in zip(cols, data, strict=True):
            col.render_pane(c, c.number == s.focus_cpu)


class TcbPane(Static):
    """The focused thread's TCB by cache line: fields and offsets, MESI per CPU, traffic.

    Plain aligned text, not a Rich table: this pane repaints on every step.
    """

    thread = ""  # whose TCB it shows
    shown: object = None

    def show(self, s: Session) -> None:
        name = self.thread = s.focused_thread()
        k = s.system.kernel
        if name not in k.by_name:
            self.update("no thread in focus", layout=False)
            return
        lines = panes.tcb_lines(s, name)
        if self.shown == (name, lines):
            return
        self.shown = (name, lines)
        ncpu = len(lines[0].states) if lines else 0
        t = Text()
        t.append(f"{name} TCB · layout {k.layout.name} · MESI per CPU\n", style="bold")
        cpus = " ".join(f"c{i + 1}" for i in range(ncpu))
        t.append(f"ln {'group':<15} {cpus}  moves last        fields@offset\n", style="dim")
        for x in lines:
            t.append(f"{x.index:>2} {x.group:<15} ")
            for st in x.states:
                t.append(f"{st:<2}", style=MESI_STYLE.get(st, ""))
                t.append(" ")
            fields = " ".join(f"{f}@{off}" for f, off in x.fields)
            t.append(f"{x.transitions:>5} {x.last:<11} {fields}\n")
        self.update(t, layout=False)


class MailboxPaneView(Static):
    """The flag words, each mailbox's owner and operation, the proxies' mailbox lists."""

    shown: object = None

    def show(self, s: Session) -> None:
        p = panes.mailbox_pane(s)
        if p == self.shown:
            return
        self.shown = p
        t = Text()
        for cpu, word in p.flags:
            t.append(f"cpu{cpu} flags {word:#010x}\n")
        if not p.mail:
            t.append("no mailbox in use\n", style="dim")
        for m in p.mail:
            t.append(f"#{m.index} ", style="bold")
            t.append(
                f"{m.op} {m.sender} → {m.dest} via {m.target}{' (reply)' if m.reply else ''}\n"
            )
        busy = [x for x in p.proxies if x.first or x.last or x.state not in ("waiting", "inactive")]
        for x in busy:
            t.append(f"{x.name} cpu{x.cpu} {x.state} first {x.first:#x} last {x.last:#x}\n")
        if not busy:
            t.append("all proxies idle", style="dim")
        self.update(t, layout=False)


class ApicPaneView(Static):
    """Per CPU the two IPI slots, IRR/ISR, TPR and timer; IPIs in flight with arrival."""

    shown: object = None

    def show(self, s: Session) -> None:
        p = panes.apic_pane(s)
        if p == self.shown:
            return
        self.shown = p
        t = Text()
        t.append(
            f"{'cpu':<5} {'slots':<22} {'irr':<6} {'isr':<6} tpr {'timer':>8} rcvd rej\n",
            style="dim",
        )
        for a in p.apics:
            slots = [f"{v:#x}{'*' if busy else ''}←c{src}" for v, src, busy in a.slots]
            slots += ["·"] * (a.nslots - len(slots))
            t.append(f"cpu{a.cpu:<2} ")
            t.append(f"{' '.join(slots):<18} ", style="bold" if a.slots else "dim")
            irr = ",".join(f"{v:#x}" for v in a.irr) or "-"
            isr = ",".join(f"{v:#x}" for v in a.isr) or "-"
            timer = f"{a.timer:,}" if a.timer else "-"
            t.append(f"{irr:<5} {isr:<5} {a.tpr:>3} {timer:>7} {a.received:>4} {a.rejected:>3}\n")
        flight = "; ".join(
            f"{f.vector:#x} c{f.sender}→{','.join(f'c{d}' for d in f.dests)} @ {f.arrival:,}"
            for f in p.in_flight
        )
        t.append(f"in flight: {flight or 'none'}")
        self.update(t, layout=False)


class PhasePane(Static):
    """The pseudo-code of the path the focused thread is in, its current line marked."""

    shown: object = None

    def show(self, s: Session) -> None:
        from l4tui.pseudocode import path_for

        name = s.focused_thread()
        label = s.last_phase.get(name)
        title, lines, mark = path_for(label)
        k = s.system.kernel
        partner = "-"
        t_ = k.by_name.get(name)
        if t_ is not None:
            other = k.by_word(k.field(t_, "partner"))
            partner = other.name if other is not None else "-"
        key = (name, label, partner, self.size.height)
        if key == self.shown:
            return
        self.shown = key
        t = Text()
        t.append(f"{name}: {title}", style="bold")
        t.append(f"   at {label or '-'}   partner {partner}\n")
        # Start a few lines above the marked one, so it shows in a short pane.
        first = 0 if mark is None else max(0, mark - max(2, self.size.height // 3))
        if first:
            t.append("  ⋮\n", style="dim")
        for i, line in enumerate(lines[first:], first):
            marker = "▶ " if i == mark else "  "
            style = "bold reverse" if i == mark else ""
            t.append(marker + line.text + "\n", style=style)
        self.update(t, layout=False)


class ThreadsPane(DataTable):
    """All threads: id, name, cpu, state, prio, partner, timeout; a row selects the focus."""

    COLUMNS = ("name", "id", "cpu", "state", "prio", "partner", "timeout", "calls")

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        # Widths fixed up front (states up to "locked_waiting"): a cell update then never
        # re-measures the table, which would cost a relayout on every step.
        widths = {"name": 12, "id": 6, "cpu": 3, "state": 14, "prio": 4, "partner": 12}
        for c in self.COLUMNS:
            self.add_column(c, key=c, width=widths.get(c, 8))
        self._rows: dict[str, tuple] = {}
        self.sort_column: str | None = None
        self.sort_reverse = False

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """Click a column header: sort by it; click again: the other way round."""
        column = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if self.sort_column == column else False
        self.sort_column = column

        def key(value: object) -> object:
            text = str(getattr(value, "plain", value)).replace(",", "")
            return (0, float(text)) if text.replace(".", "", 1).isdigit() else (1, text)

        self.sort(column, key=key, reverse=self.sort_reverse)

    def show(self, s: Session) -> None:
        for v in s.threads():
            row = (
                v.name,
                v.id,
                str(v.cpu),
                Text(v.state, style=STATE_STYLE.get(v.state, "")),
                str(v.priority),
                v.partner,
                v.timeout,
                str(v.results),
            )
            old = self._rows.get(v.name)
            if old is None:
                self.add_row(*row, key=v.name)
            elif old != row:
                for col, a, b in zip(self.COLUMNS, old, row, strict=True):
                    if a != b:
                        self.update_cell(v.name, col, b)
            self._rows[v.name] = row


class EventLog(Log):
    """The phase labels passed, newest last, filtered by CPU, thread or label text.

    A plain-text `Log`, not a RichLog: it takes lines on every step, cheaply.
    """

    def on_mount(self) -> None:
        self.shown = 0  # marks written so far
        self.filter = ""

    def set_filter(self, s: Session, text: str) -> None:
        self.filter = text.strip()
        self.clear()
        self.shown = max(0, len(s.marks) - 400)
        self.show(s)

    def _keep(self, m: Mark) -> bool:
        if not self.filter:
            return True
        for word in self.filter.split():
            if word.startswith("cpu"):
                if f"cpu{m.cpu}" != word:
                    return False
            elif word not in m.label and word != m.thread:
                return False
        return True

    def show(self, s: Session) -> None:
        marks = s.marks
        if self.shown > len(marks):  # went backwards: rewrite the tail
            self.clear()
            self.shown = max(0, len(marks) - 400)
        start = max(self.shown, len(marks) - 400)
        lines = [
            f"{m.position:>9} cpu{m.cpu} {m.thread:<10} {m.label}"
            for m in marks[start:]
            if self._keep(m)
        ]
        if lines:
            self.write_lines(lines)  # one write: each one scrolls and refreshes
        self.shown = len(marks)

    def note(self, text: str) -> None:
        self.write_line(f"── {text}")


class LabPane(Markdown):
    """The lab sheet, each exercise ticked when its check holds (l4tui/lab.py)."""

    shown: tuple[bool, ...] | None = None

    def show(self, s: Session) -> None:
        from l4tui.lab import progress, sheet

        lab = self.app.lab  # type: ignore[attr-defined]
        done = tuple(progress(lab, s))
        if done != self.shown:  # Markdown is costly to lay out: only when a tick changes
            self.shown = done
            self.update(sheet(lab, s))
