"""Where the kernel keeps everything: its physical memory map and the addresses users see.

One place for every address and size the kernel's modules, the debugger and
the tests use (issue 17). Physical addresses are offsets into simulated
memory; the kernel reaches them through its 512 MB window at
`machine.ops.KERNEL_BASE` (`kaddr`). Each shared structure starts a line or
page of its own, so no two of them share a cache line by accident.

The user-visible ones follow the L4 Version 4 (X2) layout the thesis builds on
(§7.2): the kernel info page's processor count, the UTCB's processor number.
"""

from __future__ import annotations

# --- physical: the kernel's own memory --------------------------------------------------
PERCPU_BASE = 0x0001_0000  # one page per CPU: ready lists, current thread (kernel/sched.py)
KIP_FRAME = 0x0002_0000  # the kernel info page, mapped read-only into every space
MAPDB_POOL = 0x0002_1000  # the mapping database's nodes (kernel/mapdb.py) ...
MAPDB_POOL_END = 0x0004_0000  # ... up to the TCBs
TCB_AREA = 0x0004_0000  # the thread control blocks, MAX_THREADS of them
SHOOTDOWN_AREA = 0x000A_0000  # the TLB shootdown's lock, acks and entries (kernel/shootdown.py)
MAPDB_AREA = 0x000A_4000  # the mapping database's header and hash buckets
MIGRATION_AREA = 0x000A_8000  # the migration lock and barriers (kernel/migrate.py)
BOOT_AREA = 0x000A_C000  # processor numbering and the boot barrier (kernel/boot.py)
INTERRUPT_AREA = 0x000A_E000  # the interrupt-line table (kernel/interrupts.py)
FLAGS_BASE = 0x000B_0000  # one mailbox-flag line per CPU (kernel/xcpu.py)
MAILBOX_BASE = 0x000C_0000  # the mailboxes, a line each
FIRST_FREE = 0x0010_0000  # frames from here on are handed out (page tables, sigma0)

# --- virtual: what every address space holds --------------------------------------------
USER_LIMIT = 0xC000_0000  # user address spaces are the lower 3 GB (§2.1.2)
KIP_VADDR = 0xBFFF_F000  # the kernel info page
KIP_CPUS = 0x20  # its word: the highest processor number (§7.2)
UTCB_VADDR = 0xBFF0_0000  # the UTCB area: one UTCB per thread of the task
UTCB_SIZE = 512  # bytes of one UTCB
UTCB_CPU = 12  # its word: the thread's current processor (§7.2)
UTCB_PAGES = 16  # pages of the UTCB area: 128 threads a task at most
