"""Proxy threads and the cross-processor IPC paths (thesis §8.3.5, §8.4).

Implementation decision 3: any operation modifying a thread is performed on
its current CPU. So when a sender finds its receiver on another CPU it does
not touch it: it writes an *IPC send* request into a mailbox for a proxy
thread on the receiver's CPU, triggers it, and waits (`locked_waiting`,
timeout infinite — the proxy waits for it). The proxy runs the send path
there with interrupts disabled, in the sender's stead: it polls on the
receiver if need be (the *sender* goes into the send queue, the *proxy* into
the wakeup queue), transfers the message on the receiver's CPU
(implementation decision 2) and wakes the receiver. Then `wakeup_sender`
re-targets the same mailbox at the sender — the sender is "the receiving
proxy" of an empty reply operation (§8.4.1) — with the completion code in
the sender's `xp_cc`; the sender, woken by `check_n_ack` on its own CPU,
frees its mailboxes (`XP_RETURN`) and goes on.

Each CPU has one IPC proxy per source CPU, so requests from different CPUs
never wait behind each other's blocked send; requests from one CPU are
served in order (the proxy's first/last mailbox list, §8.4).

Each CPU's *control proxy* serves the other requests (§8.4.3): work another
CPU wants run here — lthread_ex_regs and thread_schedule (unwind.py) and a
migration's parts B and C (migrate.py) — one mailbox at a time (`step`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import migrate, sched, transfer, xcpu
from kernel.errors import XP_CODES, XP_ERRORS, ErrorCode, IpcError, Restart
from kernel.ids import NIL
from kernel.mail import Forward, MailOp, MigrateMail, RedoFaultMail, RemoteMail, SendMail
from kernel.program import Ipc
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    POLLING,
    RUNNING,
    WAITING,
    WAKE_FORWARD,
    WAKE_NONE,
    WAKE_PARTNER,
    WAKE_RESOLVED,
    WAKE_TIMEOUT,
    ProxyKind,
    Thread,
    space_of,
)
from machine.ops import LoadCR3, Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData

Path = Generator[Op, Any, Any]

OP_IPC_SEND = 1
NEVER = 0xFFFF_FFFF  # an infinite timeout in the ipc_timeout field
REDO_FAULT = 0x100  # not a completion: the proxy asks the sender to redo a page fault
RESTART = 0x101  # the receiver moved to the sender's CPU: do the IPC again, locally


def send_request(k: Kernel, a: Thread, b: Thread, op: Ipc) -> Path:
    """The sender's side of a cross-processor send (§8.3.5 "send path")."""
    yield Phase("xp.send")
    cd = k.cpus[a.cpu - 1]
    p = yield from k.claim_proxy(b.cpu, a.cpu)
    i = yield from xcpu.alloc(k, a.cpu)
    request = SendMail(a, b, op)
    yield from xcpu.setup(k, i, request, OP_IPC_SEND, p)
    yield Write(a.f["proxy"], p.tcb)
    # Lock ourselves *before* the trigger, where §8.3.5's pseudo-code triggers first:
    # its proxy never writes the sender's state, but ours does for a call's receive
    # phase (xp.proxy.start_receive, §8.3.1's atomic call), and may do so as soon as
    # the trigger is out. Locking late overwrote that (found by `l4tui explore` on
    # scripts/xp-pingpong.yaml: a lost wake-up and a four-way deadlock).
    yield Write(a.f["ipc_timeout"], NEVER)  # the proxy waits for us, with our timeout
    yield Write(a.f["thread_state"], LOCKED_WAITING)
    # A call's receive phase, begun by the proxy, ends with our wake-up by its sender.
    yield Write(a.f["wake"], WAKE_NONE)
    # The proxy's CPU, not b's of the moment: b may have been migrated since we
    # chose its proxy (§8.5, the second race). The flag went to b's new CPU, whose
    # check_n_ack made another CPU's proxy ready in its own ready list (found by the
    # random kernel fuzzer: "proxy5.1 (on cpu5) is in cpu6's ready list"). The proxy,
    # on its CPU, finds b gone and forwards the request.
    yield from xcpu.trigger(k, cd, i, p.cpu)
    yield from k.switch_to(cd, None)  # switchTo(Anyone)
    # Woken where we are now: a call whose receive phase the proxy began leaves
    # us waiting, and a waiting thread may be migrated (§8.7.3).
    return (yield from _xp_return(k, k.cpus[a.cpu - 1], a, request))


