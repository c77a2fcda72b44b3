"""The IPC error codes a system call can end with (§8.3.2 ``abortIPC``, §7.2)."""

from __future__ import annotations


class IpcError(Exception):
    """An IPC that ends with an error: `timeout`, `not_exist`, `cut`, `aborted`, `xp_abort` …"""

    def __init__(self, error: str, cpu: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.cpu = cpu
