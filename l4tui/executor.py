"""Runs parsed commands against a `Session` and renders their output as plain text.

The one executor of the command language (STYLE.md point 5): the line console
and the TUI's console pane both call `execute`. A bad command yields an
`error: …` line and changes nothing.
"""

from __future__ import annotations

from l4tui.grammar import Command, CommandError, help_text, parse, suggest
from l4tui.report import format_table
from l4tui.session import Session
from machine.errors import ConfigError, MachineError


def execute(session: Session, line: str) -> str:
    """The output of one command line (possibly empty); never raises for bad input."""
    try:
        cmd = parse(line)
        if cmd is None:
            return ""
        return _run(session, cmd)
    except CommandError as e:
        return f"error: {e}"
    except MachineError as e:
        return f"error: {e}"
    except ConfigError as e:
        return e.format()


def _count(text: str, what: str = "N") -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {text!r}") from None
    if n < 0:
        raise CommandError(f"{what} must be >= 0, not {n}")
    return n


def where(session: Session) -> str:
    rows = [
        (
            f"cpu{c.number}",
            c.thread,
            c.mode + (" (halted)" if c.halted else ""),
            c.phase,
            f"{c.cycle:,}",
        )
        for c in session.cpus()
    ]
    return format_table(
        ("cpu", "thread", "mode", "phase", "cycle"), rows, right=(False, False, False, False, True)
    )


def _run(s: Session, cmd: Command) -> str:
    name, args = cmd.name, cmd.args
    if name == "help":
        return help_text(args[0] if args else None)
    if name == "quit":
        return ""
    if name == "step" and args and args[0] == "cpu":
        if len(args) != 2:
            raise CommandError("usage: step cpu N")
        return f"{s.step_cpu(_count(args[1], 'CPU'))}\n{where(s)}"
    if name == "reverse-stepi":
        return f"{s.reverse_stepi(_count(args[0]) if args else 1)}\n{where(s)}"
    if name == "reverse-step":
        return f"{s.reverse_step(_count(args[0]) if args else 1)}\n{where(s)}"
    if name == "reverse-continue":
        return f"{s.reverse_continue()}\n{where(s)}"
    if name == "watch":
        t, field = _field(s, args[0])
        w = s.add_watch(args[0], t.f[field] - 0xE000_0000)
        return f"watchpoint on {w.expr} (now {w.value})"
    if name in ("stepi", "step"):
        if len(args) > 1:
            raise CommandError(f"usage: {name} [N]")
        n = _count(args[0]) if args else 1
        reason = s.stepi(n) if name == "stepi" else s.step(n)
        return f"{reason}\n{where(s)}"
    if name == "continue":
        return f"{s.cont()}\n{where(s)}"
    if name == "run":
        return f"{s.run_cycles(_count(args[0], 'CYCLES'))}\n{where(s)}"
    if name == "where":
        return where(s)
    if name == "inject":
        from l4tui.inject import build

        t = _thread(s, args[0])
        op = build(args[1], args[2:], [x.name for x in s.scenario.threads()])
        if s.system.kernel.state(t) == "inactive":
            raise CommandError(f"{t.name} is inactive: it runs no more ops")
        t.injected.append(op)
        return f"{t.name} will run {args[1]} next"
    if name == "save":
        try:
            return s.save(args[0])
        except OSError as e:
            raise CommandError(f"cannot save to {args[0]}: {e.strerror}") from None
    if name == "load":
        loaded = Session.load(args[0])  # ConfigError: reported, nothing changes
        s.__dict__.update(loaded.__dict__)  # the front end keeps its Session object
        return f"{s.stop_reason}: {s.scenario.name} at micro-op {s.position}\n{where(s)}"
    if name == "break":
        bp = s.add_break(args[0])
        return f"breakpoint {bp.number} at {bp.glob}"
    if name == "delete":
        n = s.delete_break(_count(args[0]) if args else None)
        return f"deleted {n} breakpoint(s)"
    if name == "sched":
        if args[0] not in ("timed", "manual"):
            raise CommandError(f"sched takes timed or manual, not {args[0]!r}")
        s.set_policy(args[0])
        return f"scheduling: {args[0]}"
    if name == "focus":
        what, value = args
        if what == "cpu":
            n = _count(value, "CPU")
            if not 1 <= n <= len(s.cpus()):
                raise CommandError(f"no CPU {n}: this machine has CPUs 1..{len(s.cpus())}")
            s.focus_cpu = n
            return f"focus: cpu{n}"
        if what == "thread":
            _thread(s, value)
            s.focus_thread = value
            return f"focus: {value}"
        raise CommandError("usage: focus cpu N | focus thread T")
    if name == "check":
        if args[0] != "invariants":
            raise CommandError("usage: check invariants")
        from kernel import invariants

        bad = invariants.check(s.system.kernel)
        return "invariants hold" if not bad else "\n".join(f"violated: {v}" for v in bad)
    if name == "print":
        return _print(s, args[0])
    if name == "info":
        return _info(s, args)
    raise CommandError(f"{name} is not implemented")  # pragma: no cover - the table says


def _thread(s: Session, name: str):  # noqa: ANN202 - a kernel Thread
    k = s.system.kernel
    names = [t.name for t in s.scenario.threads()]
    if name not in names:
        raise CommandError(f"no thread {name!r}{suggest(name, names)}")
    return k.by_name[name]