def _xp_return(k: Kernel, cd: CpuData, a: Thread, request: SendMail) -> Path:
    # XP_RETURN: woken by check_n_ack on our CPU once the proxy is done.
    yield Phase("xp.return")
    # A call: the proxy may have begun our receive (§8.3.1), and said so in our TCB.
    a.recv_started = request.ipc.receives and bool((yield Read(a.f["recv_started"])))
    code = yield Read(a.f["xp_cc"])
    while code == REDO_FAULT:  # not done: the proxy needs a page of ours (§8.4.2)
        yield from redo_fault(k, a)  # locks us before it reactivates the proxy
        yield from k.switch_to(k.cpus[a.cpu - 1], None)
        cd = k.cpus[a.cpu - 1]
        code = yield Read(a.f["xp_cc"])
    # The reply to a call may have woken us before our CPU linked the wake-up
    # mailbox to us: drain the flags, then free every mailbox on our list.
    woken = yield from xcpu.check_n_ack(k, cd)
    while (j := (yield from xcpu.unhook_first(k, a))) is not None:
        yield from xcpu.release(k, j)
    if woken:
        yield from k.preempt_for(cd, [t for t in woken if t is not a])
    if not a.recv_started:
        yield Write(a.f["thread_state"], RUNNING)
    if code == RESTART:
        raise Restart  # the receiver came to our CPU: a local IPC now (§8.5)
    if code:
        raise IpcError(XP_ERRORS.get(code, "aborted"))


def step(k: Kernel, cd: CpuData, p: Thread) -> Path:
    """A proxy's main loop, one request at a time: sleep when its list is empty (§8.4)."""
    first = yield Read(p.f["first_mailbox"])
    if not first:
        p.busy = False
        if p.proxy_kind is ProxyKind.IPC:
            yield Write(p.f["resources"], 0)  # free to be claimed again
        yield Phase("xp.proxy.sleep")
        yield Write(p.f["thread_state"], WAITING)
        yield Write(p.f["partner"], NIL)
        yield from k.switch_to(cd, None)
        return
    i = k.mailboxes.index(first)
    mail = k.mailboxes.mail[i]
    p.busy = True  # in a request: only its own wake-ups wake it (not new mail)
    if isinstance(mail, SendMail):
        yield from xp_send_path(k, cd, p, i, mail)
    elif isinstance(mail, RemoteMail):
        yield from serve(k, cd, p, i, mail)
    elif isinstance(mail, MigrateMail):
        yield from xcpu.unhook_first(k, p)
        yield from xcpu.release(k, i)
        if mail.op is MailOp.MIGRATE_B:
            yield from migrate.part_b(k, cd, mail.job)
        else:
            yield from migrate.part_c(k, cd, mail.job)


