"""TCB layouts: which field of a thread control block sits at which offset (thesis §8.6).

The thesis groups the TCB's fields by how they are used — processor-local,
global and frequently written cross-processor ("global modified"), global
and read-mostly ("global shared") — and gives each group its own cache
lines (Table 3), so that a partner's write to ``partner`` never steals the
line holding ``thread_state``. The `thesis` layout is Table 3 (our two
kernel-internal fields `space` and `mcp` sit in the third local line's spare
room); `naive` packs the same fields in plain declaration order, mixing the
groups in shared lines. A scenario may give its own layout as a list of
cache lines, each a list of field names.

Shared kernel state is simulated state (issue 15): every datum one CPU's
kernel path writes and another CPU's path reads is a TCB field here, so that
it costs cycles, moves cache lines and is a choice point of the race
explorer. Table 3 has no room for the ones its C++ kernel kept elsewhere
(on kernel stacks, in the proxies' request blocks); they join the "global
modified" group — the thesis's heading says "global modified cachelines" —
filling the line's 12 DUMMY bytes and spilling into a second line:

- `wake`: why a blocked path was resumed (`thread.WAKE_*`). The partner that
  wakes a receiver writes it — on another CPU in the `naive` design, Uhlig's
  lost wake-up of §8.3.3 is a race on it and `thread_state` — and so do a
  migration's B (§8.5: restart, forward), an interrupt (§2.4) and a sender
  resuming its proxy after a redone fault (§8.4.2).
- `abort`: lthread_ex_regs's abort of an ongoing IPC (§8.4.3), written on the
  thread's CPU and read by its proxy's transfer on the receiver's (§8.3.5).
- `migrating`: between B's delete and C's insert (§8.7.2), written by A and C.
- `recv_started`: a call's receive phase begun by the proxy on the
  receiver's CPU (§8.3.1's atomic call, §8.3.5).
- `msg_tag`, `msg_map`: the message tag of a transfer done by another CPU —
  word count, map item, error — for the receiver to pick up (the `naive`
  design of §8.3.3, where the sender transmits; the words themselves are in
  `ipc_buffer` and the UTCB).
- `redo_fault`, `redo_sender`: a fault in the receiver's space to redo in its
  context, and the sender to resume then (§8.3.2).

Custom layouts written before these fields existed still work: fields of
`IMPLICIT` a custom layout leaves out are placed after its lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from machine.errors import suggest

# Field sizes in bytes, Table 3 ("In brackets ... the size of each element").
FIELDS: dict[str, int] = {
    # processor-local
    "ipc_buffer": 12,
    "ipc_timeout": 4,
    "ready_prev": 4,
    "ready_next": 4,
    "thread_state": 4,
    "stack": 4,
    "wakeup_prev": 4,
    "wakeup_next": 4,
    "resources": 4,
    "comm_area1": 4,
    "comm_area2": 4,
    "send_queue": 4,
    "send_prev": 4,
    "send_next": 4,
    "priority": 4,
    "timeslice": 4,
    "remaining_timeslice": 4,
    "pager": 4,
    "space": 4,
    "mcp": 4,
    # global, read-mostly
    "myself": 4,
    "cpu": 4,
    "present_prev": 4,
    "present_next": 4,
    # global, modified cross-processor
    "partner": 4,
    "proxy": 4,
    "xp_cc": 4,
    "first_mailbox": 4,
    "last_mailbox": 4,
    # global, modified cross-processor: kernel state Table 3 kept off the TCB (issue 15)
    "wake": 4,
    "abort": 4,
    "migrating": 4,
    "recv_started": 4,
    "msg_tag": 4,
    "msg_map": 4,
    "redo_fault": 4,
    "redo_sender": 4,
}

# The fields issue 15 moved into the TCB; a custom layout may leave them out.
IMPLICIT: tuple[str, ...] = (
    "wake",
    "abort",
    "migrating",
    "recv_started",
    "msg_tag",
    "msg_map",
    "redo_fault",
    "redo_sender",
)

GROUPS: dict[str, str] = {
    **dict.fromkeys(
        [
            "ipc_buffer",
            "ipc_timeout",
            "ready_prev",
            "ready_next",
            "thread_state",
            "stack",
            "wakeup_prev",
            "wakeup_next",
            "resources",
            "comm_area1",
            "comm_area2",
            "send_queue",
            "send_prev",
            "send_next",
            "priority",
            "timeslice",
            "remaining_timeslice",
            "pager",
            "space",
            "mcp",
        ],
        "local",
    ),
    **dict.fromkeys(["myself", "cpu", "present_prev", "present_next"], "global shared"),
    **dict.fromkeys(
        ["partner", "proxy", "xp_cc", "first_mailbox", "last_mailbox", *IMPLICIT],
        "global modified",
    ),
}

# Table 3, line by line (32-byte lines).
THESIS_LINES: tuple[tuple[str, ...], ...] = (
    ("ipc_buffer", "ipc_timeout", "ready_prev", "ready_next", "thread_state", "stack"),
    (
        "wakeup_prev",
        "wakeup_next",
        "resources",
        "comm_area1",
        "comm_area2",
        "send_queue",
        "send_prev",
        "send_next",
    ),
    ("priority", "timeslice", "remaining_timeslice", "pager", "space", "mcp"),
    ("myself", "cpu", "present_prev", "present_next"),
    # The 12 DUMMY bytes of Table 3's global modified line hold those of ours touched
    # with `partner`: the wake reason; a call's begun receive, which the proxy writes
    # with the caller's partner and xp_cc (§8.3.5); the abort flag, which the proxy's
    # transfer reads as it writes partner. (Measured: `l4tui bench kernel` and
    # scripts/xp-pingpong.yaml cost least with these three here.)
    (
        "partner",
        "proxy",
        "xp_cc",
        "first_mailbox",
        "last_mailbox",
        "wake",
        "recv_started",
        "abort",
    ),
    ("msg_tag", "migrating", "msg_map", "redo_fault", "redo_sender"),
)

# Declaration order: the fields as one would first write the struct down.
NAIVE_ORDER: tuple[str, ...] = (
    "myself",
    "thread_state",
    "partner",
    "cpu",
    "priority",
    "timeslice",
    "remaining_timeslice",
    "ready_prev",
    "ready_next",
    "wakeup_prev",
    "wakeup_next",
    "send_queue",
    "send_prev",
    "send_next",
    "ipc_buffer",
    "ipc_timeout",
    "stack",
    "pager",
    "proxy",
    "xp_cc",
    "first_mailbox",
    "last_mailbox",
    "resources",
    "comm_area1",
    "comm_area2",
    "present_prev",
    "present_next",
    "space",
    "mcp",
    *IMPLICIT,
)


class LayoutError(ValueError):
    """A bad custom layout; `path` locates the offending entry (line index, field index)."""

    def __init__(self, message: str, path: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Layout:
    """Field offsets of a TCB and its size, a whole number of cache lines."""

    name: str
    line_size: int
    offsets: dict[str, int]
    size: int

    def line(self, field: str) -> int:
        """Index of the cache line holding `field`."""
        return self.offsets[field] // self.line_size

    def lines(self) -> list[list[str]]:
        """The fields of each cache line, by offset."""
        out: list[list[str]] = [[] for _ in range(self.size // self.line_size)]
        for name, off in sorted(self.offsets.items(), key=lambda kv: kv[1]):
            out[off // self.line_size].append(name)
        return out

    def group(self, field: str) -> str:
        return GROUPS[field]


def _pack_lines(name: str, lines: Sequence[Sequence[str]], line_size: int) -> Layout:
    """Each given line starts on a cache-line boundary; a line too long for the
    cache's lines spills over into as many as it needs."""
    offsets: dict[str, int] = {}
    at = 0
    for i, line in enumerate(lines):
        if not isinstance(line, list | tuple):
            raise LayoutError("each cache line must be a list of field names", (i,))
        for j, field in enumerate(line):
            if field not in FIELDS:
                raise LayoutError(f"no TCB field {field!r}{suggest(field, FIELDS)}", (i, j))
            if field in offsets:
                raise LayoutError(f"TCB field {field!r} placed twice", (i, j))
            size = FIELDS[field]
            if at % line_size + size > line_size:  # a field never straddles two lines
                at += line_size - at % line_size
            offsets[field] = at
            at += size
        at += -at % line_size
    missing = [f for f in FIELDS if f not in offsets]
    if missing:
        raise LayoutError(f"layout leaves out TCB fields: {', '.join(missing)}")
    return Layout(name, line_size, offsets, at)


NAMED = ("thesis", "naive")
"""The layouts known by name (§8.6): the thesis's, and every field in declaration order."""


def make_layout(spec: str | Sequence[Sequence[str]], line_size: int) -> Layout:
    """The layout `thesis`, `naive`, or a custom one given as lines of field names."""
    if spec == "thesis":
        if line_size >= 64:
            # Wider lines: each group still gets lines of its own.
            groups: dict[str, list[str]] = {}
            for line in THESIS_LINES:
                groups.setdefault(GROUPS[line[0]], []).extend(line)
            return _pack_lines("thesis", list(groups.values()), line_size)
        return _pack_lines("thesis", THESIS_LINES, line_size)
    if spec == "naive":
        return _pack_lines("naive", [NAIVE_ORDER], line_size)
    if isinstance(spec, str):
        raise LayoutError(f"tcb_layout must be thesis, naive or a list of lines, not {spec!r}")
    given = {
        f for line in spec if isinstance(line, list | tuple) for f in line if isinstance(f, str)
    }
    extra = [f for f in IMPLICIT if f not in given]
    lines = [*spec, extra] if extra else spec
    return _pack_lines("custom", lines, line_size)
