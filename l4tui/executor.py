"""Runs parsed commands against a `Session` and renders their output as plain text.

The one executor of the command language (STYLE.md point 5): the line console
and the TUI's console pane both call `execute`. A bad command yields an
`error: …` line and changes nothing. Every command that moves the machine
ends its output with where each CPU is.
"""

from __future__ import annotations

import json
from pathlib import Path

from l4tui import expr, views
from l4tui.breakpoints import KINDS, SYSCALLS, Breakpoint, known_labels, matches_a_label
from l4tui.grammar import BREAK_USAGE, Command, CommandError, help_text, parse, suggest
from l4tui.phases import phase_prefixes
from l4tui.session import Session, from_state, restore_counts
from machine.errors import ConfigError, MachineError

where = views.where  # the stop display, shared with callers that print it alone


def execute(session: Session, line: str, show_where: bool = True) -> str:
    """The output of one command line (possibly empty); never raises for bad input.

    `show_where=False` leaves out the CPU table a stop ends with, for a front end that
    shows the CPUs in a pane of its own (the monitor): the stop's reason is then last.
    """
    return outcome(session, line, show_where)[0]


def outcome(session: Session, line: str, show_where: bool = True) -> tuple[str, bool]:
    """The output of one command line and whether it succeeded (False: an `error: …`),
    for a caller that must know a line failed without reading its text — a script,
    which ends with exit status 2 when one did."""
    try:
        cmd = parse(line)
        if cmd is None:
            return "", True
        out = _run(session, cmd)
    except (CommandError, MachineError) as e:
        return f"error: {e}", False
    except ConfigError as e:
        return e.format(), False
    session.record(line)
    if isinstance(out, Stopped) and show_where:
        return f"{out}\n{where(session)}", True
    return str(out), True


def load_session(path: str) -> Session:
    """A saved session, replayed to its position with its breakpoints and watchpoints."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the session: {e}", path) from None
    s, commands = from_state(data, path)
    done, stops = list(s.commands), list(s.stops)
    for line in commands:
        out = _restore(s, line)
        if out.startswith("error"):
            raise ConfigError(f"a saved stop {line!r}: {out}", path)
    s.commands, s.stops = done, stops  # re-creating the stops is not something the user did
    try:
        restore_counts(s, data)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"a saved session with a bad field: {e}", path) from None
    s.stop_reason = f"loaded {path}"
    return s


def _restore(s: Session, line: str) -> str:
    """Re-create a saved breakpoint or watchpoint: a phase glob saved before globs were
    checked against the kernel's labels still loads (it never stops, as then)."""
    try:
        cmd = parse(line)
        if cmd is not None and cmd.name in ("break", "tbreak"):
            bp = _breakpoint(s, cmd.args, cmd.name == "tbreak", any_label=True)
            s.add_break(bp)
            return f"breakpoint {bp.number}"
    except (CommandError, MachineError) as e:
        return f"error: {e}"
    return execute(s, line)


def load_schedule(path: str, scenario_file: str | None = None) -> Session:
    """A fresh session that follows a schedule from `l4tui explore`, stopping at each choice.

    The scenario is the schedule's own, or `scenario_file` if given (it must be the same
    scenario: the schedule's inputs mean nothing elsewhere).
    """
    from kernel.scenario import load_scenario
    from l4tui.explore import read_schedule

    log, stops, data = read_schedule(path)
    file = scenario_file or data.get("file")
    if not file:
        raise ConfigError("the schedule names no scenario file; give one", path)
    scenario = load_scenario(str(file))
    if scenario.name != data.get("scenario"):
        raise ConfigError(
            f"the schedule is for scenario {data.get('scenario')!r}, not {scenario.name!r}", path
        )
    seed = data.get("seed")
    s = Session(scenario, seed if isinstance(seed, int) else None)
    s.follow(log, stops)
    s.stop_reason = (
        f"following {path}: {data.get('kind')} after {data.get('steps')} micro-ops; "
        f"continue stops at each of its {len(stops) - 1} preemption(s) and there"
    )
    return s


def _count(text: str, what: str = "N") -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {text!r}") from None
    if n < 0:
        raise CommandError(f"{what} must be >= 0, not {n}")
    return n


class Stopped(str):
    """A command's output that is a stop's reason: the machine moved, so a front end without
    a CPU pane of its own follows it with where each CPU is (`outcome`)."""


