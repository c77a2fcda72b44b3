"""Page faults as IPC, and the pagers that answer them (thesis §2.2.2, §8.3.2, §8.4.2).

A page fault becomes an IPC from the faulting thread to its pager (§2.2.2):
a call carrying (address, write) whose receive phase accepts one page, the
map item of the reply. sigma0 answers by mapping a fresh frame it owns "by
hand" (§2.2); a user-level pager (`serve_faults`) touches the page in its own
space — faulting to *its* pager in turn — and replies with a map item.
During a long IPC a fault is an IPC nested in another (§8.3.2): a fault in
the receiver's space is redone in the receiver's context (`redo_fault`), and
one in the sender's space while its proxy copies is redone by the sender on
its own CPU (§8.4.2, proxy.py).

These paths sit above the IPC paths they use; the IPC, proxy and transfer
paths below reach them through the kernel (`Kernel.fault_ipc`,
`Kernel.redo_fault`, `Kernel.copy_fault`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import ipc, proxy, sched
from kernel.errors import IpcError
from kernel.program import Fpage, Ipc, ServeFaults
from kernel.space import publish_buffers
from kernel.thread import (
    LOCKED_RUNNING,
    LOCKED_WAITING,
    WAKE_NONE,
    WAKE_PARTNER,
    WAKE_TIMEOUT,
    Thread,
    space_of,
)
from machine import paging
from machine.cpu import Cpu
from machine.memory import PAGE_SIZE
from machine.ops import Compute, Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]


def fault_handler(k: Kernel) -> Any:
    return functools.partial(page_fault, k)  # not a closure: checkpoints copy what it binds


def page_fault(k: Kernel, c: Cpu, addr: int, write: bool, reason: str) -> Path:
    """A user access faulted: send the fault to the thread's pager and wait (§2.2.2)."""
    cd = k.cpus[c.index]
    t = cd.current
    yield Phase("pf.raise")
    k.counters.hardware_page_faults += 1
    resolved = t.task is not None and reason != "supervisor"
    if resolved:
        resolved = yield from page_fault_ipc(k, t, addr, write)
    if not resolved:
        cd = k.cpus[t.cpu - 1]  # it may have been migrated while it waited (§8.7.3)
        yield Phase("pf.kill")  # no pager could resolve it: the thread cannot go on
        t.results.append(
            {
                "op": "page_fault",
                "ok": False,
                "error": "unresolved",
                "xp": False,
                "cpu": None,
                "words": [addr, int(write)],
            }
        )
        yield from sched.exit_thread(k, cd, t)


def page_fault_ipc(
    k: Kernel, t: Thread, addr: int, write: bool, timeout: int | None = None
) -> Path:
    """The fault IPC: a call to `t`'s pager with (address, write), receiving a mapping."""
    pager = t.pager
    if pager is None or pager is t:
        return False
    yield Phase("pf.ipc")
    k.counters.page_faults += 1
    state = yield Read(t.f["thread_state"])
    partner = yield Read(t.f["partner"])
    nested = state in (LOCKED_RUNNING, LOCKED_WAITING)  # a fault inside a long IPC
    wake = (yield Read(t.f["wake"])) if nested else WAKE_NONE
    saved = (t.window, t.buffers, t.inbox)
    page = addr - addr % PAGE_SIZE
    t.window = (page, PAGE_SIZE)
    t.buffers = ()
    t.fault = (addr, write)
    yield from publish_buffers(k, t)
    op = Ipc(
        "call",
        to=pager.name,
        source=pager.name,
        words=(addr, int(write)),
        timeout=timeout,
        recv_timeout=timeout,
    )
    try:
        yield from ipc.send(k, t, pager, op)
        yield from ipc.receive(k, t, pager, timeout)
        ok = True
    except IpcError as e:
        ok = False
        t.fault_error = e.error  # aborted (ex_regs) or timeout: the outer IPC says which
    t.window, t.buffers, t.inbox = saved
    t.fault = None
    yield from publish_buffers(k, t)  # the outer IPC's again
    if nested:  # back to the long IPC, as it was
        yield Write(t.f["thread_state"], state)
        yield Write(t.f["partner"], partner)
        yield Write(t.f["wake"], wake)
    return ok


