"""Runs parsed commands against a `Session` and renders their output as plain text.

The one executor of the command language (STYLE.md point 5): the line console
and the TUI's console pane both call `execute`. A bad command yields an
`error: …` line and changes nothing. Every command that moves the machine
ends its output with where each CPU is.
"""

from __future__ import annotations

from collections.abc import Callable

from kernel import invariants
from kernel.scenario import load_scenario
from l4tui import examine, expr, grammar, inputs, views
from l4tui.breakpoints import parse_break, parse_watch
from l4tui.files import FileError, load_json, root_of
from l4tui.grammar import Command, CommandError, help_text, parse
from l4tui.lab import load_lab
from l4tui.lab import text as lab_text
from l4tui.saved import from_state
from l4tui.session import Session
from machine.errors import ConfigError, MachineError

where = views.where  # the stop display, shared with callers that print it alone

# A few commands' modules are imported when the command first runs, not here: the
# explorer (a tenth of a second), relayout and trace would otherwise be paid by every
# console and monitor at start, before the first frame (`l4tui bench tui`). examine and
# saved are not among them: the session itself needs them (an op's words, `state`).


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

    s = from_state(load_json(path, "the session", "saved sessions"), path, same_as)
    s.stop_reason = f"loaded {path}"
    return s


def load_schedule(path: str, scenario_file: str | None = None) -> Session:
    """A fresh session that follows a schedule from `l4tui explore`, stopping at each choice.

    The scenario is the schedule's own, or `scenario_file` if given (it must be the same
    scenario: the schedule's inputs mean nothing elsewhere).
    """
    from l4tui.explore import read_schedule  # noqa: PLC0415 - start-up time: see the top

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


class Stopped(str):
    """A command's output that is a stop's reason: the machine moved, so a front end without
    a CPU pane of its own follows it with where each CPU is (`outcome`)."""


Handler = Callable[[Session, Command], str]


def _run(s: Session, cmd: Command) -> str:
    """Run a parsed command: its arguments are checked and converted already (grammar.py);
    the handler resolves what they name in this session."""
    return HANDLERS[cmd.name](s, cmd)


def _step(s: Session, cmd: Command) -> str:
    if cmd.key == "cpu":
        return Stopped(s.step_cpu(views.cpu_number(s, cmd.text("N"))))
    return Stopped(s.step(cmd.number("N", 1)))


def _delete(s: Session, cmd: Command) -> str:
    if cmd.args:
        n = cmd.number("N", 0)
        if not s.delete_break(n):
            raise CommandError(f"no breakpoint {n}; see info breakpoints")
        return f"deleted breakpoint {n}"
    n, w = s.delete_break(None), len(s.watches)
    s.watches = []
    return f"deleted {n} breakpoint(s) and {w} watchpoint(s)"


def _break(s: Session, cmd: Command) -> str:
    bp = s.add_break(parse_break(s, cmd.args, temporary=cmd.name == "tbreak"))
    return f"{'log point' if bp.log_only else 'breakpoint'} {bp.number} at {bp.spec()}"


def _inject(s: Session, cmd: Command) -> str:
    thread, op = cmd.text("THREAD"), cmd.text("OP")
    views.thread(s, thread)
    s.inject(thread, op, list(cmd.rest("ARGS")))
    return f"{thread} will run {op} next"


def _sched(s: Session, cmd: Command) -> str:
    assert cmd.key is not None  # the forms are the two policies
    s.set_policy(cmd.key)
    return f"scheduling: {cmd.key}"


def _check(s: Session, cmd: Command) -> str:
    """`check invariants`: each broken one once."""
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


def _info(s: Session, cmd: Command) -> str:
    assert cmd.key is not None  # every form of info is a view's
    arg = grammar.INFO_ARGS.get(cmd.key)
    return views.render(s, cmd.key, None if arg is None else cmd.values.get(arg.name))


def _goto(s: Session, cmd: Command) -> str:
    """Micro-op N of this history: back (Session.goto restores the nearest checkpoint and
    replays the rest), or forward by running, so breakpoints stop it on the way."""
    target = cmd.number("N", 0)
    if target < s.position:
        return Stopped(s.goto(target))
    if target == s.position:
        return Stopped(f"already at micro-op {target}")
    return Stopped(s.stepi(target - s.position))


def _save(s: Session, cmd: Command) -> str:
    """`save FILE`: FILE goes through the session's file root first (files.py) — anywhere,
    or only inside a served student's directory."""
    given = cmd.text("FILE")
    path = root_of(s).path(given)  # FileError: reported as error: NAME: why
    try:
        return s.save(path)
    except FileError as e:
        raise CommandError(f"cannot save to {given}: {e.message}") from None


def _export(s: Session, cmd: Command) -> str:
    """`export perfetto FILE`, FILE inside the session's file root."""
    given = cmd.text("FILE")
    path = root_of(s).path(given)
    try:
        from l4tui.trace import export_session  # noqa: PLC0415 - start-up time: see the top

        return export_session(s, path)
    except FileError as e:
        raise CommandError(f"cannot write {given}: {e.message}") from None


