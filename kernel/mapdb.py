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

This module is pure data: a `Node` per mapping and a `MappingDb` holding the
trees and an index ``(space, page) -> Node`` for O(1) lookup. It never touches
page tables; the kernel applies the nodes it returns (removed, changed) to
them and shoots down the TLBs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

PAGE = 4096  # bytes in a page (and a frame)
FLUSH = "flush"  # unmap mode: remove the mappings
RO = "ro"  # unmap mode: make the mappings read-only
MODES = (FLUSH, RO)

Key = tuple[int, int]  # (space, page-aligned vaddr)


class MapDbError(Exception):
    """Misuse of the mapping database, or an inconsistency found by `MappingDb.check`."""


def page_of(addr: int) -> int:
    """The base address of the 4 KB page holding `addr`."""
    if addr < 0:
        raise MapDbError(f"negative address {addr:#x}")
    return addr - addr % PAGE


@dataclass(slots=True, eq=False)
class Node:
    """One mapping of one page: space `space` sees `frame` at `vaddr` (§2.2.1).

    `vaddr` and `frame` are page-aligned. `parent` is the mapping this one was
    made from (``None`` for a root, sigma0's own page); `children` are the
    mappings made from this one, in the order they were made. Nodes compare
    by identity.
    """

    space: int
    vaddr: int
    frame: int
    writable: bool = True
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)

    @property
    def key(self) -> Key:
        """``(space, vaddr)``, the node's key in the index."""
        return (self.space, self.vaddr)

    @property
    def is_root(self) -> bool:
        """Whether this is the root of its frame's tree (sigma0's own page)."""
        return self.parent is None


def _preorder(node: Node) -> list[Node]:
    """`node` and its descendants, each before its children."""
    out: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(reversed(n.children))
    return out


def _fmt_key(key: Key) -> str:
    return f"space {key[0]} page {key[1]:#010x}"


