"""Cross-processor IPC through proxies and mailboxes, on 2, 3 and 4 CPUs (thesis §8.3.4-8.4.2).

Each test is a scenario run headless with `System`, looking at what `run
--json` reports (results, states, counters, the end of the run) and at the
kernel's memory where the thesis names the structure: the send queue the
sender sits in while its proxy polls (§8.3.5), the mailbox flag lines and
the mailboxes (§8.3.4), the frames a string was copied into (§8.4.2).

Invariants are checked at *quiescent points* (DESIGN.md §1): after a kernel
exit, when no CPU is half-way through a kernel path — each one is in user
mode, halted, or has itself just left the kernel. `QuiescentChecker` wraps
the machine's `step` to do so (and looks for lost wakeups: a sender polling
on a receiver that waits for it), so `System.run` still decides the end of
the run as it does for every front end. The last tests run a few scenarios
with `System.run(check_invariants=True)` itself.

After every run the mailbox flags are all clear, every mailbox is free and
no thread has a mailbox hooked — except where a sender stays blocked for
good, whose request stays with its proxy.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest

from kernel import invariants, xcpu
from kernel.ids import NIL
from kernel.program import Ipc, ServeFaults
from kernel.scenario import parse_scenario
from kernel.sched import IPI_PENDING
from kernel.system import System
from kernel.thread import LOCKED_WAITING, POLLING, WAITING
from l4tui.runner.summary import summary as run_summary
from machine.ops import InterruptExit, Iret, kaddr
from tests.kernel_helpers import (
    mapping_node,
    read_virtual,
    results,
    state,
    step_until,
    translation,
    write_virtual,
)

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


def counters(s: System) -> dict[str, Any]:
    return run_summary(s)["counters"]


def _ok(r: dict, op: str, xp: bool = True) -> None:
    assert r["op"] == op, r
    assert r["ok"] is True, r
    assert r["error"] is None, r
    assert r["xp"] is xp, r


def _all_inactive(s: System, *names: str) -> None:
    for n in names:
        assert state(s, n) == "inactive", (n, run_summary(s)["threads"][n])


# --- call and reply_wait ------------------------------------------------------------------

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


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_call_reply_wait_cross_cpu(cpus: int, policy: str) -> None:
    s = xp_run(PINGPONG.format(srv=cpus), cpus, policy)
    assert s.ended == "end"
    calls = results(s, "cli")
    assert len(calls) == 3
    for r in calls:
        _ok(r, "call")
        assert r["words"] == [7, 8]
        assert r["from"] == "srv"
    srv = results(s, "srv")
    assert [r["op"] for r in srv] == ["recv", "reply_wait", "reply_wait"]
    for r in srv:
        _ok(r, r["op"])
        assert r["words"] == [1, 2, 3]
        assert r["from"] == "cli"
    assert state(s, "cli") == "inactive"
    assert state(s, "srv") == "waiting"  # idle in its open receive: not a deadlock
    assert run_summary(s)["deadlock"] is False
    c = counters(s)
    assert c["ipc"] == 6  # three calls, three replies
    assert c["xp_ipc"] == 6
    assert c["page_faults"] == 0
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_many_clients_on_every_cpu_call_one_server(cpus: int) -> None:
    """A client on each CPU (one local to the server): every call gets its own reply."""
    clients = "".join(
        f"""
          - name: c{n}
            cpu: {n}
            program:
              - repeat: 2
                do:
                  - call: {{to: srv, words: [{n}]}}
                  - compute: {100 * n}"""
        for n in range(1, cpus + 1)
    )
    s = xp_run(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: 1
                priority: 120
                program:
                  - recv: {{from: any}}
                  - loop:
                      - reply_wait: {{words: [99]}}
          - name: clients
            threads:{textwrap.indent(textwrap.dedent(clients), " " * 12)}
        """,
        cpus,
    )
    assert s.ended == "end"
    for n in range(1, cpus + 1):
        rs = results(s, f"c{n}")
        assert len(rs) == 2
        for r in rs:
            _ok(r, "call", xp=n != 1)
            assert r["words"] == [99] and r["from"] == "srv"
    assert sorted(r["words"][0] for r in results(s, "srv")) == sorted(
        [n for n in range(1, cpus + 1)] * 2
    )
    c = counters(s)
    assert c["ipc"] == 4 * cpus
    assert c["xp_ipc"] == 4 * (cpus - 1)
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_reply_wait_to_remote_caller_takes_a_queued_sender(cpus: int, policy: str) -> None:
    """c1 (the server's CPU) polls in srv's send queue while srv waits for c2 (remote). srv's
    reply_wait to c2 crosses CPUs; its receive phase must find c1 in its send queue — not
    wait in an open receive with c1 polling on it for ever (a lost wakeup)."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: srv
                cpu: 1
                program:
                  - recv: {{from: c2}}
                  - reply_wait: {{words: [9]}}
              - name: c1
                cpu: 1
                program:
                  - send: {{to: srv, words: [1]}}
              - name: c2
                cpu: {cpus}
                program:
                  - compute: 3000
                  - call: {{to: srv, words: [2]}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    r0, r1 = results(s, "srv")
    assert r0["from"] == "c2" and r0["words"] == [2]
    _ok(r1, "reply_wait", xp=True)
    assert r1["from"] == "c1" and r1["words"] == [1]
    _ok(results(s, "c2")[0], "call")
    assert results(s, "c2")[0]["words"] == [9]
    _ok(results(s, "c1")[0], "send", xp=False)
    _all_inactive(s, "srv", "c1", "c2")
    assert_mailboxes_clean(s)


# --- a receiver not yet waiting: the proxy polls -------------------------------------------

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


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("source", ["s", "any"])
@pytest.mark.parametrize("cpus", CPUS)
def test_send_to_receiver_not_yet_waiting(cpus: int, source: str, policy: str) -> None:
    """The proxy polls on the receiver's CPU; the *sender* sits in the receiver's send queue."""
    s = xp_system(LATE_RECEIVER.format(r=cpus, src=source), cpus, policy)
    q = checked(s)
    k = s.kernel
    a, b = k.by_name["s"], k.by_name["r"]
    step_until(s, lambda: k.field(a, "proxy") != 0, max_steps=STEPS)
    p = k.by_tcb[k.field(a, "proxy")]  # the proxy the sender claimed on r's CPU
    step_until(
        s,
        lambda: k.field(p, "thread_state") == POLLING and q.settled(),
        max_steps=STEPS,
    )
    # The thesis's state while the receiver is busy (§8.3.5), at a quiescent point:
    assert k.field(b, "send_queue") == a.tcb  # the sender, not its proxy, is queued
    assert k.field(a, "thread_state") == LOCKED_WAITING
    assert k.field(a, "proxy") == p.tcb
    assert k.field(p, "partner") == b.word
    assert state(s, "s") == "locked_waiting"
    assert results(s, "r") == []
    assert invariants.check(k) == []
    assert finish(s, q) == "end"
    (rs, rk) = results(s, "s")
    _ok(rs, "send")
    assert rk["op"] == "read_kip"
    rr = results(s, "r")[0]
    _ok(rr, "recv")
    assert rr["words"] == [5, 6] and rr["from"] == "s"
    _all_inactive(s, "s", "r")
    assert k.field(b, "send_queue") == 0
    assert counters(s)["xp_ipc"] == 1
    assert_mailboxes_clean(s)


# --- open receive: FIFO over senders on three CPUs -------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "cpus,placement",
    [(3, (1, 2, 3)), (4, (2, 3, 4)), (4, (4, 1, 3))],
    ids=["3cpus-one-local", "4cpus-all-remote", "4cpus-mixed"],
)
def test_open_receive_fifo_across_cpus(cpus: int, placement: tuple, policy: str) -> None:
    """Three senders on three CPUs queue while the receiver sleeps; served in queue order."""
    s1, s2, s3 = placement
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: 1
                program:
                  - sleep: 40000
                  - repeat: 3
                    do:
                      - recv: {{from: any}}
          - name: st
            threads:
              - name: first
                cpu: {s1}
                program:
                  - compute: 100
                  - send: {{to: r, words: [1]}}
              - name: second
                cpu: {s2}
                program:
                  - compute: 6000
                  - send: {{to: r, words: [2]}}
              - name: third
                cpu: {s3}
                program:
                  - compute: 12000
                  - send: {{to: r, words: [3]}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    rr = results(s, "r")
    assert [r["from"] for r in rr] == ["first", "second", "third"]
    assert [r["words"] for r in rr] == [[1], [2], [3]]
    for name, cpu in zip(("first", "second", "third"), placement, strict=True):
        _ok(results(s, name)[0], "send", xp=cpu != 1)
    for r, cpu in zip(rr, placement, strict=True):
        _ok(r, "recv", xp=cpu != 1)
    _all_inactive(s, "r", "first", "second", "third")
    assert counters(s)["xp_ipc"] == sum(1 for c in placement if c != 1)
    assert_mailboxes_clean(s)


# --- one proxy, several senders of one CPU ----------------------------------------------------


@pytest.mark.parametrize("y_timeout", ["", ", timeout: 0"], ids=["y-waits", "y-timeout-0"])
@pytest.mark.parametrize("cpus", CPUS)
def test_send_not_held_up_behind_a_blocked_send_from_the_same_cpu(
    cpus: int, y_timeout: str
) -> None:
    """x and y on CPU 1 both send to z on another CPU; z first receives from y only.

    x's send blocks until z turns to it; y's must not wait behind it (§8.4.4: a proxy
    that blocks must not hold up the other requests) — by L4 semantics z gets y's
    message, then x's, and every thread finishes.
    """
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: x
                cpu: 1
                program:
                  - send: {{to: z, words: [1]}}
              - name: y
                cpu: 1
                program:
                  - compute: 3000
                  - send: {{to: z, words: [2]{y_timeout}}}
              - name: z
                cpu: {cpus}
                program:
                  - recv: {{from: y}}
                  - recv: {{from: x}}
        """,
        cpus,
    )
    assert s.ended == "end", (s.ended, run_summary(s).get("stuck"), run_summary(s).get("waits"))
    assert [r["from"] for r in results(s, "z")] == ["y", "x"]
    assert [r["words"] for r in results(s, "z")] == [[2], [1]]
    _ok(results(s, "x")[0], "send")
    _ok(results(s, "y")[0], "send")
    _all_inactive(s, "x", "y", "z")
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_closed_receive_not_served_by_the_proxy_of_another_sender(cpus: int) -> None:
    """x and y on CPU 1 share the proxy serving CPU 1 on r's CPU. x's send polls on r through
    it; y's request (to z) waits behind x's. r's closed receive from y must not take the
    proxy for y's: y never sent to r, so r's receive times out and x's message stays x's."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: x
                cpu: 1
                program:
                  - send: {{to: r, words: [1], timeout: 50000}}
              - name: y
                cpu: 1
                program:
                  - compute: 500
                  - send: {{to: z, words: [3], timeout: 0}}
              - name: r
                cpu: {cpus}
                program:
                  - compute: 8000
                  - recv: {{from: y, timeout: 0}}
                  - recv: {{from: x, timeout: 0}}
              - name: z
                cpu: {cpus}
                program:
                  - compute: 100
        """,
        cpus,
    )
    r_y, r_x = results(s, "r")
    assert r_y["ok"] is False and r_y["error"] == "timeout", r_y
    _ok(r_x, "recv")
    assert r_x["from"] == "x" and r_x["words"] == [1]
    _ok(results(s, "x")[0], "send")
    assert results(s, "y")[0]["error"] == "timeout"
    _all_inactive(s, "x", "y", "r", "z")
    assert_mailboxes_clean(s)


