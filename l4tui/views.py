"""The `info …` views as plain text: every CPU at the same cycle, every structure the thesis names.

Each function reads the session's state and returns a table; none changes
anything. The TUI shows the same data from the session's view dataclasses.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kernel import query
from kernel.lists import Walk
from l4tui import panes
from l4tui.grammar import INFO_ARGS, INFO_TOPICS, MAX_NUMBER, CommandError, shown, suggest
from l4tui.report import format_table
from l4tui.runner import figures

if TYPE_CHECKING:
    from kernel.thread import Thread
    from l4tui.session import Session

TOPICS = INFO_TOPICS


def thread(s: Session, name: str) -> Thread:
    names = [t.name for t in s.scenario.threads()]
    k = s.system.kernel
    if name not in names and name not in k.by_name:
        raise CommandError(f"no thread {shown(name)}{suggest(name, names)}")
    return k.by_name[name]


def cpu_number(s: Session, text: str) -> int:
    n = len(s.system.machine.cpus)
    digits = text.removeprefix("cpu")
    try:
        if len(digits) > MAX_NUMBER:
            raise ValueError(digits)
        cpu = int(digits, 0)
    except ValueError:
        raise CommandError(f"CPU must be a number 1..{n}, not {shown(text)}") from None
    if not 1 <= cpu <= n:
        raise CommandError(f"no CPU {cpu}: this machine has CPUs 1..{n}")
    return cpu


def where(s: Session) -> str:
    rows = [
        (
            f"cpu{c.number}",
            c.thread,
            c.mode + (" (halted)" if c.halted else ""),
            c.phase,
            f"{c.cycle:,}",
        )
        for c in s.cpus()
    ]
    return format_table(
        ("cpu", "thread", "mode", "phase", "cycle"), rows, right=(False, False, False, False, True)
    )


def render(s: Session, topic: str, arg: str | None) -> str:
    """The text of `info TOPIC [ARG]`."""
    if topic not in TOPICS:
        raise CommandError(
            f"no view {shown(topic)}{suggest(topic, list(TOPICS))}; views: {', '.join(TOPICS)}"
        )
    wants = INFO_ARGS.get(topic)  # what the grammar says the view takes
    if wants is not None and not wants.optional and arg is None:
        raise CommandError(f"usage: info {topic} {wants.name}")
    if wants is None and arg is not None:
        raise CommandError(f"usage: info {topic}")
    return VIEWS[topic](s, arg)


def threads(s: Session, arg: str | None = None) -> str:
    rows = [
        (t.name, t.id, str(t.cpu), t.state, str(t.priority), t.partner, t.timeout, str(t.results))
        for t in s.threads()
    ]
    return format_table(
        ("thread", "id", "cpu", "state", "prio", "partner", "timeout", "syscalls"),
        rows,
        right=(False, False, True, False, True, False, True, True),
    )


def ready(s: Session, arg: str | None = None) -> str:
    """Ready queues per CPU, by priority, in round-robin order (§8.7)."""
    only = cpu_number(s, arg) if arg is not None else None
    return _ready(panes.cpu_panes(s), only)


def _ready(cpus: tuple[panes.CpuPane, ...], only: int | None = None) -> str:
    lines = []
    for c in cpus:
        if only is not None and c.number != only:
            continue
        queues = "  ".join(_ring(p, names, c.ready_tail(p)) for p, names in c.ready)
        lines.append(f"cpu{c.number}: running {c.thread}; ready {queues or '(empty)'}")
    return "\n".join(lines)


def _ring(prio: int, names: tuple[str, ...], cut: Walk | None) -> str:
    """One ready ring: `[7] a b`, with where it breaks if it is mid-update."""
    return " ".join([f"[{prio}]", *names, *([cut.tail()] if cut is not None else [])])


def wakeup(s: Session, arg: str | None = None) -> str:
    """Wakeup queues per CPU, earliest deadline first (§8.7.2)."""
    return _wakeup(panes.cpu_panes(s))


def _wakeup(cpus: tuple[panes.CpuPane, ...]) -> str:
    lines = []
    for c in cpus:
        queue = [f"{n}@{at:,}" for n, at in c.wakeup]
        if c.wakeup_cut.broken:
            queue.append(c.wakeup_cut.tail())
        lines.append(f"cpu{c.number}: {' '.join(queue) or '(empty)'}")
    return "\n".join(lines)


def sendq(s: Session, name: str | None) -> str:
    """The threads polling to send to `name`, in queue order (§8.3.2)."""
    t = thread(s, name or "")
    polling, queue = query.senders(s.system.kernel, t)
    out = [f"{a} ({state}, cpu{cpu})" for a, state, cpu in polling]
    if queue.broken:
        out.append(queue.tail())
    return f"send queue of {t.name}: {', '.join(out) if out else '(empty)'}"


def tcb(s: Session, name: str | None) -> str:
    """A TCB line by line: fields, each line's MESI state on every CPU (§8.6, Table 3)."""
    t = thread(s, name or "")
    k, m = s.system.kernel, s.system.machine
    rows = [
        (
            str(x.index),
            x.group,
            " ".join(x.states),
            str(x.transitions),
            x.last,
            " ".join(f for f, _ in x.fields),
        )
        for x in panes.tcb_lines(s, t.name)
    ]
    head = f"{t.name} TCB at {t.tcb:#x}, layout {k.layout.name}, MESI per CPU 1..{len(m.cpus)}"
    table = format_table(
        ("line", "group", "mesi", "moves", "last", "fields"),
        rows,
        right=(True, False, False, True, False, False),
    )
    return f"{head}\n{table}"


