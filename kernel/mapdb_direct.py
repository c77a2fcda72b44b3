"""The mapping database seen from outside simulated time (thesis §2.2.1–§2.2.2).

mapdb.py keeps the database in simulated memory and changes it only by kernel
paths, micro-op by micro-op. This is the same database read and run directly
on memory, as `Kernel.field` reads TCB fields: `MappingDb` runs the
operations straight on memory at set-up and in tests, decodes the trees for
the debugger's views (`Node`, `render`), and checks that the trees, the
lists and the hash table agree (`check`, read by kernel/invariants.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from kernel.mapdb import (
    BUCKETS,
    BUCKETS_AT,
    COUNT,
    FIRST,
    FLUSH,
    FRAME,
    HNEXT,
    NEXT,
    PARENT,
    PREV,
    ROOTS,
    SPACE,
    VADDR,
    WRITABLE,
    Entry,
    FrameSource,
    Key,
    MapDbError,
    Path,
    add_root,
    bucket_addr,
    grant,
    header,
    map_page,
    page_of,
    remove_space,
    run_direct,
    unmap,
)
from machine.memory import PAGE_SIZE as PAGE
from machine.ops import KERNEL_BASE


class Node:
    """A node of a `MappingDb`, decoded from memory whenever a field is read.

    `MappingDb` hands out one `Node` per node address, so nodes compare by
    identity. A node removed from the database reads as detached (no
    parent, no children) until the pool gives its memory out again.
    """

    __slots__ = ("addr", "db")

    def __init__(self, db: MappingDb, addr: int) -> None:
        self.db = db
        self.addr = addr

    def _word(self, offset: int) -> int:
        return self.db._word(self.addr + offset)

    @property
    def space(self) -> int:
        return self._word(SPACE)

    @property
    def vaddr(self) -> int:
        return self._word(VADDR)

    @property
    def frame(self) -> int:
        return self._word(FRAME) & ~WRITABLE

    @property
    def writable(self) -> bool:
        return bool(self._word(FRAME) & WRITABLE)

    @property
    def key(self) -> Key:
        """``(space, vaddr)``, the node's key in the index."""
        return (self.space, self.vaddr)

    @property
    def is_root(self) -> bool:
        """Whether this is the root of its frame's tree (sigma0's own page)."""
        return not self._word(PARENT)

    @property
    def parent(self) -> Node | None:
        """The mapping this one was made from (``None`` for a root)."""
        p = self._word(PARENT)
        return self.db.node(p) if p else None

    @property
    def children(self) -> list[Node]:
        """The mappings made from this one, in the order they were made."""
        return self.db.children(self)

    def __repr__(self) -> str:
        return (
            f"Node(space={self.space}, vaddr={self.vaddr}, frame={self.frame},"
            f" writable={self.writable})"
        )


class Memory(FrameSource, Protocol):
    def read(self, paddr: int) -> int: ...
    def write(self, paddr: int, value: int) -> None: ...


