"""`l4tui` and `l4tui open FILE`: the monitor — every CPU, TCB line, mailbox and APIC slot at
the same cycle, stepped forwards and backwards (issue 6, DESIGN.md §1 Textual app).

The app owns one `Session`; panes render its views and never change it.
Everything that moves the machine is a named action (keys rebindable from
`$XDG_CONFIG_HOME/l4tui/keymap.yaml`, listed in the palette and the help
screen) or a console command, and both go through the one executor.
`continue` runs in an async worker a slice of micro-ops at a time, so a key
pauses it and the panes repaint at a bounded rate. Wide terminals show the
panes side by side; narrow ones (under 120×36) put them in tabs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent, TabPane

from l4tui.executor import execute, where
from l4tui.lab import Lab
from l4tui.session import Session
from l4tui.tui.console import ConsolePane
from l4tui.tui.views import (
    ApicPaneView,
    CpuColumn,
    CpusPane,
    EventLog,
    LabPane,
    MailboxPaneView,
    PhasePane,
    TcbPane,
    ThreadsPane,
)
from machine.errors import ConfigError

KEY_NAMES = {
    "bracketright": "]",
    "bracketleft": "[",
    "right_curly_bracket": "}",
    "left_curly_bracket": "{",
    "colon": ":",
    "question_mark": "?",
}
WIDE = (120, 36)  # at least this many columns and rows: panes side by side
SLICE = 2000  # micro-ops a running continue takes between looks at the keyboard


def repaint_interval() -> float:
    """Seconds between repaints while running (L4TUI_REPAINT_MS; `serve` raises it for SSH)."""
    try:
        return max(0.02, int(os.environ.get("L4TUI_REPAINT_MS", "250")) / 1000)
    except ValueError:
        return 0.25


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "l4tui" / "keymap.yaml"


def load_keymap(path: Path, ids: set[str]) -> tuple[dict[str, str], str | None]:
    """A user keymap {binding id: keys}; an error message instead if the file is bad."""
    if not path.exists():
        return {}, None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        return {}, f"{path}: cannot read the keymap: {e}"
    if not isinstance(data, dict):
        return {}, f"{path}: a keymap maps action ids to keys, e.g. step: f10"
    bad = [k for k in data if k not in ids]
    if bad:
        return {}, f"{path}: no action {bad[0]!r}; actions: {', '.join(sorted(ids))}"
    return {str(k): str(v) for k, v in data.items()}, None


class HelpScreen(ModalScreen[None]):
    """Keys and commands."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        from rich.text import Text

        from l4tui.grammar import SPECS

        width = max(len(k) for k, _ in self.keys)
        lines = ["Keys (rebind in " + str(keymap_path()) + ")", ""]
        lines += [f"  {k.ljust(width)}  {d}" for k, d in self.keys]
        lines += ["", "Commands (type them in the console; : focuses it, escape leaves it)", ""]
        for spec in SPECS.values():
            lines += [f"  {spec.usage}", f"      {spec.help}"]
        lines += ["", "escape closes this screen"]
        self.text = "\n".join(lines)
        yield Static(Text(self.text), id="help-text")  # Text: "[N]" is not markup