def _run(s: Session, cmd: Command) -> str:
    name, args = cmd.name, cmd.args
    if name == "help":
        return help_text(args[0] if args else None)
    if name == "quit":
        return ""
    if name == "step" and args and args[0] == "cpu":
        if len(args) != 2:
            raise CommandError("usage: step cpu N")
        return Stopped(s.step_cpu(views.cpu_number(s, args[1])))
    if name in ("stepi", "step"):
        if len(args) > 1:
            raise CommandError(f"usage: {name} [N]")
        n = _count(args[0]) if args else 1
        return Stopped(s.stepi(n) if name == "stepi" else s.step(n))
    if name == "next":
        return Stopped(s.next())
    if name == "finish":
        return Stopped(s.finish())
    if name == "continue":
        return Stopped(s.cont())
    if name == "run":
        return Stopped(s.run_cycles(_count(args[0], "CYCLES")))
    if name == "reverse-stepi":
        return Stopped(s.reverse_stepi(_count(args[0]) if args else 1))
    if name == "reverse-step":
        return Stopped(s.reverse_step(_count(args[0]) if args else 1))
    if name == "reverse-continue":
        return Stopped(s.reverse_continue())
    if name == "where":
        return where(s)
    if name in ("break", "tbreak"):
        bp = s.add_break(_breakpoint(s, args, temporary=name == "tbreak"))
        return f"{'log point' if bp.log_only else 'breakpoint'} {bp.number} at {bp.spec()}"
    if name == "watch":
        return _watch(s, args)
    if name == "delete":
        if args:
            n = _count(args[0])
            if not s.delete_break(n):
                raise CommandError(f"no breakpoint {n}; see info breakpoints")
            return f"deleted breakpoint {n}"
        n, w = s.delete_break(None), len(s.watches)
        s.watches = []
        return f"deleted {n} breakpoint(s) and {w} watchpoint(s)"
    if name in ("disable", "enable"):
        return _enable(s, name == "enable", args)
    if name == "x":
        from l4tui import examine

        return examine.show(s, args)
    if name == "lab":
        return _lab(s)
    if name == "inject":
        views.thread(s, args[0])
        s.inject(args[0], args[1], list(args[2:]))
        return f"{args[0]} will run {args[1]} next"
    if name == "save":
        try:
            return s.save(args[0])
        except OSError as e:
            raise CommandError(f"cannot save to {args[0]}: {e.strerror}") from None
    if name == "export":
        if args[0] != "perfetto":
            raise CommandError("usage: export perfetto FILE")
        from l4tui.trace import export_session

        try:
            return export_session(s, args[1])
        except OSError as e:
            raise CommandError(f"cannot write {args[1]}: {e.strerror}") from None
    if name == "load":
        if args[0] == "schedule":
            if len(args) != 2:
                raise CommandError("usage: load schedule FILE")
            loaded = load_schedule(args[1])  # ConfigError: reported, nothing changes
            s.__dict__.update(loaded.__dict__)
            return Stopped(s.stop_reason)
        if len(args) != 1:
            raise CommandError("usage: load FILE | load schedule FILE")
        loaded = load_session(args[0])  # ConfigError: reported, nothing changes
        s.__dict__.update(loaded.__dict__)  # the front end keeps its Session object
        return Stopped(f"{s.stop_reason}: {s.scenario.name} at micro-op {s.position}")
    if name == "layout":
        return _relayout(s, args[0])
    if name == "sched":
        if args[0] not in ("timed", "manual"):
            raise CommandError(f"sched takes timed or manual, not {args[0]!r}")
        s.set_policy(args[0])
        return f"scheduling: {args[0]}"
    if name == "focus":
        return _focus(s, args)
    if name == "check":
        if args[0] != "invariants":
            raise CommandError("usage: check invariants")
        from kernel import invariants

        bad = invariants.check(s.system.kernel)
        return "invariants hold" if not bad else "\n".join(f"violated: {v}" for v in bad)
    if name == "print":
        return expr.show(s, " ".join(args))
    if name == "info":
        return views.render(s, args[0], args[1] if len(args) > 1 else None)
    raise CommandError(f"{name} is not implemented")  # pragma: no cover - the table says


def _enable(s: Session, on: bool, args: tuple[str, ...]) -> str:
    """`enable [N]` / `disable [N]`: one breakpoint, or all of them."""
    verb = "enabled" if on else "disabled"
    if not args:
        for bp in s.breakpoints:
            bp.enabled = on
        return f"{verb} {len(s.breakpoints)} breakpoint(s)"
    n = _count(args[0])
    bp = next((b for b in s.breakpoints if b.number == n), None)
    if bp is None:
        raise CommandError(f"no breakpoint {n}; see info breakpoints")
    bp.enabled = on
    return f"{verb} breakpoint {n}: {bp.spec()}"


def _lab(s: Session) -> str:
    """`lab`: the session's lab sheet as plain text, each exercise ticked when done."""
    from l4tui.lab import load_lab, text

    path = s.meta.get("lab")
    if not path:
        raise CommandError("this session has no lab sheet (open one with l4tui lab LAB)")
    return text(load_lab(path), s)


FOCUS_USAGE = "usage: focus cpu N [pin] | focus thread T [pin] | focus follow"


