"""The IPC error codes a system call can end with (§8.3.2 ``abortIPC``, §7.2)."""

from __future__ import annotations

from typing import Literal

# What an IPC can end with, as a result's `error` says it (DESIGN.md §2): the partner
# does not exist, the timeout expired, the message exceeds the receiver's buffers,
# lthread_ex_regs aborted it, a map item found no page or could not be mapped, or a
# send that must not cross processors would have (design decision 4, §7.2).
ErrorCode = Literal[
    "not_exist", "timeout", "cut", "aborted", "not_mapped", "map_failed", "xp_abort"
]


class IpcError(Exception):
    """An IPC that ends with an error: `timeout`, `not_exist`, `cut`, `aborted`, `xp_abort` …"""

    def __init__(self, error: ErrorCode, cpu: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.cpu = cpu


class Restart(Exception):
    """The receiver moved to another CPU while we waited for it: send again (§8.5)."""


# xp_cc completion codes: 0 is success; error 7 is the cross-processor abort (§7.2).
XP_CODES: dict[ErrorCode, int] = {
    "not_exist": 1,
    "timeout": 2,
    "cut": 3,
    "aborted": 4,
    "not_mapped": 5,
    "map_failed": 6,
    "xp_abort": 7,
}


XP_ERRORS: dict[int, ErrorCode] = {v: k for k, v in XP_CODES.items()}
