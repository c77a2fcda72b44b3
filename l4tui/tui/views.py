"""The monitor's text panes: the focused thread's TCB by cache line, the IPC phase it is in,
the mailboxes and proxies, the APIC slots. Each renders one of the session's plain-data
views (l4tui/panes.py) and changes nothing.

Every pane is laid out for the width it has: values are printed whole — a
table that does not fit becomes `name value` pairs, a list wraps under its
column — and a pane holding more than its height scrolls from the keyboard
once focused (arrows, PageUp/PageDown, Home/End, j/k). States are spelled out
(M/E/S/I, `waiting`, `IF=1`) so no meaning rests on colour alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from l4tui import panes
from l4tui.pseudocode import locate, path_for
from l4tui.tui.wrap import fit_table, hang, pairs

if TYPE_CHECKING:
    from l4tui.session import Session

MESI_STYLE = {"M": "bold red", "E": "bold yellow", "S": "green", "I": "dim"}


def set_title(widget: Widget, title: str) -> None:
    """A frame's title, set only when it changes: every assignment repaints the whole pane."""
    if str(widget.border_title or "") != title:
        widget.border_title = title


def rows(renderable: object) -> int:
    """How many rows a Text made for its width takes (it is never wrapped again)."""
    return renderable.plain.count("\n") + 1 if isinstance(renderable, Text) else -1


def update(widget: Static, renderable: Text) -> None:
    """`widget.update`, asking for a new layout only when its height changes: with 8 CPUs
    and 256 threads a relayout per pane per step was most of a step's repaint."""
    same = rows(renderable) == getattr(widget, "_rows", None) and rows(renderable) >= 0
    widget._rows = rows(renderable)  # type: ignore[attr-defined]
    widget.update(renderable, layout=not same)


class TextPane(VerticalScroll):
    """A pane of text made for its width; it scrolls when it holds more than its height."""

    ALLOW_MAXIMIZE = True
    BINDINGS = [
        Binding("j", "scroll_down", "down", show=False),
        Binding("k", "scroll_up", "up", show=False),
    ]
    shown: object = None

    def compose(self):  # ComposeResult
        yield Static(classes="head")  # docked: column headers stay over their columns
        yield Static(classes="body")

    @property
    def width(self) -> int:
        """Columns for text: the pane's inside, less a scrollbar it may need."""
        return max(20, (self.scrollable_content_region.width or 60) - 1)

    def show(self, s: Session) -> None:
        self.session = s
        key, make = self.view(s)
        key = (key, self.width)
        if key == self.shown:
            return
        self.shown = key
        made = make(self.width)
        head, body = made if isinstance(made, tuple) else (None, made)
        head_widget, body_widget = self.children[0], self.children[1]
        assert isinstance(head_widget, Static) and isinstance(body_widget, Static)
        head_widget.display = head is not None
        if head is not None:
            update(head_widget, head)
        update(body_widget, body)
        self.after_update(s)

    def view(self, s: Session) -> tuple[Any, Any]:
        """(a value that changes when the pane must repaint, width -> the renderable, or
        width -> (a head that stays put, the body that scrolls))."""
        raise NotImplementedError

    def after_update(self, s: Session) -> None:
        """Called after the text changed (the phase pane scrolls to its mark)."""

    def on_resize(self) -> None:
        if getattr(self, "session", None) is not None:
            self.show(self.session)


class TcbPane(TextPane):
    """The focused thread's TCB by cache line: fields and offsets, MESI per CPU, traffic (§8.6)."""

    thread = ""  # whose TCB it shows

    def view(self, s: Session) -> tuple[Any, Any]:
        name, data = s.call(tcb_view)  # where the session lives (engine.py)
        self.thread = name
        if data is None:
            return name, lambda w: Text("no thread in focus")
        lines, via, partner, layout = data
        set_title(self, f"2 TCB · {name}")
        key = (name, lines, via, partner, layout)
        return key, lambda w: tcb_text(name, layout, lines, via, partner, w)


def tcb_view(s: Session) -> tuple[str, Any]:
    """The TCB pane's data: the focused thread, and its lines, proxy, partner and layout."""
    name = s.focused_thread()
    k = s.system.kernel
    if name not in k.by_name:
        return name, None
    return name, (panes.tcb_lines(s, name), s.focus_via, s.partner_of_focus(), k.layout.name)