def _load(s: Session, cmd: Command) -> str:
    """`load FILE` or `load schedule FILE`: the session takes the loaded one's state (the
    front end keeps its Session object); a ConfigError is reported and nothing changes."""
    root = root_of(s)
    path = root.path(cmd.text("FILE"))
    if cmd.key == "schedule":
        # Confined: the schedule is taken for this session's own scenario, whatever file
        # it names (a student reads no file but their own).
        mine = s.scenario.file if root.confined else None
        loaded = load_schedule(path, mine)
        if loaded.scenario.file == s.scenario.file:
            loaded.meta = dict(s.meta)  # the same scenario: still the same lab sheet
        s.become(loaded)
        return Stopped(s.stop_reason)
    # Confined: only this scenario's and lab's.
    loaded = load_session(path, same_as=s if root.confined else None)
    s.become(loaded)
    return Stopped(f"{s.stop_reason}: {s.scenario.name} at micro-op {s.position}")


def _enable(s: Session, cmd: Command) -> str:
    """`enable [N]` / `disable [N]`: one breakpoint, or all of them."""
    on = cmd.name == "enable"
    verb = "enabled" if on else "disabled"
    if not cmd.args:
        for bp in s.breakpoints:
            bp.enabled = on
        return f"{verb} {len(s.breakpoints)} breakpoint(s)"
    n = cmd.number("N", 0)
    one = next((b for b in s.breakpoints if b.number == n), None)
    if one is None:
        raise CommandError(f"no breakpoint {n}; see info breakpoints")
    one.enabled = on
    return f"{verb} breakpoint {n}: {one.spec()}"


def _lab(s: Session, cmd: Command) -> str:
    """`lab`: the session's lab sheet as plain text, each exercise ticked when done."""
    path = s.meta.get("lab")
    if not path:
        raise CommandError("this session has no lab sheet (open one with l4tui lab LAB)")
    return lab_text(load_lab(path), s)


def _focus(s: Session, cmd: Command) -> str:
    if cmd.key == "follow":
        s.focus_pinned = False
        return "focus: follows each stop"
    pin = "pin" in cmd.values
    if cmd.key == "cpu":
        s.set_focus(cpu=views.cpu_number(s, cmd.text("N")), pin=pin)
        shown = f"cpu{s.focus_cpu}"
    else:
        value = cmd.text("T")
        s.set_focus(thread=views.thread(s, value).name, pin=pin)
        shown = s.focus_thread or value
    note = " (pinned: stops leave it here; focus follow undoes)" if pin else ""
    return f"focus: {shown}{note}"


def _watch(s: Session, cmd: Command) -> str:
    text, paddr, cpu = parse_watch(s, cmd.args)
    w = s.add_watch(text, paddr, cpu)
    return f"watchpoint on {w.expr} (now {s.watch_text(w, w.value)})"


def _relayout(s: Session, cmd: Command) -> str:
    """The same scenario with another TCB layout, back at the same point of the program:
    the same thread at the same phase label, the nth time (relayout.py, §8.6)."""
    assert cmd.key is not None  # the forms are the layouts
    from l4tui.relayout import switch  # noqa: PLC0415 - start-up time: see the top

    return Stopped(switch(s, cmd.key))


def _examine(s: Session, cmd: Command) -> str:

    return examine.show(s, cmd.args)


def _moves(move: Callable[[Session], str]) -> Handler:
    """A command of no arguments that moves the machine: its output is a stop."""
    return lambda s, cmd: Stopped(move(s))


def _counted(move: Callable[[Session, int], str], name: str = "N") -> Handler:
    """A command that moves the machine by a count (default 1)."""
    return lambda s, cmd: Stopped(move(s, cmd.number(name, 1)))


HANDLERS: dict[str, Handler] = {
    "help": lambda s, cmd: help_text(cmd.values.get("CMD")),
    "quit": lambda s, cmd: "",
    "stepi": _counted(lambda s, n: s.stepi(n)),
    "step": _step,
    "next": _moves(lambda s: s.next()),
    "finish": _moves(lambda s: s.finish()),
    "continue": _moves(lambda s: s.cont()),
    "run": _counted(lambda s, n: s.run_cycles(n), "CYCLES"),
    "reverse-stepi": _counted(lambda s, n: s.reverse_stepi(n)),
    "reverse-step": _counted(lambda s, n: s.reverse_step(n)),
    "reverse-continue": _moves(lambda s: s.reverse_continue()),
    "goto": _goto,
    "where": lambda s, cmd: where(s),
    "break": _break,
    "tbreak": _break,
    "watch": _watch,
    "delete": _delete,
    "disable": _enable,
    "enable": _enable,
    "x": _examine,
    "lab": _lab,
    "inject": _inject,
    "save": _save,
    "export": _export,
    "load": _load,
    "layout": _relayout,
    "sched": _sched,
    "focus": _focus,
    "check": _check,
    "print": lambda s, cmd: expr.show(s, " ".join(cmd.rest("EXPR"))),
    "info": _info,
}
"""One handler per command of the grammar's table (a test checks both name the same)."""