def _field(s: Session, expr: str):  # noqa: ANN202 - (Thread, field name)
    if "." not in expr:
        raise CommandError(f"usage: THREAD.FIELD (e.g. srv.thread_state), not {expr!r}")
    name, field = expr.split(".", 1)
    t = _thread(s, name)
    if field not in t.f:
        raise CommandError(f"no TCB field {field!r}{suggest(field, list(t.f))}")
    return t, field


def _print(s: Session, expr: str) -> str:
    k = s.system.kernel
    if expr.endswith(".state"):
        t = _thread(s, expr[:-6])
        return f"{expr} = {k.state(t)}"
    t, field = _field(s, expr)
    value = k.field(t, field)
    return f"{expr} = {value} ({value:#x})"


def _tcb(s: Session, name: str) -> str:
    """A TCB line by line: fields, each line's MESI state on every CPU (§8.6, Table 3)."""
    from machine.cache import STATE_NAMES

    t = _thread(s, name)
    k, m = s.system.kernel, s.system.machine
    coh = m.coherence
    layout = k.layout
    base = t.tcb - 0xE000_0000
    rows = []
    for i, fields in enumerate(layout.lines()):
        paddr = base + i * layout.line_size
        states = " ".join(STATE_NAMES[coh.state(c.index, paddr)] for c in m.cpus)
        moves = sum(coh.line_transitions.get(coh.line_of(paddr), {}).values())
        group = layout.group(fields[0]) if fields else "-"
        rows.append((str(i), group, states, str(moves), " ".join(fields)))
    head = f"{name} TCB at {t.tcb:#x}, layout {layout.name}, MESI per CPU 1..{len(m.cpus)}"
    return (
        head
        + "\n"
        + format_table(
            ("line", "group", "mesi", "moves", "fields"),
            rows,
            right=(True, False, False, True, False),
        )
    )


def _info(s: Session, args: tuple[str, ...]) -> str:
    what = args[0]
    if what == "threads":
        rows = [
            (t.name, t.id, str(t.cpu), t.state, str(t.priority), t.partner, str(t.results))
            for t in s.threads()
        ]
        return format_table(
            ("thread", "id", "cpu", "state", "prio", "partner", "syscalls"),
            rows,
            right=(False, False, True, False, True, False, True),
        )
    if what == "cpus":
        return where(s)
    if what == "ready":
        ready = s.ready()
        cpus = [_count(args[1], "CPU")] if len(args) > 1 else sorted(ready)
        return "\n".join(f"cpu{c}: {' '.join(ready.get(c, [])) or '(empty)'}" for c in cpus)
    if what == "breakpoints":
        if not s.breakpoints:
            return "no breakpoints"
        return "\n".join(f"{b.number}: {b.glob} (hit {b.hits})" for b in s.breakpoints)
    if what == "counters":
        counters = s.system.counters()
        mesi = counters.pop("mesi")
        lines = [f"{k} {v}" for k, v in counters.items()]
        lines.append("mesi " + ", ".join(f"{k} {v}" for k, v in mesi.items()))
        return "\n".join(lines)
    if what == "tcb":
        if len(args) != 2:
            raise CommandError("usage: info tcb THREAD")
        return _tcb(s, args[1])
    if what == "apic":
        m = s.system.machine
        rows = []
        for a in m.apics.apics:
            slots = (
                ", ".join(
                    f"{x.vector:#x}{'*' if x.in_service else ''} from cpu{x.sender + 1}"
                    for x in a.slots
                )
                or "-"
            )
            rows.append(
                (
                    f"cpu{a.cpu + 1}",
                    f"{len(a.slots)}/{m.apics.nslots}",
                    slots,
                    f"{a.irr:#x}",
                    f"{a.isr:#x}",
                    str(a.ipis_received),
                    str(a.ipi_rejected),
                )
            )
        table = format_table(
            ("cpu", "slots", "in slots (* in service)", "irr", "isr", "ipis", "rejected"),
            rows,
            right=(False,) * 7,
        )
        flight = [
            f"{msg.vector:#x} cpu{(msg.sender or 0) + 1} -> "
            f"{','.join(f'cpu{d + 1}' for d in msg.dests)} at cycle {msg.arrival // m.tpc}"
            for msg in m.in_flight()
        ]
        return table + ("\nin flight: " + "; ".join(flight) if flight else "")
    if what == "mailboxes":
        mb = s.system.kernel.mailboxes
        if not mb.mail:
            return "no mailbox in use"
        return "\n".join(
            f"mailbox {i}: {mail.op} from {mail.sender.name if mail.sender else '-'}"
            f" to {mail.dest.name if mail.dest else '-'}"
            for i, mail in sorted(mb.mail.items())
        )
    if what == "waits":
        waits = s.system.waits()
        cycle = s.system.wait_cycle()
        lines = [f"{w.thread} {w.how} {w.on}" for w in waits] or ["nobody waits for anyone"]
        if cycle:
            lines.append("deadlock: " + ", ".join(f"{w.thread} {w.how} {w.on}" for w in cycle))
        return "\n".join(lines)
    topics = [
        "threads",
        "cpus",
        "ready",
        "tcb",
        "apic",
        "mailboxes",
        "waits",
        "breakpoints",
        "counters",
    ]
    raise CommandError(f"no view {what!r}{suggest(what, topics)}; views: {', '.join(topics)}")
