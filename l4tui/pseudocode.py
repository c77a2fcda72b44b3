"""The pseudo-code behind the TUI's "IPC phase" pane: each kernel path, its lines labelled.

The thesis gives the IPC paths as C-like pseudo-code: the uniprocessor send,
receive and transmit paths (§8.3.2), the cross-processor method invocation
with its mailbox, flag line, IPI and `check_n_ack` (§8.3.4), the XP send and
receive paths (§8.3.5), the proxy's `xp_send_path` and `wakeup_sender` /
`XP_RETURN` (§8.4, §8.4.1) and the A/B/C migration algorithm (§8.7.2). Those
are reproduced here in the thesis's style and names: its operations (switchTo,
enqueueSendQ, wakeup_sender, XP_RETURN, ...) and its TCB fields of §8.6
(partner, thread_state, send_queue, proxy, xp_cc) — the pseudo-code's
`state` is written `thread_state`, the field the TCB pane shows. Where the
thesis describes a path only in prose — the system call's phases (§8.3.1),
the naive XP attempt (§8.3.3), page faults in a proxy's copy (§8.4.2),
aborting an IPC (§8.4.3), the pager (§2.2.2), the dispatcher and the timer
(§2.1.1, §8.7.3) — the lines follow the prose in the same style.

A line carries the phase label the kernel emits (`yield Phase("...")`, see
kernel/*.py) just before it does that line's work, so the pane can mark the
line a thread's last label names. Statements are ordered as the kernel does
them where it differs from the thesis (the send path enqueues into the send
queue before the wakeup queue, say). Each label sits on exactly one line of
one path; the kernel emits a few labels that belong to no IPC path — boot,
TLB shootdown, unmap, task creation — and those are listed in `UNPLACED`.
A receive of a message from another CPU marks the lines of the uniprocessor
receive path (the kernel runs one receive path for both); the "receive XP"
path shows the §8.3.5 variant and a call's receive begun by its proxy.

Headless: imports no UI library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    """One line of pseudo-code, and the phase label the kernel emits on reaching it."""

    text: str
    label: str | None


def _path(*rows: str | tuple[str, str]) -> tuple[Line, ...]:
    """Lines from plain strings (no label) and (text, label) pairs."""
    return tuple(Line(r, None) if isinstance(r, str) else Line(r[0], r[1]) for r in rows)


SYSCALL = _path(
    "// IPC system call (§8.3.1): a send phase, then a receive phase",
    "ipc (dest, snd_desc, source, rcv_desc, timeouts)",
    "    switch operation",
    ("    case send:", "ipc.send"),
    "        send path",
    ("    case receive:", "ipc.recv"),
    "        receive path (closed from source, or open)",
    ("    case call:", "ipc.call"),
    "        send path; receive path from dest    // atomic",
    ("    case reply and wait:", "ipc.reply_wait"),
    "        send path; open receive path         // atomic",
    ("    case sleep:    // a receive from nobody", "ipc.sleep"),
    "        to_TCB.partner = nobody",
    "        to_TCB.thread_state = waiting",
    "        enqueueWakeup (B with the sleep time)",
    "        switchTo (Anyone)",
    "    endswitch",
    "    returnIPC (completion code)",
)

SEND = _path(
    "// send path",
    "if isSend() then",
    "    from_TCB = getTCB(A)",
    "    to_TCB = getTCB(B)",
    ("    if not exists(to_TCB) or to_TCB.myself ≠ B then", "ipc.send.check_target"),
    '        abortIPC ("target does not exist")',
    "    endif",
    "    if from_TCB.cpu ≠ to_TCB.cpu then",
    "        xp_operation: IPC Send    // XP send path (§8.3.5)",
    "    endif",
    "    // common intra processor IPC",
    ("    from_TCB.partner = B", "ipc.send.set_partner"),
    ("    if B is not waiting or not for me or open then", "ipc.send.check_receiver"),
    ("        to_TCB.enqueueSendQ (A)", "ipc.send.enqueue_sendq"),
    ("        from_TCB.thread_state = polling", "ipc.send.polling"),
    "        enqueueWakeup (A with A's send timeout)",
    "        switchTo(B)",
    "        if B migrated meanwhile then    // §8.5",
    ("            restart the send path", "ipc.send.restart"),
    "        endif",
    "        if returned with timeout then",
    '            abortIPC ("send timeout occurred")',
    "        endif",
    ("        dequeueWakeup (A)", "ipc.send.dequeue_wakeup"),
    "    endif",
    "    // At this point, B is ready to receive from A",
    ("    from_TCB.thread_state = locked running", "ipc.send.lock"),
    "    to_TCB.thread_state = locked waiting",
    "    enqueueReadyList (A)",
    "    // A is now schedulable",
    "    transmitMessage ()",
    "    to_TCB.partner = A",
    ("    to_TCB.thread_state = locked running    // wake B", "ipc.send.wake_receiver"),
    "    enqueueReadyList (B)",
    "    from_TCB.thread_state = ready",
    "    if error in the transmit phase then",
    '        abortIPC ("transmission error")',
    "    endif",
    "    if not isReceive() then",
    "        if B's priority is higher than A's then",
    ("            switchTo (B)", "ipc.send.switch_to_receiver"),
    "        endif",
    '        returnIPC ("message successfully transmitted")',
    "    endif",
    "endif",
)

RECEIVE = _path(
    "// receive path",
    "if isReceive() then",
    ("    to.TCB = getTCB(B)", "ipc.recv.find_sender"),
    "    if an interrupt is pending for B then",
    ("        returnIPC (interrupt message)", "ipc.recv.interrupt"),
    "    endif",
    "    if closed receive then",
    "        from.TCB = getTCB(A)",
    "        if from.TCB is an invalid TCB then",
    '            abortIPC ("Invalid source")',
    "        endif",
    "    else",
    "        // open",
    "        from.TCB = B.send_queue.head()",
    "    endif",
    ("    if from.TCB not present or A is not polling or", "ipc.recv.check_sender"),
    "    A is ready to send but not to B then",
    ("        to.TCB.thread_state = waiting", "ipc.recv.wait"),
    "        to.TCB.partner = A (nil for open receive)",
    "        enqueueWakeup (B with B's receive timeout)",
    "        switchTo (A)",
    "        if timeout then",
    '            abortIPC ("timeout occurred")',
    "        endif",
    ("        dequeueWakeup (B)", "ipc.recv.dequeue_wakeup"),
    "    else",
    "        // A was ready to send to B",
    ("        from.TCB.thread_state = locked running", "ipc.recv.wake_sender"),
    "        enqueueReady (A)",
    "        dequeueWakeup (A)",
    "        B.dequeueSend (A)",
    "        to.TCB.thread_state = locked waiting",
    "        switchTo (A)",
    "    endif",
    "    // naive design (§8.3.3): the sender transmitted from its CPU",
    ("    load A's message from to.TCB's tag and registers", "ipc.transfer.collect"),
    ("    to.TCB.thread_state = ready", "ipc.recv.done"),
    "    enqueueReady (B)",
    '    returnIPC ("message successfully transmitted")',
    "endif",
)

TRANSMIT = _path(
    "// transmit Path",
    ("if short IPC then", "ipc.transfer.short"),
    "    // ensure the to be transfered dwords",
    "    // are in the registers",
    "endif",
    ("if more dwords than registers then", "ipc.transfer.registers"),
    "    copy them between the UTCBs' message registers",
    "endif",
    ("if long copy Message then", "ipc.transfer.string"),
    "    while more strings to copy",
    "    do",
    "        if the string exceeds the receive buffer then",
    '            abortIPC ("message cut")',
    "        endif",
    ("        map destination area to comm space", "ipc.transfer.comm_map"),
    "        copy message from sender's space to comm area",
    "        // a fault in the sender's space: its pager (§2.2.2)",
    "        if timeout occurred then",
    '            abortIPC ("timeout occurred")',
    "        endif",
    "    od",
    "endif",
    ("if map Message then", "ipc.transfer.map"),
    "    parse source page tables",
    "    copy page entry to destination page table",
    "endif",
    "// page Faults in the Communication Space",
    ("if pagefault occurred in Comm Space then", "ipc.transfer.receiver_fault"),
    "    store current IPC state on the stack",
    "    switch to receiver context",
    "    redo page fault",
    "    if timeout occurred then",
    '        abortIPC ("timeout occurred")',
    "    endif",
    "    return to sender context",
    "    load interrupted IPC state from the stack",
    "endif",
)

NAIVE = _path(
    "// naive cross processor IPC (§8.3.3): the uniprocessor paths,",
    "// the partner's interrupts disabled by an IPI",
    "// in the send path and in the receive path:",
    "if from_TCB.cpu ≠ to_TCB.cpu then",
    ("    send_IPI (to_TCB.cpu, disable interrupts)", "naive.disable_partner_irqs"),
    "    // no wait for the acknowledge: the checks race",
    "endif",
    "// uniprocessor send or receive path",
    "",
    "// IPI handler on the partner's CPU",
    "naive_ipi_handler()",
    "    EOI()",
    ("    disable interrupts    // too late for the checks", "naive.irqs_disabled"),
    "    iret",
)

TRIGGER = _path(
    "// method invocation on source processor",
    "find_free_mailbox()",
    "lock_mailbox()",
    ("setup_mailbox(parameters)", "xp.mailbox.setup"),
    "unlock_mailbox()",
    ("set_activate_mailbox_flag()", "xp.trigger"),
    "if next_check(destination) - now ≥ max_latency then",
    "    if the last IPI was acknowledged then",
    ("        send_IPI()", "xp.ipi"),
    "    endif",
    "endif",
    "",
    "// receiver's side checking",
    "/* called at every kernel exit, by the timer and by the handler */",
    "check_n_ack()",
    "acknowledge the IPI",
    ("while mailbox_flags != 0", "xcpu.check_n_ack"),
    "do",
    "    // find mailbox id",
    "    id = bit_scan_forward(mailbox_flags)",
    "    link_mailbox_to_proxy(mailbox[id], mailbox[id].proxy)",
    "    set_proxy_to_running(mailbox[id].proxy)",
    "    clear_mailbox_flag(id)",
    "od",
    "return",
    "",
    "// IPI handler",
    "ipi_handler()",
    "EOI()",
    ("check_n_ack()", "xcpu.ipi"),
    "switchTo (a woken thread of higher priority)",
    "iret",
)

XP_SEND = _path(
    "// send path",
    "if isSend() then",
    "    from_TCB = getTCB(A)",
    "    to_TCB = getTCB(B)",
    "    if not exists(to_TCB) or to_TCB.myself ≠ B then",
    '        abortIPC ("target does not exist")',
    "    endif",
    "    if from_TCB.cpu ≠ to_TCB.cpu then",
    ("        ipc_proxy = get_ipc_proxy", "xp.send"),
    "            (from_TCB.cpu, to_TCB.cpu)",
    "        ipc_mailbox = get_ipc_mailbox",
    "            (from_TCB.cpu, to_TCB.cpu, A, ipc_proxy)",
    "        write_ipc_data_to_mailbox",
    "        // Set Proxy pointer",
    "        from_TCB.proxy = ipc_proxy",
    "        trigger_mailbox",
    "        // set own timeout to infinity",
    "        from_TCB.timeout = NEVER",
    "        // Release the CPU",
    "        from_TCB.thread_state = locked waiting",
    "        switchTo(Anyone)",
    "        /* the proxy now performs the",
    "        xp_operation: IPC Send */",
    "        /* Here we get activated by the proxy when",
    "        returning from the xp_operation */",
    ("        XP_RETURN", "xp.return"),
    "        while from_TCB.xp_cc = redo page fault do    // §8.4.2",
    "            redo the page fault; switchTo(Anyone)",
    "        od",
    "        free and release all mailboxes in the sender's mailbox list",
    "        if from_TCB.xp_cc = restart then    // B came to A's CPU (§8.5)",
    "            restart the send path locally",
    "        endif",
    "        if some error occurred then",
    "            returnIPC (error message)",
    "        endif",
    "        if not isReceive() then",
    "            from_TCB.thread_state = ready",
    "            enqueueReadyList (A)",
    '            returnIPC ("message successfully transmitted")',
    "        endif",
    "    endif",
    "    // common intra processor IPC",
    "endif",
)

PROXY = _path(
    "// proxy thread (§8.4): one mailbox at a time",
    "proxy_loop ()",
    "    if first_mailbox = NULL then",
    ("        proxy.thread_state = waiting    // until check_n_ack", "xp.proxy.sleep"),
    "        switchTo (Anyone)",
    "    endif",
    "    perform the operation of first_mailbox",
    "",
    "// xp send path (§8.3.5)",
    "/* This path is performed by the",
    "proxy in the context of the sender */",
    "xp_send_path (from_TCB, B, snd_desc, ipc_timeout)",
    "// Check again if destination exists",
    ("if not exists(to_TCB) or to_TCB.myself ≠ B then", "xp.proxy.send"),
    '    wakeup_sender ("target does not exist")',
    "endif",
    "if to_TCB.cpu ≠ proxy.cpu then    // B migrated (§8.5)",
    ("    forward ipc_mailbox to B's CPU, or restart A there", "xp.proxy.forward"),
    "endif",
    "from_TCB.partner = B",
    "proxy.partner = B",
    "if B is not waiting or not for me or open then",
    ("    to_TCB.enqueueSendQ (A)", "xp.proxy.enqueue_sendq"),
    "    proxy.thread_state = polling",
    "    enqueueWakeup (Proxy with A's send timeout)",
    "    switchTo (Anyone)",
    "    if returned with timeout then",
    '        wakeup_sender ("send timeout occurred")',
    "    endif",
    "    dequeueWakeup (proxy)",
    "endif",
    "// At this point, B is ready to receive from A",
    ("proxy.thread_state = locked running", "xp.proxy.lock"),
    "to_TCB.thread_state = locked waiting",
    "enqueueReadyList (proxy)",
    "transmitMessage ()    // in A's address space",
    "to_TCB.partner = A",
    "if call and no sender waits for A yet then    // atomic (§8.3.1)",
    ("    from_TCB.thread_state = waiting    // A's receive", "xp.proxy.start_receive"),
    "endif",
    ("to_TCB.thread_state = locked running    // wake B", "xp.proxy.wake_receiver"),
    "enqueueReadyList (B)",
    'wakeup_sender ("Message successfully transmitted" or error)',
    "return to proxy",
    "",
    "//wakeup_sender (§8.4.1)",
    "wakeup_sender (error code)",
    "// set error code",
    ("from_TCB.xp_cc = error code;", "xp.wakeup_sender"),
    "ipc_mailbox = unhook first mailbox from list",
    "from_TCB.proxy = NULL",
    "setup ipc_mailbox with proxy = A",
    "trigger_mailbox",
    "return to proxy at end of IPC",
)

RECEIVE_XP = _path(
    "// receive path, A on another CPU (§8.3.5, §8.4.1)",
    "if isReceive() then",
    "    to.TCB = getTCB(B)",
    "    // B's call went through a proxy: the proxy set B waiting,",
    "    // check_n_ack queued B's receive timeout on B's CPU",
    ("    if the proxy began B's receive then", "ipc.recv.xp_call"),
    "        dequeueWakeup (B)",
    "        if timeout then",
    '            abortIPC ("timeout occurred")',
    "        endif",
    "        to.TCB.thread_state = ready",
    '        returnIPC ("message successfully transmitted")',
    "    endif",
    "    if closed receive then",
    "        from.TCB = getTCB(A)",
    "    else",
    "        from.TCB = B.send_queue.head()",
    "    endif",
    "    if from.TCB.cpu = to.TCB.cpu or from.TCB not present then",
    "        // uniprocessor receive path",
    "    endif",
    "    send_proxy = from.TCB.proxy",
    "    if send_proxy not present or send_proxy is not polling or",
    "    send_proxy is ready to send but not to B then",
    "        to.TCB.thread_state = waiting",
    "        to.TCB.partner = A (nil for open receive)",
    "        enqueueWakeup (B with B's receive timeout)",
    "        switchTo (Anyone)",
    "        if timeout then",
    '            abortIPC ("timeout occurred")',
    "        endif",
    "        dequeueWakeup (B)",
    "    else",
    "        // A's proxy was ready to send to B",
    "        send_proxy.thread_state = locked running",
    "        enqueueReady (send_proxy)",
    "        dequeueWakeup (send_proxy)",
    "        B.dequeueSend (A)",
    "        to.TCB.thread_state = locked waiting",
    "        switchTo (send_proxy)",
    "    endif",
    "    to.TCB.thread_state = ready",
    "    enqueueReady (B)",
    '    returnIPC ("message successfully transmitted")',
    "endif",
)

XP_FAULT = _path(
    "// page fault in A's space during the proxy's copy (§8.4.2)",
    "/* on B's CPU, in the proxy */",
    ("ipc_mailbox = get_ipc_mailbox (proxy.cpu, from_TCB.cpu)", "xp.proxy.sender_fault"),
    "setup ipc_mailbox with proxy = A    // redo this page fault",
    "from_TCB.xp_cc = redo page fault",
    "trigger_mailbox",
    "proxy.thread_state = waiting",
    "switchTo (Anyone)",
    "/* on A's CPU: A wakes in XP_RETURN */",
    ("touch the faulting location    // page fault IPC to A's pager", "xp.redo_fault"),
    "setup ipc_mailbox with proxy = proxy",
    "from_TCB.xp_cc = 0",
    "trigger_mailbox",
    "from_TCB.thread_state = locked waiting",
    "switchTo (Anyone)",
    "/* on B's CPU again */",
    "free ipc_mailbox",
    "proxy.thread_state = locked running",
    "continue copying at the interrupted position",
)

ABORT = _path(
    "// lthread_ex_regs (§2.1.2) aborts the target's IPC (§8.4.3)",
    ("lthread_ex_regs (t, ip, sp, pager)", "thread.ex_regs"),
    "    if t.cpu ≠ current.cpu then    // implementation decision 3",
    ("        setup mailbox for the control proxy on t.cpu", "thread.ex_regs.remote"),
    "        trigger_mailbox",
    "        current.thread_state = locked waiting",
    "        switchTo (Anyone)",
    ("        free the mailbox    // woken: done", "thread.ex_regs.return"),
    "    endif",
    "",
    "// on t's CPU (in its control proxy when remote)",
    "abort_ipc (t)",
    ("    if t is locked waiting for its send proxy then", "unwind.target"),
    "        // the proxy holds the IPC: the same mailbox goes on",
    ("        setup mailbox for the control proxy on proxy.cpu", "unwind.proxy.remote"),
    "        trigger_mailbox",
    "        switchTo (Anyone)",
    ("        free the mailbox", "unwind.proxy.return"),
    "    else if t is waiting or polling then",
    ('        t.wake = "aborted"', "ipc.abort"),
    "        dequeueWakeup (t)",
    "        if polling then t.partner.dequeueSend (t)",
    "        t.thread_state = running",
    "    else if t is locked then",
    "        abort the transfer between two items",
    "    endif",
    "    set ip, sp and pager",
    ("    setup mailbox with proxy = caller", "unwind.wake_caller"),
    "    trigger_mailbox",
    "",
    "// on the send proxy's CPU",
    "abort_proxy (proxy)",
    ("    if proxy.thread_state = polling then", "unwind.proxy_abort"),
    "        dequeueWakeup (proxy)",
    "        proxy.thread_state = running",
    '        // its xp send path: wakeup_sender ("aborted")',
    "    endif",
)

MIGRATION = _path(
    "// thread_schedule (§2.1.1, §7.1): cpu ≠ 0 migrates (§8.7.2)",
    ("thread_schedule (t_i, priority, timeslice, cpu)", "sched.thread_schedule"),
    "    if priority ≥ mcp then return (denied)",
    "    if cpu = 0 or cpu = t_i.cpu or t_i = current then",
    "        on t_i.cpu (its control proxy when remote):    // ID 3, design decision 1",
    "            exchange the timeslice and priority (B, then C)",
    "    endif",
    "A",
    ("lock migration", "migrate.A.lock"),
    "B = t_i.cpu    // read under the lock: no other migration moves t_i now",
    ("if destination thread t_i needs to be migrated then", "migrate.A.trigger"),
    "    trigger migration task B and C",
    "endif",
    ("(= 1)", "migrate.A.barrier1"),
    ("exchange the timeslice and priority", "migrate.A.exchange"),
    ("(= 2)", "migrate.A.barrier2"),
    "return to the invoking scheduling sever (busy if B cancelled).",
    "B",
    "enter kernel mode in B",
    "check_n_ack ()    // pending requests first (§8.5)",
    "if t_i is polling, locked or has a proxy then cancel (busy)    // §8.5",
    ("(= 1)", "migrate.B.barrier1"),
    ("delete t_i from local ready list and wakeup queue", "migrate.B.delete"),
    "free any resources held by t_i",
    ("    save the FPU registers", "migrate.B.save_fpu"),
    "for each sender in t_i.send_queue do    // §8.5",
    "    if its proxy polls here then",
    ("        forward its request with t_i", "migrate.B.forward_request"),
    "    else if it polls here itself then",
    ("        restart its send path", "migrate.B.restart_sender"),
    "    endif",
    "od",
    ("(= 2)", "migrate.B.barrier2"),
    ("set new processor number", "migrate.B.set_cpu"),
    "(3̄)",
    "if t_i was currently running then",
    "    switch to next thread",
    "else",
    "    return to currently running thread",
    "endif",
    "C",
    "enter kernel mode in C",
    ("(= 2)", "migrate.C.barrier2"),
    ("(3̄)    // wait until B has set the processor number", "migrate.C.wait_number"),
    "release the migration lock    // A's, if A is C (before switching)",
    ("insert t_i into local ready list (or wakeup queue)", "migrate.C.insert"),
    "if t_i priority is higher then",
    "    switch to t_i",
    "else",
    "    return to currently running thread",
    "endif",
)

PAGE_FAULT = _path(
    "// page fault exception (§2.2.2)",
    ("pagefault_handler (fault_address, access)", "pf.raise"),
    "    // the kernel translates the fault into an IPC",
    ("    call (pager, fault_address, access)", "pf.ipc"),
    "        receive window = the faulting page",
    "    if no mapping received then",
    ("        kill the faulting thread", "pf.kill"),
    "    endif",
    "    return to the faulting instruction",
    "",
    "// the pager thread (user level)",
    "pager_loop ()",
    ("    receive (anyone) → fault_address, access", "pager.wait"),
    "    if pager is sigma0 then",
    ("        map a free frame idempotently", "sigma0.grant_frame"),
    "    else",
    ("        touch the page in the pager's own space", "pager.touch"),
    "    endif",
    ("    send (faulter, map fpage(page), timeout 0)", "pager.reply"),
)

SCHEDULER = _path(
    "// timer interrupt (§2.1.1, §8.3.4)",
    "timer_handler()",
    "    EOI()",
    ("    next_check = now + tick    // published for senders", "sched.timer_tick"),
    "    for each thread in the wakeup queue whose timeout expired do",
    ('        abortIPC ("timeout occurred")', "ipc.timeout"),
    "    od",
    "    check_n_ack()",
    "    current.timeslice = current.timeslice - tick",
    "    if timeslice expired then",
    ("        enqueue current at the tail of its ready list", "sched.timeslice_expired"),
    "    endif",
    "    if a ready thread has a higher priority then switchTo (it)",
    "    iret",
    "",
    "// thread_switch (§2.1.1, §6.1.1): local threads only",
    ("thread_switch (t)", "sched.thread_switch"),
    "    if t is local and ready then",
    "        switchTo (t)    // with the rest of the timeslice",
    "    else",
    "        switchTo (Anyone)",
    "    endif",
    "",
    "// dispatcher (§2.1.1, §8.7.2, §8.7.3)",
    ("dispatch ()", "sched.dispatch"),
    "    prio = highest priority with a non-empty ready list",
    "    t = ready_list[prio].head",
    "    if t is not ready then",
    ("        dequeueReady (t)    // lazy: skipped and unlinked", "sched.skip_not_ready"),
    "        retry",
    "    endif",
    "idle ()",
    "    if dispatch () finds no thread then",
    ("        halt until the next interrupt", "idle"),
    "",
    "switchTo (t)",
    ("    current.stack = esp", "sched.switch"),
    "    if t.space ≠ current.space then load t's page directory",
    "    esp = t.stack",
)

PATHS: dict[str, tuple[Line, ...]] = {
    "IPC system call (§8.3.1)": SYSCALL,
    "send (§8.3.2)": SEND,
    "receive (§8.3.2)": RECEIVE,
    "transmit (§8.3.2)": TRANSMIT,
    "naive XP (§8.3.3)": NAIVE,
    "check_n_ack (§8.3.4)": TRIGGER,
    "XP send (§8.3.5)": XP_SEND,
    "proxy (§8.4)": PROXY,
    "receive XP (§8.4)": RECEIVE_XP,
    "XP page fault (§8.4.2)": XP_FAULT,
    "abort IPC (§8.4.3)": ABORT,
    "migration (§8.5/§8.7)": MIGRATION,
    "page fault (§2.2.2)": PAGE_FAULT,
    "scheduler": SCHEDULER,
}

DEFAULT = "send (§8.3.2)"

# Labels the kernel emits on no IPC path: `path_for` shows the default path, unmarked.
UNPLACED: tuple[str, ...] = (
    "boot.ap_idle",
    "boot.ap_number",
    "boot.ap_start",
    "boot.barrier",
    "boot.bsp_init",
    "boot.done",
    "boot.missing_cpu",
    "boot.startup_ipi",
    "fpu.switch",
    "irq.deliver",
    "irq.reroute",
    "space.unmap",
    "task.new",
    "thread.exit",
    "tlb.shootdown",
    "tlb.shootdown.flush",
)


def _index(paths: dict[str, tuple[Line, ...]]) -> dict[str, tuple[str, int]]:
    """Label -> (path title, line index); a label placed twice is an error."""
    index: dict[str, tuple[str, int]] = {}
    for title, lines in paths.items():
        for i, line in enumerate(lines):
            if line.label is None:
                continue
            if line.label in index:
                raise ValueError(f"phase label {line.label!r} is placed twice")
            index[line.label] = (title, i)
    return index


_INDEX = _index(PATHS)


def locate(label: str) -> tuple[str, int] | None:
    """The path title and line index of `label`, else of its nearest placed parent.

    `ipc.send.check_target` is placed itself; an unknown `ipc.send.foo` falls
    back to `ipc.send`; `xp.proxy.foo` has no placed parent (`xp.proxy`,
    `xp`) and gives None.
    """
    name = label
    while name:
        found = _INDEX.get(name)
        if found is not None:
            return found
        name = name.rpartition(".")[0]
    return None


def path_for(label: str | None) -> tuple[str, tuple[Line, ...], int | None]:
    """The path to show after `label`: (title, lines, marked line index or None).

    None or a label on no path gives the send path with no line marked.
    """
    found = locate(label) if label else None
    if found is None:
        return DEFAULT, PATHS[DEFAULT], None
    title, index = found
    return title, PATHS[title], index