def tcb_text(
    name: str,
    layout: str,
    lines: tuple[panes.TcbLine, ...],
    via: str | None,
    partner: str | None,
    width: int,
) -> tuple[Text, Text]:
    """A TCB's lines: the MESI state in each CPU's cache, moves, last access, the fields;
    (the heading and the column header, the lines)."""
    top = Text(no_wrap=True)
    t = Text(no_wrap=True)
    ncpu = len(lines[0].states) if lines else 0
    head = [f"{name} TCB", f"layout {layout}"]
    if via:
        head.append(f"{via} works for it")
    if partner:
        head.append(f"partner {partner} (p)")
    for row in hang("", " · ".join(head).split(" "), width, indent=2):
        top.append(row + "\n", style="bold")
    packed = ncpu > 4  # many CPUs: one letter each, no gaps
    mesi_head = f"c1-{ncpu}" if packed else " ".join(f"c{i + 1}" for i in range(ncpu))
    mesi_w = max(len(mesi_head), ncpu if packed else 3 * ncpu - 1)
    group_w = max([5, *(len(x.group) for x in lines)])
    last_w = max([4, *(len(x.last) for x in lines)])
    moves_w = max([5, *(len(str(x.transitions)) for x in lines)])
    prefix = 2 + 1 + group_w + 1 + mesi_w + 1 + moves_w + 1 + last_w + 1
    inline = width - prefix >= 20  # fields beside the line, or under it
    header = (
        f"ln {'group'.ljust(group_w)} {mesi_head.ljust(mesi_w)} {'moves'.rjust(moves_w)} "
        f"{'last'.ljust(last_w)} " + ("fields@offset" if inline else "")
    )
    top.append(header.rstrip()[:width], style="dim")
    for x in lines:
        t.append(f"{x.index:>2} {x.group.ljust(group_w)} ")
        for i, st in enumerate(x.states):
            t.append(st, style=MESI_STYLE.get(st, ""))
            if not packed and i < ncpu - 1:
                t.append("  ")
        t.append(" " * (mesi_w - (ncpu if packed else 3 * ncpu - 2)))
        t.append(f" {str(x.transitions).rjust(moves_w)} {x.last.ljust(last_w)} ")
        fields = [f"{f}@{off}" for f, off in x.fields]
        if inline:
            rows = hang("", fields, width - prefix)
            t.append(rows[0] + "\n")
            for row in rows[1:]:
                t.append(" " * prefix + row + "\n")
        else:
            t.append("\n")
            for row in hang("     ", fields, width):
                t.append(row + "\n", style="")
    t.rstrip()
    return top, t


class PhasePane(TextPane):
    """The pseudo-code of the path the focused thread is in (or the proxy working for it),
    its current line marked ▶ and scrolled into view."""

    mark_row = 0

    def view(self, s: Session) -> tuple[Any, Any]:
        name, label, latest, partner, focused, via = s.call(phase_view)
        title, lines, mark = path_for(label)
        if latest and latest != label:
            # A label the path pane does not switch paths for (the mailbox plumbing, §8.3.4):
            # still its line if the path shown has one, so ▶ is where the thread is.
            found = locate(latest)
            if found is not None and found[0] == title:
                mark, label = found[1], latest
        who = f"{name} for {focused}" if via else name
        set_title(self, f"3 IPC phase · {who}")
        key = (who, label, partner)

        def make(width: int) -> tuple[Text, Text]:
            top = Text(no_wrap=True)
            t = Text(no_wrap=True)
            head = [f"{who}:", title, "·", "at", label or "-", "·", "partner", partner]
            top.append("\n".join(hang("", head, width, indent=2)), style="bold")
            n = 0
            self.mark_row = 0
            for i, line in enumerate(lines):
                marked = i == mark
                lead = "▶ " if marked else "  "
                if len(lead) + len(line.text) <= width:
                    wrapped = [lead + line.text]
                else:  # a long line goes on under its own indent, a little further in
                    indent = len(line.text) - len(line.text.lstrip(" "))
                    words = line.text.split()
                    first = [" " * indent + words[0], *words[1:]]
                    wrapped = hang(lead, first, width, indent=2 + indent + 4)
                if marked:
                    self.mark_row = n
                for row in wrapped:
                    t.append(
                        row.ljust(width) if marked else row, style="bold reverse" if marked else ""
                    )
                    t.append("\n")
                    n += 1
            t.rstrip()
            return top, t

        return key, make

    scrolled_to: object = None

    def after_update(self, s: Session) -> None:
        # Keep ▶ in view, a few lines of context above it — once the new text is laid out,
        # and only when the mark moved (a scroll is a frame of its own).
        want = (self.mark_row, self.shown)
        if want != self.scrolled_to:
            self.scrolled_to = want
            self.call_after_refresh(self.scroll_to, y=max(0, self.mark_row - 3), animate=False)


