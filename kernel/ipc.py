"""The IPC send, receive and transmit paths of thesis §8.3.2, as kernel micro-op paths.

Each function is a generator run on the calling thread's kernel stack; it
marks its phases with labels that mirror the pseudo-code's lines, so a
breakpoint on ``ipc.send.*`` stops exactly where the thesis's send path is.

Send: check the target (its `myself` field), set `partner`, and unless the
receiver already waits for us (closed from us, or open), enqueue ourselves
for the send timeout and into the receiver's send queue and go `polling`;
then lock both (`locked_running`, `locked_waiting`) and transmit, the sender
being the active partner. Receive: find the sender (closed: the one named;
open: the head of our send queue); if it is not polling towards us, go
`waiting` with the receive timeout; else wake it, lock ourselves and switch
to it so it transmits. Timeouts are `None` (infinite), 0 (do not wait) or
cycles.

Why a blocked path was resumed is the TCB's `wake` field (`thread.WAKE_*`),
written by whoever makes the thread ready — with a micro-op, for in the
`naive` design that is the partner on another CPU, and Uhlig's lost wake-up
(§8.3.3) is a race on exactly these words. A thread clears it before it
makes itself visible as waiting or polling, so no wake-up written after that
is lost.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import interrupts, proxy, sched, transfer, xcpu
from kernel.errors import IpcError, Restart
from kernel.ids import NIL
from kernel.program import Ipc
from kernel.sched import CpuData
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    POLLING,
    RUNNING,
    WAITING,
    WAKE_ABORT,
    WAKE_NONE,
    WAKE_PARTNER,
    WAKE_REDO_FAULT,
    WAKE_RESTART,
    WAKE_TIMEOUT,
    Thread,
)
from machine.ops import EOI, Op, Phase, Read, SendIPI, Write

NAIVE_VECTOR = 0xF4

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]


def send(k: Kernel, a: Thread, b: Thread, op: Ipc) -> Path:
    """The send path of §8.3.2; raises IpcError. Ends with `b` holding the message.

    If the receiver migrates while we wait for it, the send starts over from
    the target check — locally or cross-processor as it now is (§8.5).
    """
    while True:
        try:
            yield from _send(k, a, b, op)
            return
        except Restart:
            yield Phase("ipc.send.restart")


def _send(k: Kernel, a: Thread, b: Thread, op: Ipc) -> Path:
    yield Phase("ipc.send.check_target")
    myself = yield Read(b.f["myself"])
    if myself == NIL or myself != b.word:
        raise IpcError("not_exist")
    if op.xp_fault and b.cpu != a.cpu:
        # Design decision 4: the sender asked to abort a cross-processor IPC.
        raise IpcError("xp_abort", b.cpu)
    if b.cpu != a.cpu and k.xp_ipc == "proxy":
        yield from proxy.send_request(k, a, b, op)  # ID 3: the proxy does it on B's CPU
        return
    if b.cpu != a.cpu:
        yield from naive_disable(k, b.cpu)
    yield Phase("ipc.send.set_partner")
    yield Write(a.f["partner"], b.word)
    yield Phase("ipc.send.check_receiver")
    b_state = yield Read(b.f["thread_state"])
    b_partner = yield Read(b.f["partner"])
    if not (b_state == WAITING and b_partner in (a.word, NIL)):
        if op.timeout == 0:
            raise IpcError("timeout")
        cd = k.cpus[a.cpu - 1]
        yield Phase("ipc.send.enqueue_sendq")
        yield Write(a.f["wake"], WAKE_NONE)  # before the receiver can find us polling
        yield from sched.enqueue_sendq(k, b, a)
        yield Phase("ipc.send.polling")
        yield Write(a.f["thread_state"], POLLING)
        why = yield from sched.wait_for_partner(k, a, b, op.timeout)
        if why == WAKE_RESTART:
            yield from sched.dequeue_sendq(k, b, a)
            yield Write(a.f["thread_state"], RUNNING)
            raise Restart
        if why != WAKE_PARTNER:
            yield from sched.dequeue_sendq(k, b, a)
            raise IpcError("timeout" if why == WAKE_TIMEOUT else "aborted")
        yield Phase("ipc.send.dequeue_wakeup")
        yield from sched.dequeue_wakeup(k, cd, a)
    # At this point, B is ready to receive from A.
    yield Phase("ipc.send.lock")
    yield Write(a.f["thread_state"], LOCKED_RUNNING)
    yield Write(b.f["thread_state"], LOCKED_WAITING)
    yield from sched.enqueue_ready(k, k.cpus[a.cpu - 1], a)
    try:
        yield from transfer.transmit(k, a, b, op)
    except IpcError as e:
        # abortIPC in the transmit phase: the receiver gets the same error.
        yield from transfer.deliver(k, a, b, error=e.error)
        failure: IpcError | None = e
    else:
        failure = None
    yield Write(b.f["partner"], a.word)
    # Wake the receiver: it finishes its receive path when it next runs.
    yield Phase("ipc.send.wake_receiver")
    yield Write(b.f["wake"], WAKE_PARTNER)
    yield from sched.make_ready(k, k.cpus[b.cpu - 1], b, LOCKED_RUNNING)
    yield Write(a.f["thread_state"], RUNNING)
    if failure is not None:
        raise failure
    k.counters.ipc += 1
    if b.cpu != a.cpu:
        k.counters.xp_ipc += 1
    elif not op.receives and (yield Read(b.f["priority"])) > (yield Read(a.f["priority"])):
        yield Phase("ipc.send.switch_to_receiver")  # the receiver outranks us: it runs now
        yield from k.switch_to(k.cpus[a.cpu - 1], b)


def receive(k: Kernel, b: Thread, source: Thread | None, timeout: int | None) -> Path:
    """The receive path of §8.3.2; returns the sender; raises IpcError."""
    cd = k.cpus[b.cpu - 1]
    if b.recv_started:  # our XP call's proxy made us receive already: the reply is in
        b.recv_started = False
        yield Phase("ipc.recv.xp_call")
        yield Write(b.f["recv_started"], 0)
        yield from sched.dequeue_wakeup(k, cd, b)
        why = yield from _redo_faults(k, b, (yield Read(b.f["wake"])))
        if why != WAKE_PARTNER:
            yield Write(b.f["thread_state"], RUNNING)
            raise IpcError("timeout" if why == WAKE_TIMEOUT else "aborted")
        yield Write(b.f["thread_state"], RUNNING)
        if b.failed is not None:
            error, b.failed = b.failed, None
            raise IpcError(error)
        return b.inbox.sender if b.inbox is not None else source
    yield Phase("ipc.recv.find_sender")
    if source is not None and source.hardware:
        yield from interrupts.associate(k, source, b)
    hw = yield from interrupts.take_pending(k, b, source)
    if hw is not None:  # an interrupt was waiting for us: it is the message
        yield Phase("ipc.recv.interrupt")
        return hw
    if source is not None:  # closed receive
        myself = yield Read(source.f["myself"])
        if myself == NIL or myself != source.word:
            raise IpcError("not_exist")
        a: Thread | None = source
    else:
        head = yield Read(b.f["send_queue"])
        a = k.by_tcb[head] if head else None
    yield Phase("ipc.recv.check_sender")
    ready = False
    send_proxy = None
    if a is not None and a.cpu != b.cpu and k.xp_ipc == "naive":
        yield from naive_disable(k, a.cpu)
    if a is not None and a.cpu != b.cpu and k.xp_ipc == "proxy":
        # A sender on another CPU is represented here by its proxy (§8.3.5).
        send_proxy = yield from xcpu.sender_proxy(k, a, b)
        ready = send_proxy is not None
    elif a is not None:
        a_state = yield Read(a.f["thread_state"])
        a_partner = yield Read(a.f["partner"])
        ready = a_state == POLLING and a_partner == b.word
    cd = k.cpus[b.cpu - 1]
    if not ready or a is None:  # (a sender that is ready is not None)
        if timeout == 0:
            raise IpcError("timeout")
        yield Phase("ipc.recv.wait")
        yield Write(b.f["wake"], WAKE_NONE)  # before a sender can find us waiting
        yield Write(b.f["thread_state"], WAITING)
        yield Write(b.f["partner"], source.word if source is not None else NIL)
        why = yield from sched.wait_for_partner(k, b, source, timeout)
        # A waiting receiver may have been migrated while it waited (§8.7.3: it
        # left B's wakeup queue and joined C's): from here on its CPU is the new
        # one. Using the CpuData of the CPU it blocked on unlinked it from the
        # old CPU's wakeup queue head and put it into the old CPU's ready list
        # (found by the random kernel fuzzer: "cpu3 wakeup queue is not
        # ordered", "r is inactive but in a wakeup queue", "a (on cpu2) is in
        # cpu1's ready list"). Design decision 1: a CPU's queues are its own.
        cd = k.cpus[b.cpu - 1]
        why = yield from _redo_faults(k, b, why)
        if why != WAKE_PARTNER:
            raise IpcError("timeout" if why == WAKE_TIMEOUT else "aborted")
        yield Phase("ipc.recv.dequeue_wakeup")
        yield from sched.dequeue_wakeup(k, cd, b)
    else:
        yield Phase("ipc.recv.wake_sender")
        # A local sender is woken itself; a remote one through its proxy (§8.3.5).
        waker = send_proxy if send_proxy is not None else a
        yield Write(b.f["wake"], WAKE_NONE)  # before the sender can wake us
        # Its wake reason before its state: once ready, it may run at once (on its
        # CPU, in the naive design) and must find why.
        yield Write(waker.f["wake"], WAKE_PARTNER)
        yield Write(waker.f["thread_state"], LOCKED_RUNNING)
        acd = k.cpus[waker.cpu - 1]
        yield from sched.enqueue_ready(k, acd, waker)
        if waker.cpu == b.cpu:
            yield from sched.dequeue_wakeup(k, acd, waker)
        # else (the naive design): a CPU's wakeup queue is its own (design decision 1,
        # §8.3.3); the sender leaves it itself when it runs (ipc.send.dequeue_wakeup).
        yield from sched.dequeue_sendq(k, b, a)
        yield Write(b.f["thread_state"], LOCKED_WAITING)
        yield from sched.block(k, cd, waker)
        if (yield from _redo_faults(k, b, (yield Read(b.f["wake"])))) != WAKE_PARTNER:
            raise IpcError("aborted")
    cd = k.cpus[b.cpu - 1]  # where b is now (see above)
    yield from transfer.collect(k, b)
    yield Phase("ipc.recv.done")
    yield Write(b.f["thread_state"], RUNNING)
    yield from sched.enqueue_ready(k, cd, b)
    if b.failed is not None:
        error, b.failed = b.failed, None
        raise IpcError(error)
    msg = b.inbox
    return msg.sender if msg is not None else a


def naive_disable(k: Kernel, cpu: int) -> Path:
    """The `naive` variant's first try (§8.3.3): ask the partner's CPU by IPI to
    disable its interrupts — and go on without waiting for it to acknowledge.
    The checks that follow are therefore unprotected: Uhlig's race."""
    yield Phase("naive.disable_partner_irqs")
    k.counters.ipis += 1
    yield SendIPI(1 << (cpu - 1), NAIVE_VECTOR)