class PaneArea(Vertical):
    """The panes under the CPUs: side by side, or in tabs on a small terminal."""

    def __init__(self, narrow: bool, lab: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.narrow = narrow
        self.lab = lab

    def compose(self) -> ComposeResult:
        if self.narrow:
            with TabbedContent(id="tabs"):
                if self.lab:
                    with TabPane("Lab", id="tab-lab"):
                        yield LabPane(id="lab")
                with TabPane("TCB", id="tab-tcb"):
                    yield TcbPane(id="tcb")
                with TabPane("Phase", id="tab-phase"):
                    yield PhasePane(id="phase")
                with TabPane("Threads", id="tab-threads"):
                    yield ThreadsPane(id="threads")
                with TabPane("Mailboxes", id="tab-mailboxes"):
                    yield MailboxPaneView(id="mailboxes")
                with TabPane("APIC", id="tab-apic"):
                    yield ApicPaneView(id="apic")
                with TabPane("Log", id="tab-log"):
                    yield Input(placeholder="filter: cpu2 srv xp.", id="log-filter", compact=True)
                    yield EventLog(id="log", max_lines=1000)
            return
        with Horizontal(id="middle"):
            yield TcbPane(id="tcb", classes="pane")
            yield PhasePane(id="phase", classes="pane")
            if self.lab:
                yield LabPane(id="lab", classes="pane")
        with Horizontal(id="lower"):
            with Vertical(id="hw"):
                yield MailboxPaneView(id="mailboxes", classes="pane")
                yield ApicPaneView(id="apic", classes="pane")
            yield ThreadsPane(id="threads", classes="pane")
            with Vertical(id="logbox", classes="pane"):
                yield Input(placeholder="filter: cpu2 srv xp.", id="log-filter", compact=True)
                yield EventLog(id="log", max_lines=1000)


class MonitorApp(App[int]):
    """The l4tui monitor on one session."""

    CSS_PATH = Path(__file__).with_name("monitor.tcss")  # absolute: subclasses live elsewhere
    TITLE = "l4tui"
    BINDINGS = [
        Binding("s,f10", "step", "step", id="step", key_display="s"),
        Binding("i,f11", "stepi", "stepi", id="stepi", key_display="i"),
        Binding("n", "next", "next", id="next"),
        Binding("f,shift+f11", "finish", "finish", id="finish", key_display="f"),
        Binding("c,f5", "toggle_run", "run/pause", id="continue", key_display="c"),
        Binding("r,f7", "reverse_step", "rev-step", id="reverse-step", key_display="r"),
        Binding(
            "R,shift+f5", "reverse_continue", "rev-cont", id="reverse-continue", key_display="R"
        ),
        Binding("bracketright", "focus_cpu(1)", "cpu+", id="next-cpu", key_display="]"),
        Binding("bracketleft", "focus_cpu(-1)", "cpu-", id="prev-cpu", show=False),
        Binding(
            "right_curly_bracket", "focus_thread(1)", "thread+", id="next-thread", key_display="}"
        ),
        Binding("left_curly_bracket", "focus_thread(-1)", "thread-", id="prev-thread", show=False),
        Binding("colon", "focus_console", "console", id="console", key_display=":"),
        Binding("t", "toggle_tabs", "tabs/wide", id="toggle-panes"),
        Binding("m", "mark", "mark", id="mark", show=False),
        Binding("e", "export_trace", "export trace", id="export-trace", show=False),
        Binding("1", "toggle_pane('tcb')", "TCB", id="pane-tcb", show=False),
        Binding("2", "toggle_pane('phase')", "phase", id="pane-phase", show=False),
        Binding("3", "toggle_pane('hw')", "mailboxes+APIC", id="pane-hw", show=False),
        Binding("4", "toggle_pane('threads')", "threads", id="pane-threads", show=False),
        Binding("5", "toggle_pane('logbox')", "log", id="pane-log", show=False),
        Binding("ctrl+t", "toggle_theme", "theme", id="theme", show=False),
        Binding("question_mark,f1", "help", "help", id="help", key_display="?"),
        Binding("ctrl+c", "pause", "pause", id="pause", show=False, priority=True),
        Binding("q", "quit", "quit", id="quit"),
    ]

    def __init__(
        self,
        session: Session,
        narrow: bool | None = None,
        lab: Lab | None = None,
        autosave: Path | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.lab = lab
        self.autosave = autosave  # saved after every command: no work lost (issue 7)
        self.forced_narrow = narrow
        self.narrow = bool(narrow)
        self.running = False
        self.pause_requested = False
        self.transcript: list[str] = []
        self._painted = 0.0
        from l4tui.console import make_history

        self.history = make_history()

    # --- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.forced_narrow is None:
            self.narrow = self.size.width < WIDE[0] or self.size.height < WIDE[1]
        yield Header(show_clock=False)
        yield CpusPane(id="cpus")
        yield PaneArea(self.narrow, lab=self.lab is not None, id="area")
        yield ConsolePane(lambda: self.session, self.history, id="console")
        yield Footer()

    def on_mount(self) -> None:
        ids = {b.id for b in self.BINDINGS if isinstance(b, Binding) and b.id}
        keymap, problem = load_keymap(keymap_path(), ids)
        if keymap:
            self.set_keymap(keymap)
        if problem:
            self.notify(problem, severity="error", timeout=10)
        self.sub_title = f"{self.session.scenario.name} · {len(self.session.cpus())} CPUs"
        self._after_layout()
        if self.session.schedule is not None:  # `open --schedule`: say what continue will do
            self.report(self.session.stop_reason)
        pool = os.environ.get("L4TUI_POOL_FD")
        if pool:  # a warm slot of `l4tui serve`: painted already, waiting for its student
            asyncio.get_running_loop().add_reader(int(pool), self._assigned, int(pool))
            # Tell the server this slot is painted, so it can say when the pool is ready.
            self.call_after_refresh(self._painted_slot, int(pool))
        if self.autosave is not None or pool:  # `l4tui serve` ends a session with SIGTERM
            import signal

            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminated)

    def _painted_slot(self, fd: int) -> None:
        with contextlib.suppress(OSError):  # already taken: the server closed its end
            os.write(fd, b"painted")

    def _assigned(self, fd: int) -> None:
        """The server gave this warm slot a student: their saved session (or a fresh one)."""
        import json

        from l4tui.cli import lab_session

        asyncio.get_running_loop().remove_reader(fd)
        try:
            req = json.loads(os.read(fd, 65536) or b"{}")
            if req.get("fresh") or not Path(req["state"]).exists():
                # A new student: this slot's own untouched session is theirs as it is.
                lab, session = self.lab, self.session
            else:
                lab, session = lab_session(req["lab"], req["state"], False)
        except (OSError, ValueError, KeyError, ConfigError) as e:
            self.notify(f"cannot load your session: {e}", severity="error", timeout=30)
            return
        finally:
            os.close(fd)
        if session is not self.session:
            self.session, self.lab = session, lab
            self.transcript.clear()
            self.query_one(ConsolePane).query_one("#console-out").clear()
            self.sub_title = f"{session.scenario.name} · {len(session.cpus())} CPUs"
            self.for_each_pane()
        self.autosave = Path(req["state"])
        if req.get("history"):  # the student's own history, not the warm slot's
            from prompt_toolkit.history import FileHistory

            hist = Path(req["history"])
            with contextlib.suppress(OSError):
                hist.parent.mkdir(parents=True, exist_ok=True)
                console = self.query_one(ConsolePane)
                console.history = FileHistory(str(hist))
                console.entries = list(console.history.load_history_strings())
        self.save_now()

    def _terminated(self) -> None:
        self.pause_requested = True
        self.exit(0)

    def on_unmount(self) -> None:
        self.save_now()
        if os.environ.get("L4TUI_FIRST_FRAME_EXIT"):  # `bench tui`: time to the first frame
            self.call_after_refresh(self.exit, 0)

    def _after_layout(self) -> None:
        self.screen.set_class(self.narrow, "narrow")  # compact CPUs and console (monitor.tcss)
        self.for_each_pane()
        self.query_one("#console-in", Input).focus()
        self.query_one("#cpus").border_title = "CPUs"
        titles = {
            "tcb": "TCB cache lines",
            "phase": "IPC phase",
            "threads": "threads",
            "mailboxes": "mailboxes",
            "apic": "APIC",
            "logbox": "event log",
            "lab": "lab sheet",
        }
        for wid, title in titles.items():
            for w in self.query(f"#{wid}"):
                w.border_title = title

    def _choose_layout(self, width: int, height: int) -> bool:
        narrow = width < WIDE[0] or height < WIDE[1]
        if narrow != self.narrow:
            self.narrow = narrow
            return True
        return False

    async def on_resize(self, event: Any) -> None:
        if self.forced_narrow is None and self._choose_layout(event.size.width, event.size.height):
            await self._relayout()

    async def action_toggle_tabs(self) -> None:
        self.narrow = not self.narrow
        self.forced_narrow = self.narrow
        await self._relayout()

    async def _relayout(self) -> None:
        """Panes side by side or in tabs; CPUs and the console stay as they are."""
        area = self.query_one(PaneArea)
        area.narrow = self.narrow
        await area.recompose()
        self._after_layout()

    # --- painting ----------------------------------------------------------------------

    def for_each_pane(self) -> None:
        """Repaint every pane from the session (the only way panes learn anything)."""
        s = self.session
        for pane in (CpusPane, TcbPane, PhasePane, ThreadsPane, MailboxPaneView, ApicPaneView):
            for w in self.query(pane):
                w.show(s)
        for log in self.query(EventLog):
            log.show(s)
        for lab in self.query(LabPane):
            lab.show(s)
        self._painted = time.monotonic()

    def save_now(self) -> None:
        """Autosave the session (after every command when `autosave` is set)."""
        if self.autosave is not None:
            try:
                self.session.save(str(self.autosave))
            except OSError as e:
                self.notify(f"cannot save the session: {e.strerror}", severity="error")

    def report(self, text: str) -> None:
        """Text for the console pane (and the transcript kept across layout changes)."""
        for line in text.split("\n"):
            self.transcript.append(line)
        del self.transcript[:-1000]
        self.query_one(ConsolePane).write(text)

    def run_line(self, line: str) -> None:
        """A console line: `continue` runs live in the worker; the rest through the executor."""
        self.report(f"(l4tui) {line}")
        words = line.split()
        if words and words[0] in ("continue", "c") and len(words) == 1:
            self.action_toggle_run()
            return
        if self.running:
            self.report("error: the machine is running; pause it first (c or Ctrl-C)")
            return
        out = execute(self.session, line)
        if out:
            self.report(out)
        self.save_now()
        if words and words[0] in ("quit", "q"):
            self.exit(0)
            return
        self.for_each_pane()

    def on_console_pane_submitted(self, event: ConsolePane.Submitted) -> None:
        self.run_line(event.line)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-filter":
            self.query_one(EventLog).set_filter(self.session, event.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, ThreadsPane):
            self.session.focus_thread = str(event.row_key.value)
            self.for_each_pane()

    def on_click(self, event: Any) -> None:
        widget = event.widget
        if isinstance(widget, CpuColumn):
            cols = list(self.query(CpuColumn))
            self.session.focus_cpu = cols.index(widget) + 1
            self.for_each_pane()

    # --- actions ---------------------------------------------------------------------

    def _move(self, line: str) -> None:
        if self.running:
            self.notify("running: pause first (c)", severity="warning")
            return
        out = execute(self.session, line)
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
            self.pause_requested = True
        else:
            self.report("(l4tui) continue")
            self.run_continue()

    def action_pause(self) -> None:
        if self.running:
            self.pause_requested = True

    @work(exclusive=True, group="run")
    async def run_continue(self) -> None:
        """Continue in slices, repainting at most every `repaint_interval()` seconds."""
        s = self.session
        self.running, self.pause_requested = True, False
        self.sub_title = f"{s.scenario.name} · running"
        interval = repaint_interval()
        try:
            while True:
                reason = s.cont(limit=SLICE)
                if not reason.startswith("paused after"):
                    break
                if self.pause_requested:
                    s.stop_reason = reason = f"paused by you at micro-op {s.position}"
                    break
                if time.monotonic() - self._painted >= interval:
                    self.for_each_pane()
                await asyncio.sleep(0)
        finally:
            self.running = False
            self.sub_title = f"{s.scenario.name} · {len(s.cpus())} CPUs"
        s.record("continue")
        self.report(f"{reason}\n{where(s)}")
        self.save_now()
        self.for_each_pane()

    def action_focus_cpu(self, step: int) -> None:
        n = len(self.session.cpus())
        self.session.focus_cpu = (self.session.focus_cpu - 1 + step) % n + 1
        self.session.focus_thread = None
        self.for_each_pane()

    def action_focus_thread(self, step: int) -> None:
        names = [t.name for t in self.session.scenario.threads()]
        cur = self.session.focused_thread()
        i = names.index(cur) if cur in names else -1
        self.session.focus_thread = names[(i + step) % len(names)]
        self.for_each_pane()

    def action_focus_console(self) -> None:
        self.query_one("#console-in", Input).focus()

    def action_leave_console(self) -> None:
        self.query_one(ThreadsPane).focus()

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
            self.notify(f"trace written to {Path(path).resolve()}", timeout=8)
        else:
            self.notify("the trace could not be written (see the console)", severity="error")

    def action_toggle_pane(self, pane: str) -> None:
        """Hide or show one pane (side-by-side layout); the others take its room."""
        for w in self.query(f"#{pane}"):
            w.display = not w.display

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        keys = []
        for b in self.BINDINGS:
            if isinstance(b, Binding):
                current = self._keymap_for(b)
                keys.append((current, b.description or b.action))
        self.push_screen(HelpScreen(keys))

    def _keymap_for(self, b: Binding) -> str:
        keymap = getattr(self, "_keymap", None) or {}
        keys = keymap.get(b.id, b.key) if b.id else b.key
        return " or ".join(KEY_NAMES.get(k, k) for k in keys.split(","))

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
            ("Tabs / side by side", "switch the pane layout", self.action_toggle_tabs),
            ("Export trace", "the run so far for ui.perfetto.dev", self.action_export_trace),
            ("Help", "keys and commands", self.action_help),
        ):
            yield SystemCommand(title, help_, action)


def run_app(
    session: Session, lab: Lab | None = None, autosave: Path | None = None, mouse: bool = True
) -> int:
    """Run the monitor in this terminal; the exit code.

    Without the mouse (`--no-mouse`, or L4TUI_MOUSE=0 as `l4tui serve --no-mouse`
    sets) the terminal keeps its own selection and copy; every action has a key.
    """
    app = MonitorApp(session, lab=lab, autosave=autosave)
    result = app.run(mouse=mouse and os.environ.get("L4TUI_MOUSE", "1") != "0")
    return int(result or 0)
