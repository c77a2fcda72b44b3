"""A run's figures as plain data: its counters and each thread's view (DESIGN.md §2).

Read from the kernel (`Kernel.counters`, thread fields and results) and the
machine (APIC traffic, the MESI transitions of §3.1.2); the `run --json`
summary, the expectations and the console's `info counters` share them.
"""

from __future__ import annotations

from typing import Any

from kernel.system import System
from kernel.thread import Thread


def counters(system: System) -> dict[str, Any]:
    """The run's counters: kernel events, APIC traffic and MESI transitions (§3.1.2)."""
    k, m = system.kernel, system.machine
    c = k.counters
    apics = m.apics.apics
    return {
        "ipc": c.ipc,
        "xp_ipc": c.xp_ipc,
        "ipis_sent": sum(a.ipis_sent for a in apics),
        "icr_writes": sum(a.icr_writes for a in apics),
        "ipis_delivered": sum(a.ipis_received for a in apics),
        "ipis_blocked": sum(a.ipi_rejected for a in apics),
        "proxy_activations": c.proxy_activations,
        "migrations": c.migrations,
        "tlb_shootdowns": c.tlb_shootdowns,
        "tlb_remote_flushes": c.tlb_remote_flushes,
        "page_faults": c.page_faults,
        "fault_ipcs": c.page_faults,
        "hardware_page_faults": c.hardware_page_faults,
        "mesi": {name: n for name, n in m.coherence.transitions.items() if n},
    }


def thread_view(system: System, t: Thread) -> dict[str, Any]:
    """One thread as the summary shows it: id, CPU, state, priority, syscall results."""
    k = system.kernel
    return {
        "id": str(t.tid),
        "cpu": t.cpu,
        "state": k.state(t),
        "priority": k.field(t, "priority"),
        "results": list(t.results),
    }
