"""The monitor's keys: named actions with ids, the user's keymap, and what the footer shows.

Every binding has an id (STYLE.md point 7), so `$XDG_CONFIG_HOME/l4tui/keymap.yaml`
can rebind it (`step: f10`). A key that types a character does nothing for the
monitor while a text field has the focus — the field takes it — so the footer
shows, in the console, only actions that have a non-typing key (F5, F10, …)
and shows that key; in the panes it shows the first key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from textual.binding import Binding

from machine.errors import ConfigError
from machine.yamlsrc import Source, load_yaml_file

# Textual's names for keys that type punctuation, as a terminal sends them.
KEY_NAMES = {
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "right_curly_bracket": "}",
    "left_curly_bracket": "{",
    "colon": ":",
    "question_mark": "?",
    "slash": "/",
    "full_stop": ".",
    "comma": ",",
}
TYPED = set(KEY_NAMES)  # keys that type a character into a text field

BINDINGS: list[Binding] = [
    # In the order the footer shows them (the ones that fit 80 columns first).
    Binding("question_mark,f1", "help", "help", id="help", tooltip="this screen (from anywhere)"),
    Binding("c,f5", "toggle_run", "run", id="continue", tooltip="continue; again pauses it"),
    Binding("s,f10", "step", "step", id="step", tooltip="step: to the next phase label"),
    Binding("i,f11", "stepi", "stepi", id="stepi", tooltip="stepi: one micro-op"),
    Binding(
        "r,f7",
        "reverse_step",
        "back",
        id="reverse-step",
        tooltip="reverse-step: back one phase label",
    ),
    Binding(
        "right_square_bracket", "focus_cpu(1)", "cpu", id="next-cpu", tooltip="focus the next CPU"
    ),
    Binding(
        "z,f2",
        "zoom",
        "zoom",
        id="zoom",
        tooltip="the focused pane fills the screen; again restores",
    ),
    Binding(
        "colon", "focus_console", "console", id="console", tooltip="to the console, from any pane"
    ),
    Binding("q", "quit", "quit", id="quit"),
    Binding(
        "n,f8",
        "next",
        "next",
        id="next",
        show=False,
        tooltip="next: the focused thread's next phase label",
    ),
    Binding(
        "f,shift+f11",
        "finish",
        "finish",
        id="finish",
        show=False,
        tooltip="finish: until the focused thread's system call returns",
    ),
    Binding(
        "R,shift+f5",
        "reverse_continue",
        "back to stop",
        id="reverse-continue",
        show=False,
        tooltip="reverse-continue: to just before the last breakpoint or watchpoint hit",
    ),
    Binding(
        "left_square_bracket",
        "focus_cpu(-1)",
        "cpu back",
        id="prev-cpu",
        show=False,
        tooltip="focus the previous CPU",
    ),
    Binding(
        "right_curly_bracket",
        "focus_thread(1)",
        "thread",
        id="next-thread",
        show=False,
        tooltip="focus the next thread",
    ),
    Binding("left_curly_bracket", "focus_thread(-1)", "thread back", id="prev-thread", show=False),
    Binding(
        "p",
        "focus_partner",
        "partner",
        id="partner",
        show=False,
        tooltip="focus the focused thread's IPC partner; again: back",
    ),
    Binding(
        "P",
        "toggle_pin",
        "pin focus",
        id="pin",
        show=False,
        tooltip="stops leave the focus where it is; again: it follows them",
    ),
    Binding(
        "t",
        "cycle_layout",
        "tabs/split/wide",
        id="toggle-panes",
        show=False,
        tooltip="the next layout that fits the terminal",
    ),
    Binding("1", "show_pane('cpus')", "CPUs", id="pane-cpus", show=False),
    Binding("2", "show_pane('tcb')", "TCB", id="pane-tcb", show=False),
    Binding("3", "show_pane('phase')", "phase", id="pane-phase", show=False),
    Binding("4", "show_pane('threads')", "threads", id="pane-threads", show=False),
    Binding("5", "show_pane('mailboxes')", "mailboxes", id="pane-mailboxes", show=False),
    Binding("6", "show_pane('apic')", "APIC", id="pane-apic", show=False),
    Binding("7", "show_pane('log')", "event log", id="pane-log", show=False),
    Binding("8", "show_pane('lab')", "lab sheet", id="pane-lab", show=False),
    Binding("m", "mark", "mark", id="mark", show=False, tooltip="a mark in the event log"),
    Binding(
        "e",
        "export_trace",
        "export trace",
        id="export-trace",
        show=False,
        tooltip="the run so far as a Perfetto trace, in this directory",
    ),
    Binding("ctrl+t", "toggle_theme", "theme", id="theme", show=False),
    Binding(
        "ctrl+c",
        "pause",
        "pause",
        id="pause",
        show=False,
        priority=True,
        tooltip="pause a running continue",
    ),
]
ACTION_IDS = {b.id for b in BINDINGS if b.id}


KEYMAP_BYTES = 64_000
"""A keymap is a few dozen lines; a larger file is refused before it is read."""
KEYS_TEXT = 200
"""The most characters of keys one action takes ("f10,ctrl+x,...")."""
_KEY = re.compile(r"[^\s,]{1,40}")  # one key name: f10, ctrl+x, right_square_bracket, x


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "l4tui" / "keymap.yaml"


def load_keymap(path: Path, ids: set[str]) -> tuple[dict[str, str], str | None]:
    """A user keymap {binding id: keys}; an error message instead if the file is bad.

    The file is input from outside (STYLE.md point 10), read the way every YAML file
    is (machine/yamlsrc.py): a regular file (a FIFO or device is refused without
    waiting on it) of at most `KEYMAP_BYTES`, UTF-8, no YAML aliases (an alias bomb
    expands exponentially), nesting at most `MAX_DEPTH` deep — checked before
    anything is built. A bad file gives one line (`FILE:LINE:COL: why`) and no keys
    at all: the monitor starts with its default keys. No file: no keys, no message.
    """
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {}, None
    except (OSError, ValueError) as e:  # a name too long, a NUL, a loop of links
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return {}, f"{path}: cannot read the keymap: {why}"
    try:
        src = load_yaml_file(str(path), "keymaps", KEYMAP_BYTES, "the keymap")
    except ConfigError as e:
        return {}, " ".join(e.format().removeprefix("error: ").split())
    data = src.data
    if data is None:
        return {}, None  # an empty file: the default keys
    if not isinstance(data, dict):
        return {}, f"{path}: a keymap maps action ids to keys, e.g. step: f10"
    out: dict[str, str] = {}
    for key, value in data.items():
        where = _where(src, ("<key>", key), path)
        if key not in ids:
            return {}, f"{where}: no action {_said(key)}; actions: {', '.join(sorted(ids))}"
        where = _where(src, (key,), path)
        if not isinstance(value, str) or not value.strip() or len(value) > KEYS_TEXT:
            return {}, f"{where}: {key} takes keys as text, e.g. {key}: f10 or {key}: x,f10"
        names = [k.strip() for k in value.split(",")]
        bad = next((k for k in names if not _KEY.fullmatch(k)), None)
        if bad is not None:
            return {}, f"{where}: {key}: {_said(bad)} is not a key name (f10, ctrl+x, x)"
        out[str(key)] = value
    return out, None


def _where(src: Source, at: tuple[object, ...], path: Path) -> str:
    """FILE:LINE:COL of a value of the keymap (FILE alone if its position is not known)."""
    file, line, col = src.positions.get(at, (str(path), None, None))
    return f"{file}:{line}:{col}" if line is not None else str(file)


def _said(value: object) -> str:
    """A value from the file quoted in a message, cut short."""
    text = repr(value)
    return text if len(text) <= 42 else text[:40] + "..."


def types_a_character(key: str) -> bool:
    """Whether a text field takes `key` as typing (so no binding of the app sees it)."""
    return len(key) == 1 or key in TYPED or key.startswith("shift+") and len(key) == 7


def display(key: str) -> str:
    """A key as the user types it: `]`, `F10`, `Shift+F5`."""
    if key in KEY_NAMES:
        return KEY_NAMES[key]
    parts = key.split("+")
    parts[-1] = (
        parts[-1].upper() if parts[-1].startswith("f") and parts[-1][1:].isdigit() else (parts[-1])
    )
    return "+".join(p.capitalize() if p in ("shift", "ctrl", "alt") else p for p in parts)


def keys_of(binding: Binding, keymap: dict[str, str]) -> list[str]:
    """The keys that run `binding` now (the user's keymap first)."""
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    return [k.strip() for k in keys.split(",") if k.strip()]


def usable_keys(binding: Binding, keymap: dict[str, str], typing: bool) -> list[str]:
    """The keys of `binding` that reach the app: all of them, or, while a text field has
    the focus, those that do not type a character."""
    keys = keys_of(binding, keymap)
    return [k for k in keys if not (typing and types_a_character(k))]
