"""The mapping database: which page was mapped from where (thesis §2.2.1–§2.2.2).

L4 builds address spaces hierarchically, from virtual page to virtual page
(§2.2.1). sigma0, the initial space, owns every physical frame not used by the
kernel; any space may *map* (share) a page it owns to another space, which
sees the same frame, or *grant* (donate) it, which moves the page to the
receiver — the granter loses it. `unmap` (§2.2.2) revokes every mapping
derived from a page (*flush*) or weakens them to read-only (*ro*),
recursively and without asking the mappees.

The kernel records this history as one tree per frame: the root is sigma0's
own page; each child is a mapping made from its parent. Granting moves a node
to the receiver and keeps its place in the tree (its parent and children), so
the original mapper can still revoke it. Mapping or granting onto a page that
the receiver already has first unmaps the old page there, with its subtree.

The database is kernel data in simulated memory (issue 15): a map on one CPU
and an unmap on another touch the same nodes, so every access is a `Read`,
`Write` or `Atomic` micro-op of the kernel path doing it — it costs cycles,
moves cache lines and is a choice point of the race explorer. It is "mapping
data", one of the few global kernel structures that "have to be protected
against cross-processor access" (§6): every operation runs under the
mapping-database lock, appendix A's spinlock, like the kernel's other locks
(the shootdown's, the migration's, the mailboxes').

Layout (physical addresses; the kernel reaches them through its window):

- The header at `AREA`, below the kernel's first free frame like the other
  fixed kernel areas: the lock in a cache line of its own, then the first
  root, the free-node list, the bump pointer and end of the node pool, and
  the number of nodes; then `BUCKETS` words of hash buckets.
- Nodes of 8 words (32 bytes): space, vaddr, frame (bit 0: writable),
  parent (0: a root), first child, next sibling, previous sibling, next in
  the hash chain. Children form a list in the order they were mapped; the
  first child's previous-sibling word points to the last child, so appending
  is O(1). The roots form such a list too, headed by the header's root word
  (the per-frame roots: a frame's root is the root whose frame it is).
- The lookup ``(space, page) -> node`` is a hash table with chaining through
  the nodes' hash words. A per-space shadow of the page table — a node
  pointer beside each entry, as L4/x86 kernels keep it — would cost a frame
  per page table and a second layout of machine/paging.py's tables; the
  hash table is one fixed area, and a lookup costs a bucket read and about
  two reads per chain entry.
- The node pool lies between the kernel info page and the TCBs (`POOL`,
  `POOL_END`); when it is used up, frames from the kernel's pool extend it.
  Freed nodes go to a free list (linked through their hash words) and are
  used again first.

Operations are generators (kernel paths): ``node = yield from add_root(...)``.
Each raises `MapDbError` before writing anything, or completes; they return
`Entry` values read as they went, which the kernel applies to the page tables.
The caller holds the lock (`lock`, `unlock`). `MappingDb` is the same
database seen from outside simulated time: it runs the operations directly
on memory (set-up, tests) and decodes memory without micro-ops for the
views and the consistency check (`MappingDb.check`), as `Kernel.field` does
for TCB fields: it is mapdb_direct.py's.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

from kernel.memmap import MAPDB_AREA, MAPDB_POOL, MAPDB_POOL_END
from machine.memory import PAGE_SIZE as PAGE
from machine.ops import KERNEL_BASE, Compute, Op, Read, Write, kaddr
from machine.spinlock import spin_lock, spin_unlock

FLUSH = "flush"  # unmap mode: remove the mappings
RO = "ro"  # unmap mode: make the mappings read-only
MODES = (FLUSH, RO)

AREA = MAPDB_AREA  # the header (physical)
LOCK, ROOTS, FREE, BUMP, END, COUNT = 0, 64, 68, 72, 76, 80  # the lock in a line of its own
BUCKETS_AT = 128
BUCKETS = 1024
POOL, POOL_END = MAPDB_POOL, MAPDB_POOL_END
POOL_GROW_CYCLES = 200  # taking a zeroed frame from the kernel pool (as for a page table)

# Node words (byte offsets).
SPACE, VADDR, FRAME, PARENT, FIRST, NEXT, PREV, HNEXT = range(0, 32, 4)
NODE_SIZE = 32
WRITABLE = 1  # bit 0 of the frame word

Key = tuple[int, int]  # (space, page-aligned vaddr)
Path = Generator[Op, Any, Any]


class MapDbError(Exception):
    """Misuse of the mapping database, or an inconsistency found by `MappingDb.check`."""


class NotMappedError(MapDbError):
    """The source page of a map or grant is not in the mapping database."""


class FrameSource(Protocol):
    def alloc_frame(self) -> int: ...


def page_of(addr: int) -> int:
    """The base address of the 4 KB page holding `addr`."""
    if addr < 0:
        raise MapDbError(f"negative address {addr:#x}")
    return addr - addr % PAGE


def fmt_key(key: Key) -> str:
    return f"space {key[0]} page {key[1]:#010x}"


def header(offset: int) -> int:
    """Kernel address of header word `offset`."""
    return kaddr(AREA + offset)


def run_direct(memory: Any, gen: Path) -> Any:
    """Run a kernel path's reads and writes straight on `memory`, outside simulated time
    (set-up, and tests); its other ops take no effect. Returns the path's result."""
    result = None
    try:
        while True:
            op = gen.send(result)
            result = None
            if isinstance(op, Read):
                result = memory.read(op.addr - KERNEL_BASE)
            elif isinstance(op, Write):
                memory.write(op.addr - KERNEL_BASE, op.value)
    except StopIteration as stop:
        return stop.value