def xp_send_path(k: Kernel, cd: CpuData, p: Thread, i: int, mail: SendMail) -> Path:
    """The proxy's send path, on the receiver's CPU, in the sender's stead (§8.3.5)."""
    a, b, op = mail.sender, mail.dest, mail.ipc
    yield Phase("xp.proxy.send")
    myself = yield Read(b.f["myself"])
    if myself == NIL or myself != b.word:
        yield from wakeup_sender(k, cd, p, a, i, "not_exist")
        return
    if b.cpu != p.cpu:
        # The receiver moved before we ran: the request moves with it (§8.5).
        yield from forward(k, cd, p, i, b)
        return
    yield Write(a.f["partner"], b.word)
    yield Write(p.f["partner"], b.word)
    b_state = yield Read(b.f["thread_state"])
    b_partner = yield Read(b.f["partner"])
    if not (b_state == WAITING and b_partner in (a.word, NIL)):
        if op.timeout == 0:
            yield from wakeup_sender(k, cd, p, a, i, "timeout")
            return
        yield Phase("xp.proxy.enqueue_sendq")
        yield Write(p.f["wake"], WAKE_NONE)  # before the receiver can find its sender polling
        yield from sched.enqueue_sendq(k, b, a)  # the sender goes into the send queue
        yield Write(p.f["thread_state"], POLLING)
        # Not switchTo(B): a proxy runs above everyone; the dispatcher decides.
        why = yield from sched.wait_for_partner(k, p, None, op.timeout)
        # Read, the reason is spent: clear it (a local L1 write when the receiver woke us,
        # from this CPU), or the proxy sleeps on with a stale reason that the order
        # without this wait never leaves, and the two states differ for `explore`.
        yield Write(p.f["wake"], WAKE_NONE)
        if why == WAKE_FORWARD:  # the receiver migrated away: the request follows it (§8.5)
            yield from sched.dequeue_sendq(k, b, a)
            yield Write(p.f["thread_state"], RUNNING)
            yield from forward(k, cd, p, i, b)
            return
        if why != WAKE_PARTNER:
            yield from sched.dequeue_sendq(k, b, a)
            yield from wakeup_sender(
                k, cd, p, a, i, "timeout" if why == WAKE_TIMEOUT else "aborted"
            )
            return
        yield from sched.dequeue_wakeup(k, cd, p)
    # At this point, B is ready to receive from A.
    yield Phase("xp.proxy.lock")
    yield Write(p.f["thread_state"], LOCKED_RUNNING)
    yield Write(b.f["thread_state"], LOCKED_WAITING)
    yield from sched.enqueue_ready(k, cd, p)
    failure: ErrorCode | None = None
    try:
        if op.strings:
            yield LoadCR3(space_of(a).pdbr)  # the copy runs in the sender's space
        yield from transfer.transmit(k, a, b, op, copier=p)
    except IpcError as e:
        b.failed = failure = e.error  # b is on our CPU (checked above)
    yield Write(b.f["partner"], a.word)
    if failure is None and op.receives and not (yield from xcpu.sender_ready(k, a, op)):
        # A call is atomic (§8.3.1): the sender must be receiving before the
        # receiver can answer — even with timeout 0. The sender is locked and
        # off every queue, so setting its receive state here touches nothing of
        # its CPU; its receive timeout is queued there when it is woken. If a
        # sender already waits for it, it receives itself and finds that one.
        yield Phase("xp.proxy.start_receive")
        source = k.by_name.get(op.source) if op.source else None
        yield Write(a.f["partner"], source.word if source is not None else NIL)
        yield Write(a.f["thread_state"], WAITING)
        # In the sender's TCB, as partner and state: its CPU reads it (xcpu.check_n_ack,
        # XP_RETURN, and a migration's B, which must not move it now).
        yield Write(a.f["recv_started"], 1)
    yield Phase("xp.proxy.wake_receiver")
    yield Write(b.f["wake"], WAKE_PARTNER)
    yield from sched.make_ready(k, cd, b, LOCKED_RUNNING)
    if failure is None:
        k.counters.ipc += 1
        k.counters.xp_ipc += 1
    yield Write(p.f["thread_state"], RUNNING)
    yield from wakeup_sender(k, cd, p, a, i, failure)


def wakeup_sender(
    k: Kernel, cd: CpuData, p: Thread, a: Thread, i: int, error: ErrorCode | None
) -> Path:
    """wakeup_sender (§8.4.1): the completion code, and the mailbox re-targeted at the sender."""
    yield Phase("xp.wakeup_sender")
    yield Write(a.f["xp_cc"], XP_CODES[error] if error else 0)
    yield from xcpu.unhook_first(k, p)
    yield Write(a.f["proxy"], 0)
    mb = k.mailboxes
    mb.mail[i].reply = True
    yield Write(mb.addr(i, xcpu.TARGET), a.tcb)
    yield from xcpu.trigger(k, cd, i, a.cpu)


def forward(k: Kernel, cd: CpuData, p: Thread, i: int, b: Thread) -> Path:
    """Hand a pending request to the proxy on the receiver's new CPU."""
    yield Phase("xp.proxy.forward")
    a = k.mailboxes.mail[i].sender
    if b.cpu == a.cpu:
        # "If the receiver is migrated to the sender's processor ... we can restart
        # the IPC locally for both threads" (§8.5).
        yield Write(a.f["xp_cc"], RESTART)
        yield from xcpu.unhook_first(k, p)
        yield Write(a.f["proxy"], 0)
        yield Write(k.mailboxes.addr(i, xcpu.TARGET), a.tcb)
        yield from xcpu.trigger(k, cd, i, a.cpu)
        return
    yield from xcpu.unhook_first(k, p)
    q = yield from k.claim_proxy(b.cpu, a.cpu)
    yield Write(k.mailboxes.addr(i, xcpu.TARGET), q.tcb)
    yield Write(a.f["proxy"], q.tcb)
    yield from xcpu.trigger(k, cd, i, q.cpu)  # q's CPU, as in send_request