class MappingDb:
    """The mapping database of §2.2.1–§2.2.2: one tree of mappings per frame.

    Addresses may point anywhere into a page; nodes store the page base.
    Every mutating call either raises `MapDbError` before changing anything
    or completes, and returns the nodes it removed or changed so the kernel
    can update page tables. Removed nodes come back detached (no parent, no
    children), each after all of its descendants.
    """

    __slots__ = ("_index", "_roots", "_spaces")

    def __init__(self) -> None:
        self._index: dict[Key, Node] = {}
        self._spaces: dict[int, dict[int, Node]] = {}  # space -> vaddr -> node
        self._roots: dict[int, Node] = {}  # frame -> root

    # -- queries ----------------------------------------------------------

    def lookup(self, space: int, vaddr: int) -> Node | None:
        """The node mapping the page that holds `vaddr` in `space`, or ``None``."""
        return self._index.get((space, page_of(vaddr)))

    def pages(self, space: int) -> list[Node]:
        """The nodes of `space`, sorted by vaddr."""
        by_vaddr = self._spaces.get(space, {})
        return [by_vaddr[v] for v in sorted(by_vaddr)]

    def roots(self) -> list[Node]:
        """The root of every frame's tree, sorted by frame."""
        return [self._roots[f] for f in sorted(self._roots)]

    def depth(self, node: Node) -> int:
        """How many mappings separate `node` from its root (a root has depth 0)."""
        self._require(node)
        depth = 0
        while node.parent is not None:
            node = node.parent
            depth += 1
        return depth

    def __len__(self) -> int:
        return len(self._index)

    # -- operations -------------------------------------------------------

    def add_root(self, space: int, vaddr: int, frame: int, writable: bool = True) -> Node:
        """Make `space` (sigma0) the initial owner of `frame`, seen at `vaddr` (§2.2).

        Raises `MapDbError` if the page is taken in `space`, if `frame` already
        has a root, or if `frame` is not a page-aligned address.
        """
        key = (space, page_of(vaddr))
        if frame < 0 or frame % PAGE:
            raise MapDbError(f"frame {frame:#x} is not a page-aligned address")
        if key in self._index:
            raise MapDbError(f"{_fmt_key(key)} is already mapped")
        if frame in self._roots:
            owner = self._roots[frame]
            raise MapDbError(f"frame {frame:#010x} already has a root at {_fmt_key(owner.key)}")
        node = Node(space, key[1], frame, writable)
        self._roots[frame] = node
        self._insert(node)
        return node

    def map(
        self,
        src_space: int,
        src_vaddr: int,
        dst_space: int,
        dst_vaddr: int,
        writable: bool = True,
    ) -> tuple[Node, list[Node]]:
        """Map (share) a page from `src_space` to `dst_space` (§2.2.1).

        The new node is a child of the source's node, seeing the same frame;
        it is writable only if the source is and `writable` is true. A page
        already at the destination is unmapped first, with its subtree.
        Returns ``(new node, nodes removed at the destination)``.

        Raises `MapDbError` if the source page is not mapped, if the
        destination is the source page itself or one of its ancestors, or
        if the destination holds a root (unmap it with ``own=True`` first).
        """
        src = self._source(src_space, src_vaddr)
        dst = (dst_space, page_of(dst_vaddr))
        self._check_destination(src, dst, "map")
        removed = self._clear(dst)
        node = Node(dst[0], dst[1], src.frame, src.writable and writable, src)
        src.children.append(node)
        self._insert(node)
        return node, removed

    def grant(
        self, src_space: int, src_vaddr: int, dst_space: int, dst_vaddr: int
    ) -> tuple[Node, list[Node]]:
        """Grant (donate) a page from `src_space` to `dst_space` (§2.2.1).

        The source's node moves to the destination, keeping its rights, its
        parent and its children (and its place among its siblings); the
        granter no longer has the page. A page already at the destination
        is unmapped first, with its subtree. Returns ``(moved node, nodes
        removed at the destination)``. Errors as for `map`.
        """
        src = self._source(src_space, src_vaddr)
        dst = (dst_space, page_of(dst_vaddr))
        self._check_destination(src, dst, "grant")
        removed = self._clear(dst)
        self._unindex(src)
        src.space, src.vaddr = dst
        self._insert(src)
        return src, removed

    def unmap(self, space: int, vaddr: int, mode: str = FLUSH, own: bool = False) -> list[Node]:
        """Revoke (``"flush"``) or weaken (``"ro"``) the mappings derived from a page (§2.2.2).

        Acts on every descendant of the page's node, recursively, and on the
        node itself if `own` (only so can a root, sigma0's own page, be
        removed). ``"flush"`` returns the removed nodes, each after its
        descendants; ``"ro"`` returns the nodes that were writable, parents
        first. Unmapping a page that is not mapped returns ``[]``.
        """
        if mode not in MODES:
            raise MapDbError(f"unmap mode must be one of {MODES}, not {mode!r}")
        node = self.lookup(space, vaddr)
        if node is None:
            return []
        if mode == FLUSH:
            if own:
                return self._cut(node)
            removed: list[Node] = []
            for child in list(node.children):
                removed.extend(self._cut(child))
            return removed
        affected = _preorder(node)
        if not own:
            affected = affected[1:]
        changed = [n for n in affected if n.writable]
        for n in changed:
            n.writable = False
        return changed

    def remove_space(self, space: int) -> list[Node]:
        """Remove every page of `space` and everything mapped from them (§2.2.3, task deletion).

        Returns the removed nodes, each after its descendants.
        """
        removed: list[Node] = []
        for vaddr in sorted(self._spaces.get(space, {})):
            node = self._index.get((space, vaddr))
            if node is not None:  # not already gone as a descendant of an earlier page
                removed.extend(self._cut(node))
        return removed

    # -- consistency and display -------------------------------------------

    def check(self) -> None:
        """Raise `MapDbError` unless the trees and the indexes agree.

        Checks: every node is indexed under its own page-aligned key, in the
        index and the per-space table alike; every root is registered under
        its frame; parent and children links are symmetric and acyclic; each
        child sees its parent's frame; no read-only node has a writable child;
        every indexed node is reachable from a root.
        """
        by_space = sum(len(t) for t in self._spaces.values())
        if by_space != len(self._index):
            raise MapDbError(f"per-space table holds {by_space} nodes, index {len(self._index)}")
        for key, node in self._index.items():
            if key != node.key:
                raise MapDbError(f"{node!r} indexed under {_fmt_key(key)}")
            if node.vaddr % PAGE or node.frame % PAGE:
                raise MapDbError(f"{node!r} is not page-aligned")
            if self._spaces.get(node.space, {}).get(node.vaddr) is not node:
                raise MapDbError(f"{node!r} missing from its space's table")
            if node.parent is None and self._roots.get(node.frame) is not node:
                raise MapDbError(f"{node!r} has no parent but is not its frame's root")
        seen: set[int] = set()
        for frame, root in self._roots.items():
            if root.parent is not None or root.frame != frame:
                raise MapDbError(f"root of frame {frame:#010x} is {root!r}, not a parentless root")
            stack = [root]
            while stack:
                node = stack.pop()
                if id(node) in seen:
                    raise MapDbError(f"{node!r} reached twice (a cycle or shared child)")
                seen.add(id(node))
                if self._index.get(node.key) is not node:
                    raise MapDbError(f"{node!r} is in a tree but not in the index")
                for child in node.children:
                    if child.parent is not node:
                        raise MapDbError(f"{child!r} is a child of {node!r} but not vice versa")
                    if child.frame != node.frame:
                        raise MapDbError(f"{child!r} sees another frame than its parent {node!r}")
                    if child.writable and not node.writable:
                        raise MapDbError(f"{child!r} is writable under read-only {node!r}")
                    stack.append(child)
        if len(seen) != len(self._index):
            raise MapDbError(
                f"{len(self._index) - len(seen)} indexed nodes are not reachable from a root"
            )

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
                stack.extend((child, level + 1) for child in reversed(node.children))
        return lines

    # -- internals ----------------------------------------------------------

    def _require(self, node: Node) -> None:
        if self._index.get(node.key) is not node:
            raise MapDbError(f"{node!r} is not in the mapping database")

    def _source(self, space: int, vaddr: int) -> Node:
        node = self.lookup(space, vaddr)
        if node is None:
            raise MapDbError(f"{_fmt_key((space, page_of(vaddr)))} is not mapped")
        return node

    def _check_destination(self, src: Node, dst: Key, op: str) -> None:
        """Refuse a destination whose unmapping would remove the source or a root."""
        if dst == src.key:
            raise MapDbError(f"cannot {op} {_fmt_key(dst)} onto itself")
        old = self._index.get(dst)
        if old is None:
            return
        ancestor = src.parent
        while ancestor is not None:
            if ancestor is old:
                raise MapDbError(
                    f"cannot {op} {_fmt_key(src.key)} onto {_fmt_key(dst)}, which it derives from"
                )
            ancestor = ancestor.parent
        if old.parent is None:
            raise MapDbError(
                f"cannot {op} onto {_fmt_key(dst)}: it holds the root of frame"
                f" {old.frame:#010x}; unmap it with own=True first"
            )

    def _clear(self, key: Key) -> list[Node]:
        node = self._index.get(key)
        return [] if node is None else self._cut(node)

    def _cut(self, node: Node) -> list[Node]:
        """Remove `node` and its subtree; return them, each after its descendants."""
        if node.parent is None:
            del self._roots[node.frame]
        else:
            node.parent.children.remove(node)
        removed = _preorder(node)
        removed.reverse()
        self._detach(removed)
        return removed

    def _detach(self, nodes: Iterable[Node]) -> None:
        for n in nodes:
            self._unindex(n)
            n.parent = None
            n.children = []

    def _insert(self, node: Node) -> None:
        self._index[node.key] = node
        self._spaces.setdefault(node.space, {})[node.vaddr] = node

    def _unindex(self, node: Node) -> None:
        del self._index[node.key]
        table = self._spaces[node.space]
        del table[node.vaddr]
        if not table:
            del self._spaces[node.space]
