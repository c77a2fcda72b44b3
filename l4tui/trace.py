"""Trace export: a run as Chrome/Perfetto trace-event JSON (DESIGN.md §1 "Trace export").

`TraceWriter` watches a `System` run one micro-op at a time and streams the
trace-event JSON object format (``{"traceEvents": [...]}``) that
ui.perfetto.dev and chrome://tracing load. Events go to `out` as they happen,
a few hundred at a time; the writer keeps only per-CPU state and the flows
still open, so a run of millions of ops streams to disk in constant memory.
Timestamps are simulated microseconds of the profile's CPU clock
(ticks / `tpc` / `cpu_mhz`), rounded to the nanosecond.

What the trace shows (pid 1 is the machine, tid n is CPU n):

- ``B``/``E`` slices, nested per CPU: at the top what the CPU runs —
  ``user T``, ``kernel T``, ``proxy P`` (§8.4) or ``idle``; inside it
  ``irq V`` while an interrupt or fault handler runs; innermost the kernel
  phase, from one `Phase` op to the next (category ``proxy`` for the proxy's
  paths).
- ``i`` instants: IPIs sent (`SendIPI`), interrupts and faults taken
  (`InterruptEntry`), TLB shootdowns (``tlb.shootdown*``) and page faults
  (``pf.*``).
- ``s``/``t``/``f`` flows for each cross-processor IPC (§8.3.4, §8.3.5, §8.4):
  ``xp-ipc`` from the sender's ``xp.send`` through the proxy's
  ``xp.proxy.send`` and ``xp.proxy.wake_receiver`` on the receiver's CPU to
  where the receiver next runs; ``xp-reply`` from the proxy's
  ``xp.wakeup_sender`` to the sender's ``xp.return``. A flow still open at
  `close` ends there.
- ``C`` counters, at most one sample per simulated microsecond and only when
  they changed: bus transactions by kind (§3.2), MESI transitions (§3.1.2)
  and each CPU's L1/L2 misses.

Headless: imports no UI library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from kernel import boot, interrupts, ipc, query, shootdown, xcpu
from kernel.kernel import TIMER_VECTOR
from kernel.mail import Mail, SendMail
from kernel.system import System
from kernel.thread import Thread
from l4tui.files import atomic_text
from machine.cpu import Cpu
from machine.ops import PAGE_FAULT_VECTOR, InterruptEntry, InterruptExit, Phase, SendIPI

PID = 1
COUNTER_TID = 0  # counters belong to the process, not to a CPU's track
SAMPLE_US = 1.0  # at most one counter sample per simulated microsecond
FLUSH_EVENTS = 512  # events gathered before one write to `out`

VECTOR_NAMES = {
    TIMER_VECTOR: "timer",
    xcpu.XCPU_VECTOR: "xcpu",
    shootdown.VECTOR: "tlb shootdown",
    ipc.NAIVE_VECTOR: "naive ipc",
    boot.VECTOR: "startup",
    PAGE_FAULT_VECTOR: "page fault",
    **{interrupts.vector(n): f"irq{n}" for n in range(interrupts.IRQS)},
}

# Kinds of open slice on a CPU's stack.
TOP, IRQ, PHASE = 0, 1, 2
# Ops that show by themselves; any other op shows only if it changed thread or mode.
_MARKED = frozenset((Phase, SendIPI, InterruptEntry, InterruptExit))
# Phases that move an XP-IPC flow on.
_FLOW_LABELS = frozenset(
    ("xp.send", "xp.proxy.send", "xp.proxy.wake_receiver", "xp.wakeup_sender", "xp.return")
)


def _q(text: str) -> str:
    """`text` as a JSON string literal."""
    return json.dumps(text)


class _Slice:
    """A slice's B and E events, written up to the timestamp.

    Made once per name: opening or closing a slice is then one string join.
    """

    __slots__ = ("begin", "end")

    def __init__(self, name: str, cat: str) -> None:
        head = f',\n{{"name":{_q(name)},"cat":"{cat}","ph":'
        self.begin, self.end = head + '"B","ts":', head + '"E","ts":'


def _obj(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"))


def _args_template(keys: Iterable[str]) -> str:
    """``"k1":%d,"k2":%d...``: counter args to fill with a tuple of values."""
    return ",".join(f"{_q(k)}:%d" for k in keys)


def vector_name(vector: int) -> str:
    name = VECTOR_NAMES.get(vector)
    return f"{vector:#x} {name}" if name else f"{vector:#x}"


class _Track:
    """One CPU's track: what its top slice shows and the slices open on it."""

    __slots__ = ("tid", "tail", "owner", "proxy", "mode", "stack", "saved", "last")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.tail = f',"pid":{PID},"tid":{tid}}}'  # how its B and E events end
        self.owner: Thread | None | bool = False  # False: nothing shown yet
        self.proxy = False  # the owner is a proxy thread
        self.mode = ""
        self.stack: list[tuple[int, _Slice]] = []  # (kind, slice), outermost first
        self.saved: list[_Slice | None] = []  # the phase each open irq slice cut
        self.last = 0  # tick of its latest event: a track's times never go back