class MappingDb:
    """The mapping database in `memory`, read and run outside simulated time.

    Queries decode memory without micro-ops (for views, tests and the
    consistency check); the operations run the kernel paths above directly
    on memory, at no cost — for set-up and tests, never from a kernel path
    (the shared-state guard catches that). Addresses may point anywhere into
    a page; nodes store the page base.
    """

    __slots__ = ("memory", "_nodes")

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self._nodes: dict[int, Node] = {}  # the view's handles, one per node address

    def _word(self, addr: int) -> int:
        return self.memory.read(addr - KERNEL_BASE)

    def _run(self, gen: Path) -> Any:
        return run_direct(self.memory, gen)

    def _find(self, space: int, page: int) -> int:
        n = self._word(bucket_addr(space, page))
        seen = 0
        while n and seen <= len(self):
            if self._word(n + SPACE) == space and self._word(n + VADDR) == page:
                return n
            n = self._word(n + HNEXT)
            seen += 1
        return 0

    # -- queries ----------------------------------------------------------

    def node(self, n: int) -> Node:
        """The node at kernel address `n`."""
        node = self._nodes.get(n)
        if node is None:
            node = self._nodes[n] = Node(self, n)
        return node

    def nodes(self, entries: list[Entry]) -> list[Node]:
        return [self.node(e.addr) for e in entries]

    def lookup(self, space: int, vaddr: int) -> Node | None:
        """The node mapping the page that holds `vaddr` in `space`, or ``None``."""
        n = self._find(space, page_of(vaddr))
        return self.node(n) if n else None

    def children(self, node: Node) -> list[Node]:
        out: list[Node] = []
        c = self._word(node.addr + FIRST)
        while c and len(out) <= len(self):
            out.append(self.node(c))
            c = self._word(c + NEXT)
        return out

    def _root_addrs(self) -> list[int]:
        out: list[int] = []
        r = self._word(header(ROOTS))
        while r and len(out) <= len(self):
            out.append(r)
            r = self._word(r + NEXT)
        return out

    def all_nodes(self) -> list[Node]:
        """Every node reachable from a root, each tree in preorder."""
        out: list[Node] = []
        for r in self._root_addrs():
            stack = [self.node(r)]
            while stack and len(out) <= len(self):
                n = stack.pop()
                out.append(n)
                stack.extend(reversed(self.children(n)))
        return out

    def pages(self, space: int) -> list[Node]:
        """The nodes of `space`, sorted by vaddr."""
        mine = [(n.vaddr, n) for n in self.all_nodes() if n.space == space]
        return [n for _, n in sorted(mine, key=lambda vn: vn[0])]

    def roots(self) -> list[Node]:
        """The root of every frame's tree, sorted by frame."""
        return sorted((self.node(r) for r in self._root_addrs()), key=lambda n: n.frame)

    def depth(self, node: Node) -> int:
        """How many mappings separate `node` from its root (a root has depth 0)."""
        if self._find(node.space, node.vaddr) != node.addr:
            raise MapDbError(f"{node!r} is not in the mapping database")
        depth, n = 0, self._word(node.addr + PARENT)
        while n:
            n = self._word(n + PARENT)
            depth += 1
        return depth

    def __len__(self) -> int:
        return self._word(header(COUNT))

    # -- operations, run directly --------------------------------------------

    def add_root(self, space: int, vaddr: int, frame: int, writable: bool = True) -> Node:
        return self.node(self._run(add_root(self.memory, space, vaddr, frame, writable)).addr)

    def map(
        self,
        src_space: int,
        src_vaddr: int,
        dst_space: int,
        dst_vaddr: int,
        writable: bool = True,
    ) -> tuple[Node, list[Node]]:
        gen = map_page(self.memory, src_space, src_vaddr, dst_space, dst_vaddr, writable)
        node, removed = self._run(gen)
        return self.node(node.addr), self.nodes(removed)

    def grant(
        self, src_space: int, src_vaddr: int, dst_space: int, dst_vaddr: int
    ) -> tuple[Node, list[Node]]:
        node, removed = self._run(grant(src_space, src_vaddr, dst_space, dst_vaddr))
        return self.node(node.addr), self.nodes(removed)

    def unmap(self, space: int, vaddr: int, mode: str = FLUSH, own: bool = False) -> list[Node]:
        return self.nodes(self._run(unmap(space, vaddr, mode, own)))

    def remove_space(self, space: int) -> list[Node]:
        pages = [n.vaddr for n in self.pages(space)]
        return self.nodes(self._run(remove_space(space, pages)))

    # -- consistency and display -------------------------------------------

    def check(self) -> None:
        """Raise `MapDbError` unless the trees, the lists and the hash table agree.

        Checks: the node count matches the nodes in the trees and in the hash
        table; every node is in the hash chain of its own page-aligned key,
        and only there; roots have no parent; child lists are well linked
        (each child's parent is the list's owner, the first child's previous
        word names the last); each child sees its parent's frame; no
        read-only node has a writable child; no node is reached twice.
        """
        count = len(self)
        roots = self._root_addrs()
        if len(roots) > count:
            raise MapDbError(f"more roots than the {count} nodes counted")
        self._check_roots(roots)
        seen = self._check_trees(roots, count)
        indexed = self._check_hash(seen, count)
        if len(seen) != count or indexed != count:
            raise MapDbError(
                f"{count} nodes counted, {len(seen)} in the trees, {indexed} in the hash table"
            )

    def _check_roots(self, roots: list[int]) -> None:
        """Roots have no parent, one per frame, in a well-linked list."""
        frames: dict[int, Node] = {}
        for r in roots:
            node = self.node(r)
            if not node.is_root:
                raise MapDbError(f"{node!r} is in the root list but has a parent")
            if node.frame in frames:
                raise MapDbError(f"{node!r} and {frames[node.frame]!r} are roots of one frame")
            frames[node.frame] = node
        self._check_list(0, roots)

    def _check_trees(self, roots: list[int], count: int) -> set[int]:
        """Walk the trees from `roots`, each node once; the nodes reached."""
        seen: set[int] = set()
        todo = list(roots)
        while todo:
            n = todo.pop()
            if n in seen:
                raise MapDbError(f"{self.node(n)!r} reached twice (a cycle or shared child)")
            seen.add(n)
            if len(seen) > count:
                raise MapDbError(f"more nodes in the trees than the {count} counted")
            node = self.node(n)
            if node.vaddr % PAGE or node.frame % PAGE:
                raise MapDbError(f"{node!r} is not page-aligned")
            if self._find(node.space, node.vaddr) != n:
                raise MapDbError(f"{node!r} is in a tree but not indexed under its key")
            kids = [c.addr for c in self.children(node)]
            for c in kids:
                self._check_child(node, self.node(c))
                todo.append(c)
            self._check_list(n, kids)
        return seen

    def _check_child(self, node: Node, child: Node) -> None:
        """`child` is linked to its parent `node`, sees its frame, has no more rights."""
        if child.is_root:
            raise MapDbError(f"{child!r} has no parent but is not its frame's root")
        if self._word(child.addr + PARENT) != node.addr:
            raise MapDbError(f"{child!r} is a child of {node!r} but not vice versa")
        if child.frame != node.frame:
            raise MapDbError(f"{child!r} sees another frame than its parent {node!r}")
        if child.writable and not node.writable:
            raise MapDbError(f"{child!r} is writable under read-only {node!r}")

    def _check_hash(self, seen: set[int], count: int) -> int:
        """Every hash chain holds nodes of its own bucket, all reachable; how many."""
        indexed = 0
        for b in range(BUCKETS):
            n = self._word(header(BUCKETS_AT + 4 * b))
            while n:
                indexed += 1
                if indexed > count:
                    raise MapDbError(f"more nodes in the hash table than the {count} counted")
                node = self.node(n)
                if bucket_addr(node.space, node.vaddr) != header(BUCKETS_AT + 4 * b):
                    raise MapDbError(f"{node!r} indexed under another key")
                if n not in seen:
                    raise MapDbError(f"{node!r} is indexed but not reachable from a root")
                n = self._word(n + HNEXT)
        return indexed

    def _check_list(self, owner: int, members: list[int]) -> None:
        if not members:
            return
        last = self._word(members[0] + PREV)
        if last != members[-1]:
            raise MapDbError(f"the list of node {owner:#x}'s children does not end where it says")
        for prev, n in zip(members, members[1:], strict=False):
            if self._word(n + PREV) != prev:
                raise MapDbError(f"node {n:#x}'s previous sibling is not {prev:#x}")

    def render(self, space_names: dict[int, str] | None = None) -> list[str]:
        """The trees as indented text, one line per mapping, for the debugger.

        Roots in frame order, children in the order they were mapped, two
        spaces of indent per level, e.g.
        ``sigma0 0x00123000 -> frame 0x00123000 rw``. A space missing from
        `space_names` shows as ``space N``.
        """
        names = space_names or {}
        lines: list[str] = []
        for root in self.roots():
            stack = [(root, 0)]
            while stack:
                node, level = stack.pop()
                name = names.get(node.space, f"space {node.space}")
                rights = "rw" if node.writable else "ro"
                lines.append(
                    f"{'  ' * level}{name} 0x{node.vaddr:08x} -> frame 0x{node.frame:08x} {rights}"
                )
                stack.extend((child, level + 1) for child in reversed(self.children(node)))
        return lines
