"""Plain-data views of the session for every pane a front end shows (frozen dataclasses).

The TUI's widgets and the console's `info` views read these and nothing
else, so a pane never changes state and both front ends show the same facts:
per-CPU run queues (§8.7), a TCB's cache lines with their MESI state per CPU
(§8.6, Table 3), mailboxes and proxies (§8.4), the APIC slots and IPIs in
flight (§3.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel import query
from kernel.lists import Walk
from machine.cache import STATE_NAMES
from machine.ops import KERNEL_BASE

if TYPE_CHECKING:
    from l4tui.session import Session


@dataclass(frozen=True, slots=True)
class CpuView:
    """Where one CPU is."""

    number: int
    cycle: int
    thread: str
    mode: str
    phase: str
    halted: bool


@dataclass(frozen=True, slots=True)
class ThreadView:
    """One thread, as `info threads` shows it."""

    name: str
    id: str
    cpu: int
    state: str
    priority: int
    partner: str
    timeout: str  # the wakeup deadline in cycles, or "-"
    results: int


@dataclass(frozen=True, slots=True)
class CpuPane:
    """One CPU column: what runs, its mode and IF, its queues, its proxies."""

    number: int
    cycle: int
    thread: str
    mode: str
    interrupts: bool  # IF
    phase: str
    halted: bool
    ready: tuple[tuple[int, tuple[str, ...]], ...]  # (priority, names in round-robin order)
    wakeup: tuple[tuple[str, int], ...]  # (name, deadline cycle), earliest first
    proxies: tuple[tuple[str, str], ...]  # (name, state) of the busy ones
    # The lists met half-way through a change (kernel/lists.py): (priority, its walk) for a
    # ready ring that does not close, and the wakeup queue's walk; whole lists: none, WHOLE.
    ready_cut: tuple[tuple[int, Walk], ...] = ()
    wakeup_cut: Walk = Walk()

    def ready_tail(self, prio: int) -> Walk | None:
        """The broken walk of priority `prio`'s ready ring, or None if it is whole."""
        return next((w for p, w in self.ready_cut if p == prio), None)


@dataclass(frozen=True, slots=True)
class TcbLine:
    """One cache line of a TCB: its fields, its MESI state in every CPU, its traffic."""

    index: int
    group: str
    fields: tuple[tuple[str, int], ...]  # (field, offset in the TCB)
    states: tuple[str, ...]  # MESI letter per CPU 1..k
    last: str  # the last access: "cpu2 write", or "-"
    transitions: int


@dataclass(frozen=True, slots=True)
class MailView:
    """One mailbox in use: the request, who sent it, for whom, and the thread it targets."""

    index: int
    op: str
    sender: str
    dest: str
    reply: bool
    target: str  # the proxy (or thread) the mailbox is set up for: its TARGET word


@dataclass(frozen=True, slots=True)
class ProxyView:
    name: str
    cpu: int
    state: str
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class MailboxPane:
    flags: tuple[tuple[int, int], ...]  # (cpu, flag word 0)
    mail: tuple[MailView, ...]
    proxies: tuple[ProxyView, ...]


@dataclass(frozen=True, slots=True)
class ApicView:
    cpu: int
    slots: tuple[tuple[int, int, bool], ...]  # (vector, sender cpu, in service)
    nslots: int
    irr: tuple[int, ...]
    isr: tuple[int, ...]
    tpr: int
    timer: int  # next timer deadline in cycles, 0 if off
    received: int
    rejected: int


@dataclass(frozen=True, slots=True)
class InFlight:
    vector: int
    sender: int
    dests: tuple[int, ...]
    arrival: int  # cycle


@dataclass(frozen=True, slots=True)
class ApicPane:
    apics: tuple[ApicView, ...]
    in_flight: tuple[InFlight, ...]


