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

from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, TabbedContent, TabPane

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


class LayoutApp(App[int]):
    """The monitor's part that changes layout: at a resize, or `t` to the next that fits.

    The panes are composed again (never shared between layouts); the console and the
    focus stay. The monitor (l4tui/tui/app.py) paints and says things.
    """

    mode: str = "tabs"
    forced_mode: str | None = None  # a layout chosen by `t` (or a test); None: by size
    last_pane: str | None = None  # the pane that had the focus last (Escape returns)
    _panes: list[Any] | None = None  # the pane widgets of this layout (None: find them)

    def for_each_pane(self) -> None:
        raise NotImplementedError  # the monitor repaints its panes

    def say(self, text: str) -> None:
        raise NotImplementedError  # the monitor's console

    def action_show_pane(self, pane: str) -> None:
        raise NotImplementedError  # the monitor's digit keys

    def _after_layout(self) -> Any:
        """Classes for the layout, the log in its place, every pane painted; returns the
        log's mount, to await before giving it the focus."""
        for mode in MODES:
            self.screen.set_class(mode == self.mode, f"-{mode}")
        mounted = self._place_log()
        self.panes_changed()
        self.for_each_pane()
        return mounted

    def panes_changed(self) -> None:
        """New pane widgets (a layout, the log mounted beside the console): find them again
        on the next paint."""
        self._panes = None

    def _place_log(self) -> Any:
        """The event log beside the console in the wide layout; a tab in the others."""
        dock = self.query_one("#log-dock", Vertical)
        dock.display = self.mode == "wide"
        docked = list(dock.query(EventLogPane))
        if self.mode == "wide" and not docked:
            return dock.mount(make_pane("log", framed=True))
        if self.mode != "wide":
            for w in docked:
                w.remove()
        return None

    async def on_resize(self, event: Any) -> None:
        fits = fitting_modes(event.size.width, event.size.height)
        if self.forced_mode is not None and self.forced_mode not in fits:
            self.forced_mode = None  # the chosen layout no longer fits: the size decides
        mode = self.forced_mode or choose_mode(event.size.width, event.size.height)
        if mode != self.mode:
            self.mode = mode
            await self._relayout()

    async def action_cycle_layout(self) -> None:
        """`t`: the next layout that fits the terminal (tabs → split → wide); the choice
        sticks until a resize makes it not fit."""
        fits = fitting_modes(self.size.width, self.size.height)
        if len(fits) == 1:
            self.say(
                f"{self.size.width}×{self.size.height} fits only the {fits[0]} layout "
                "(split needs 120×36, wide 160×48)"
            )
            return
        self.mode = fits[(fits.index(self.mode) + 1) % len(fits)] if self.mode in fits else fits[0]
        self.forced_mode = self.mode
        await self._relayout()
        self.say(f"layout: {self.mode} (t: the next one that fits)")

    async def _relayout(self) -> None:
        """Compose the panes again for `self.mode`; the console and the focus stay."""
        focused = self.focused
        in_console = focused is not None and focused.id == "console-in"
        pane = self.last_pane
        area = self.query_one(PaneArea)
        area.mode = self.mode
        if self.screen.maximized is not None:
            self.screen.minimize()
        await area.recompose()
        mounted = self._after_layout()
        if mounted is not None:
            await mounted
        if in_console:
            self.query_one("#console-in", Input).focus()
        elif pane is not None:
            self.action_show_pane(pane)