def sender_fault(k: Kernel, p: Thread, a: Thread, addr: int, timeout: int | None) -> Path:
    """A fault in the sender's space during the proxy's copy (§8.4.2).

    "the proxy has to restart the sender, not with an empty operation, but
    with a request for redoing this pagefault. The sender when being
    activated generates a pagefault in its address space ... After receiving
    the mapping, the sender reactivates the proxy at the interrupted position."
    """
    yield Phase("xp.proxy.sender_fault")
    cd = k.cpus[p.cpu - 1]
    i = yield from xcpu.alloc(k, p.cpu)
    yield from xcpu.setup(k, i, RedoFaultMail(a, None, addr, timeout, p), 0, a)
    yield Write(a.f["xp_cc"], REDO_FAULT)
    # Our wake reason is cleared before the sender can learn of the fault: it writes
    # the answer there from its CPU (a lost answer if we cleared it after the trigger).
    yield Write(p.f["wake"], WAKE_NONE)
    yield from xcpu.trigger(k, cd, i, a.cpu)
    yield Write(p.f["thread_state"], WAITING)
    yield from k.switch_to(cd, None)
    # Reactivated by the sender's mailbox: take it off our list.
    yield from xcpu.remove(k, p, lambda m: m.op is MailOp.RESUMED)
    yield Write(p.f["thread_state"], LOCKED_RUNNING)
    return (yield Read(p.f["wake"])) == WAKE_RESOLVED


def redo_fault(k: Kernel, a: Thread) -> Path:
    """The sender's side of `sender_fault`: fault here, then reactivate the proxy."""
    i = None
    while True:
        i = yield from xcpu.unhook_first(k, a)
        if i is None:
            yield Write(a.f["thread_state"], LOCKED_WAITING)
            return
        mail = k.mailboxes.mail[i]
        if isinstance(mail, RedoFaultMail) and mail.op is MailOp.REDO_FAULT:
            break
    addr, timeout, p = mail.addr, mail.timeout, mail.proxy
    yield Phase("xp.redo_fault")
    ok = yield from k.fault_ipc(a, addr, False, timeout)
    yield Write(p.f["wake"], WAKE_RESOLVED if ok else WAKE_TIMEOUT)  # p is on another CPU
    mail.op = MailOp.RESUMED
    yield Write(k.mailboxes.addr(i, xcpu.TARGET), p.tcb)
    yield Write(a.f["xp_cc"], 0)
    yield Write(a.f["thread_state"], LOCKED_WAITING)  # before the proxy can go on
    yield from xcpu.trigger(k, k.cpus[a.cpu - 1], i, p.cpu)


def serve(k: Kernel, cd: CpuData, p: Thread, i: int, mail: RemoteMail) -> Path:
    """A control proxy runs a remote request, then wakes the requester.

    If the work must go on elsewhere (an abort reaching a send proxy on a third
    CPU), the *same* mailbox is handed on to that CPU's control proxy, which
    wakes the requester when it is done: "we take the same mailbox for all
    those (up to three) proxies" (§8.4.3). A control proxy never blocks: it
    also runs the B and C parts of migrations (§8.7.2), whose A waits for them
    spinning with interrupts disabled — a control proxy waiting for that CPU
    (the earlier `run_on` here) deadlocked the two (found by the random kernel
    fuzzer).
    """
    yield from xcpu.unhook_first(k, p)
    out = yield from mail.work(cd)
    if isinstance(out, Forward):
        yield Phase("unwind.proxy.remote")
        mail.work = out.work
        yield Write(k.mailboxes.addr(i, xcpu.TARGET), k.ctl[out.cpu].tcb)
        yield from xcpu.trigger(k, cd, i, out.cpu)
        return
    yield Phase("unwind.wake_caller")
    yield Write(k.mailboxes.addr(i, xcpu.TARGET), mail.sender.tcb)
    yield from xcpu.trigger(k, cd, i, mail.sender.cpu)