def apic(s: Session, arg: str | None = None) -> str:
    """Per CPU: the two IPI slots, IRR, ISR, TPR, the timer; IPIs in flight (§3.4)."""
    pane = panes.apic_pane(s)
    rows = [
        (
            f"cpu{a.cpu}",
            f"{len(a.slots)}/{a.nslots}",
            ", ".join(f"{v:#x}{'*' if busy else ''} from cpu{src}" for v, src, busy in a.slots)
            or "-",
            _vectors(a.irr),
            _vectors(a.isr),
            str(a.tpr),
            f"{a.timer:,}" if a.timer else "-",
            str(a.received),
            str(a.rejected),
        )
        for a in pane.apics
    ]
    heads = ("cpu", "slots", "in slots (* in service)", "irr", "isr", "tpr", "timer")
    table = format_table((*heads, "ipis", "rejected"), rows, right=(False,) * 9)
    flight = [
        f"{f.vector:#x} cpu{f.sender} -> {','.join(f'cpu{d}' for d in f.dests)}"
        f" at cycle {f.arrival:,}"
        for f in pane.in_flight
    ]
    return table + "\nin flight: " + ("; ".join(flight) if flight else "none")


def _vectors(vectors: tuple[int, ...]) -> str:
    return ",".join(f"{v:#x}" for v in vectors) or "-"


def mailboxes(s: Session, arg: str | None = None) -> str:
    """Mailbox flag words per CPU, each mailbox in use, each busy proxy's mailbox list (§8.4)."""
    pane = panes.mailbox_pane(s)
    lines = [f"cpu{cpu} flags {word:#010x}" for cpu, word in pane.flags]
    lines += [
        f"mailbox {x.index}: {x.op} from {x.sender} to {x.dest} via {x.target}"
        + (" (reply)" if x.reply else "")
        for x in pane.mail
    ] or ["no mailbox in use"]
    lines += [
        f"proxy {p.name} cpu{p.cpu}: {p.state}, mailboxes first {p.first:#x} last {p.last:#x}"
        for p in pane.proxies
        if p.first or p.last or p.state not in ("waiting", "inactive")
    ]
    return "\n".join(lines)


def waits(s: Session, arg: str | None = None) -> str:
    """The IPC wait-for graph, and a deadlock if it has a cycle."""
    ws = s.system.waits()
    cycle = s.system.wait_cycle()
    lines = [str(w) for w in ws] or ["nobody waits for anyone"]
    if cycle:
        lines.append("deadlock: " + ", ".join(map(str, cycle)))
    else:
        lines.append("no deadlock")
    return "\n".join(lines)


def tlb(s: Session, arg: str | None) -> str:
    """One CPU's TLB, least recently used first (§3.2)."""
    cpu = cpu_number(s, arg or "")
    c = s.system.machine.cpu(cpu)
    rows = [
        (
            f"0x{vpn << 12:08x}",
            f"0x{e.frame:08x}",
            "rw" if e.writable else "ro",
            "dirty" if e.dirty else "-",
        )
        for vpn, e in c.tlb.entries.items()
    ]
    head = (
        f"cpu{cpu} TLB: {len(rows)}/{c.tlb.capacity} entries, cr3 {c.cr3:#x}, "
        f"hits {c.tlb.hits}, misses {c.tlb.misses}, flushes {c.tlb.flushes}"
    )
    if not rows:
        return f"{head}\n(empty)"
    return f"{head}\n" + format_table(("page", "frame", "rights", "dirty"), rows, (False,) * 4)


