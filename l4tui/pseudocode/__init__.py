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
TLB shootdown, unmap, task creation — and `UNPLACED` names them, derived from
the kernel's own list of labels (kernel/phases.py).
A receive of a message from another CPU marks the lines of the uniprocessor
receive path (the kernel runs one receive path for both); the "receive XP"
path shows the §8.3.5 variant and a call's receive begun by its proxy.

The paths are in this package's modules by the thesis's sections (ipc.py,
xp.py, sched.py); this module indexes them. Headless: imports no UI library.
"""

from __future__ import annotations

from kernel.phases import LABELS
from l4tui.pseudocode.ipc import NAIVE, RECEIVE, SEND, SYSCALL, TRANSMIT
from l4tui.pseudocode.lines import Line
from l4tui.pseudocode.sched import MIGRATION, PAGE_FAULT, SCHEDULER
from l4tui.pseudocode.xp import ABORT, PROXY, RECEIVE_XP, TRIGGER, XP_FAULT, XP_SEND

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


# Labels the kernel emits on no IPC path, nor under a placed parent: `path_for` shows
# the default path, unmarked.
UNPLACED: tuple[str, ...] = tuple(sorted(x for x in set(LABELS) if locate(x) is None))
