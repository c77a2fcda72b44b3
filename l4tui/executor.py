"""Runs parsed commands against a `Session` and renders their output as plain text.

The one executor of the command language (STYLE.md point 5): the line console
and the TUI's console pane both call `execute`. A bad command yields an
`error: …` line and changes nothing. Every command that moves the machine
ends its output with where each CPU is.
"""

from __future__ import annotations

from l4tui import expr, grammar, inputs, views
from l4tui.breakpoints import parse_break, parse_watch
from l4tui.grammar import Command, CommandError, help_text, parse
from l4tui.session import Session
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


def load_session(path: str, same_as: Session | None = None) -> Session:
    """A saved session, replayed to its position with its breakpoints and watchpoints.

    The file is data (saved.py): nothing in it is run as a command. `same_as`: the saved
    session must be of this session's scenario and lab (a confined student's `load`).
    """
    from l4tui.files import load_json
    from l4tui.saved import from_state

    s = from_state(load_json(path, "the session", "saved sessions"), path, same_as)
    s.stop_reason = f"loaded {path}"
    return s


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
    cpus = scenario.profile.cpus
    for i, entry in enumerate(log):
        cpu = entry[1] if isinstance(entry, list) else entry
        if cpu is not None and cpu > cpus:
            raise ConfigError(f"log entry {i} steps CPU {cpu}: the machine has {cpus}", path)
    seed = data.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    s = Session(scenario, seed)
    s.follow([inputs.from_json(e) for e in log], stops)
    s.stop_reason = (
        f"following {path}: {data.get('kind')} after {data.get('steps')} micro-ops; "
        f"continue stops at each of its {len(stops) - 1} preemption(s) and there"
    )
    return s


def _count(text: str, what: str = "N", low: int = 0) -> int:
    """A count typed in a command: a number of bounded length, at least `low`.

    The counted commands (stepi, step, run, reverse-stepi, reverse-step) take 1 or more:
    N = 0 would move nothing, and a negative N is not a direction (the reverse commands
    are). Huge counts are fine: a run stops after `LIMIT` micro-ops with a message.
    """
    return grammar.number(text, what, low)


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
        n = _count(args[0], low=1) if args else 1
        return Stopped(s.stepi(n) if name == "stepi" else s.step(n))
    if name == "next":
        return Stopped(s.next())
    if name == "finish":
        return Stopped(s.finish())
    if name == "continue":
        return Stopped(s.cont())
    if name == "run":
        return Stopped(s.run_cycles(_count(args[0], "CYCLES", low=1)))
    if name == "reverse-stepi":
        return Stopped(s.reverse_stepi(_count(args[0], low=1) if args else 1))
    if name == "reverse-step":
        return Stopped(s.reverse_step(_count(args[0], low=1) if args else 1))
    if name == "reverse-continue":
        return Stopped(s.reverse_continue())
    if name == "goto":
        return Stopped(_goto(s, _count(args[0])))
    if name == "where":
        return where(s)
    if name in ("break", "tbreak"):
        bp = s.add_break(parse_break(s, args, temporary=name == "tbreak"))
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
    if name in ("save", "export", "load"):
        return _file_command(s, name, args)
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

        # Once each: mid-update a ring may not close, and the check's walk reports its
        # broken link again on every lap until its own bound.
        bad = list(dict.fromkeys(invariants.check(s.system.kernel)))
        if not bad:
            return "invariants hold"
        busy = [f"cpu{c.number}" for c in s.system.machine.cpus if c.mode != "user" and
                c.waiting is None]  # fmt: skip
        note = (
            f"\n(note: {', '.join(busy)} in a kernel path now: its lists may be half-way "
            "through a change; the invariants hold at each kernel exit)"
            if busy
            else ""
        )
        return "\n".join(f"violated: {v}" for v in bad) + note
    if name == "print":
        return expr.show(s, " ".join(args))
    if name == "info":
        return views.render(s, args[0], args[1] if len(args) > 1 else None)
    raise CommandError(f"{name} is not implemented")  # pragma: no cover - the table says


def _goto(s: Session, target: int) -> str:
    """Micro-op `target` of this history: back (Session.goto restores the nearest checkpoint
    and replays the rest), or forward by running, so breakpoints stop it on the way."""
    if target < s.position:
        return s.goto(target)
    if target == s.position:
        return f"already at micro-op {target}"
    return s.stepi(target - s.position)


def _file_command(s: Session, name: str, args: tuple[str, ...]) -> str:
    """`save`, `export perfetto`, `load`, `load schedule`: each FILE goes through the session's
    file root first (files.py) — anywhere, or only inside a served student's directory."""
    from l4tui.files import FileError, root_of

    root = root_of(s)
    if name == "export" and args[0] != "perfetto":
        raise CommandError("usage: export perfetto FILE")
    if name == "load" and args[0] == "schedule" and len(args) != 2:
        raise CommandError("usage: load schedule FILE")
    if name == "load" and args[0] != "schedule" and len(args) != 1:
        raise CommandError("usage: load FILE | load schedule FILE")
    given = args[-1]
    path = root.path(given)  # FileError: reported as error: NAME: why
    if name == "save":
        try:
            return s.save(path)
        except FileError as e:
            raise CommandError(f"cannot save to {given}: {e.message}") from None
    if name == "export":
        from l4tui.trace import export_session

        try:
            return export_session(s, path)
        except FileError as e:
            raise CommandError(f"cannot write {given}: {e.message}") from None
    if args[0] == "schedule":
        # Confined: the schedule is taken for this session's own scenario, whatever file
        # it names (a student reads no file but their own).
        mine = s.scenario.file if root.confined else None
        loaded = load_schedule(path, mine)  # ConfigError: reported, nothing changes
        if loaded.scenario.file == s.scenario.file:
            loaded.meta = dict(s.meta)  # the same scenario: still the same lab sheet
        s.__dict__.update(loaded.__dict__)
        return Stopped(s.stop_reason)
    # ConfigError: reported, nothing changes. Confined: only this scenario's and lab's.
    loaded = load_session(path, same_as=s if root.confined else None)
    s.__dict__.update(loaded.__dict__)  # the front end keeps its Session object
    return Stopped(f"{s.stop_reason}: {s.scenario.name} at micro-op {s.position}")


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


def _watch(s: Session, args: tuple[str, ...]) -> str:
    text, paddr, cpu = parse_watch(s, args)
    w = s.add_watch(text, paddr, cpu)
    return f"watchpoint on {w.expr} (now {s.watch_text(w, w.value)})"


def _relayout(s: Session, layout: str) -> str:
    """The same scenario with another TCB layout, back at the same point of the program:
    the same thread at the same phase label, the nth time (relayout.py, §8.6)."""
    from l4tui.relayout import switch

    return Stopped(switch(s, layout))
