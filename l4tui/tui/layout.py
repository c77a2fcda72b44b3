"""Where the monitor's panes go at each terminal size.

Three layouts, chosen by size (or cycled with `t`):

- `tabs` (under 120×36 — most SSH terminals are 80×24): a line per CPU on
  top, every pane a tab below it, the console under them. The console keeps
  two fifths of the height so an `info` answer can be read; a key zooms it.
- `split` (under 160×48): the CPU columns on top, then two tab groups side
  by side — the TCB with the tables on the left; the lab sheet, the phase
  and the event log on the right.
- `wide`: the CPU columns, then the TCB beside the phase, then the mailboxes
  and APIC beside the thread table; a lab sheet is a column of its own, the
  whole height; the event log sits beside the console (both are streams).

Every pane has a number (its key, shown on its tab or frame) and an id; the
same pane objects are never shared between layouts — a relayout composes
them again from the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import TabbedContent, TabPane

from l4tui.tui.cpus import CpusPane, CpuStrip
from l4tui.tui.labpane import LabPane
from l4tui.tui.tables import EventLogPane, ThreadsPane
from l4tui.tui.views import ApicPaneView, MailboxPaneView, PhasePane, TcbPane

TABS_BELOW = (120, 36)  # under either: tabs
SPLIT_BELOW = (160, 48)  # under either: two tab groups
MODES = ("tabs", "split", "wide")


@dataclass(frozen=True, slots=True)
class PaneInfo:
    key: str  # the digit that shows it
    title: str
    tab: str  # the short title a tab shows (eight of them fit 80 columns)


PANES: dict[str, PaneInfo] = {
    "cpus": PaneInfo("1", "CPUs", "CPUs"),
    "tcb": PaneInfo("2", "TCB", "TCB"),
    "phase": PaneInfo("3", "IPC phase", "Phase"),
    "threads": PaneInfo("4", "threads", "Threads"),
    "mailboxes": PaneInfo("5", "mailboxes", "Mail"),
    "apic": PaneInfo("6", "APIC", "APIC"),
    "log": PaneInfo("7", "event log", "Log"),
    "lab": PaneInfo("8", "lab sheet", "Lab"),
}
LEFT = ("tcb", "threads", "mailboxes", "apic")  # split: the left group
RIGHT = ("lab", "phase", "log")  # split: the right group


def choose_mode(width: int, height: int) -> str:
    if width < TABS_BELOW[0] or height < TABS_BELOW[1]:
        return "tabs"
    if width < SPLIT_BELOW[0] or height < SPLIT_BELOW[1]:
        return "split"
    return "wide"


def fitting_modes(width: int, height: int) -> tuple[str, ...]:
    """The layouts a terminal of this size can show (`t` cycles through these only)."""
    return MODES[: MODES.index(choose_mode(width, height)) + 1]


def title(pane: str, tab: bool = False) -> str:
    info = PANES[pane]
    return f"{info.key} {info.tab if tab else info.title}"


def make_pane(pane: str, framed: bool) -> Any:
    """A new widget for `pane` (ids as the app queries them); `framed`: a border of its own."""
    classes = "pane" if framed else ""
    widget = {
        "cpus": lambda: CpusPane(id="cpus", classes=classes),
        "tcb": lambda: TcbPane(id="tcb", classes=classes),
        "phase": lambda: PhasePane(id="phase", classes=classes),
        "threads": lambda: ThreadsPane(id="threads", classes=classes),
        "mailboxes": lambda: MailboxPaneView(id="mailboxes", classes=classes),
        "apic": lambda: ApicPaneView(id="apic", classes=classes),
        "log": lambda: EventLogPane(id="logbox", classes=classes),
        "lab": lambda: LabPane(id="lab", classes=classes),
    }[pane]()
    widget.border_title = title(pane)
    return widget


class PaneArea(Vertical):
    """Everything between the top of the screen and the console, in one of the `MODES`."""

    def __init__(self, mode: str, lab: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.mode = mode
        self.lab = lab

    def panes(self) -> tuple[str, ...]:
        return tuple(p for p in PANES if p != "lab" or self.lab)

    def _tabs(self, names: tuple[str, ...], group: str, initial: str) -> ComposeResult:
        names = tuple(n for n in names if n in self.panes())
        first = initial if initial in names else names[0]
        with TabbedContent(id=group, initial=f"tab-{first}", classes="group"):
            for name in names:
                with TabPane(title(name, tab=True), id=f"tab-{name}"):
                    yield make_pane(name, framed=False)

    def compose(self) -> ComposeResult:
        if self.mode == "tabs":
            yield CpuStrip(id="strip")
            order = ("lab", "cpus", "tcb", "phase", "threads", "mailboxes", "apic", "log")
            yield from self._tabs(order, "tabs-main", "lab" if self.lab else "tcb")
            return
        if self.mode == "split":
            yield make_pane("cpus", framed=True)
            with Horizontal(id="groups"):
                yield from self._tabs(LEFT, "tabs-left", "tcb")
                yield from self._tabs(RIGHT, "tabs-right", "lab" if self.lab else "phase")
            return
        # wide: the lab sheet, if any, is a column of its own the whole height
        with Horizontal(id="wide"):
            with Vertical(id="machine"):
                yield make_pane("cpus", framed=True)
                with Horizontal(id="middle"):
                    yield make_pane("tcb", framed=True)
                    yield make_pane("phase", framed=True)
                with Horizontal(id="lower"):
                    with Vertical(id="hw"):
                        yield make_pane("mailboxes", framed=True)
                        yield make_pane("apic", framed=True)
                    yield make_pane("threads", framed=True)
            if self.lab:
                yield make_pane("lab", framed=True)

    def tab_group(self, pane: str) -> tuple[TabbedContent, str] | None:
        """The tab group that holds `pane`, and its tab id (None: the pane is not a tab)."""
        for group in self.query(TabbedContent):
            tab = f"tab-{pane}"
            if group.query(f"#{tab}"):
                return group, tab
        return None