def bucket_addr(space: int, page: int) -> int:
    return header(BUCKETS_AT + 4 * ((page // PAGE + space * 613) % BUCKETS))


@dataclass(frozen=True, slots=True)
class Entry:
    """One mapping of one page as a kernel path read it: `space` sees `frame` at `vaddr`.

    A value: `addr` is the node's kernel address, `parent` the parent's
    (0 for a root, sigma0's own page).
    """

    addr: int
    space: int
    vaddr: int
    frame: int
    writable: bool
    parent: int = 0

    @property
    def key(self) -> Key:
        return (self.space, self.vaddr)


# --- the lock (§6, appendix A) --------------------------------------------------


def lock() -> Path:
    """Take the mapping-database lock."""
    yield from spin_lock(header(LOCK))


def unlock() -> Path:
    yield from spin_unlock(header(LOCK))


# --- reading nodes --------------------------------------------------------------


def read_node(n: int) -> Path:
    """The `Entry` of node `n`, read with micro-ops."""
    space = yield Read(n + SPACE)
    vaddr = yield Read(n + VADDR)
    frame = yield Read(n + FRAME)
    parent = yield Read(n + PARENT)
    return Entry(n, space, vaddr, frame & ~WRITABLE, bool(frame & WRITABLE), parent)


def find(space: int, vaddr: int) -> Path:
    """The address of the node mapping the page that holds `vaddr` in `space`, or 0."""
    page = page_of(vaddr)
    n = yield Read(bucket_addr(space, page))
    while n:
        if (yield Read(n + SPACE)) == space and (yield Read(n + VADDR)) == page:
            return n
        n = yield Read(n + HNEXT)
    return 0


def lookup(space: int, vaddr: int) -> Path:
    """The `Entry` of the node mapping the page that holds `vaddr` in `space`, or None."""
    n = yield from find(space, vaddr)
    return (yield from read_node(n)) if n else None


def _children(n: int) -> Path:
    out = []
    c = yield Read(n + FIRST)
    while c:
        out.append(c)
        c = yield Read(c + NEXT)
    return out


def _preorder(n: int) -> Path:
    """`n` and its descendants, each before its children (no recursion: chains are deep)."""
    out: list[int] = []
    stack = [n]
    while stack:
        m = stack.pop()
        out.append(m)
        kids = yield from _children(m)
        stack.extend(reversed(kids))
    return out


# --- lists, hash chains, the pool ---------------------------------------------------


def _append(head: int, n: int) -> Path:
    """Append node `n` to the list whose first-element word is at `head`."""
    first = yield Read(head)
    yield Write(n + NEXT, 0)
    if not first:
        yield Write(n + PREV, n)
        yield Write(head, n)
        return
    last = yield Read(first + PREV)
    yield Write(last + NEXT, n)
    yield Write(n + PREV, last)
    yield Write(first + PREV, n)


def _unlink(head: int, n: int) -> Path:
    first = yield Read(head)
    nxt = yield Read(n + NEXT)
    prev = yield Read(n + PREV)
    if n == first:
        yield Write(head, nxt)
        if nxt:
            yield Write(nxt + PREV, prev)  # the last one
        return
    yield Write(prev + NEXT, nxt)
    yield Write((nxt or first) + PREV, prev)  # a new last one: the first's prev word


def _head(parent: int) -> int:
    return parent + FIRST if parent else header(ROOTS)


def _hash_in(n: int, space: int, page: int) -> Path:
    bucket = bucket_addr(space, page)
    yield Write(n + HNEXT, (yield Read(bucket)))
    yield Write(bucket, n)


def _hash_out(n: int, space: int, page: int) -> Path:
    at = bucket_addr(space, page)
    m = yield Read(at)
    while m != n:
        if not m:
            raise MapDbError(f"node {n:#x} missing from its hash chain")
        at = m + HNEXT
        m = yield Read(at)
    yield Write(at, (yield Read(n + HNEXT)))


def _new_node(frames: FrameSource) -> Path:
    """A node's memory: the pool first, then freed nodes, then a fresh frame.

    Carving the whole pool before using a freed node again keeps a removed
    node's memory as it was left (zeroed) for as long as the pool lasts: a
    view holding it sees it detached, not as some later mapping.
    """
    n = yield Read(header(BUMP))
    end = yield Read(header(END))
    if not n:  # the first node: the fixed pool
        n, end = kaddr(POOL), kaddr(POOL_END)
        yield Write(header(END), end)
    if n >= end:
        free = yield Read(header(FREE))
        if free:
            yield Write(header(FREE), (yield Read(free + HNEXT)))
            yield Write(free + HNEXT, 0)
            return free
        n = kaddr(frames.alloc_frame())  # used up: another frame from the kernel's pool
        yield Compute(POOL_GROW_CYCLES)
        yield Write(header(END), n + PAGE)
    yield Write(header(BUMP), n + NODE_SIZE)
    return n


def _create(
    frames: FrameSource, space: int, page: int, frame: int, writable: bool, parent: int
) -> Path:
    n = yield from _new_node(frames)
    yield Write(n + SPACE, space)
    yield Write(n + VADDR, page)
    yield Write(n + FRAME, frame | (WRITABLE if writable else 0))
    yield Write(n + PARENT, parent)
    yield Write(n + FIRST, 0)
    yield from _append(_head(parent), n)
    yield from _hash_in(n, space, page)
    yield Write(header(COUNT), (yield Read(header(COUNT))) + 1)
    return Entry(n, space, page, frame, writable, parent)


def _cut(n: int) -> Path:
    """Remove `n` and its subtree; return them, each after its descendants."""
    parent = yield Read(n + PARENT)
    yield from _unlink(_head(parent), n)
    order = yield from _preorder(n)
    order.reverse()
    removed = []
    for m in order:
        node = yield from read_node(m)
        removed.append(node)
        yield from _hash_out(m, node.space, node.vaddr)
        # Detached; its key, frame and rights stay readable until the node is used again.
        yield Write(m + PARENT, 0)
        yield Write(m + FIRST, 0)
        yield Write(m + NEXT, 0)
        yield Write(m + PREV, 0)
        yield Write(m + HNEXT, (yield Read(header(FREE))))
        yield Write(header(FREE), m)
    yield Write(header(COUNT), (yield Read(header(COUNT))) - len(removed))
    return removed


# --- operations (kernel paths; the caller holds the lock) ---------------------------


def add_root(
    frames: FrameSource,
    space: int,
    vaddr: int,
    frame: int,
    writable: bool = True,
    check_frame: bool = True,
) -> Path:
    """Make `space` (sigma0) the initial owner of `frame`, seen at `vaddr` (§2.2).

    Raises `MapDbError` if the page is taken in `space`, if `frame` already
    has a root (looked for only if `check_frame`: sigma0's fresh frames from
    the kernel's pool cannot have one, and the search reads every root), or
    if `frame` is not a page-aligned address.
    """
    page = page_of(vaddr)
    if frame < 0 or frame % PAGE:
        raise MapDbError(f"frame {frame:#x} is not a page-aligned address")
    if (yield from find(space, page)):
        raise MapDbError(f"{fmt_key((space, page))} is already mapped")
    if check_frame:
        r = yield Read(header(ROOTS))
        while r:
            if (yield Read(r + FRAME)) & ~WRITABLE == frame:
                owner = yield from read_node(r)
                raise MapDbError(f"frame {frame:#010x} already has a root at {fmt_key(owner.key)}")
            r = yield Read(r + NEXT)
    return (yield from _create(frames, space, page, frame, writable, 0))


def map_page(
    frames: FrameSource,
    src_space: int,
    src_vaddr: int,
    dst_space: int,
    dst_vaddr: int,
    writable: bool = True,
) -> Path:
    """Map (share) a page from `src_space` to `dst_space` (§2.2.1).

    The new node is a child of the source's node, seeing the same frame;
    it is writable only if the source is and `writable` is true. A page
    already at the destination is unmapped first, with its subtree.
    Returns ``(new node, nodes removed at the destination)``.

    Raises `MapDbError` if the source page is not mapped, if the
    destination is the source page itself or one of its ancestors, or
    if the destination holds a root (unmap it with ``own=True`` first).
    """
    src = yield from _source(src_space, src_vaddr)
    dst = (dst_space, page_of(dst_vaddr))
    old = yield from _check_destination(src, dst, "map")
    removed = (yield from _cut(old)) if old else []
    node = yield from _create(
        frames, dst[0], dst[1], src.frame, src.writable and writable, src.addr
    )
    return node, removed


def grant(src_space: int, src_vaddr: int, dst_space: int, dst_vaddr: int) -> Path:
    """Grant (donate) a page from `src_space` to `dst_space` (§2.2.1).

    The source's node moves to the destination, keeping its rights, its
    parent and its children (and its place among its siblings); the
    granter no longer has the page. A page already at the destination
    is unmapped first, with its subtree. Returns ``(moved node, nodes
    removed at the destination)``. Errors as for `map_page`.
    """
    src = yield from _source(src_space, src_vaddr)
    dst = (dst_space, page_of(dst_vaddr))
    old = yield from _check_destination(src, dst, "grant")
    removed = (yield from _cut(old)) if old else []
    yield from _hash_out(src.addr, src.space, src.vaddr)
    yield Write(src.addr + SPACE, dst[0])
    yield Write(src.addr + VADDR, dst[1])
    yield from _hash_in(src.addr, *dst)
    return Entry(src.addr, dst[0], dst[1], src.frame, src.writable, src.parent), removed


def unmap(space: int, vaddr: int, mode: str = FLUSH, own: bool = False) -> Path:
    """Revoke (``"flush"``) or weaken (``"ro"``) the mappings derived from a page (§2.2.2).

    Acts on every descendant of the page's node, recursively, and on the
    node itself if `own` (only so can a root, sigma0's own page, be
    removed). ``"flush"`` returns the removed nodes, each after its
    descendants; ``"ro"`` returns the nodes that were writable, parents
    first. Unmapping a page that is not mapped returns ``[]``.
    """
    if mode not in MODES:
        raise MapDbError(f"unmap mode must be one of {MODES}, not {mode!r}")
    n = yield from find(space, vaddr)
    if not n:
        return []
    if mode == FLUSH:
        if own:
            return (yield from _cut(n))
        removed: list[Entry] = []
        for child in (yield from _children(n)):
            removed.extend((yield from _cut(child)))
        return removed
    affected = yield from _preorder(n)
    if not own:
        affected = affected[1:]
    changed = []
    for m in affected:
        word = yield Read(m + FRAME)
        if word & WRITABLE:
            yield Write(m + FRAME, word & ~WRITABLE)
            changed.append((yield from read_node(m)))
    return changed


def remove_space(space: int, pages: list[int]) -> Path:
    """Remove the pages `pages` of `space` and everything mapped from them (§2.2.3).

    Returns the removed nodes, each after its descendants.
    """
    removed: list[Entry] = []
    for vaddr in sorted(pages):
        n = yield from find(space, vaddr)
        if n:  # not already gone as a descendant of an earlier page
            removed.extend((yield from _cut(n)))
    return removed


def _source(space: int, vaddr: int) -> Path:
    node = yield from lookup(space, vaddr)
    if node is None:
        raise NotMappedError(f"{fmt_key((space, page_of(vaddr)))} is not mapped")
    return node


def _check_destination(src: Entry, dst: Key, op: str) -> Path:
    """The node at `dst` (0: none); refuse one whose unmapping would remove the source or a root."""
    if dst == src.key:
        raise MapDbError(f"cannot {op} {fmt_key(dst)} onto itself")
    old = yield from find(*dst)
    if not old:
        return 0
    ancestor = src.parent
    while ancestor:
        if ancestor == old:
            raise MapDbError(
                f"cannot {op} {fmt_key(src.key)} onto {fmt_key(dst)}, which it derives from"
            )
        ancestor = yield Read(ancestor + PARENT)
    if not (yield Read(old + PARENT)):
        frame = (yield Read(old + FRAME)) & ~WRITABLE
        raise MapDbError(
            f"cannot {op} onto {fmt_key(dst)}: it holds the root of frame"
            f" {frame:#010x}; unmap it with own=True first"
        )
    return old