def cpu_views(s: Session) -> list[CpuView]:
    """Where every CPU is (`where`, the CPU markers)."""
    k, m = s.system.kernel, s.system.machine
    out = []
    for c in m.cpus:
        name = "idle" if query.is_idle(k, c.number) else query.current_name(k, c.number)
        out.append(
            CpuView(c.number, c.clock // m.tpc, name, c.mode, c.phase or "-", c.waiting is not None)
        )
    return out


def thread_views(s: Session) -> list[ThreadView]:
    """The scenario's threads, as `info threads` lists them."""
    k = s.system.kernel
    tpc = s.system.machine.tpc
    out = []
    for spec in s.scenario.threads():
        t = k.by_name[spec.name]
        partner = k.by_word(k.field(t, "partner"))
        out.append(
            ThreadView(
                t.name,
                str(t.tid),
                t.cpu,
                k.state(t),
                k.field(t, "priority"),
                partner.name if partner is not None else "-",
                "-" if t.deadline is None else f"{t.deadline // tpc:,}",
                len(t.results),
            )
        )
    return out


def cpu_panes(s: Session) -> tuple[CpuPane, ...]:
    k, m = s.system.kernel, s.system.machine
    out = []
    for c in m.cpus:
        n = c.number
        q = query.queues(k, n)  # bounded walks: a list may be mid-update
        out.append(
            CpuPane(
                n,
                c.clock // m.tpc,
                "idle" if query.is_idle(k, n) else query.current_name(k, n),
                c.mode,
                c.if_flag,
                c.phase or "-",
                c.waiting is not None,
                tuple((p, w.names) for p, w in q.ready),
                q.deadlines,
                tuple(query.busy_proxies(k, n)),
                tuple((p, w) for p, w in q.ready if w.broken),
                q.wakeup,
            )
        )
    return tuple(out)


def tcb_lines(s: Session, name: str) -> tuple[TcbLine, ...]:
    k, m = s.system.kernel, s.system.machine
    t = k.by_name[name]
    coh, layout = m.coherence, k.layout
    base = t.tcb - KERNEL_BASE
    out = []
    for i, fields in enumerate(layout.lines()):
        paddr = base + i * layout.line_size
        last = coh.last_access(paddr)
        out.append(
            TcbLine(
                i,
                layout.group(fields[0]) if fields else "-",
                tuple((f, layout.offsets[f]) for f in fields),
                tuple(STATE_NAMES[coh.state(c.index, paddr)] for c in m.cpus),
                f"cpu{last.cpu + 1} {last.kind}" if last is not None else "-",
                sum(coh.line_transitions.get(coh.line_of(paddr), {}).values()),
            )
        )
    return tuple(out)


def mailbox_pane(s: Session) -> MailboxPane:
    k, m = s.system.kernel, s.system.machine
    mb = k.mailboxes
    flags = tuple((c.number, query.mailbox_flags(k, c.number)) for c in m.cpus)

    def target(i: int) -> str:
        t = query.mailbox_target(k, i)
        return t.name if t is not None else "-"

    mail = tuple(
        MailView(
            i,
            x.op,
            x.sender.name if x.sender else "-",
            x.dest.name if x.dest else "-",
            x.reply,
            target(i),
        )
        for i, x in sorted(mb.mail.items())
    )
    proxies = tuple(
        ProxyView(
            p.name, p.cpu, k.state(p), k.field(p, "first_mailbox"), k.field(p, "last_mailbox")
        )
        for p in [*k.proxies.values(), *k.ctl.values()]
    )
    return MailboxPane(flags, mail, proxies)


def works_for(s: Session, name: str) -> tuple[str, str] | None:
    """The thread a proxy works for and that thread's partner, from the mailbox it serves.

    A proxy runs a path in another thread's stead (§8.3.5, §8.4): the request at
    the head of its mailbox list names the sender and the destination. None
    for a thread that is not a proxy or a proxy with nothing to do.
    """
    k = s.system.kernel
    p = k.by_name.get(name)
    if p is None or not p.proxy_kind:
        return None
    mb = k.mailboxes
    first = k.field(p, "first_mailbox")
    if not first:
        return None
    mail = mb.mail.get(mb.index(first))
    if mail is None or mail.sender is None:
        return None
    partner = mail.dest.name if mail.dest is not None and mail.dest is not mail.sender else "-"
    return mail.sender.name, partner


def _bits(word: int) -> tuple[int, ...]:
    """The set bits of `word`, lowest first (a visit per set bit: the panes repaint often)."""
    out = []
    while word:
        low = word & -word
        out.append(low.bit_length() - 1)
        word ^= low
    return tuple(out)


def apic_pane(s: Session) -> ApicPane:
    m = s.system.machine
    apics = tuple(
        ApicView(
            a.cpu + 1,
            tuple((x.vector, x.sender + 1, bool(x.in_service)) for x in a.slots),
            m.apics.nslots,
            _bits(a.irr),
            _bits(a.isr),
            a.tpr,
            a.timer_deadline // m.tpc if a.timer_deadline else 0,
            a.ipis_received,
            a.ipi_rejected,
        )
        for a in m.apics.apics
    )
    flight = tuple(
        InFlight(
            msg.vector, (msg.sender or 0) + 1, tuple(d + 1 for d in msg.dests), msg.arrival // m.tpc
        )
        for msg in m.in_flight()
    )
    return ApicPane(apics, flight)
