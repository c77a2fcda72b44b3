"""The transmit path of thesis §8.3.2: register words, strings, and map/grant items.

The sender is the active partner (on one CPU it does not matter which; §8.3.5
moves the copy to the receiver's CPU for cross-processor IPC). Up to three
words travel in registers — the receiver finds them in its TCB's
`ipc_buffer` (Table 3) — and more in the UTCB's message registers. Strings
are copied through the comm space, faulting in either space; map and grant
items copy page-table entries into the receiver's window (space.py).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import space
from kernel.errors import IpcError
from kernel.program import Ipc
from kernel.thread import Message, Thread
from machine.ops import Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]
REGISTER_WORDS = 3


def transmit(k: Kernel, a: Thread, b: Thread, op: Ipc, copier: Thread | None = None) -> Path:
    """Move `op`'s message from `a` to `b`; raises IpcError (cut, timeout, aborted)."""
    words = op.words
    msg = Message(a, tuple(words), xp=a.cpu != b.cpu)
    yield Phase("ipc.transfer.short")
    for i, w in enumerate(words[:REGISTER_WORDS]):
        yield Write(b.f["ipc_buffer"] + 4 * i, w)
    if len(words) > REGISTER_WORDS:
        # The rest travels in the UTCBs' message registers (§8.9: the UTCB).
        yield Phase("ipc.transfer.registers")
        src, dst = space.message_registers(k, a), space.message_registers(k, b)
        for i, w in enumerate(words[REGISTER_WORDS:]):
            yield Read(src + 4 * i)
            yield Write(dst + 4 * i, w)
    if op.strings:
        yield Phase("ipc.transfer.string")
        yield from space.copy_strings(k, a, b, op, copier or a)
    if op.map is not None or op.grant is not None:
        yield Phase("ipc.transfer.map")
        msg.mapped = yield from space.map_items(k, a, b, op)
    if a.abort or b.abort:
        raise IpcError("aborted")
    b.inbox = msg
