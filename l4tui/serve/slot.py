"""A warm slot: a lab session started and painted before its student logs in (issue 14).

`LabServer` keeps a pool of them (l4tui/serve/server.py) so a class logging in at
once does not wait for thirty starts; `ChildSession` hands one to its student
(l4tui/serve/child.py). What a slot drew before then is kept, up to `BUFFER`, and
replayed to the student's terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

POOL_SIZE = (80, 24)  # warm slots are painted at the usual default terminal size
BUFFER = 256 << 10  # what a slot keeps of its first output: terminal set-up and first frame


@dataclass
class Slot:
    """A warm session: l4tui already running and painted on its pty, waiting for a student."""

    master: int
    control: int  # our end of its control socket: it says "painted"; its student goes here
    pid: int
    output: bytearray = field(default_factory=bytearray)
    painted: bool = False
    last_output: float = 0.0  # monotonic time of its last drawing

    def hear(self) -> None:
        """The slot's word that its first frame is drawn (or its end, as end of file)."""
        with contextlib.suppress(OSError):
            self.painted = bool(os.read(self.control, 16))
        asyncio.get_running_loop().remove_reader(self.control)

    def drain(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return
        self.last_output = time.monotonic()
        if len(self.output) < BUFFER:
            self.output += data[: BUFFER - len(self.output)]