def pager_loop_step(k: Kernel, t: Thread, serve: Any) -> Path:
    """One step of a pager: receive a fault, resolve it, reply with the page.

    `serve(fault_addr, write)` is a path that makes the page present in the
    pager's own space and returns the page's address there.
    """
    st = t.op_state
    if "fault" not in st:
        yield from k.trap(t)
        yield Phase("pager.wait")
        yield from publish_buffers(k, t)  # no window, no buffers (see do_ipc)
        try:
            sender = yield from ipc.receive(k, t, None, None)
        except IpcError:
            return
        msg, t.inbox = t.inbox, None
        words = tuple(msg.words) + (0, 0) if msg is not None else (0, 0)
        st["fault"] = (sender.name, words[0], bool(words[1]))
        return
    faulter_name, addr, write = st["fault"]
    src = yield from serve(addr, write)
    yield from k.trap(t)
    yield Phase("pager.reply")
    faulter = k.by_name[faulter_name]
    reply = Ipc("send", to=faulter_name, timeout=0, map=Fpage(src, PAGE_SIZE))
    del st["fault"]
    st["served"] = st.get("served", 0) + 1
    with contextlib.suppress(IpcError):  # the faulter gave up (timeout, abort)
        yield from ipc.send(k, t, faulter, reply)


def sigma0_step(k: Kernel, t: Thread) -> Path:
    """sigma0 maps a fresh frame for every fault, from its own idempotent space."""

    def serve(addr: int, write: bool) -> Path:
        mem = k.machine.memory
        yield Phase("sigma0.grant_frame")
        frame = mem.alloc_frame()  # after the first op: priming a path changes nothing (peek)
        paging.map_page(mem, space_of(t).pdbr, frame, frame)  # sigma0 owns it "by hand" (§2.2)
        yield Compute(50)  # its root in the mapping database: when the kernel maps it on
        return frame

    yield from pager_loop_step(k, t, serve)


def serve_faults_step(k: Kernel, t: Thread, op: ServeFaults) -> Path:
    """A user-level pager (scenario op `serve_faults`): touch the page in its own space."""

    def serve(addr: int, write: bool) -> Path:
        page = addr - addr % PAGE_SIZE
        c = k.machine.cpu(t.cpu)
        if c.mode == "kernel":
            yield from k.exit_to_user(c)
        yield Phase("pager.touch")
        if write:
            yield Write(page, (yield Read(page)))
        else:
            yield Read(page)
        return page

    yield from pager_loop_step(k, t, serve)
    st = t.op_state
    if op.count is not None and st.get("served", 0) >= op.count and "fault" not in st:
        t.op_state.clear()
        t.pc.advance()


def redo_fault(k: Kernel, b: Thread, timeout: int | None) -> Path:
    """The receiver's side of `receiver_fault`: fault, then hand the CPU back."""
    a = k.by_tcb[(yield Read(b.f["redo_sender"]))]
    addr = yield Read(b.f["redo_fault"])
    ok = yield from page_fault_ipc(k, b, addr, True, timeout)
    cd = k.cpus[b.cpu - 1]
    yield Write(b.f["wake"], WAKE_NONE)  # before a can ask again
    yield Write(a.f["wake"], WAKE_PARTNER if ok else WAKE_TIMEOUT)
    yield Write(b.f["thread_state"], LOCKED_WAITING)
    # a's CPU: another one in the naive design, whose lists are its own (design decision 1).
    yield from sched.make_ready(k, k.cpus[a.cpu - 1], a, LOCKED_RUNNING)
    yield from k.switch_to(cd, a if a.cpu == b.cpu else None)


def copy_fault(k: Kernel, copier: Thread, a: Thread, addr: int, timeout: int | None) -> Path:
    """A fault in sender `a`'s space while `copier` copies its strings; whether it was resolved.

    The sender copying itself faults to its pager; a proxy copying for it on
    another CPU asks the sender to redo the fault there (§8.4.2).
    """
    if copier is not a:
        return (yield from proxy.sender_fault(k, copier, a, addr, timeout))
    return (yield from page_fault_ipc(k, a, addr, False, timeout))
