"""The thread table and the event log: the two panes that are lists, not text.

The thread table shows as many columns as fit whole — a priority of 200 is
never shown as `20` — and names the ones it had to leave out in its frame
(zoom the pane to see them). The event log has a header over its columns and
never cuts a phase label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Log, Static

from l4tui.tui.wrap import cut

if TYPE_CHECKING:
    from l4tui.marks import Mark
    from l4tui.panes import ThreadView
    from l4tui.session import Session

STATE_STYLE = {
    "running": "bold green",
    "ready": "green",
    "waiting": "yellow",
    "polling": "magenta",
    "locked_running": "bold cyan",
    "locked_waiting": "cyan",
    "inactive": "dim",
}
COLUMNS = ("name", "id", "cpu", "state", "prio", "partner", "timeout", "calls")
RIGHT = {"cpu", "prio", "timeout", "calls"}
DROP_ORDER = ("calls", "id", "timeout", "partner", "cpu")  # left out first when narrow
LOG_THREAD = 10  # thread names in the log, cut with … past this


def _cells(v: ThreadView) -> dict[str, str]:
    return {
        "name": v.name,
        "id": v.id,
        "cpu": str(v.cpu),
        "state": v.state,
        "prio": str(v.priority),
        "partner": v.partner,
        "timeout": v.timeout,
        "calls": str(v.results),
    }


class ThreadsPane(DataTable):
    """All threads: name, id, cpu, state, priority, partner, timeout, system calls made;
    Enter on a row focuses that thread. Click a header to sort."""

    ALLOW_MAXIMIZE = True

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.shown_columns: tuple[str, ...] = ()
        self.widths: dict[str, int] = {}
        self._rows: dict[str, dict[str, str]] = {}
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.session: Session | None = None

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """Click a column header: sort by it; click again: the other way round."""
        column = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if self.sort_column == column else False
        self.sort_column = column
        self._sort()

    def _sort(self) -> None:
        if self.sort_column is None or self.sort_column not in self.shown_columns:
            return

        def key(value: object) -> object:
            text = str(getattr(value, "plain", value)).replace(",", "")
            return (0, float(text)) if text.replace(".", "", 1).isdigit() else (1, text)

        self.sort(self.sort_column, key=key, reverse=self.sort_reverse)

    def _fit(self, widths: dict[str, int]) -> tuple[str, ...]:
        """The columns that fit whole in the pane, dropping the least needed first."""
        room = max(20, (self.scrollable_content_region.width or 80) - 2)
        cols = list(COLUMNS)
        for drop in (None, *DROP_ORDER):
            if drop is not None:
                cols.remove(drop)
            if sum(widths[c] + 2 * self.cell_padding for c in cols) <= room:
                break
        return tuple(cols)

    def show(self, s: Session) -> None:
        self.session = s
        rows = {v.name: _cells(v) for v in s.threads()}
        widths = {
            c: max(len(c), *(len(r[c]) for r in rows.values())) if rows else len(c) for c in COLUMNS
        }
        cols = self._fit(widths)
        if cols != self.shown_columns or any(widths[c] > self.widths.get(c, 0) for c in cols):
            self._rebuild(cols, widths, rows)
            return
        for name, row in rows.items():
            old = self._rows.get(name)
            if old is None:
                self.add_row(*self._cell_values(row), key=name)
            elif old != row:
                for c in cols:
                    if old[c] != row[c]:
                        self.update_cell(name, c, self._value(c, row[c]))
            self._rows[name] = row

    def _rebuild(
        self, cols: tuple[str, ...], widths: dict[str, int], rows: dict[str, dict[str, str]]
    ) -> None:
        cursor = self.cursor_row
        self.clear(columns=True)
        self.shown_columns, self.widths = cols, dict(widths)
        for c in cols:
            self.add_column(c, key=c, width=widths[c])
        for name, row in rows.items():
            self.add_row(*self._cell_values(row), key=name)
        self._rows = dict(rows)
        hidden = [c for c in COLUMNS if c not in cols]
        self.border_subtitle = f"+{', '.join(hidden)}: z shows all" if hidden else ""
        self._sort()
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def _value(self, column: str, text: str) -> Text | str:
        if column == "state":
            return Text(text, style=STATE_STYLE.get(text, ""))
        if column in RIGHT:
            return Text(text, justify="right")
        return text

    def _cell_values(self, row: dict[str, str]) -> list[Text | str]:
        return [self._value(c, row[c]) for c in self.shown_columns]

    def on_resize(self) -> None:
        if self.session is not None:
            self.show(self.session)


def log_header() -> str:
    return f"{'micro-op':>8} {'cpu':<5} {'thread':<{LOG_THREAD}} phase"


def log_line(m: Mark) -> str:
    return f"{m.position:>8} {f'cpu{m.cpu}':<5} {cut(m.thread, LOG_THREAD):<{LOG_THREAD}} {m.label}"


class EventLog(Log):
    """The phase labels passed, newest last, filtered by CPU, thread or label text.

    A plain-text `Log`, not a RichLog: it takes lines on every step, cheaply.
    """

    ALLOW_MAXIMIZE = True
    BINDINGS = [
        Binding("slash", "filter", "filter"),
        Binding("j", "scroll_down", "down", show=False),
        Binding("k", "scroll_up", "up", show=False),
    ]

    def action_filter(self) -> None:
        """`/`: into the filter (Enter comes back)."""
        self.app.query_one("#log-filter").focus()

    def on_mount(self) -> None:
        self.shown = 0  # marks written so far
        self.filter = ""
        session = getattr(self.app, "session", None)
        if session is not None:  # mounted after the others (docked beside the console)
            self.show(session)
        changed = getattr(self.app, "panes_changed", None)
        if changed is not None:
            changed()

    def set_filter(self, s: Session, text: str) -> None:
        self.filter = text.strip()
        self.clear()
        self.shown = max(0, s.call(marks_after, 0)[0] - 400)
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
        count, new = s.call(marks_after, self.shown)
        if self.shown > count:  # went backwards: rewrite the tail
            self.clear()
            self.shown = max(0, count - 400)
            count, new = s.call(marks_after, self.shown)
        lines = [log_line(m) for m in new if self._keep(m)]
        if lines:
            # One write (each one scrolls and refreshes); the first fill shows the newest.
            first = self.line_count == 0
            self.write_lines(lines, scroll_end=True if first else None)
            if first:
                self.call_after_refresh(self.scroll_end, animate=False)
        self.shown = count

    def note(self, text: str) -> None:
        self.write_line(f"── {text}")


def marks_after(s: Session, shown: int, most: int = 400) -> tuple[int, list[Mark]]:
    """How many marks there are, and the newest of those after the first `shown` (at most
    `most`): what the event log adds, read where the session lives (Session.call)."""
    n = len(s.marks)
    return n, s.marks[max(shown, n - most) :] if shown <= n else []


class EventLogPane(Vertical):
    """The event log with its filter and its column header."""

    ALLOW_MAXIMIZE = True

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="/ filter: cpu2 srv xp.  (Enter: back to the log)",
            id="log-filter",
            compact=True,
        )
        yield Static(log_header(), id="log-header")
        yield EventLog(id="log", max_lines=1000)

    def show(self, s: Session) -> None:
        self.query_one(EventLog).show(s)
