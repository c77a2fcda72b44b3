"""Lab sheets: a scenario, exercise text, and checks evaluated against a student's session.

A lab file (YAML) names its scenario (relative to the lab file), a title, an
introduction and exercises in markdown, each with a check:

```yaml
title: Cross-processor IPC
scenario: ../demos/xp-ipc.yaml
intro: |
  ...
exercises:
  - title: Stop where the proxy sends on the receiver's CPU
    text: Set a breakpoint on the proxy's send path and run to it.
    check: {stopped_at: xp.proxy.send}
```

Checks: `stopped_at: GLOB` (a breakpoint stopped at a matching phase label),
`ran: [COMMAND, ...]` (each was run, matched by its words' start), `ended:
deadlock|end` (how the run ended), `holds: EXPR` (a condition true now, as
`print`), `all: [CHECK, ...]`. They read only what the session records — its
commands, its stops, its state — so a saved session is graded the same way.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import textwrap
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.scenario import Scenario, load_scenario
from l4tui import expr
from l4tui.grammar import CommandError
from l4tui.session import Session
from machine.yamlsrc import Source, load_yaml_file

CHECKS = ("stopped_at", "ran", "ended", "holds", "all")
_STOP = re.compile(r"^breakpoint \d+: (\S+) on cpu")


@dataclass(frozen=True, slots=True)
class Exercise:
    title: str
    text: str
    check: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Lab:
    """A lab sheet: its file, title, introduction, scenario and exercises."""

    file: str
    title: str
    intro: str
    scenario_file: str
    exercises: tuple[Exercise, ...]

    def scenario(self) -> Scenario:
        return load_scenario(self.scenario_file)


def load_lab(path: str | os.PathLike[str]) -> Lab:
    """Read and validate a lab file; ConfigError with the position of a bad value."""
    file = os.fspath(path)
    src = load_yaml_file(file, "lab files")
    data = src.data
    if not isinstance(data, dict):
        raise src.error((), "a lab is a mapping with title, scenario and exercises")
    for key in data:
        if key not in ("title", "scenario", "intro", "exercises"):
            raise src.key_error((), key, f"unknown lab key {key!r}")
    title = _text(src, data, ("title",), required=True)
    scenario = _text(src, data, ("scenario",), required=True)
    try:  # a name too long for the file system, or with a NUL: no such file either
        scenario_file = str((Path(file).parent / scenario).resolve())
        there = Path(scenario_file).is_file()
    except (OSError, ValueError, RuntimeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise src.error(("scenario",), f"cannot use scenario {scenario[:60]!r}: {why}") from None
    if not there:
        raise src.error(("scenario",), f"no scenario file {scenario[:60]!r} next to the lab")
    raw = data.get("exercises")
    if not isinstance(raw, list) or not raw:
        raise src.error(("exercises",), "a lab needs a list of exercises")
    exercises = []
    for i, ex in enumerate(raw):
        at = ("exercises", i)
        if not isinstance(ex, dict):
            raise src.error(at, "an exercise is a mapping with title, text and check")
        for key in ex:
            if key not in ("title", "text", "check"):
                raise src.key_error(at, key, f"unknown exercise key {key!r}")
        check = ex.get("check")
        _validate(src, at + ("check",), check)
        assert isinstance(check, dict)  # _validate refused anything else
        exercises.append(
            Exercise(
                _text(src, ex, at + ("title",), required=True),
                _text(src, ex, at + ("text",)),
                check,
            )
        )
    lab = Lab(file, title, _text(src, data, ("intro",)), scenario_file, tuple(exercises))
    lab.scenario()  # a bad scenario is an error of the lab, found now
    return lab


def _text(src: Source, data: dict[str, Any], path: tuple[Any, ...], required: bool = False) -> str:
    value = data.get(path[-1])
    if value is None:
        if required:
            raise src.error(path[:-1], f"missing {path[-1]!r}")
        return ""
    if not isinstance(value, str):
        raise src.error(path, f"{path[-1]} must be text")
    return value


def _validate(src: Source, path: tuple[Any, ...], check: Any) -> None:
    if not isinstance(check, dict) or len(check) != 1:
        raise src.error(
            path, f"a check is one of {', '.join(CHECKS)}, e.g. {{ran: [info sendq srv]}}"
        )
    ((kind, value),) = check.items()
    if kind not in CHECKS:
        raise src.key_error(path, kind, f"unknown check {kind!r}; checks: {', '.join(CHECKS)}")
    if kind == "all":
        if not isinstance(value, list) or not value:
            raise src.error(path + (kind,), "all takes a list of checks")
        for j, sub in enumerate(value):
            _validate(src, path + (kind, j), sub)
    elif kind == "ran":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise src.error(path + (kind,), "ran takes a list of commands")
    elif kind == "ended":
        if value not in ("deadlock", "end"):
            raise src.error(path + (kind,), "ended takes deadlock or end")
    elif not isinstance(value, str):
        raise src.error(path + (kind,), f"{kind} takes text")


def holds(s: Session, check: dict[str, Any]) -> bool:
    """Whether a session meets a check."""
    ((kind, value),) = check.items()
    if kind == "all":
        return all(holds(s, c) for c in value)
    if kind == "stopped_at":
        return any(
            (m := _STOP.match(reason)) is not None and fnmatch.fnmatchcase(m.group(1), value)
            for reason in s.stops
        )
    if kind == "ran":
        return all(_ran(s, " ".join(want.split())) for want in value)
    if kind == "ended":
        return s.system.ended == value
    try:
        return expr.holds(s, value)
    except CommandError:
        return False


# How far each `ran` check has looked through a session's commands (recorded normalised):
# the lab pane checks after every command, so each check reads only the commands since.
# Kept with the list it read: a load gives the session another list, read from the start.
_SCANNED: weakref.WeakKeyDictionary[Session, tuple[list[str], dict[str, tuple[int, bool]]]] = (
    weakref.WeakKeyDictionary()
)


def _ran(s: Session, want: str) -> bool:
    commands = s.commands
    read, seen = _SCANNED.get(s, (None, {}))
    if read is not commands:
        seen = {}
        _SCANNED[s] = (commands, seen)
    upto, found = seen.get(want, (0, False))
    if not found:
        found = any(c.startswith(want) for c in itertools.islice(commands, upto, None))
    seen[want] = (len(commands), found)
    return found


def progress(lab: Lab, s: Session) -> list[bool]:
    """Each exercise: done or not."""
    return [holds(s, ex.check) for ex in lab.exercises]


def lab_progress(s: Session, lab: Lab) -> list[bool]:
    """`progress` with the session first, for `Session.call` (where the session lives)."""
    return progress(lab, s)


def sheet(lab: Lab, s: Session) -> str:
    """The lab sheet as markdown, each exercise ticked when its check holds."""
    done = progress(lab, s)
    lines = [f"# {lab.title}", "", lab.intro.strip(), ""]
    for i, (ex, ok) in enumerate(zip(lab.exercises, done, strict=True), 1):
        lines.append(f"## {'✅' if ok else '⬜'} {i}. {ex.title}")
        if ex.text.strip():
            lines += ["", ex.text.strip()]
        lines.append("")
    lines.append(f"**{sum(done)} of {len(done)} done**")
    return "\n".join(lines)


TEXT_WIDTH = 78


def _paragraphs(text: str, width: int, indent: str) -> list[str]:
    """Markdown-ish text reflowed to `width`: paragraphs kept apart, `- ` items hanging."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if out:
            out.append("")
        items = re.split(r"\n(?=\s*[-*] )", para)
        for item in items:
            words = " ".join(item.split())
            bullet = re.match(r"[-*] ", words)
            hang = indent + ("  " if bullet else "")
            out += textwrap.wrap(words, width, initial_indent=indent, subsequent_indent=hang) or [
                indent
            ]
    return out


def text(lab: Lab, s: Session, width: int = TEXT_WIDTH) -> str:
    """The lab sheet as plain text for a line console: `[x]` / `[ ]` per exercise, wrapped
    to `width` with a hanging indent, and how many are done (the `lab` command)."""
    done = progress(lab, s)
    lines = textwrap.wrap(lab.title, width) + [""]
    if lab.intro.strip():
        lines += _paragraphs(lab.intro, width, "") + [""]
    numbers = len(str(len(lab.exercises)))
    for i, (ex, ok) in enumerate(zip(lab.exercises, done, strict=True), 1):
        head = f"[{'x' if ok else ' '}] {str(i).rjust(numbers)}. "
        hang = " " * len(head)
        lines += textwrap.wrap(
            " ".join(ex.title.split()), width, initial_indent=head, subsequent_indent=hang
        )
        if ex.text.strip():
            lines += _paragraphs(ex.text, width, hang)
        lines.append("")
    lines.append(f"{sum(done)} of {len(done)} done")
    return "\n".join(lines)
