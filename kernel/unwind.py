"""lthread_ex_regs across CPUs: aborting an IPC through unwind proxies (thesis §8.4.3).

ex_regs modifies its target, so (implementation decision 3) it runs on the
target's CPU: the caller writes the request into a mailbox for that CPU's
control proxy and waits. If the target is a cross-processor sender, the
IPC it is in is held by its proxy on yet another CPU; the unwind continues
there with the *same* mailbox ("we take the same mailbox for all those (up
to three) proxies"), aborting the proxy's wait, which wakes the sender with
`aborted`. When the unwind is done, the mailbox wakes the caller — its
result code in the caller's `xp_cc`, as for an IPC (§8.4.1).
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import ipc, sched, xcpu
from kernel.mail import Forward, RemoteMail, Work
from kernel.thread import LOCKED_WAITING, POLLING, RUNNING, WAKE_ABORT, ProxyKind, Thread
from machine.ops import Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sched import CpuData

Path = Generator[Op, Any, Any]


def run_on(k: Kernel, caller: Thread, cpu: int, work: Work, label: str) -> Path:
    """Run `work` on CPU `cpu` in its control proxy; wait for it; return its result.

    Run remotely, the result is None: no work returns anything else there
    (nothing but its mailbox passes between the CPUs).

    `work` may return a `Forward`: it goes on on another CPU (the thread it
    works on left, or an abort reaches a send proxy), in the same mailbox.
    """
    cd = k.cpus[caller.cpu - 1]
    if cpu == caller.cpu:
        out = yield from work(cd)
        if not isinstance(out, Forward):
            return out
        cpu, work = out.cpu, out.work  # it goes on elsewhere: we wait for it there
    yield Phase(f"{label}.remote")
    mail = RemoteMail(caller, None, work)
    i = yield from xcpu.alloc(k, caller.cpu)
    yield from xcpu.setup(k, i, mail, 3, k.ctl[cpu])
    yield from xcpu.trigger(k, cd, i, cpu)
    yield Write(caller.f["thread_state"], LOCKED_WAITING)
    yield from k.switch_to(cd, None)
    # Woken on our CPU when the remote part is done.
    yield Phase(f"{label}.return")
    yield from xcpu.remove(k, caller, lambda m: m is mail)
    yield Write(caller.f["thread_state"], RUNNING)
    return None


def abort_on_cpu(k: Kernel, cd: CpuData, target: Thread) -> Path:
    """On `target`'s CPU: abort its ongoing IPC wherever its parts sit (up to four CPUs)."""
    yield Phase("unwind.target")
    state = yield Read(target.f["thread_state"])
    proxy_tcb = yield Read(target.f["proxy"])
    if state == LOCKED_WAITING and proxy_tcb:
        # A cross-processor sender: its IPC is held by its proxy elsewhere; the
        # unwind goes on there with the same kind of request.
        p = k.by_tcb[proxy_tcb]
        work = functools.partial(_abort_proxy, k, p)
        if cd.current.proxy_kind is ProxyKind.CTL and p.cpu != cd.number:
            return Forward(p.cpu, work)  # `serve` hands the mailbox on
        yield from run_on(k, cd.current, p.cpu, work, "unwind.proxy")
    else:
        yield from ipc.abort(k, target)
    return None


def _abort_proxy(k: Kernel, p: Thread, cd: CpuData) -> Path:
    """On the proxy's CPU: stop its wait; it wakes its sender with `aborted`."""
    yield Phase("unwind.proxy_abort")
    if (yield Read(p.f["thread_state"])) == POLLING:
        yield Write(p.f["wake"], WAKE_ABORT)
        yield from sched.dequeue_wakeup(k, cd, p)
        yield from sched.make_ready(k, cd, p, RUNNING)
