"""Running cross-processor IPC scenarios with their invariants checked (thesis §8.3.4-8.4.2).

A scenario runs headless with `System` on 2, 3 or 4 CPUs under a kernel with
proxy XP-IPC. Invariants are checked at *quiescent points* (DESIGN.md §1):
after a kernel exit, when no CPU is half-way through a kernel path — each one
is in user mode, halted, or has itself just left the kernel.
`QuiescentChecker` wraps the machine's `step` to do so (and looks for lost
wakeups: a sender polling on a receiver that waits for it), so `System.run`
still decides the end of the run as it does for every front end.

After a run, `mailbox_problems` lists what is left of cross-CPU operations:
the mailbox flag lines and the mailboxes (§8.3.4) must be clear and free and
no thread may have a mailbox hooked — except, with `pending_ok`, where a
sender stays blocked for good, whose request stays with its proxy. The
scenarios `PINGPONG` and `LATE_RECEIVER` serve several test modules.
"""

from __future__ import annotations

import textwrap
from typing import Any

from kernel import invariants, xcpu
from kernel.ids import NIL
from kernel.scenario import parse_scenario
from kernel.sched import IPI_PENDING
from kernel.system import System
from kernel.thread import LOCKED_WAITING, POLLING, WAITING
from l4tui.runner.summary import summary as run_summary
from machine.ops import InterruptExit, Iret, kaddr
from tests.kernel_helpers import _ok as ok
from tests.kernel_helpers import state

POLICIES = ["always", "when_needed", "poll_only"]
CPUS = [2, 3, 4]
TICK = 5000  # short ticks: poll_only relies on them to see the mailbox flags
STEPS = 300_000
PAGE = 4096
EXITS = (Iret, InterruptExit)

# --- running ---------------------------------------------------------------------------


def xp_text(body: str, cpus: int, policy: str = "when_needed", tick: int = TICK) -> str:
    """A scenario: the machine and kernel lines, then `body` (an indented YAML string)."""
    head = (
        f"machine: {{profile: p3-dual-450, cpus: {cpus}}}\n"
        f"kernel: {{xp_ipc: proxy, ipi_policy: {policy}, tick: {tick}}}\n"
    )
    return head + textwrap.dedent(body).lstrip("\n")


def xp_system(body: str, cpus: int, policy: str = "when_needed", tick: int = TICK) -> System:
    return System(parse_scenario(xp_text(body, cpus, policy, tick), "<test>"))


class QuiescentChecker:
    """Checks the kernel invariants after each kernel exit at which every CPU is quiescent.

    Installed by wrapping `machine.step`, so `System.run` (or `step_until`)
    drives the machine unchanged. `violations` keeps the first bad check.
    """

    def __init__(self, s: System) -> None:
        self.s = s
        m = s.machine
        self.inner = m.step
        self.last: dict[int, type | None] = {c.number: None for c in m.cpus}
        self.checks = 0
        self.violations: list[str] = []
        m.step = self.step  # type: ignore[method-assign]

    def quiet(self, c: Any) -> bool:
        return c.mode == "user" or c.waiting in ("hlt", "idle") or self.last[c.number] in EXITS

    def settled(self) -> bool:
        """No CPU is half-way through a kernel path."""
        return all(self.quiet(c) for c in self.s.machine.cpus)

    def step(self, number: int | None = None) -> Any:
        m = self.s.machine
        op = self.inner(number)
        if op is None:
            return op
        c = m.last_cpu
        self.last[c.number] = type(op)
        if type(op) in EXITS and self.settled():
            self.checks += 1
            bad = invariants.check(self.s.kernel) + lost_wakeups(self.s.kernel)
            if bad and not self.violations:
                where = f"cycle {m.last_start // m.tpc}, kernel exit on cpu{c.number}"
                self.violations = [f"{v} ({where})" for v in bad]
        return op


def lost_wakeups(k: Any) -> list[str]:
    """Senders polling on a receiver that waits for them (open, or closed from them).

    The receive path takes a polling sender from its send queue before it waits,
    and a sender finding its receiver waiting does not poll: at a quiescent point
    no sender polls — itself, or through its proxy (§8.3.5) — on a receiver that
    waits for it. If one does, nothing will ever wake either.
    """
    out = []
    for b in k.threads:
        if b.task is None or k.field(b, "thread_state") != WAITING:
            continue
        wants = k.field(b, "partner")
        head = cur = k.field(b, "send_queue")
        n = 0
        while cur and n < 1024:
            a = k.by_tcb[cur]
            poller = a
            if k.field(a, "thread_state") == LOCKED_WAITING and k.field(a, "proxy"):
                poller = k.by_tcb[k.field(a, "proxy")]  # a cross-CPU sender's proxy
            if (
                wants in (NIL, a.word)
                and k.field(poller, "thread_state") == POLLING
                and k.field(poller, "partner") == b.word
            ):
                out.append(f"{a.name} polls on {b.name}, which waits for it: a lost wakeup")
            cur = k.field(a, "send_next")
            n += 1
            if cur == head:
                break
    return out