def phase_view(s: Session) -> tuple[Any, ...]:
    """The phase pane's data: whose path, its last label and latest mark, the partner."""
    name = s.focus_via or s.focused_thread()
    partner = s.partner_of_focus() or "-"
    return (
        name, s.last_phase.get(name), latest_label(s, name), partner, s.focused_thread(),
        s.focus_via,
    )  # fmt: skip


def latest_label(s: Session, name: str, look: int = 2000) -> str | None:
    """The last phase label `name` passed, of any kind, among the last `look` marks."""
    marks = s.marks
    for m in reversed(marks[-look:]):
        if m.thread == name:
            return m.label
    return None


class MailboxPaneView(TextPane):
    """The flag words, each mailbox's owner and operation, the busy proxies' lists (§8.4)."""

    def view(self, s: Session) -> tuple[Any, Any]:
        p = s.call(panes.mailbox_pane)
        return p, lambda w: mailbox_text(p, w)


def mailbox_text(p: panes.MailboxPane, width: int) -> Text:
    t = Text(no_wrap=True)
    for row in hang("flags ", [f"cpu{cpu} {word:#010x}" for cpu, word in p.flags], width):
        t.append(row + "\n")
    if not p.mail:
        t.append("no mailbox in use\n", style="dim")
    for m in p.mail:
        words = [m.op, m.sender, "→", m.dest, "via", m.target] + (["(reply)"] if m.reply else [])
        for i, row in enumerate(hang(f"#{m.index} ", words, width)):
            t.append(row + "\n", style="bold" if i == 0 else "")
    busy = [x for x in p.proxies if x.first or x.last or x.state not in ("waiting", "inactive")]
    for x in busy:
        words = [f"cpu{x.cpu}", x.state, "first", f"{x.first:#x}", "last", f"{x.last:#x}"]
        for row in hang(f"{x.name} ", words, width):
            t.append(row + "\n")
    if not busy:
        t.append("all proxies idle", style="dim")
    t.rstrip()
    return t


class ApicPaneView(TextPane):
    """Per CPU the two IPI slots, IRR/ISR, TPR and timer; IPIs in flight with arrival (§3.4)."""

    def view(self, s: Session) -> tuple[Any, Any]:
        p = s.call(panes.apic_pane)
        return p, lambda w: apic_text(p, w)


APIC_HEAD = ("cpu", "slots", "irr", "isr", "tpr", "timer", "ipis", "rej")


def apic_text(p: panes.ApicPane, width: int) -> Text | tuple[Text, Text]:
    rows = []
    for a in p.apics:
        slots = [f"{v:#x}{'*' if busy else ''}←c{src}" for v, src, busy in a.slots]
        slots += ["·"] * (a.nslots - len(slots))
        rows.append(
            (
                f"cpu{a.cpu}",
                " ".join(slots),
                ",".join(f"{v:#x}" for v in a.irr) or "-",
                ",".join(f"{v:#x}" for v in a.isr) or "-",
                str(a.tpr),
                f"{a.timer:,}" if a.timer else "-",
                str(a.received),
                str(a.rejected),
            )
        )
    right = (False, False, False, False, True, True, True, True)
    t = Text(no_wrap=True)
    top = None
    table = fit_table(APIC_HEAD, rows, width, right)
    if table is not None:
        top = Text(table[0], style="dim", no_wrap=True)
        for line in table[1:]:
            t.append(line + "\n")
    else:
        for line in pairs(APIC_HEAD, rows, width):
            t.append(line + "\n")
    flight = [
        f"{f.vector:#x} c{f.sender}→{','.join(f'c{d}' for d in f.dests)} @{f.arrival:,}"
        for f in p.in_flight
    ]
    for row in hang("in flight: ", flight or ["none"], width):
        t.append(row + "\n")
    note = "* in service; a third IPI waits for a free slot (§8.3.4)"
    t.append("\n".join(hang("", note.split(), width, indent=2)), style="dim")
    return (top, t) if top is not None else t