# --- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("timeout", [0, 3000], ids=["timeout-0", "timeout-finite"])
@pytest.mark.parametrize("cpus", CPUS)
def test_send_timeout_cross_cpu(cpus: int, timeout: int, policy: str) -> None:
    """The receiver is busy: the send times out and leaves no trace in its send queue."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - compute: 30000
                  - recv: {{from: any, timeout: 0}}
                  - recv: {{from: s, timeout: 2000}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - send: {{to: r, words: [1], timeout: {timeout}}}
                  - read_kip
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    rs, rk = results(s, "s")
    assert rs["op"] == "send" and rs["ok"] is False and rs["error"] == "timeout", rs
    assert rs["xp"] is True
    assert rk["op"] == "read_kip" and rk["value"] == cpus
    # The sender left the receiver's send queue: nothing for the receiver afterwards.
    r1, r2 = results(s, "r")
    assert r1["error"] == "timeout" and r2["error"] == "timeout"
    assert s.kernel.field(s.kernel.by_name["r"], "send_queue") == 0
    _all_inactive(s, "r", "s")
    assert counters(s)["ipc"] == 0
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_finite_send_timeout_met_in_time(cpus: int) -> None:
    """A finite send timeout longer than the receiver's delay: the message gets through."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - compute: 5000
                  - recv: {{from: s}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - send: {{to: r, words: [4], timeout: 200000}}
        """,
        cpus,
    )
    _ok(results(s, "s")[0], "send")
    assert results(s, "r")[0]["words"] == [4]
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_receive_timeout_from_remote_sender(cpus: int, policy: str) -> None:
    """A closed receive from a remote thread that never sends times out, then one succeeds."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: 1
                program:
                  - recv: {{from: s, timeout: 0}}
                  - recv: {{from: s, timeout: 4000}}
                  - recv: {{from: s}}
          - name: st
            threads:
              - name: s
                cpu: {cpus}
                program:
                  - compute: 15000
                  - send: {{to: r, words: [9]}}
        """,
        cpus,
        policy,
    )
    r0, r1, r2 = results(s, "r")
    assert r0["error"] == "timeout" and r1["error"] == "timeout"
    _ok(r2, "recv")
    assert r2["words"] == [9] and r2["from"] == "s"
    _all_inactive(s, "r", "s")
    assert_mailboxes_clean(s)


# --- not_exist and xp_fault --------------------------------------------------------------------


@pytest.mark.parametrize("cpus", CPUS)
def test_not_exist_cross_cpu(cpus: int) -> None:
    """A thread of a task not yet created: send, receive and call get not_exist. `task_new`
    creates its first thread on the creator's CPU (§7.1) — here a remote one — and then a
    call to it works across CPUs."""
    s = xp_run(
        f"""
        tasks:
          - name: late
            start: false
            threads:
              - name: ghost
                cpu: 1
                program:
                  - recv: {{from: any}}
                  - reply_wait: {{words: [42], timeout: 0, recv_timeout: 0}}
          - name: maker
            threads:
              - name: mk
                cpu: {cpus}
                program:
                  - recv: {{from: s}}
                  - task_new: late
                  - send: {{to: s, words: [7]}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - send: {{to: ghost, words: [1]}}
                  - recv: {{from: ghost, timeout: 1000}}
                  - call: {{to: ghost, words: [2], xp_fault: true}}
                  - call: {{to: mk, words: [0]}}
                  - call: {{to: ghost, words: [3]}}
        """,
        cpus,
    )
    assert s.ended == "end"
    r_send, r_recv, r_call, r_mk, r_ok = results(s, "s")
    assert r_send["ok"] is False and r_send["error"] == "not_exist"
    assert r_recv["ok"] is False and r_recv["error"] == "not_exist"
    assert r_call["ok"] is False and r_call["error"] == "not_exist"  # checked before DD 4
    _ok(r_mk, "call")
    assert r_mk["words"] == [7]
    assert run_summary(s)["threads"]["ghost"]["cpu"] == cpus  # the creator's CPU
    _ok(r_ok, "call")
    assert r_ok["words"] == [42] and r_ok["from"] == "ghost"
    (g0, g1) = results(s, "ghost")
    _ok(g0, "recv")
    assert g0["words"] == [3]
    assert g1["op"] == "reply_wait" and g1["error"] == "timeout"
    _all_inactive(s, "s", "mk", "ghost")
    assert counters(s)["xp_ipc"] == 4
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("op", ["send", "call"])
@pytest.mark.parametrize("cpus", CPUS)
def test_xp_fault_aborts_cross_cpu(cpus: int, op: str) -> None:
    """DD 4: the send word's xp bit aborts a cross-CPU IPC with error 7 and the target's CPU;
    no IPC happens, the receiver still waits."""
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - recv: {{from: any}}
          - name: st
            threads:
              - name: s
                cpu: 1
                program:
                  - {op}: {{to: r, words: [1, 2], xp_fault: true}}
                  - read_kip
        """,
        cpus,
    )
    assert s.ended == "end"
    ra, rk = results(s, "s")
    assert ra["op"] == op
    assert ra["ok"] is False and ra["error"] == "xp_abort" and ra["cpu"] == cpus, ra
    assert ra["xp"] is True
    assert rk["op"] == "read_kip"
    assert results(s, "r") == []
    assert state(s, "r") == "waiting"
    assert state(s, "s") == "inactive"
    c = counters(s)
    assert c["ipc"] == 0 and c["xp_ipc"] == 0
    assert c["ipis_sent"] == 0  # nothing went across
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_xp_fault_same_cpu_proceeds(cpus: int) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: rt
            threads:
              - name: r
                cpu: {cpus}
                program:
                  - recv: {{from: any}}
                  - reply_wait: {{words: [8], timeout: 0, recv_timeout: 0}}
          - name: st
            threads:
              - name: s
                cpu: {cpus}
                program:
                  - call: {{to: r, words: [1], xp_fault: true}}
        """,
        cpus,
    )
    r = results(s, "s")[0]
    _ok(r, "call", xp=False)
    assert r["words"] == [8] and r["cpu"] is None
    assert results(s, "r")[0]["words"] == [1]
    assert counters(s)["xp_ipc"] == 0
    assert_mailboxes_clean(s)


# --- more than three words ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_more_than_three_words_cross_cpu(cpus: int, policy: str) -> None:
    """Beyond the three register words, the message registers of the UTCBs (both ways)."""
    words = [0xFFFF_FFFF, 0, 1, 0xDEAD_BEEF, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    reply = list(range(100, 164))  # the most a message holds
    s = xp_run(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: {cpus}
                program:
                  - recv: {{from: cli}}
                  - reply_wait: {{words: {reply}, timeout: 0, recv_timeout: 0}}
          - name: client
            threads:
              - name: cli
                cpu: 1
                program:
                  - call: {{to: srv, words: {words}}}
        """,
        cpus,
        policy,
    )
    (rc,) = results(s, "cli")
    _ok(rc, "call")
    assert rc["words"] == reply
    r0, r1 = results(s, "srv")
    _ok(r0, "recv")
    assert r0["words"] == words
    assert r1["op"] == "reply_wait" and r1["error"] == "timeout"  # nobody sends again
    assert counters(s)["xp_ipc"] == 2
    assert_mailboxes_clean(s)


