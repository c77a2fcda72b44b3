"""The debugger's focus: the CPU and thread the views centre on, and how it follows a stop.

Focus follows each stop to the CPU and thread that stopped (as gdb switches to
the thread that hit) unless the user pinned it; for a proxy, to the thread it
works for, since it runs the path in that thread's stead (§8.3.5, §8.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel import query
from l4tui.panes import works_for

if TYPE_CHECKING:
    from l4tui.session import Session


def follow_stop(s: Session) -> None:
    """Focus the CPU that ran last and its thread — for a proxy, the thread it works for.
    Not when the focus is pinned."""
    c = s.system.machine.last_cpu
    if s.focus_pinned or c is None:
        return
    k = s.system.kernel
    names = {t.name for t in s.scenario.threads()}
    s.focus_cpu, s.focus_via = c.number, None
    running = query.current_name(k, c.number)
    if running in names:
        s.focus_thread = running
        return
    job = works_for(s, running)
    if job is not None and job[0] in names:
        s.focus_thread, s.focus_via = job[0], running
    elif not query.is_idle(k, c.number):  # a proxy for nobody we know: the proxy itself
        s.focus_thread = running
    else:  # idle: the CPU's own thread (focused_thread)
        s.focus_thread = None


def set_focus(s: Session, cpu: int | None, thread: str | None, pin: bool) -> None:
    """The user's focus: a CPU (its thread then follows) or a thread (and its CPU, so the
    CPU marker and the TCB shown agree); `pin` keeps it."""
    if cpu is not None:
        s.focus_cpu, s.focus_thread = cpu, None
    if thread is not None:
        s.focus_thread = thread
        t = s.system.kernel.by_name.get(thread)
        if t is not None:
            s.focus_cpu = t.cpu
    s.focus_via = None
    s.focus_pinned = pin


def partner_of_focus(s: Session) -> str | None:
    """The focused thread's IPC partner (its TCB's partner word, or the destination of the
    request a proxy carries for it): one key away in the monitor."""
    k = s.system.kernel
    name = focused_thread(s)
    t = k.by_name.get(name)
    if t is None:
        return None
    names = {x.name for x in s.scenario.threads()}
    if s.focus_via is not None:
        job = works_for(s, s.focus_via)
        if job is not None and job[0] == name and job[1] in names:
            return job[1]
    other = k.by_word(k.field(t, "partner"))
    return other.name if other is not None and other.name in names else None


def focused_thread(s: Session) -> str:
    """The focused thread; else the scenario thread running on the focused CPU, else the
    first scenario thread placed there (idle threads and proxies are not in focus)."""
    if s.focus_thread is not None:
        return s.focus_thread
    names = [t.name for t in s.scenario.threads()]
    running = query.current_name(s.system.kernel, s.focus_cpu)
    if running in names:
        return running
    by_name = s.system.kernel.by_name
    here = [n for n in names if by_name[n].cpu == s.focus_cpu]
    return (here or names or [running])[0]
