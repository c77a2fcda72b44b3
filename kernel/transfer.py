"""The transmit path of thesis §8.3.2: register words, strings, and map/grant items.

The sender is the active partner (on one CPU it does not matter which; §8.3.5
moves the copy to the receiver's CPU for cross-processor IPC). Up to three
words travel in registers — the receiver finds them in its TCB's
`ipc_buffer` (Table 3) — and more in the UTCB's message registers. Strings
are copied through the comm space, faulting in either space; map and grant
items copy page-table entries into the receiver's window (space.py).

The message reaches the receiver as its `inbox` when the transfer runs on
the receiver's CPU — a local IPC, or the proxy's (§8.3.5). In the `naive`
design the sender transmits from its own CPU (§8.3.3): it must not touch the
receiver's kernel data there, so it leaves the message's tag in the
receiver's TCB (`msg_tag`, `msg_map`) next to the words (`ipc_buffer`, the
UTCB), and the receiver reads them when it finishes its receive path
(`collect`). Likewise an ex_regs abort (§8.4.3) is read from the TCB's
`abort` when the transfer runs on another CPU than the aborted thread.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kernel import space
from kernel.errors import XP_CODES, XP_ERRORS, IpcError
from kernel.program import Ipc
from kernel.thread import Message, Thread
from machine.ops import Op, Phase, Read, Write

if TYPE_CHECKING:
    from kernel.kernel import Kernel

Path = Generator[Op, Any, Any]
REGISTER_WORDS = 3
# msg_tag: a message transmitted from another CPU waits in the TCB (issue 15).
TAG_PENDING = 1 << 31
TAG_MAPPED = 1 << 30
TAG_WORDS = 0xFF  # the word count
TAG_ERROR_SHIFT = 16  # the transfer's error (proxy.XP_CODES), 0 if none


def aborted(k: Kernel, copier: Thread, *parties: Thread) -> Path:
    """Has lthread_ex_regs aborted one of `parties`' IPC? (§8.4.3)

    Each thread's own CPU keeps a copy of the flag it writes with the TCB's;
    a transfer running elsewhere reads the TCB.
    """
    for t in parties:
        if t.cpu == copier.cpu:
            if t.abort:
                return True
        elif (yield Read(t.f["abort"])):
            return True
    return False


def deliver(
    k: Kernel, copier: Thread, b: Thread, msg: Message | None = None, error: str | None = None
) -> Path:
    """Hand `b` the message (or the transfer's error): directly on its own CPU,
    else through its TCB's message tag (see the module docstring)."""
    if b.cpu == copier.cpu:
        if msg is not None:
            b.inbox = msg
        if error is not None:
            b.failed = error
        return
    tag = TAG_PENDING | (XP_CODES[error] << TAG_ERROR_SHIFT if error else 0)
    if msg is not None:
        tag |= len(msg.words) & TAG_WORDS
        if msg.mapped:
            base, size = msg.mapped[0]
            tag |= TAG_MAPPED
            yield Write(b.f["msg_map"], base | size.bit_length() - 1)
    yield Write(b.f["msg_tag"], tag)


def collect(k: Kernel, b: Thread) -> Path:
    """The receiver takes a message another CPU's transfer left in its TCB (the naive design)."""
    if k.xp_ipc != "naive":
        return  # every transfer to us ran on our CPU (implementation decision 2, §8.3.5)
    tag = yield Read(b.f["msg_tag"])
    if not tag & TAG_PENDING:
        return
    yield Phase("ipc.transfer.collect")
    yield Write(b.f["msg_tag"], 0)
    error = tag >> TAG_ERROR_SHIFT & 0xFF
    if error:
        b.failed = XP_ERRORS.get(error, "aborted")
    sender = k.by_word((yield Read(b.f["partner"])))
    count = tag & TAG_WORDS
    words = []
    for i in range(min(count, REGISTER_WORDS)):  # the receiver's registers, from its TCB
        words.append((yield Read(b.f["ipc_buffer"] + 4 * i)))
    if count > REGISTER_WORDS:
        dst = space.message_registers(k, b)
        for i in range(count - REGISTER_WORDS):
            words.append((yield Read(dst + 4 * i)))
    mapped = []
    if tag & TAG_MAPPED:
        m = yield Read(b.f["msg_map"])
        mapped.append((m & ~0xFFF, 1 << (m & 0xFFF)))
    if sender is not None:
        b.inbox = Message(sender, tuple(words), xp=True, mapped=mapped)


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
    fp = op.grant if op.grant is not None else op.map
    if fp is not None:
        yield Phase("ipc.transfer.map")
        msg.mapped = yield from space.map_items(k, a, b, fp, op.grant is not None, copier)
    if (yield from aborted(k, copier or a, a, b)):
        raise IpcError("aborted")
    yield from deliver(k, copier or a, b, msg)
