"""Every phase label the kernel emits: the one list the debugger's breakpoints, completion
and pseudo-code pane read (issue 17).

A kernel path marks where each of its phases starts with ``yield Phase("ipc.send.lock")``
(machine/ops.py); a breakpoint is a glob over these labels. `LABELS` are the literal ones,
grouped by the module that emits them (its docstring cites the thesis's section);
`DYNAMIC` are built at run time (``Phase(f"ipc.{op.kind}")``, ``Phase(f"{label}.remote")``).
tests/test_phase_labels.py reads the kernel's source and checks that the two lists hold
exactly what it emits. The labels are data here, so an install without the kernel's .py
files (only .pyc) offers them too.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    # kernel/boot.py: bootstrapping the application processors (§8.2)
    "boot.ap_idle",
    "boot.ap_number",
    "boot.ap_start",
    "boot.barrier",
    "boot.bsp_init",
    "boot.done",
    "boot.missing_cpu",
    "boot.startup_ipi",
    # kernel/interrupts.py: hardware interrupts as IPC from hardware threads (§2.4)
    "irq.deliver",
    "irq.reroute",
    # kernel/ipc.py: the send and receive paths (§8.3.2)
    "ipc.abort",
    "ipc.recv.check_sender",
    "ipc.recv.dequeue_wakeup",
    "ipc.recv.done",
    "ipc.recv.find_sender",
    "ipc.recv.interrupt",
    "ipc.recv.wait",
    "ipc.recv.wake_sender",
    "ipc.recv.xp_call",
    "ipc.send.check_receiver",
    "ipc.send.check_target",
    "ipc.send.dequeue_wakeup",
    "ipc.send.enqueue_sendq",
    "ipc.send.lock",
    "ipc.send.polling",
    "ipc.send.restart",
    "ipc.send.set_partner",
    "ipc.send.switch_to_receiver",
    "ipc.send.wake_receiver",
    "ipc.timeout",
    "naive.disable_partner_irqs",
    "naive.irqs_disabled",
    # kernel/kernel.py: the idle loop, thread switch and timer tick (§2.1.1)
    "idle",
    "sched.switch",
    "sched.timer_tick",
    "sched.timeslice_expired",
    # kernel/migrate.py: thread migration, parts A, B and C (§8.7)
    "migrate.A.barrier1",
    "migrate.A.barrier2",
    "migrate.A.exchange",
    "migrate.A.lock",
    "migrate.A.trigger",
    "migrate.B.barrier1",
    "migrate.B.barrier2",
    "migrate.B.delete",
    "migrate.B.forward_request",
    "migrate.B.restart_sender",
    "migrate.B.save_fpu",
    "migrate.B.set_cpu",
    "migrate.C.barrier2",
    "migrate.C.insert",
    "migrate.C.wait_number",
    # kernel/pager.py: page faults as IPC and the pagers that answer them (§2.2.2)
    "pager.reply",
    "pager.touch",
    "pager.wait",
    "pf.ipc",
    "pf.kill",
    "pf.raise",
    "sigma0.grant_frame",
    # kernel/proxy.py: proxy threads and the XP-IPC paths (§8.4, §8.3.5)
    "xp.proxy.enqueue_sendq",
    "xp.proxy.forward",
    "xp.proxy.lock",
    "xp.proxy.send",
    "xp.proxy.sender_fault",
    "xp.proxy.sleep",
    "xp.proxy.start_receive",
    "xp.proxy.wake_receiver",
    "xp.redo_fault",
    "xp.return",
    "xp.send",
    "xp.wakeup_sender",
    # kernel/proxy.py, a control proxy serving remote work (§8.4.3)
    "unwind.proxy.remote",
    "unwind.wake_caller",
    # kernel/sched.py: ready lists, the dispatcher, a thread's end (§2.1.1, §6.1)
    "sched.dispatch",
    "sched.skip_not_ready",
    "thread.exit",
    # kernel/shootdown.py: the TLB shootdown (§3.1.1, ID 5)
    "tlb.shootdown",
    "tlb.shootdown.flush",
    # kernel/space.py: address spaces, map/grant/unmap (§2.2)
    "space.unmap",
    "task.new",
    # kernel/syscalls.py: system calls: FPU, sleep, thread_switch, ex_regs (§2, §7)
    "fpu.switch",
    "ipc.sleep",
    "sched.thread_schedule",
    "sched.thread_switch",
    "thread.ex_regs",
    # kernel/transfer.py: the transmit path: words, strings, map items (§8.3.2)
    "ipc.transfer.collect",
    "ipc.transfer.comm_map",
    "ipc.transfer.map",
    "ipc.transfer.receiver_fault",
    "ipc.transfer.registers",
    "ipc.transfer.short",
    "ipc.transfer.string",
    # kernel/unwind.py: lthread_ex_regs across CPUs through unwind proxies (§8.4.3)
    "unwind.proxy_abort",
    "unwind.target",
    # kernel/xcpu.py: mailboxes, IPIs and check_n_ack (§8.3.4)
    "xcpu.check_n_ack",
    "xcpu.ipi",
    "xp.ipi",
    "xp.mailbox.setup",
    "xp.trigger",
)

# Built at run time: `ipc.{send,recv,call,reply_wait}` (kernel/syscalls.py) and the
# remote and return halves of a path run on another CPU (kernel/unwind.py).
DYNAMIC: tuple[str, ...] = (
    "ipc.send",
    "ipc.recv",
    "ipc.call",
    "ipc.reply_wait",
    "thread.ex_regs.remote",
    "thread.ex_regs.return",
    "unwind.proxy.remote",
    "unwind.proxy.return",
)