# --- long IPC: strings, faults in both spaces, map, grant, cut -----------------------------------

SRC, DST, SIZE = 0x100010, 0x200008, 10000  # unaligned, three pages on each side
PAGER_PAGES = (0x100000, 0x101000, 0x102000)


def _pattern(n: int, salt: int = 0) -> list[int]:
    return [(0x9E3779B1 * (i + 1) + salt) & 0xFFFF_FFFF for i in range(n)]


def _pager_task(s: System, thread: str, vaddr: int) -> str:
    node = mapping_node(s, thread, vaddr)
    assert node is not None and node.parent is not None, f"{thread}: {vaddr:#x} has no mapping"
    return s.kernel.spaces.name_of(node.parent.space)


@pytest.mark.parametrize("srv_pager", ["pgr", "sigma0"])
@pytest.mark.parametrize("cli_pager", ["pgr", "sigma0"])
@pytest.mark.parametrize(
    "cpus,cli,srv,pgr", [(3, 1, 2, 3), (4, 2, 3, 4)], ids=["3cpus", "4cpus-sigma0-apart"]
)
def test_string_copy_cross_cpu_with_faults_in_both_spaces(
    cpus: int, cli: int, srv: int, pgr: int, cli_pager: str, srv_pager: str
) -> None:
    """The proxy copies on the receiver's CPU in the sender's space (§8.4.2): a fault in the
    sender's space is redone by the sender on its own CPU, one in the receiver's space by the
    receiver; each goes to that thread's pager (a user pager on a third CPU, or sigma0 on CPU 1).
    The copy is byte-exact."""
    touches = "".join(f"\n          - touch: {{addr: {p:#x}, write: true}}" for p in PAGER_PAGES)
    body = f"""
tasks:
  - name: pager
    threads:
      - name: pgr
        cpu: {pgr}
        priority: 150
        program:{touches}
          - serve_faults
  - name: server
    threads:
      - name: srv
        cpu: {srv}
        pager: {srv_pager}
        program:
          - recv: {{from: cli, strings: [{{addr: {DST:#x}, size: {SIZE + 64}}}]}}
          - read_kip
  - name: client
    threads:
      - name: cli
        cpu: {cli}
        pager: {cli_pager}
        program:
          - compute: 30000
          - touch: {{addr: {SRC:#x}, write: true}}
          - compute: 10000
          - send: {{to: srv, words: [1], strings: [{{addr: {SRC:#x}, size: {SIZE}}}]}}
          - read_kip
"""
    s = xp_system(body, cpus)
    q = checked(s)
    k = s.kernel
    tc, tp = k.by_name["cli"], k.by_name["pgr"]
    step_until(
        s,
        lambda: isinstance(tc.pc.op, Ipc) and isinstance(tp.pc.op, ServeFaults),
        max_steps=STEPS,
    )
    assert results(s, "cli") == []  # the send has not started
    # The client's first page is present; the user pager's pages are all present (its own
    # touches), so a fault the pager serves maps a page whose contents we set here.
    head = (PAGE - SRC % PAGE) // 4
    data = _pattern(SIZE // 4)
    if cli_pager == "pgr":
        write_virtual(s, "pgr", SRC, data)
        assert translation(s, "cli", SRC).frame == translation(s, "pgr", SRC).frame
    else:
        write_virtual(s, "cli", SRC, data[:head])
    for p in PAGER_PAGES[1:]:
        assert translation(s, "cli", p) is None  # these fault during the proxy's copy
    faults_before = counters(s)["page_faults"]
    assert finish(s, q) == "end"
    rc, rk = results(s, "cli")
    _ok(rc, "send")
    assert rk["op"] == "read_kip"
    rs = results(s, "srv")[0]
    _ok(rs, "recv")
    assert rs["from"] == "cli" and rs["words"] == [1]
    _all_inactive(s, "cli", "srv")
    got = read_virtual(s, "srv", DST, SIZE)
    src_now = read_virtual(s, "cli", SRC, SIZE)
    assert None not in got
    assert got == src_now  # byte-exact, whatever the sender's pages held
    if cli_pager == "pgr":
        assert got == data
    else:
        assert got[:head] == data[:head]
    # Nothing beyond the string in the receiver's last page.
    tail_end = (DST + SIZE + PAGE - 1) // PAGE * PAGE
    assert all(w == 0 for w in read_virtual(s, "srv", DST + SIZE, tail_end - DST - SIZE))
    owner = {"pgr": "pager", "sigma0": "sigma0"}
    for p in PAGER_PAGES:
        assert _pager_task(s, "cli", p) == owner[cli_pager]
    for p in range(DST - DST % PAGE, DST + SIZE, PAGE):
        assert _pager_task(s, "srv", p) == owner[srv_pager]
    # Two sender faults and three receiver faults at least, during the copy.
    assert counters(s)["page_faults"] - faults_before >= 5
    assert counters(s)["xp_ipc"] >= 1
    k.spaces.mapdb.check()
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_receiver_faults_served_by_sigma0_on_the_senders_cpu(cpus: int, policy: str) -> None:
    """The smallest case of the above: a one-page string from CPU 1, the receiver's buffer not
    yet mapped, sigma0 (CPU 1) its pager. sigma0's reply to the receiver's fault comes from
    the sender's CPU, so to the very proxy that is copying and waits for the fault to be
    resolved: it must not wake that proxy before the fault is resolved."""
    s = xp_system(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: {cpus}
                program:
                  - recv: {{from: cli, strings: [{{addr: 0x200000, size: 4096}}]}}
          - name: client
            threads:
              - name: cli
                cpu: 1
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - send: {{to: srv, strings: [{{addr: 0x100000, size: 4096}}]}}
        """,
        cpus,
        policy,
    )
    q = checked(s)
    cli = s.kernel.by_name["cli"]
    step_until(s, lambda: isinstance(cli.pc.op, Ipc), max_steps=STEPS)
    data = _pattern(1024, 11)
    write_virtual(s, "cli", 0x100000, data)
    assert finish(s, q) == "end", run_summary(s).get("stuck")
    _ok(results(s, "cli")[0], "send")
    _ok(results(s, "srv")[0], "recv")
    assert read_virtual(s, "srv", 0x200000, 4096) == data
    _all_inactive(s, "cli", "srv")
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
def test_string_copy_cross_cpu_policies(policy: str) -> None:
    """A string with faults on both sides, pager on a third CPU, under every IPI policy."""
    s = xp_system(
        """
        tasks:
          - name: pager
            threads:
              - name: pgr
                cpu: 3
                priority: 150
                program:
                  - serve_faults
          - name: server
            threads:
              - name: srv
                cpu: 2
                pager: pgr
                program:
                  - recv: {from: cli, strings: [{addr: 0x200000, size: 8192}]}
          - name: client
            threads:
              - name: cli
                cpu: 1
                pager: pgr
                program:
                  - touch: {addr: 0x100000, write: true}
                  - touch: {addr: 0x101000, write: true}
                  - send: {to: srv, strings: [{addr: 0x100000, size: 8192}]}
        """,
        3,
        policy,
    )
    q = checked(s)
    cli = s.kernel.by_name["cli"]
    step_until(s, lambda: isinstance(cli.pc.op, Ipc), max_steps=STEPS)
    data = _pattern(2048, 7)
    write_virtual(s, "cli", 0x100000, data)
    assert finish(s, q) == "end"
    _ok(results(s, "cli")[0], "send")
    assert read_virtual(s, "srv", 0x200000, 8192) == data
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_call_reply_with_string_cross_cpu(cpus: int) -> None:
    """The server replies with a string into the buffer the client's call offered."""
    s = xp_system(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: {cpus}
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - recv: {{from: any}}
                  - reply_wait:
                      words: [5]
                      strings: [{{addr: 0x100004, size: 2040}}]
                      timeout: 0
                      recv_timeout: 0
          - name: client
            threads:
              - name: cli
                cpu: 1
                program:
                  - compute: 5000
                  - call: {{to: srv, words: [1], buffers: [{{addr: 0x600002, size: 4096}}]}}
        """,
        cpus,
    )
    q = checked(s)
    srv = s.kernel.by_name["srv"]
    step_until(s, lambda: isinstance(srv.pc.op, Ipc), max_steps=STEPS)
    data = _pattern(510, 3)
    write_virtual(s, "srv", 0x100004, data)
    assert finish(s, q) == "end"
    rc = results(s, "cli")[0]
    _ok(rc, "call")
    assert rc["words"] == [5] and rc["from"] == "srv"
    # Unaligned by two bytes: compare the bytes.
    mem = s.machine.memory

    def bytes_at(thread: str, vaddr: int, n: int) -> bytes:
        out = bytearray()
        for a in range(vaddr, vaddr + n):
            tr = translation(s, thread, a)
            assert tr is not None
            out.append(mem.read(tr.frame + (a % PAGE & ~3)) >> 8 * (a & 3) & 0xFF)
        return bytes(out)

    assert bytes_at("cli", 0x600002, 2040) == bytes_at("srv", 0x100004, 2040)
    assert bytes_at("cli", 0x600002, 8) != bytes(8)
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_map_and_grant_cross_cpu(cpus: int, policy: str) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - touch: {{addr: 0x301000, write: true}}
                  - send: {{to: b, words: [1], map: {{addr: 0x300000, size: 4096}}}}
                  - send: {{to: b, words: [2], grant: {{addr: 0x301000, size: 4096}}}}
          - name: t2
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - recv: {{from: a, window: {{addr: 0x500000, size: 4096}}}}
                  - recv: {{from: a, window: {{addr: 0x600000, size: 4096}}}}
                  - touch: {{addr: 0x500004, write: true}}
                  - touch: {{addr: 0x600004, write: true}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    ra = results(s, "a")
    _ok(ra[0], "send")
    _ok(ra[1], "send")
    rb = results(s, "b")
    _ok(rb[0], "recv")
    _ok(rb[1], "recv")
    assert rb[0]["mapped"] == [[0x500000, 4096]]
    assert rb[1]["mapped"] == [[0x600000, 4096]]
    # map: one frame, shared; b's write hit the mapped page (no fault).
    ta, tb = translation(s, "a", 0x300000), translation(s, "b", 0x500000)
    assert ta is not None and tb is not None and ta.frame == tb.frame
    assert read_virtual(s, "b", 0x500000, 8) == [1, 1]
    assert mapping_node(s, "b", 0x500000).parent is mapping_node(s, "a", 0x300000)
    # grant: the page moved; a has it no more.
    assert translation(s, "a", 0x301000) is None
    assert mapping_node(s, "a", 0x301000) is None
    assert read_virtual(s, "b", 0x600000, 8) == [1, 1]
    assert _pager_task(s, "b", 0x600000) == "sigma0"
    # a's two first touches went to sigma0 (CPU 1); b's touches hit the pages.
    assert counters(s)["page_faults"] == 2
    assert counters(s)["xp_ipc"] == 2
    s.kernel.spaces.mapdb.check()
    assert_mailboxes_clean(s)


@pytest.mark.parametrize(
    "recv",
    [
        pytest.param("{from: a, strings: [{addr: 0x300000, size: 100}]}", id="string-too-big"),
        pytest.param("{from: a}", id="no-buffer"),
    ],
)
@pytest.mark.parametrize("cpus", CPUS)
def test_cut_cross_cpu_reaches_both(cpus: int, recv: str) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - send: {{to: b, words: [1], strings: [{{addr: 0x100000, size: 200}}]}}
                  - read_kip
          - name: t2
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - recv: {recv}
                  - read_kip
        """,
        cpus,
    )
    assert s.ended == "end"
    ra, rak = results(s, "a")
    assert ra["op"] == "send" and ra["ok"] is False and ra["error"] == "cut", ra
    assert ra["xp"] is True
    assert rak["op"] == "read_kip"
    rb = results(s, "b")
    assert rb, "the receiver never completed its receive"
    assert rb[0]["op"] == "recv" and rb[0]["ok"] is False and rb[0]["error"] == "cut", rb
    assert rb[1]["op"] == "read_kip"
    _all_inactive(s, "a", "b")
    assert counters(s)["xp_ipc"] == 0  # a failed transfer is no IPC
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_map_without_window_cut_cross_cpu(cpus: int) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 4096}}}}
          - name: t2
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - recv: {{from: a}}
                  - read_kip
        """,
        cpus,
    )
    assert results(s, "a")[0]["error"] == "cut"
    rb = results(s, "b")
    assert rb and rb[0]["error"] == "cut" and rb[1]["op"] == "read_kip"
    assert translation(s, "b", 0x300000) is None
    _all_inactive(s, "a", "b")
    assert_mailboxes_clean(s)


# --- deadlock ------------------------------------------------------------------------------------


WAIT_RE = re.compile(r"(\S+) (polling on|waiting for) (\S+)")


def _chain(s: System, proxies: set[str]) -> list[str]:
    """The wait-for cycle of `summary()["waits"]` as the threads in it, proxies left out
    (a cross-CPU sender may be shown waiting for the proxy that polls for it), starting
    at the alphabetically first."""
    lines = run_summary(s).get("waits", [])
    names = []
    for line in lines:
        m = WAIT_RE.fullmatch(line)
        assert m is not None, lines
        names.append(m.group(1))
    # Consecutive edges chain: each one starts where the previous ended.
    ons = [WAIT_RE.fullmatch(line).group(3) for line in lines]
    assert names and ons[-1] == names[0], lines
    assert all(on == nxt for on, nxt in zip(ons, names[1:], strict=False)), lines
    users = [n for n in names if n not in proxies]
    i = users.index(min(users))
    return users[i:] + users[:i]


def _proxies(s: System) -> set[str]:
    return {t.name for t in s.kernel.threads if t.proxy_kind}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_cross_cpu_deadlock_two(cpus: int, policy: str) -> None:
    """a calls b, b calls a, on two CPUs: a cycle in the wait-for graph, through the proxies."""
    s = xp_run(
        f"""
        tasks:
          - name: ta
            threads:
              - name: a
                cpu: 1
                program:
                  - call: {{to: b, words: [1]}}
          - name: tb
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - compute: 100
                  - call: {{to: a, words: [2]}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "deadlock", (s.ended, run_summary(s).get("stuck"))
    summary = run_summary(s)
    assert summary["deadlock"] is True
    assert _chain(s, _proxies(s)) == ["a", "b"], summary["waits"]
    assert results(s, "a") == results(s, "b") == []
    assert counters(s)["ipc"] == 0
    assert_mailboxes_clean(s, pending_ok=True)


@pytest.mark.parametrize("cpus", [3, 4])
def test_cross_cpu_deadlock_chain_of_three(cpus: int) -> None:
    """a -> b -> c -> a, each on its own CPU: the summary names the whole chain."""
    s = xp_run(
        """
        tasks:
          - name: t
            threads:
              - name: a
                cpu: 1
                program:
                  - call: {to: b}
              - name: b
                cpu: 2
                program:
                  - compute: 100
                  - call: {to: c}
              - name: c
                cpu: 3
                program:
                  - compute: 200
                  - call: {to: a}
        """,
        cpus,
    )
    assert s.ended == "deadlock", (s.ended, run_summary(s).get("stuck"))
    assert run_summary(s)["deadlock"] is True
    assert _chain(s, _proxies(s)) == ["a", "b", "c"], run_summary(s)["waits"]
    assert_mailboxes_clean(s, pending_ok=True)


@pytest.mark.parametrize("cpus", CPUS)
def test_mixed_local_and_remote_deadlock(cpus: int) -> None:
    """a (CPU 1) calls b (remote); b receives only from c (CPU 1), c waits for a."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: a
                cpu: 1
                program:
                  - call: {{to: b}}
              - name: b
                cpu: {cpus}
                program:
                  - recv: {{from: c}}
              - name: c
                cpu: 1
                program:
                  - recv: {{from: a}}
        """,
        cpus,
    )
    assert s.ended == "deadlock", (s.ended, run_summary(s).get("stuck"))
    assert _chain(s, _proxies(s)) == ["a", "b", "c"], run_summary(s)["waits"]
    assert_mailboxes_clean(s, pending_ok=True)