def checked(s: System) -> QuiescentChecker:
    return QuiescentChecker(s)


def finish(s: System, q: QuiescentChecker, max_steps: int = STEPS) -> str:
    """Run `s` to its end; assert the invariants held at every quiescent kernel exit."""
    why = s.run(max_steps=max_steps)
    assert q.violations == [], q.violations
    assert q.checks > 0
    assert lost_wakeups(s.kernel) == []
    return why


def xp_run(
    body: str,
    cpus: int,
    policy: str = "when_needed",
    tick: int = TICK,
    max_steps: int = STEPS,
) -> System:
    """Build and run to the end with the invariants checked (the caller checks the mailboxes)."""
    s = xp_system(body, cpus, policy, tick)
    q = checked(s)
    finish(s, q, max_steps)
    return s


def mailbox_problems(s: System, pending_ok: bool = False) -> list[str]:
    """What is left of cross-CPU operations after a run (flags, mailboxes, lists).

    With `pending_ok`, the requests of cross-CPU senders still blocked may stay,
    each hooked to its sender's proxy.
    """
    k = s.kernel
    mem = s.machine.memory
    mb = k.mailboxes
    out: list[str] = []
    for cd in k.cpus:
        for w in range(xcpu.FLAG_WORDS):
            word = mem.read(mb.flags(cd.number, w) - kaddr(0))
            if word:
                out.append(f"cpu{cd.number} flag word {w} is {word:#x}")
        if mem.read(cd.page - kaddr(0) + IPI_PENDING):
            out.append(f"cpu{cd.number}: an IPI is still marked pending")
    pending: dict[int, Any] = {}  # mailbox -> the proxy it may stay hooked to
    for i, mail in sorted(mb.mail.items()):
        sender = mail.sender
        proxy = k.by_tcb.get(k.field(sender, "proxy")) if sender is not None else None
        if (
            pending_ok
            and mail.op == "ipc_send"
            and not mail.reply
            and k.field(sender, "thread_state") == LOCKED_WAITING
            and proxy is not None
            and mb.addr(i) in _hooked(s, proxy)
        ):
            pending[i] = proxy
        else:
            out.append(f"mailbox {i} in use: {mail.op} from {sender and sender.name}")
    for i in range(xcpu.MAILBOXES):
        if i in pending:
            continue
        if mem.read(mb.addr(i, xcpu.OP) - kaddr(0)) != xcpu.FREE:
            out.append(f"mailbox {i} is not free")
        if mem.read(mb.addr(i, xcpu.LOCK) - kaddr(0)):
            out.append(f"mailbox {i} is locked")
    holders = set(pending.values())
    senders = {mb.mail[i].sender for i in pending}
    for t in k.threads:
        if t not in holders and (k.field(t, "first_mailbox") or k.field(t, "last_mailbox")):
            out.append(f"{t.name} still has a mailbox hooked")
        if t not in senders and (t.task is not None or t.proxy_kind) and k.field(t, "proxy"):
            out.append(f"{t.name} still names a proxy")
    return out


def _hooked(s: System, t: Any) -> list[int]:
    """The mailbox addresses on `t`'s first/last mailbox list, in order."""
    mem = s.machine.memory
    out = []
    cur = s.kernel.field(t, "first_mailbox")
    while cur and len(out) <= xcpu.MAILBOXES:
        out.append(cur)
        cur = mem.read(cur - kaddr(0) + xcpu.NEXT)
    return out


def assert_mailboxes_clean(s: System, pending_ok: bool = False) -> None:
    assert mailbox_problems(s, pending_ok) == []


def _ok(r: dict, op: str, xp: bool = True) -> None:
    """kernel_helpers._ok, cross-processor unless said otherwise (these tests' case)."""
    ok(r, op, xp)


def _all_inactive(s: System, *names: str) -> None:
    for n in names:
        assert state(s, n) == "inactive", (n, run_summary(s)["threads"][n])


# --- scenarios several test modules run --------------------------------------------------

# A client on cpu1 calls a server on cpu {srv} three times.

PINGPONG = """
    tasks:
      - name: server
        threads:
          - name: srv
            cpu: {srv}
            program:
              - recv: {{from: any}}
              - loop:
                  - compute: 200
                  - reply_wait: {{words: [7, 8]}}
      - name: client
        threads:
          - name: cli
            cpu: 1
            program:
              - repeat: 3
                do:
                  - call: {{to: srv, words: [1, 2, 3]}}
"""


# A receiver on cpu {r} computes a while before it receives from {src}: its sender polls.
LATE_RECEIVER = """
    tasks:
      - name: rt
        threads:
          - name: r
            cpu: {r}
            program:
              - compute: 20000
              - recv: {{from: {src}}}
              - read_kip
      - name: st
        threads:
          - name: s
            cpu: 1
            program:
              - send: {{to: r, words: [5, 6]}}
              - read_kip
"""