def naive_handler(k: Kernel) -> Any:
    return _naive_ipi


def _naive_ipi(c: Any, vector: int) -> Path:
    yield EOI()
    yield Phase("naive.irqs_disabled")  # too late to protect the check on the other CPU


def _redo_faults(k: Kernel, b: Thread, why: int) -> Path:
    """While the sender asks us to redo faults in our space, do so (§8.3.2)."""
    while why == WAKE_REDO_FAULT:
        yield from k.redo_fault(b, None)
        why = yield Read(b.f["wake"])
    return why


def timeout(k: Kernel, cd: CpuData, t: Thread) -> Path:
    """The timer found `t`'s timeout expired: resume it with error `timeout`."""
    state = yield Read(t.f["thread_state"])
    if state not in (WAITING, POLLING):
        return  # locked meanwhile: the IPC goes on
    yield Phase("ipc.timeout")
    k.counters.timeouts += 1
    yield Write(t.f["wake"], WAKE_TIMEOUT)
    if state == POLLING:  # leave the receiver's send queue now, not when we next run
        partner = k.by_word((yield Read(t.f["partner"])))
        if partner is not None:
            yield from sched.dequeue_sendq(k, partner, t)
    yield from sched.make_ready(k, cd, t, RUNNING)


def abort(k: Kernel, t: Thread) -> Path:
    """lthread_ex_regs: cut short `t`'s ongoing IPC; it completes with error `aborted`."""
    state = yield Read(t.f["thread_state"])
    if state in (WAITING, POLLING):
        yield Phase("ipc.abort")
        yield Write(t.f["wake"], WAKE_ABORT)
        cd = k.cpus[t.cpu - 1]
        yield from sched.dequeue_wakeup(k, cd, t)
        if state == POLLING:
            partner = k.by_word((yield Read(t.f["partner"])))
            if partner is not None:
                yield from sched.dequeue_sendq(k, partner, t)
        yield from sched.make_ready(k, cd, t, RUNNING)
    elif state in (LOCKED_RUNNING, LOCKED_WAITING):
        # The transfer checks between items and stops — on another CPU, if it is our
        # proxy's (§8.3.5): it reads the TCB; our own paths read our copy.
        t.abort = True
        yield Write(t.f["abort"], 1)