@pytest.mark.parametrize("cpus", CPUS)
def test_cross_cpu_sender_blocked_for_good_is_not_stuck(cpus: int) -> None:
    """A send with no timeout to a remote thread that never receives: the sender polls (through
    its proxy) forever. That is blocked for good, like a local polling sender — the run ends
    ("end"), it is not "stuck" (a thread left locked by a kernel fault)."""
    s = xp_run(
        f"""
        tasks:
          - name: t
            threads:
              - name: a
                cpu: 1
                program:
                  - send: {{to: b, words: [1]}}
              - name: b
                cpu: {cpus}
                program:
                  - compute: 100
        """,
        cpus,
    )
    assert s.ended == "end", (s.ended, run_summary(s).get("stuck"))
    assert run_summary(s)["deadlock"] is False
    assert state(s, "b") == "inactive"
    assert results(s, "a") == []
    assert_mailboxes_clean(s, pending_ok=True)


# --- IPI policies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cpus", CPUS)
def test_ipi_policy_counts(cpus: int) -> None:
    """poll_only sends no IPI; always sends no fewer than when_needed, on the same scenario.

    Here the target is halted whenever a request comes: when_needed interrupts it
    too (tests/test_ipi_policy.py has a target busy in system calls).
    """
    got = {}
    runs = []
    for policy in POLICIES:
        s = xp_run(PINGPONG.format(srv=cpus), cpus, policy)
        assert s.ended == "end"
        assert [r["words"] for r in results(s, "cli")] == [[7, 8]] * 3
        assert counters(s)["xp_ipc"] == 6
        got[policy] = counters(s)["ipis_sent"]
        assert got[policy] == sum(c["ipis_received"] for c in run_summary(s)["cpus"])
        runs.append(s)
    assert got["poll_only"] == 0
    assert got["always"] >= got["when_needed"] > 0, got
    for s in runs:
        assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_poll_only_waits_for_ticks(cpus: int) -> None:
    """Without IPIs a request is found at the target's next tick: a longer tick, a slower run."""
    cycles = {}
    runs = []
    for tick in (2000, 20000):
        s = xp_run(PINGPONG.format(srv=cpus), cpus, "poll_only", tick=tick)
        assert s.ended == "end"
        assert counters(s)["ipis_sent"] == 0
        assert counters(s)["xp_ipc"] == 6
        cycles[tick] = s.machine.cpu(1).clock // s.machine.tpc
        runs.append(s)
    assert cycles[20000] > cycles[2000]
    for s in runs:
        assert_mailboxes_clean(s)


# --- System.run(check_invariants=True) on the scenarios above ----------------------------------

CHECKED: dict[str, str] = {
    "pingpong": PINGPONG,
    "late-receiver": LATE_RECEIVER,
    "sleep-alone-on-the-last-cpu": """
        tasks:
          - name: t
            threads:
              - name: r
                cpu: {cpu}
                program:
                  - sleep: 20000
                  - recv: {{from: any, timeout: 0}}
        """,
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("name", list(CHECKED))
def test_run_check_invariants(name: str, cpus: int, policy: str) -> None:
    """`System.run(check_invariants=True)`: the invariants hold at every kernel exit it checks,
    while a sender polls through its proxy and all along an XP call."""
    text = CHECKED[name].format(srv=cpus, r=cpus, src="s", cpu=cpus)
    s = xp_system(text, cpus, policy)
    why = s.run(max_steps=STEPS, check_invariants=True)
    assert s.violations == []
    assert why == "end"
    if name == "late-receiver":
        assert results(s, "r")[0]["words"] == [5, 6]
    if name == "pingpong":
        assert [r["words"] for r in results(s, "cli")] == [[7, 8]] * 3