def _focus(s: Session, args: tuple[str, ...]) -> str:
    if args == ("follow",):
        s.focus_pinned = False
        return "focus: follows each stop"
    if len(args) < 2 or args[0] not in ("cpu", "thread") or args[2:] not in ((), ("pin",)):
        raise CommandError(FOCUS_USAGE)
    what, value, pin = args[0], args[1], len(args) == 3
    if what == "cpu":
        s.set_focus(cpu=views.cpu_number(s, value), pin=pin)
        shown = f"cpu{s.focus_cpu}"
    else:
        s.set_focus(thread=views.thread(s, value).name, pin=pin)
        shown = s.focus_thread or value
    note = " (pinned: stops leave it here; focus follow undoes)" if pin else ""
    return f"focus: {shown}{note}"


def _breakpoint(
    s: Session, args: tuple[str, ...], temporary: bool, any_label: bool = False
) -> Breakpoint:
    """Parse `WHAT [thread T] [cpu N] [after N] [log] [if EXPR]` into a breakpoint.

    A phase glob must match a label some kernel path has, unless `any_label`.
    """
    words = list(args)
    cond = None
    if "if" in words:
        i = words.index("if")
        cond = " ".join(words[i + 1 :])
        words = words[:i]
        if not cond:
            raise CommandError("if needs a condition, e.g. if cli.partner == srv")
        expr.check(s, cond)
    if not words:
        raise CommandError(f"usage: break {BREAK_USAGE}")
    head = words.pop(0)
    if head in KINDS[1:]:
        kind, what = head, ""
        if head == "syscall":
            if not words or words[0] not in SYSCALLS:
                hint = suggest(words[0] if words else "", list(SYSCALLS))
                raise CommandError(f"break syscall NAME, NAME one of {', '.join(SYSCALLS)}{hint}")
            what = words.pop(0)
        elif head == "ipi" and words and words[0] in ("sent", "delivered"):
            what = words.pop(0)
    else:
        kind, what = "phase", head
        if not any_label and not matches_a_label(what):
            raise CommandError(f"no phase label matches {what!r}{_label_hint(what)}")
    bp = Breakpoint(0, kind, what, cond=cond, temporary=temporary)
    while words:
        word = words.pop(0)
        if word == "log":
            bp.log_only = True
        elif word in ("thread", "cpu", "after") and words:
            value = words.pop(0)
            if word == "thread":
                bp.thread = views.thread(s, value).name
            elif word == "cpu":
                bp.cpu = views.cpu_number(s, value)
            else:
                bp.after = _count(value, "after")
        else:
            raise CommandError(f"unexpected {word!r}; usage: break {BREAK_USAGE}")
    return bp


def _label_hint(glob: str) -> str:
    """A did-you-mean for a phase glob that matches nothing, else the label families."""
    labels = known_labels()
    hint = suggest(glob, [*labels, *phase_prefixes()])
    if hint:
        return hint
    families = sorted({label.split(".")[0] + ".*" for label in labels if "." in label})
    return f"; the labels are {' '.join(families)} and idle (Tab lists them)"


def _watch(s: Session, args: tuple[str, ...]) -> str:
    if args[0] == "line":
        # watch line THREAD.N cpu C: the MESI state of the TCB's N-th line in CPU C's cache
        if len(args) != 4 or args[2] != "cpu" or "." not in args[1]:
            raise CommandError("usage: watch line THREAD.N cpu C (e.g. watch line srv.1 cpu 2)")
        name, line = args[1].split(".", 1)
        t = views.thread(s, name)
        layout = s.system.kernel.layout
        lines = len(layout.lines())
        n = _count(line, "the line")
        if n >= lines:
            raise CommandError(f"{name}'s TCB has lines 0..{lines - 1}, not {n}")
        cpu = views.cpu_number(s, args[3])
        paddr = t.tcb - views.KBASE + n * layout.line_size
        w = s.add_watch(f"line {name}.{n} cpu {cpu}", paddr, cpu)
        return f"watchpoint on {w.expr} (now {s.watch_text(w, w.value)})"
    if len(args) != 1 or "." not in args[0]:
        raise CommandError("usage: watch THREAD.FIELD | watch line THREAD.N cpu C")
    name, field = args[0].split(".", 1)
    t = views.thread(s, name)
    if field not in t.f:
        raise CommandError(f"no TCB field {field!r}{suggest(field, list(t.f))}")
    w = s.add_watch(args[0], t.f[field] - views.KBASE)
    return f"watchpoint on {w.expr} (now {s.watch_text(w, w.value)})"


def _relayout(s: Session, layout: str) -> str:
    """The same scenario with another TCB layout, back at the same point of the program:
    the same thread at the same phase label, the nth time (relayout.py, §8.6)."""
    from l4tui.relayout import switch

    return Stopped(switch(s, layout))