class TraceWriter:
    """Streams a run of `system` to `out` as trace-event JSON; call `step` after every op.

    Construct it before the first step and call `close` once at the end; it
    never closes `out`.
    """

    def __init__(self, system: System, out: TextIO) -> None:
        self._system = system
        self._kernel = k = system.kernel
        self._machine = m = system.machine
        self._out = out
        self._buf: list[str] = []
        self._ticks_per_us = m.tpc * m.profile.clock.cpu_mhz
        self._tracks = [_Track(c.number) for c in m.cpus]
        self._idle = query.idle_threads(k)
        self._steps = m.steps
        self._closed = False
        # Names quoted once: they repeat all run long.
        self._names: dict[tuple[Any, str], _Slice] = {}  # (owner, mode) -> top slice
        self._labels: dict[tuple[str, bool], tuple[_Slice, str]] = {}  # -> phase, what else
        self._irqs: dict[tuple[int, str], _Slice] = {}  # (vector, kind) -> handler slice
        self._marks: dict[tuple[Any, ...], tuple[str, str, str]] = {}  # instant -> name, cat, args
        # Flows on their way, keyed by the thread whose next step moves them on.
        self._next_flow = 0
        self._open_flows: dict[int, tuple[str, int]] = {}  # id -> (quoted name, last tid)
        self._chains: dict[Thread, int] = {}  # sender -> xp-ipc flow, until a receiver wakes
        self._receivers: dict[Thread, int] = {}  # receiver -> xp-ipc flow ending when it runs
        self._replies: dict[Thread, int] = {}  # sender -> xp-reply flow
        # Counter samples.
        self._interval = max(1, round(SAMPLE_US * self._ticks_per_us))
        self._now = 0
        self._next_sample = 0
        self._last_bus: tuple[int, ...] = ()
        self._last_mesi: tuple[int, ...] = ()
        self._last_miss: tuple[int, ...] = ()
        # The args of each counter as a %-template over its values, made once.
        self._bus_args = _args_template(m.bus.transactions)
        self._mesi_seen: tuple[bool, ...] = ()
        self._mesi_args = ""
        self._mesi_pick: list[int] = []
        self._cache_stats = [caches.stats for caches in m.coherence.cpus]
        self._miss_args = _args_template(
            [f"cpu{c.number} {level}" for c in m.cpus for level in ("l1", "l2")]
        )

        meta = [_obj({"name": "process_name", "ph": "M", "pid": PID, "tid": 0,
                      "args": {"name": system.scenario.name}})]  # fmt: skip
        for c in m.cpus:
            n = c.number
            meta.append(_obj({"name": "thread_name", "ph": "M", "pid": PID, "tid": n,
                              "args": {"name": f"cpu{n}"}}))  # fmt: skip
            meta.append(_obj({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": n,
                              "args": {"sort_index": n}}))  # fmt: skip
        out.write('{"traceEvents":[\n' + ",\n".join(meta))
        self._sample(0)

    # --- the per-op hook ---------------------------------------------------------

    def step(self, op: Any) -> None:
        """Record the op the machine just executed (`machine.last_*` describe it)."""
        # Most ops (reads, writes, computes) change nothing shown: three
        # comparisons, no allocation.
        m = self._machine
        if m.steps == self._steps:
            return  # not executed: a SendIPI that found the ICR busy runs again later
        self._steps = m.steps
        c = m.last_cpu
        assert c is not None  # an op was executed (steps moved), so it has a CPU
        tr = self._tracks[c.index]
        kind = type(op)
        if kind in _MARKED or c.context.owner is not tr.owner or c.mode != tr.mode:
            self._marked(tr, c, op, kind)
        if m.last_start >= self._next_sample:
            self._sample(m.last_start)

    def close(self) -> None:
        """End the open flows and slices at the run's last tick, and finish the JSON."""
        if self._closed:
            return
        self._closed = True
        m = self._machine
        end = max([self._now, *(c.clock for c in m.cpus), *(t.last for t in self._tracks)])
        # A flow's last event was on a track that ran something, so its top slice
        # is still open there to hold the flow's end.
        for fid, (name, tid) in list(self._open_flows.items()):
            self._flow("f", fid, name, self._tracks[tid - 1], end)
        for tr in self._tracks:
            self._close_to(tr, end, 0)
        self._sample(end)
        other = {
            "scenario": self._system.scenario.name,
            "seed": self._system.seed,
            "profile": m.profile.name,
            "cpu_mhz": m.profile.clock.cpu_mhz,
            "steps": m.steps,
        }
        self._buf.append('\n],"displayTimeUnit":"ns","otherData":' + _obj(other) + "}\n")
        self._flush()

    # --- writing -----------------------------------------------------------------

    def _flush(self) -> None:
        self._out.write("".join(self._buf))
        self._buf.clear()

    def _emit(self, ph: str, tr: _Track, tick: int, name: str, cat: str, extra: str = "") -> None:
        ts = f"{tick / self._ticks_per_us:.3f}"  # whole ns: what Perfetto keeps
        self._buf.append(
            f',\n{{"name":{name},"cat":"{cat}","ph":"{ph}","ts":{ts},"pid":{PID},'
            f'"tid":{tr.tid}{extra}}}'
        )

    # --- slices ------------------------------------------------------------------

    def _marked(self, tr: _Track, c: Cpu, op: Any, kind: type) -> None:
        start = self._machine.last_start
        if kind is InterruptExit:
            self._irq_exit(tr, c)
        if c.context.owner is not tr.owner or c.mode != tr.mode:
            self._top(tr, c)
        if kind is Phase:
            self._phase(tr, op.label, start)
        elif kind is SendIPI:
            self._ipi(tr, op, start)
        elif kind is InterruptEntry:
            self._irq_entry(tr, op, start)
        if len(self._buf) >= FLUSH_EVENTS:
            self._flush()

    def _open(self, tr: _Track, tick: int, kind: int, sl: _Slice) -> None:
        tr.stack.append((kind, sl))
        self._buf.append(f"{sl.begin}{tick / self._ticks_per_us:.3f}{tr.tail}")

    def _close_to(self, tr: _Track, tick: int, depth: int) -> None:
        stack = tr.stack
        if len(stack) > depth:
            ts = f"{tick / self._ticks_per_us:.3f}{tr.tail}"
            while len(stack) > depth:
                self._buf.append(stack.pop()[1].end + ts)

    def _at(self, tr: _Track, tick: int) -> int:
        # An interrupt cutting a Compute moves its CPU's clock back (machine
        # `_notify`); what the track shows stays, so nothing goes before it.
        if tick < tr.last:
            return tr.last
        tr.last = tick
        return tick

    def _top(self, tr: _Track, c: Cpu) -> None:
        """The CPU runs another thread or changed mode: a new top slice."""
        owner, mode = c.context.owner, c.mode
        # Entering the kernel counts from the op's start (the entry is kernel
        # time), returning to user from its end (so is the exit).
        tick = self._at(tr, c.clock if mode == "user" else self._machine.last_start)
        self._close_to(tr, tick, 0)
        tr.saved.clear()
        tr.owner, tr.mode = owner, mode
        tr.proxy = isinstance(owner, Thread) and bool(owner.proxy_kind)
        sl = self._names.get((owner, mode))
        if sl is None:
            sl = self._names[(owner, mode)] = self._top_slice(owner, mode)
        self._open(tr, tick, TOP, sl)
        if self._receivers and owner in self._receivers:  # an XP-IPC's receiver runs
            self._end_flow(self._receivers.pop(owner), tr, tick)

    def _top_slice(self, owner: Thread | None, mode: str) -> _Slice:
        if owner is None:
            return _Slice(f"{mode} (no thread)", "kernel")
        if owner in self._idle:
            return _Slice("idle", "idle")
        if owner.proxy_kind:
            return _Slice(f"proxy {owner.name}", "proxy")
        return _Slice(f"{mode} {owner.name}", mode)

    def _phase(self, tr: _Track, label: str, tick: int) -> None:
        """A kernel phase starts: it lasts until the next one or the end of its top slice."""
        tick = self._at(tr, tick)
        info = self._labels.get((label, tr.proxy))
        if info is None:
            info = self._labels[(label, tr.proxy)] = self._phase_slice(label, tr.proxy)
        sl, then = info
        stack = tr.stack
        if stack and stack[-1][0] == PHASE:
            self._close_to(tr, tick, len(stack) - 1)
        self._open(tr, tick, PHASE, sl)
        if then == "xp":
            self._xp(tr, label, tick)
        elif then:
            self._instant(tr, tick, (then, label, tr.owner))

    @staticmethod
    def _phase_slice(label: str, proxy: bool) -> tuple[_Slice, str]:
        """A phase's slice, and what else it shows: an XP-IPC flow or an instant."""
        cat = "proxy" if proxy or label.startswith("xp.proxy") else "kernel"
        sl = _Slice(label, "idle" if label == "idle" else cat)
        if label in _FLOW_LABELS:
            return sl, "xp"
        if label.startswith("pf."):
            return sl, "fault"
        if label.startswith("tlb.shootdown"):
            return sl, "shootdown"
        return sl, ""

    # --- interrupts and instants -------------------------------------------------------

    def _irq_entry(self, tr: _Track, op: InterruptEntry, tick: int) -> None:
        """A handler starts: nested in the phase it cut, which goes on after the exit."""
        tick = self._at(tr, tick)
        saved = None
        if tr.stack and tr.stack[-1][0] == PHASE:
            saved = tr.stack[-1][1]
            self._close_to(tr, tick, len(tr.stack) - 1)
        tr.saved.append(saved)
        sl = self._irqs.get((op.vector, op.kind))
        if sl is None:
            if op.kind == "fault":
                sl = _Slice("page fault", "fault")
            else:
                sl = _Slice(f"irq {vector_name(op.vector)}", "interrupt")
            self._irqs[(op.vector, op.kind)] = sl
        self._open(tr, tick, IRQ, sl)
        self._instant(tr, tick, ("entry", op.vector, op.kind))

    def _irq_exit(self, tr: _Track, c: Cpu) -> None:
        tick = self._at(tr, c.clock)
        stack = tr.stack
        depth = len(stack) - 1
        while depth >= 0 and stack[depth][0] != IRQ:
            depth -= 1
        if depth < 0:
            # The handler switched threads on its way (its frame waited on another
            # stack): only the phase it left open ends here.
            if stack and stack[-1][0] == PHASE:
                self._close_to(tr, tick, len(stack) - 1)
            return
        self._close_to(tr, tick, depth)
        saved = tr.saved.pop() if tr.saved else None
        if saved is not None and c.context.owner is tr.owner and c.mode == tr.mode:
            self._open(tr, tick, PHASE, saved)

    def _ipi(self, tr: _Track, op: SendIPI, tick: int) -> None:
        self._instant(tr, self._at(tr, tick), ("ipi", op.dest, op.vector, op.mode))

    def _instant(self, tr: _Track, tick: int, key: tuple[Any, ...]) -> None:
        mark = self._marks.get(key)
        if mark is None:
            mark = self._marks[key] = self._describe(key)
        self._emit("i", tr, tick, *mark)

    def _describe(self, key: tuple[Any, ...]) -> tuple[str, str, str]:
        """An instant's quoted name, category and args, worked out once per kind of instant."""
        kind = key[0]
        if kind == "ipi":
            _, dest, vector, mode = key
            cpus = [n + 1 for n in range(dest.bit_length()) if dest >> n & 1]
            name = f"IPI {vector_name(vector)} -> cpu{','.join(map(str, cpus))}"
            args: dict[str, Any] = {"dest": dest, "cpus": cpus, "vector": vector, "mode": mode}
        elif kind == "entry":
            _, vector, how = key
            kind = "fault" if how == "fault" else "interrupt"
            name = "page fault" if how == "fault" else f"irq {vector_name(vector)}"
            args = {"vector": vector}
        else:  # a phase: a page fault's or a shootdown's
            _, name, owner = key
            args = {"thread": owner.name if isinstance(owner, Thread) else ""}
        return _q(name), kind, ',"s":"t","args":' + _obj(args)

    # --- cross-processor IPC flows (§8.3.4, §8.3.5, §8.4) ---------------------------

    def _flow(self, ph: str, fid: int, name: str, tr: _Track, tick: int) -> None:
        # Bound to the slice open on the track at `tick`: the end and the steps
        # say so ("bp":"e"), as they would otherwise bind to the next slice.
        if ph == "f":
            del self._open_flows[fid]
        else:
            self._open_flows[fid] = (name, tr.tid)
        bind = "" if ph == "s" else ',"bp":"e"'
        self._emit(ph, tr, tick, name, "xp", f',"id":{fid}{bind}')

    def _start_flow(self, name: str, tr: _Track, tick: int) -> int:
        self._next_flow += 1
        self._flow("s", self._next_flow, _q(name), tr, tick)
        return self._next_flow

    def _end_flow(self, fid: int, tr: _Track, tick: int) -> None:
        self._flow("f", fid, self._open_flows[fid][0], tr, tick)

    def _request(self, p: Thread) -> Mail | None:
        """The request proxy `p` serves: the first mailbox on its list (§8.4)."""
        first = self._kernel.field(p, "first_mailbox")
        mb = self._kernel.mailboxes
        return mb.mail.get(mb.index(first)) if first else None

    def _xp(self, tr: _Track, label: str, tick: int) -> None:
        """Move the XP-IPC flows on at phase `label` of the thread running on `tr`."""
        owner = tr.owner
        if not isinstance(owner, Thread):
            return
        if label == "xp.send":  # the sender, on its own CPU (§8.3.5 send path)
            stale = self._chains.pop(owner, None)
            if stale is not None:
                self._end_flow(stale, tr, tick)
            self._chains[owner] = self._start_flow("xp-ipc", tr, tick)
            return
        if label == "xp.return":  # the sender, woken on its own CPU (XP_RETURN)
            for flows in (self._replies, self._chains):
                fid = flows.pop(owner, None)
                if fid is not None:  # an xp-ipc still here woke no receiver: an error
                    self._end_flow(fid, tr, tick)
            return
        mail = self._request(owner) if owner.proxy_kind else None
        if not isinstance(mail, SendMail):
            return
        a = mail.sender
        if label == "xp.wakeup_sender":  # §8.4.1: the mailbox re-targeted at the sender
            stale = self._replies.pop(a, None)
            if stale is not None:
                self._end_flow(stale, tr, tick)
            self._replies[a] = self._start_flow("xp-reply", tr, tick)
            return
        fid = self._chains.get(a)
        if fid is None:
            return
        self._flow("t", fid, self._open_flows[fid][0], tr, tick)
        if label == "xp.proxy.wake_receiver" and mail.dest is not None:
            del self._chains[a]
            stale = self._receivers.pop(mail.dest, None)
            if stale is not None:
                self._end_flow(stale, tr, tick)
            self._receivers[mail.dest] = fid

    # --- counters --------------------------------------------------------------------

    def _counter(self, tick: int, name: str, values: str) -> None:
        ts = f"{tick / self._ticks_per_us:.3f}"
        self._buf.append(
            f',\n{{"name":"{name}","ph":"C","ts":{ts},"pid":{PID},"tid":{COUNTER_TID},'
            f'"args":{{{values}}}}}'
        )

    def _sample(self, tick: int) -> None:
        """Counter samples at `tick`, each only if it changed since its last one."""
        tick = max(tick, self._now)  # CPUs step in clock order, but by hand they need not
        self._now = tick
        self._next_sample = tick + self._interval
        m = self._machine
        values = tuple(m.bus.transactions.values())
        if values != self._last_bus:
            self._last_bus = values
            self._counter(tick, "bus transactions", self._bus_args % values)
        values = tuple(m.coherence.transitions.values())
        if values != self._last_mesi:
            self._last_mesi = values
            seen = tuple(map(bool, values))
            if seen != self._mesi_seen:
                # Only the kinds seen so far: a counter track for each that happened.
                self._mesi_seen = seen
                kinds = [k for k, n in zip(m.coherence.transitions, seen, strict=True) if n]
                self._mesi_args = _args_template(kinds)
                self._mesi_pick = [i for i, n in enumerate(seen) if n]
            if self._mesi_pick:
                picked = tuple(values[i] for i in self._mesi_pick)
                self._counter(tick, "mesi transitions", self._mesi_args % picked)
        values = tuple(n for c in self._cache_stats for n in (c.l1_misses, c.l2_misses))
        if values != self._last_miss:
            self._last_miss = values
            self._counter(tick, "cache misses", self._miss_args % values)
        if len(self._buf) >= FLUSH_EVENTS:
            self._flush()


def export_session(session: Any, path: str) -> str:
    """`export perfetto FILE`: the session's run so far, re-run into a trace file."""
    writers: list[TraceWriter] = []
    with atomic_text(path) as out:

        def start(system: System) -> Any:
            writers.append(TraceWriter(system, out))
            return writers[0].step

        session.rerun(start)
        writers[0].close()
    return (
        f"wrote {path}: {session.position} micro-ops of {session.scenario.name} as a "
        "Chrome/Perfetto trace (open it in ui.perfetto.dev)"
    )
