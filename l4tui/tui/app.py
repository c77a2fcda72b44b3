"""`l4tui` and `l4tui open FILE`: the monitor — every CPU, TCB line, mailbox and APIC slot at
the same cycle, stepped forwards and backwards (issue 6, DESIGN.md §1 Textual app).

The app owns one `Session`; panes render its views and never change it.
Everything that moves the machine is a named action (keys in l4tui/tui/keys.py,
rebindable from `$XDG_CONFIG_HOME/l4tui/keymap.yaml`, listed in the palette and
the help screen) or a console command, and both go through the one executor.
`continue` runs in an async worker a slice of micro-ops at a time, so a key
pauses it and the panes repaint at a bounded rate. Each stop moves the focus
to the CPU and thread that stopped (the session does that, unless pinned),
and the panes follow. Where the panes go at each size: l4tui/tui/layout.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, TabbedContent

from l4tui import session as sessions
from l4tui.executor import execute
from l4tui.files import FileError, root_path
from l4tui.grammar import command_name
from l4tui.lab import Lab, lab_progress
from l4tui.prompt import make_history
from l4tui.runner import script
from l4tui.session import Session
from l4tui.tui import keys
from l4tui.tui.console import ConsolePane
from l4tui.tui.cpus import CpuColumn, CpusPane, CpuStrip
from l4tui.tui.help import HelpScreen
from l4tui.tui.labpane import LabPane
from l4tui.tui.layout import PANES, LayoutApp, PaneArea, choose_mode
from l4tui.tui.tables import EventLog, EventLogPane, ThreadsPane
from l4tui.tui.views import ApicPaneView, MailboxPaneView, PhasePane, TcbPane, set_title
from l4tui.tui.warm import listen

REPAINTED = (CpusPane, CpuStrip, TcbPane, PhasePane, ThreadsPane, MailboxPaneView, ApicPaneView)
PANE_TYPES = (*REPAINTED, EventLogPane, LabPane, ConsolePane)


def repaint_interval() -> float:
    """Seconds between repaints while running (L4TUI_REPAINT_MS; `serve` raises it for SSH)."""
    try:
        return max(0.02, int(os.environ.get("L4TUI_REPAINT_MS", "250")) / 1000)
    except ValueError:
        return 0.25


class MonitorApp(LayoutApp):
    """The l4tui monitor on one session."""

    CSS_PATH = Path(__file__).with_name("monitor.tcss")  # absolute: subclasses live elsewhere
    TITLE = "l4tui"
    AUTO_FOCUS = "#console-in"  # the console first; Escape then goes to the first pane
    BINDINGS: ClassVar[list[BindingType]] = [*keys.BINDINGS]

    def __init__(
        self,
        session: Session,
        narrow: bool | None = None,
        lab: Lab | None = None,
        autosave: Path | None = None,
        mode: str | None = None,
        run_script: bool = False,
    ) -> None:
        super().__init__()
        self.run_script = run_script  # `open FILE`: run the scenario's script at start
        self.session = session
        self.lab = lab
        self.autosave = autosave  # saved after every command: no work lost (issue 7)
        # A forced layout (tests, `t`); None: chosen by the terminal's size.
        self.forced_mode = mode or (
            {True: "tabs", False: "wide"}.get(narrow) if narrow is not None else None
        )
        self.mode = self.forced_mode or "tabs"
        self.running = False
        self.pause_requested = False
        self.transcript: list[str] = []
        self._painted = 0.0
        self._panes: list[Any] | None = None  # the pane widgets of this layout
        self.last_pane: str | None = None  # the pane that had the focus last (Escape returns)
        # (from, to, proxy) of the last `p`: pressing it again on `to` goes back to `from`.
        self._partner_pair: tuple[str, str, str | None] | None = None
        self.history = make_history()

    @property
    def narrow(self) -> bool:
        return self.mode == "tabs"

    # --- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.forced_mode is None:
            self.mode = choose_mode(self.size.width, self.size.height)
        yield PaneArea(self.mode, lab=self.lab is not None, id="area")
        with Horizontal(id="bottom"):
            yield ConsolePane(lambda: self.session, self.history, id="console")
            yield Vertical(id="log-dock")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        keymap, problem = keys.load_keymap(keys.keymap_path(), keys.ACTION_IDS)
        if keymap:
            self.set_keymap(keymap)
        if problem:
            # The file is left out whole: say so, or a user may think some keys took.
            self.notify(
                f"{problem} (keymap ignored: the default keys are on)", severity="error", timeout=10
            )
        self._after_layout()
        self.query_one("#console-in", Input).focus()
        if self.session.schedule is not None:  # `open --schedule`: say what continue will do
            self.report(self.session.stop_reason)
        if self.lab is not None:
            self.report(self.lab_greeting())
        elif self.run_script and (lines := script.pending(self.session)):
            # A scenario's `script:` sets up its demo (DESIGN.md §2): run as if typed.
            self.say(f"running the scenario's script ({len(lines)} commands)")
            for text in script.transcript(self.session, lines):
                self.report(text)  # continue too runs here, before the first frame
            self.for_each_pane()
        pool = os.environ.get("L4TUI_POOL_FD")
        if pool:  # a warm slot of `l4tui serve`: painted already, waiting for its student
            listen(self, int(pool))
        if self.autosave is not None or pool:  # `l4tui serve` ends a session with SIGTERM
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminated)
        if os.environ.get("L4TUI_FIRST_FRAME_EXIT"):  # `bench tui`: time to the first frame
            self.call_after_refresh(self.exit, 0)

    def lab_greeting(self) -> str:
        """What the console says when a lab opens: fresh, or resumed and how far along."""
        assert self.lab is not None
        done = self.session.call(lab_progress, self.lab)
        where = "the lab sheet is tab 8" if self.narrow else "the lab sheet is pane 8"
        saved = f"; saved as you go to {self.autosave}" if self.autosave is not None else ""
        if self.session.stop_reason.startswith("loaded "):
            return (
                f"resumed your saved session: {sum(done)} of {len(done)} exercises done, "
                f"at micro-op {self.session.position} ({where}; `lab` prints it here{saved}; "
                "--fresh starts over)"
            )
        return (
            f"lab: {self.lab.title} — {len(done)} exercises ({where}; `lab` prints it here{saved})"
        )

    def _terminated(self) -> None:
        self.pause_requested = True
        self.exit(0)

    def on_unmount(self) -> None:
        self.save_now()

    def console_title(self) -> str:
        """The console's frame: where the session is, and the keys that work in it."""
        s = self.session
        state = "running" if self.running else f"micro-op {s.position:,}"
        pin = " · focus pinned" if s.focus_pinned else ""
        return f"console · {s.scenario.name} · {state}{pin} │ PgUp/Dn scroll · F2 zoom · Esc panes"

    # --- painting ----------------------------------------------------------------------

    def for_each_pane(self) -> None:
        """Repaint every pane from the session (the only way panes learn anything)."""
        s = self.session
        if self._panes is None:  # a query of the whole DOM per pane per step adds up
            self._panes = [w for pane in (*REPAINTED, EventLog, LabPane) for w in self.query(pane)]
        for w in self._panes:
            if w.is_attached:
                w.show(s)
        # The console's frame says where the session is (not sub_title: setting that
        # repaints the whole screen, every step).
        set_title(self.query_one(ConsolePane), self.console_title())
        self._painted = time.monotonic()

    def save_now(self) -> None:
        """Autosave the session (after every command when `autosave` is set)."""
        if self.autosave is not None:
            try:  # the one atomic writer (files.py): every failure a FileError of one line
                self.session.save(str(self.autosave))
            except FileError as e:
                self.notify(f"cannot save the session to {e.file}: {e.message}", severity="error")

    def report(self, text: str) -> None:
        """Text for the console pane (and the transcript kept across layout changes)."""
        for line in text.split("\n"):
            self.transcript.append(line)
        del self.transcript[:-1000]
        self.query_one(ConsolePane).write(text)

    def say(self, text: str) -> None:
        """A note from a key (not a command's output) in the console, where it stays readable
        and covers nothing — toasts hide the console's last lines on a small terminal."""
        self.report(f"-- {text}")

    def run_line(self, line: str) -> None:
        """A console line: `continue` runs live in the worker; the rest through the executor.

        The CPUs have a pane of their own, so a stop's reason is the last thing the
        console shows (no CPU table after it).
        """
        self.report(f"(l4tui) {line}")
        name = command_name(line)
        if name == "continue":
            if not self.running:
                self.run_continue()
            return
        if self.running:
            self.report("error: the machine is running; pause it first (c, F5 or Ctrl-C)")
            return
        out = self.session.call(execute, line, show_where=False)
        if out:
            self.report(out)
        self.save_now()
        if name == "quit":
            self.exit(0)
            return
        self.for_each_pane()

    def on_console_pane_submitted(self, event: ConsolePane.Submitted) -> None:
        self.run_line(event.line)

    def on_console_pane_leave(self, event: ConsolePane.Leave) -> None:
        self.action_leave_console()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-filter":
            self.query_one(EventLog).set_filter(self.session, event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-filter":
            self.query_one(EventLog).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, ThreadsPane):
            self.session.set_focus(thread=str(event.row_key.value))
            self.for_each_pane()

    def on_click(self, event: Any) -> None:
        widget = event.widget
        if isinstance(widget, CpuColumn):
            self.session.set_focus(cpu=widget.number)
            self.for_each_pane()

    def on_descendant_focus(self, event: Any) -> None:
        pane = self._pane_of(event.widget)
        if pane is not None and pane != "console":
            self.last_pane = pane

    def _pane_of(self, widget: Widget | None) -> str | None:
        """The name of the pane a widget is in (`console` for the console)."""
        node: Any = widget
        while node is not None and node is not self.screen:
            if isinstance(node, ConsolePane):
                return "console"
            for name in PANES:
                wid = "logbox" if name == "log" else name
                if getattr(node, "id", None) in (wid, "log" if name == "log" else None):
                    return name
            node = node.parent
        return None

    # --- which keys show in the footer ------------------------------------------------

    def _typing(self) -> bool:
        return isinstance(self.focused, Input)

    def user_keymap(self) -> dict[str, str]:
        return dict(getattr(self, "_keymap", None) or {})

    def _binding(self, action: str) -> Binding | None:
        for b in keys.BINDINGS:
            if b.action.split("(")[0] == action:
                return b
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While the console (a text field) has the focus, keys that type characters do not
        reach the app: hide the actions that have no other key, so the footer promises only
        what works."""
        if not self._typing():
            return True
        b = self._binding(action)
        if b is None:
            return True
        return bool(keys.usable_keys(b, self.user_keymap(), typing=True))

    def get_key_display(self, binding: Binding) -> str:
        """The key the footer shows: one that works where the focus is now."""
        for b in keys.BINDINGS:
            if b.action == binding.action:
                usable = keys.usable_keys(b, self.user_keymap(), typing=self._typing())
                if usable:
                    return keys.display(usable[0])
        return super().get_key_display(binding)

    # --- actions ---------------------------------------------------------------------

    def _move(self, line: str) -> None:
        if self.running:
            self.notify("running: pause first (c or F5)", severity="warning")
            return
        out = self.session.call(execute, line, show_where=False)
        self.report(f"(l4tui) {line}\n{out}")
        self.save_now()
        self.for_each_pane()

    def action_step(self) -> None:
        self._move("step")

    def action_stepi(self) -> None:
        self._move("stepi")

    def action_next(self) -> None:
        self._move("next")

    def action_finish(self) -> None:
        self._move("finish")

    def action_reverse_step(self) -> None:
        self._move("reverse-step")

    def action_reverse_continue(self) -> None:
        self._move("reverse-continue")

    def action_toggle_run(self) -> None:
        if self.running:
            self.action_pause()
        else:
            self.report("(l4tui) continue")
            self.run_continue()

    def action_pause(self) -> None:
        if self.running:
            self.pause_requested = True
            if not isinstance(self.session, Session):
                self.session.interrupt()  # the engine stops at its next micro-op

    @work(exclusive=True, group="run")
    async def run_continue(self) -> None:
        """Continue in slices, repainting at most every `repaint_interval()` seconds."""
        s = self.session
        self.running, self.pause_requested = True, False
        interval = repaint_interval()
        start = s.position
        try:
            while True:
                left = sessions.LIMIT - (s.position - start)
                if self.pause_requested:  # (also a key read between two slices)
                    reason = ""
                elif isinstance(s, Session):
                    reason = s.cont_for(sessions.LIVE_SECONDS, left)
                else:
                    # An engine process runs it: wait in a thread, so that the screen paints
                    # and keys are read while the engine steps (engine.RemoteSession locks).
                    # A slice lasts until the next repaint; the pause key interrupts it.
                    reason = await asyncio.to_thread(s.cont_for, interval, left)
                if self.pause_requested and (
                    not reason or reason.startswith(("paused after", "interrupted"))
                ):  # (a breakpoint's stop in the same slice keeps its reason)
                    s.stop_reason = reason = f"paused by you at micro-op {s.position}"
                    break
                if not reason.startswith("paused after"):
                    break
                if s.position - start >= sessions.LIMIT:  # as the console's continue
                    s.stop_reason = reason = (
                        f"paused after {s.position - start:,} micro-ops, at micro-op "
                        f"{s.position}: the most one continue runs (continue again to go on)"
                    )
                    break
                if time.monotonic() - self._painted >= interval:
                    self.for_each_pane()
                await asyncio.sleep(0)
        finally:
            self.running = False
        s.record("continue")
        self.report(reason)
        self.save_now()
        self.for_each_pane()

    def action_focus_cpu(self, step: int) -> None:
        n = len(self.session.cpus())
        self.session.set_focus(
            cpu=(self.session.focus_cpu - 1 + step) % n + 1, pin=self.session.focus_pinned
        )
        self.for_each_pane()

    def action_focus_thread(self, step: int) -> None:
        names = [t.name for t in self.session.scenario.threads()]
        cur = self.session.focused_thread()
        i = names.index(cur) if cur in names else -1
        self.session.set_focus(thread=names[(i + step) % len(names)], pin=self.session.focus_pinned)
        self.for_each_pane()

    def action_focus_partner(self) -> None:
        """`p`: the focused thread's IPC partner; `p` again comes back."""
        s = self.session
        here = s.focused_thread()
        back = self._partner_pair
        if back is not None and back[1] == here:
            self._partner_pair = None
            s.set_focus(thread=back[0], pin=s.focus_pinned)
            s.focus_via = back[2]  # as it was: still the thread a proxy works for
        else:
            other = s.partner_of_focus()
            if other is None:
                self.say(f"{here} has no IPC partner now")
                return
            self._partner_pair = (here, other, s.focus_via)
            s.set_focus(thread=other, pin=s.focus_pinned)
        self.for_each_pane()

    def action_toggle_pin(self) -> None:
        """`P`: keep the focus where it is across stops, or let it follow them again."""
        s = self.session
        s.focus_pinned = not s.focus_pinned
        if s.focus_pinned:
            s.focus_thread = s.focused_thread()
        self.say(
            "focus pinned: stops leave it here (P again: follow)"
            if s.focus_pinned
            else "focus follows each stop"
        )
        self.for_each_pane()

    def action_focus_console(self) -> None:
        # At once, not after the next refresh (`focus()`): keys typed right after the `:`
        # belong to the console.
        self.screen.set_focus(self.query_one("#console-in", Input))

    def action_leave_console(self) -> None:
        """Escape in the console: back to the pane that had the focus before."""
        self.action_show_pane(self.last_pane or ("lab" if self.lab is not None else "tcb"))

    def action_show_pane(self, pane: str) -> None:
        """A digit: bring pane `pane` forward (its tab) and give it the focus, to scroll it."""
        if pane == "lab" and self.lab is None:
            self.say("no lab sheet here (l4tui lab LAB opens one)")
            return
        area = self.query_one(PaneArea)
        found = area.tab_group(pane)
        if found is not None:
            group, tab = found
            group.active = tab
        wid = {"log": "log"}.get(pane, pane)
        targets = list(self.query(f"#{wid}"))
        if targets:
            self.last_pane = pane
            # At once: a key typed right after the digit goes to this pane (a deferred
            # `focus()` could land after a `:` and pull the focus out of the console).
            self.screen.set_focus(targets[0])

    def action_zoom(self) -> None:
        """`z` or F2: the pane with the focus fills the screen; again (or Escape) restores."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        target = self._zoom_target(self.focused)
        if target is not None:
            screen.maximize(target, container=False)

    def _zoom_target(self, widget: Widget | None) -> Widget | None:
        node: Any = widget
        while node is not None and node is not self.screen:
            if isinstance(node, PANE_TYPES):
                return node
            node = node.parent
        return None

    def action_mark(self) -> None:
        """A mark in the event log: where you were, to find it again."""
        s = self.session
        for log in self.query(EventLog):
            log.note(f"mark at micro-op {s.position}, cycle {min(c.cycle for c in s.cpus()):,}")

    def action_export_trace(self) -> None:
        """The run so far as a Perfetto trace in the working directory."""
        s = self.session
        path = f"{s.scenario.name}-{s.position}.trace.json"
        self._move(f"export perfetto {path}")
        if self.transcript and self.transcript[-1].startswith("wrote "):
            where = Path(s.call(root_path, path)).resolve()  # a confined session's directory
            self.notify(f"trace written to {where}", timeout=8)
        else:
            self.notify("the trace could not be written (see the console)", severity="error")

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keymap = self.user_keymap()
        rows = []
        for b in keys.BINDINGS:
            shown = " or ".join(keys.display(k) for k in keys.keys_of(b, keymap))
            said = b.description or b.action
            rows.append((shown, f"{said} — {b.tooltip}" if b.tooltip else said))
        rows.append(("Escape", "console: back to the panes; zoomed: restore"))
        rows.append(("↑↓ PgUp PgDn j k", "in a pane: scroll it"))
        self.push_screen(HelpScreen(rows, str(keys.keymap_path())))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_, action in (
            ("Step", "run to the next phase label", self.action_step),
            ("Step one micro-op", "stepi", self.action_stepi),
            ("Next", "the focused thread's next phase", self.action_next),
            ("Finish", "until the focused thread's syscall returns", self.action_finish),
            ("Continue / pause", "run until a breakpoint; again pauses", self.action_toggle_run),
            ("Reverse step", "back one phase label", self.action_reverse_step),
            ("Reverse continue", "back to the previous stop", self.action_reverse_continue),
            ("Layout", "tabs, split or wide", self.action_cycle_layout),
            ("Zoom", "the focused pane fills the screen", self.action_zoom),
            ("Pin the focus", "stops leave the focus where it is", self.action_toggle_pin),
            ("Export trace", "the run so far for ui.perfetto.dev", self.action_export_trace),
            ("Help", "keys and commands", self.action_help),
        ):
            yield SystemCommand(title, help_, action)


def run_app(
    session: Session,
    lab: Lab | None = None,
    autosave: Path | None = None,
    mouse: bool = True,
    run_script: bool = False,
) -> int:
    """Run the monitor in this terminal; the exit code.

    Without the mouse (`--no-mouse`, or L4TUI_MOUSE=0 as `l4tui serve --no-mouse`
    sets) the terminal keeps its own selection and copy; every action has a key.
    """
    app = MonitorApp(session, lab=lab, autosave=autosave, run_script=run_script)
    result = app.run(mouse=mouse and os.environ.get("L4TUI_MOUSE", "1") != "0")
    return int(result or 0)


__all__ = ["MonitorApp", "HelpScreen", "TabbedContent", "run_app"]