def space(s: Session, name: str | None) -> str:
    """A task's address space: its mappings and their place in the mapping database (§2.2)."""
    k = s.system.kernel
    tasks = {t.name: t for t in k.tasks}
    task = tasks.get(name or "")
    if task is None:
        raise CommandError(f"no task {shown(name or '')}{suggest(name or '', list(tasks))}")
    if task.space is None:
        return f"task {task.name} has no address space yet"
    sp = task.space
    db = k.spaces.mapdb
    names = {x.number: x.name for x in k.spaces.spaces}
    lines = [f"space {sp.name} (number {sp.number}, page directory {sp.pdbr:#x})"]
    for node in db.pages(sp.number):
        source = names.get(node.parent.space, "?") if node.parent is not None else "root"
        rights = "rw" if node.writable else "ro"
        lines.append(f"  0x{node.vaddr:08x} -> frame 0x{node.frame:08x} {rights} from {source}")
    if len(lines) == 1:
        lines.append("  (no mappings in the mapping database)")
    frames = {n.frame for n in db.pages(sp.number)}
    tree = [
        line for line in db.render(names) if int(line.rsplit("frame ", 1)[1][:10], 16) in frames
    ]
    if tree:
        lines.append("mapping database (the trees of its frames):")
        lines.extend("  " + line for line in tree)
    return "\n".join(lines)


def breakpoints(s: Session, arg: str | None = None) -> str:
    lines = [b.describe() for b in s.breakpoints]
    lines += [f"watch {w.expr} (now {s.watch_text(w, w.value)})" for w in s.watches]
    return "\n".join(lines) or "no breakpoints or watchpoints"


def counters(s: Session, arg: str | None = None) -> str:
    c = figures.counters(s.system)
    mesi = c.pop("mesi")
    lines = [f"{k} {v}" for k, v in c.items()]
    lines.append("mesi " + (", ".join(f"{k} {v}" for k, v in mesi.items()) or "-"))
    return "\n".join(lines)


def log(s: Session, arg: str | None = None) -> str:
    """What log-only breakpoints recorded."""
    return "\n".join(s.records[-200:]) or "nothing logged (set one with: break GLOB log)"


def report(s: Session, arg: str | None = None) -> str:
    """A one-shot report: where every CPU is, threads, queues, waits, counters."""
    cpus = panes.cpu_panes(s)  # read once: both queue views show it
    parts = [
        f"{s.scenario.name} at micro-op {s.position}, stop: {s.stop_reason}",
        where(s),
        threads(s),
        _ready(cpus),
        _wakeup(cpus),
        waits(s),
        counters(s),
    ]
    return "\n\n".join(parts)


def checkpoints(s: Session, arg: str | None = None) -> str:
    """Where going back starts from: the engine's fork checkpoints (checkpoints.py)."""
    ck = s.checkpoints
    if ck is None:
        from l4tui import engine  # noqa: PLC0415 - engine imports session, which imports this

        if not hasattr(os, "fork"):
            why = "no fork on this system"
        elif not engine.available():
            why = "L4TUI_ENGINE=inprocess"
        else:
            why = "this session runs in the front end's process"
        return (
            f"no checkpoints ({why}): going back replays the input log from the start "
            f"({s.position:,} micro-ops now)"
        )
    rows = [(f"{c.position:,}", str(c.pid)) for c in ck.list]
    head = (
        f"{len(ck.list)} checkpoint(s), one every {ck.spacing:,} micro-ops and where you "
        f"stopped, at most {ck.keep}: going back restores the nearest and replays the rest"
    )
    return head + "\n" + format_table(("micro-op", "pid"), rows, right=(True, True))


VIEWS = {
    "threads": threads,
    "cpus": lambda s, a: where(s),
    "ready": ready,
    "wakeup": wakeup,
    "sendq": sendq,
    "tcb": tcb,
    "apic": apic,
    "mailboxes": mailboxes,
    "waits": waits,
    "tlb": tlb,
    "space": space,
    "breakpoints": breakpoints,
    "counters": counters,
    "log": log,
    "report": report,
    "checkpoints": checkpoints,
}
