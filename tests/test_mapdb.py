"""The mapping database: map, grant and unmap from space to space (thesis §2.2.1–§2.2.2).

sigma0 owns every frame; pages are mapped (shared) or granted (donated) down
a hierarchy of pagers, and `unmap` revokes or weakens, recursively, all that
was derived from a page. The last test drives random operations against a
plain-dict model and calls `check()` after every step.

The database lives in simulated memory (issue 15); `MappingDb` runs its
operations — the kernel's paths — directly on a bare `Memory` here, and
decodes the nodes from it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import kernel.mapdb
import kernel.mapdb_direct
from kernel.mapdb import FIRST, FRAME, NEXT, PAGE, PARENT, VADDR, MapDbError
from kernel.mapdb_direct import MappingDb, Node
from machine.memory import Memory
from machine.ops import KERNEL_BASE

SIGMA0, PAGER, CLIENT, OTHER = 0, 1, 2, 3
NAMES = {SIGMA0: "sigma0", PAGER: "pager", CLIENT: "client"}

F1 = 0x0012_3000  # frames, owned by sigma0 at the same (idempotent) address
F2 = 0x0012_4000
V = 0x0040_0000  # where the pager keeps its pages
C = 0x0800_0000  # where the client gets them


def fresh() -> MappingDb:
    """An empty database in a bare memory, frames given out above the kernel's areas."""
    memory = Memory(64 << 20)
    memory.next_frame = 0x100  # as the kernel does (kernel.FIRST_FREE)
    return MappingDb(memory)


def poke(db: MappingDb, node: Node, offset: int, value: int) -> None:
    """Corrupt a word of `node` behind the database's back."""
    db.memory.write(node.addr + offset - KERNEL_BASE, value)


def chain() -> tuple[MappingDb, Node, Node, Node]:
    """sigma0 -> pager -> client for frame F1; F2 only in sigma0."""
    db = fresh()
    root = db.add_root(SIGMA0, F1, F1)
    db.add_root(SIGMA0, F2, F2)
    pager, removed = db.map(SIGMA0, F1, PAGER, V)
    assert removed == []
    client, removed = db.map(PAGER, V, CLIENT, C)
    assert removed == []
    return db, root, pager, client


def keys(nodes: list[Node]) -> list[tuple[int, int]]:
    return [n.key for n in nodes]


# -- basics --------------------------------------------------------------------


def test_add_root_and_lookup_anywhere_in_the_page() -> None:
    db = fresh()
    root = db.add_root(SIGMA0, F1 + 0x10, F1)
    assert (root.space, root.vaddr, root.frame, root.writable) == (SIGMA0, F1, F1, True)
    assert root.parent is None and root.children == [] and root.is_root
    assert db.lookup(SIGMA0, F1) is root
    assert db.lookup(SIGMA0, F1 + PAGE - 1) is root
    assert db.lookup(SIGMA0, F1 + PAGE) is None
    assert db.lookup(PAGER, F1) is None
    assert len(db) == 1 and db.roots() == [root] and db.depth(root) == 0
    db.check()


def test_add_root_errors() -> None:
    db = fresh()
    db.add_root(SIGMA0, F1, F1)
    with pytest.raises(MapDbError, match="already mapped"):
        db.add_root(SIGMA0, F1 + 8, F2)
    with pytest.raises(MapDbError, match="already has a root"):
        db.add_root(SIGMA0, F2, F1)
    with pytest.raises(MapDbError, match="page-aligned"):
        db.add_root(SIGMA0, F2, F2 + 4)
    with pytest.raises(MapDbError, match="negative"):
        db.lookup(SIGMA0, -PAGE)
    assert len(db) == 1
    db.check()


def test_map_chain_sigma0_pager_client() -> None:
    db, root, pager, client = chain()
    assert pager.parent is root and root.children == [pager]
    assert client.parent is pager and pager.children == [client]
    assert (client.space, client.vaddr, client.frame) == (CLIENT, C, F1)
    assert [db.depth(n) for n in (root, pager, client)] == [0, 1, 2]
    assert db.lookup(CLIENT, C + 0x123) is client
    assert len(db) == 4
    assert db.pages(SIGMA0) == [root, db.lookup(SIGMA0, F2)]
    assert db.pages(CLIENT) == [client] and db.pages(OTHER) == []
    db.check()


def test_map_writable_only_if_the_source_is() -> None:
    db, _, pager, _ = chain()
    ro, _ = db.map(PAGER, V, OTHER, C, writable=False)
    assert not ro.writable
    again, _ = db.map(OTHER, C, OTHER, C + PAGE, writable=True)  # no upgrade below ro
    assert not again.writable
    assert pager.writable
    db.check()


def test_map_within_one_space_aliases_the_page() -> None:
    db, _, pager, _ = chain()
    alias, _ = db.map(PAGER, V, PAGER, V + PAGE)
    assert alias.parent is pager and alias.frame == F1
    assert db.pages(PAGER) == [pager, alias]
    db.check()


def test_map_errors_leave_the_database_unchanged() -> None:
    db, root, pager, client = chain()
    before = db.render()
    with pytest.raises(MapDbError, match="not mapped"):
        db.map(PAGER, V + PAGE, CLIENT, C + PAGE)
    with pytest.raises(MapDbError, match="onto itself"):
        db.map(PAGER, V, PAGER, V + 0x800)  # same page
    with pytest.raises(MapDbError, match="derives from"):
        db.map(CLIENT, C, PAGER, V)  # onto its parent
    with pytest.raises(MapDbError, match="derives from"):
        db.map(CLIENT, C, SIGMA0, F1)  # onto its root
    with pytest.raises(MapDbError, match="root"):
        db.map(PAGER, V, SIGMA0, F2)  # onto another frame's root
    assert db.render() == before and len(db) == 4
    assert client.parent is pager and pager.parent is root
    db.check()


# -- unmap -----------------------------------------------------------------------


def test_unmap_flush_removes_the_subtree_but_not_the_root() -> None:
    db, root, pager, client = chain()
    side, _ = db.map(SIGMA0, F1, OTHER, C)
    removed = db.unmap(SIGMA0, F1 + 0x40)
    assert set(removed) == {pager, client, side}
    assert removed.index(client) < removed.index(pager)  # each after its descendants
    assert db.lookup(SIGMA0, F1) is root and root.children == []
    assert db.lookup(PAGER, V) is None and db.lookup(CLIENT, C) is None
    assert all(n.parent is None and n.children == [] for n in removed)  # detached
    assert len(db) == 2
    db.check()
    assert db.unmap(SIGMA0, F1) == []


def test_unmap_flush_own_removes_the_node_too() -> None:
    db, root, pager, client = chain()
    assert db.unmap(PAGER, V, own=True) == [client, pager]
    assert root.children == [] and len(db) == 2
    db.check()
    assert db.unmap(SIGMA0, F1, "flush", own=True) == [root]  # sigma0's own page
    assert db.roots() == [db.lookup(SIGMA0, F2)] and len(db) == 1
    db.check()
    db.add_root(SIGMA0, F1, F1)  # the frame can be given out again
    db.check()


def test_unmap_middle_keeps_the_node_and_its_ancestors() -> None:
    db, root, pager, client = chain()
    assert db.unmap(PAGER, V) == [client]
    assert pager.children == [] and root.children == [pager]
    db.check()


def test_unmap_ro_downgrades_the_descendants() -> None:
    db, root, pager, client = chain()
    other, _ = db.map(PAGER, V, OTHER, C, writable=False)
    changed = db.unmap(SIGMA0, F1, "ro")
    assert changed == [pager, client]  # `other` already read-only; parents first
    assert root.writable and not pager.writable and not client.writable
    assert len(db) == 5
    db.check()
    assert db.unmap(SIGMA0, F1, "ro") == []
    assert db.unmap(SIGMA0, F1, "ro", own=True) == [root]
    assert not root.writable
    fresh, _ = db.map(SIGMA0, F1, OTHER, C + PAGE)
    assert not fresh.writable and other.parent is pager
    db.check()


def test_unmap_ro_own_on_a_leaf() -> None:
    db, _, pager, client = chain()
    assert db.unmap(CLIENT, C, "ro") == []
    assert db.unmap(CLIENT, C, "ro", own=True) == [client]
    assert pager.writable
    db.check()


def test_unmap_unmapped_page_and_bad_mode() -> None:
    db, *_ = chain()
    assert db.unmap(OTHER, C) == []
    assert db.unmap(OTHER, C, "ro", own=True) == []
    with pytest.raises(MapDbError, match="mode"):
        db.unmap(PAGER, V, "rw")
    assert len(db) == 4


# -- grant ------------------------------------------------------------------------


def test_grant_moves_the_node_and_keeps_its_children() -> None:
    db, root, pager, client = chain()
    sibling, _ = db.map(SIGMA0, F1, OTHER, C)
    moved, removed = db.grant(PAGER, V + 0x10, OTHER, V + PAGE)
    assert moved is pager and removed == []
    assert (pager.space, pager.vaddr, pager.frame) == (OTHER, V + PAGE, F1)
    assert db.lookup(PAGER, V) is None  # the granter loses it
    assert db.lookup(OTHER, V + PAGE) is pager
    assert pager.parent is root and root.children == [pager, sibling]  # same place
    assert pager.children == [client] and client.parent is pager
    assert db.depth(client) == 2 and len(db) == 5
    db.check()
    # The original mapper can still revoke what was granted on.
    assert db.unmap(SIGMA0, F1) == [client, pager, sibling]
    db.check()


def test_grant_keeps_rights_and_can_move_a_root() -> None:
    db, root, pager, _ = chain()
    db.unmap(SIGMA0, F1, "ro")
    moved, _ = db.grant(PAGER, V, OTHER, V)
    assert not moved.writable
    db.grant(SIGMA0, F1, OTHER, C + PAGE)  # sigma0 donates its own page
    assert root.is_root and root.key == (OTHER, C + PAGE)
    assert db.roots()[0] is root and pager.parent is root
    db.check()


def test_grant_errors() -> None:
    db, *_ = chain()
    with pytest.raises(MapDbError, match="not mapped"):
        db.grant(OTHER, 0, CLIENT, 0)
    with pytest.raises(MapDbError, match="onto itself"):
        db.grant(CLIENT, C, CLIENT, C)
    with pytest.raises(MapDbError, match="derives from"):
        db.grant(CLIENT, C, PAGER, V)
    with pytest.raises(MapDbError, match="root"):
        db.grant(CLIENT, C, SIGMA0, F2)
    db.check()


# -- occupied destinations -----------------------------------------------------------


def test_map_onto_an_occupied_page_unmaps_the_old_subtree() -> None:
    db, _, pager, client = chain()
    grandchild, _ = db.map(CLIENT, C, OTHER, C)
    db.map(SIGMA0, F2, PAGER, V + PAGE)
    node, removed = db.map(PAGER, V + PAGE, CLIENT, C)  # F2 replaces F1 at C
    assert removed == [grandchild, client]
    assert node.frame == F2 and db.lookup(CLIENT, C) is node
    assert db.lookup(OTHER, C) is None and pager.children == []
    db.check()


def test_remapping_the_same_page_replaces_the_old_mapping() -> None:
    db, _, pager, client = chain()
    node, removed = db.map(PAGER, V, CLIENT, C, writable=False)
    assert removed == [client] and node is not client
    assert pager.children == [node] and not node.writable
    db.check()


def test_map_onto_a_page_of_the_source_subtree() -> None:
    db, root, pager, client = chain()
    node, removed = db.map(SIGMA0, F1, CLIENT, C)  # the client's page now straight from sigma0
    assert removed == [client] and node.parent is root
    assert root.children == [pager, node] and pager.children == []
    db.check()


def test_grant_onto_an_occupied_page_unmaps_the_old_subtree() -> None:
    db, _, pager, client = chain()
    db.map(SIGMA0, F2, OTHER, C)
    moved, removed = db.grant(PAGER, V, OTHER, C)
    assert moved is pager and keys(removed) == [(OTHER, C)]
    assert db.lookup(OTHER, C) is pager and pager.children == [client]
    db.check()


def test_grant_onto_its_own_child() -> None:
    db, _, pager, client = chain()
    moved, removed = db.grant(PAGER, V, CLIENT, C)
    assert moved is pager and removed == [client]
    assert pager.children == [] and db.lookup(CLIENT, C) is pager
    db.check()


# -- spaces, check, render --------------------------------------------------------------


def test_remove_space_takes_the_descendants_along() -> None:
    db, root, pager, client = chain()
    second, _ = db.map(SIGMA0, F2, PAGER, V + PAGE)
    alias, _ = db.map(PAGER, V, PAGER, V + 2 * PAGE)  # gone with `pager`, its parent
    assert db.remove_space(PAGER) == [alias, client, pager, second]
    assert db.pages(PAGER) == [] and db.pages(CLIENT) == []
    assert len(db) == 2 and root.children == []
    assert db.remove_space(PAGER) == []
    db.check()
    assert len(db.remove_space(SIGMA0)) == 2 and len(db) == 0 and db.roots() == []
    db.check()


def test_depth_of_a_removed_node_is_an_error() -> None:
    db, _, _, client = chain()
    db.unmap(CLIENT, C, own=True)
    with pytest.raises(MapDbError, match="not in the mapping database"):
        db.depth(client)


def _unindex(db: MappingDb, node: Node) -> None:
    bucket = kernel.mapdb.bucket_addr(node.space, node.vaddr)
    db.memory.write(bucket - KERNEL_BASE, 0)  # the only node in its bucket here


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda db, r, p, c: poke(db, c, FRAME, F2 | 1), "another frame"),
        (lambda db, r, p, c: poke(db, p, FRAME, F1), "writable under read-only"),
        (lambda db, r, p, c: poke(db, c, PARENT, r.addr), "not vice versa"),
        (lambda db, r, p, c: poke(db, p, FIRST, 0), "not reachable"),
        (lambda db, r, p, c: poke(db, c, VADDR, C + PAGE), "indexed under"),
        (lambda db, r, p, c: poke(db, p, NEXT, c.addr), "not vice versa"),
        (lambda db, r, p, c: poke(db, c, PARENT, 0), "not its frame's root"),
        (lambda db, r, p, c: _unindex(db, c), "not indexed"),
        (lambda db, r, p, c: db.memory.write(kernel.mapdb.AREA + kernel.mapdb.COUNT, 5), "counted"),
    ],
)
def test_check_finds_corruption(corrupt, message: str) -> None:
    db, root, pager, client = chain()
    db.check()
    corrupt(db, root, pager, client)
    with pytest.raises(MapDbError, match=message):
        db.check()


def test_render() -> None:
    db, *_ = chain()
    db.map(SIGMA0, F1, OTHER, C, writable=False)
    assert db.render(NAMES) == [
        "sigma0 0x00123000 -> frame 0x00123000 rw",
        "  pager 0x00400000 -> frame 0x00123000 rw",
        "    client 0x08000000 -> frame 0x00123000 rw",
        "  space 3 0x08000000 -> frame 0x00123000 ro",
        "sigma0 0x00124000 -> frame 0x00124000 rw",
    ]
    assert db.render()[0] == "space 0 0x00123000 -> frame 0x00123000 rw"
    assert fresh().render() == []


def test_node_repr_does_not_follow_links() -> None:
    _, root, _, client = chain()
    assert repr(client) == f"Node(space=2, vaddr={C}, frame={F1}, writable=True)"
    assert "children" not in repr(root)


@pytest.mark.parametrize("module", [kernel.mapdb, kernel.mapdb_direct])
def test_module_imports_only_the_standard_library_and_the_micro_ops(module: object) -> None:
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    # the standard library, the machine's micro-ops (the database is in simulated memory)
    # and where in that memory it lives (kernel/memmap.py, constants only); the view
    # from outside simulated time reads the database module itself
    own = {"kernel.memmap", "kernel.mapdb"}
    tops = {str(name).split(".")[0] for name in imported if name not in own}
    assert tops <= {"__future__", "collections", "dataclasses", "typing", "machine"}


def test_a_deep_chain_needs_no_recursion() -> None:
    db = fresh()
    db.add_root(SIGMA0, 0, 0)
    for i in range(3000):
        db.map(i, 0, i + 1, 0)
    db.check()
    assert db.depth(db.lookup(3000, 0)) == 3000
    assert len(db.render()) == 3001
    assert len(db.unmap(SIGMA0, 0)) == 3000
    db.check()


# -- random operations against a model -------------------------------------------------

SPACES = st.integers(0, 3)
PAGES = st.integers(0, 4)
OFFSETS = st.sampled_from([0, 1, PAGE - 1])
FRAMES = st.integers(0, 5)

Key = tuple[int, int]


class MapDbMachine(RuleBasedStateMachine):
    """Random map/grant/unmap/remove_space against a dict model; `check()` after every step.

    The model maps each (space, page) to [frame, writable, parent key]; it
    predicts every error and every set of removed or changed pages.
    """

    def __init__(self) -> None:
        super().__init__()
        self.db = fresh()
        self.model: dict[Key, list] = {}

    # model helpers

    def subtree(self, key: Key) -> set[Key]:
        out, todo = set(), [key]
        while todo:
            k = todo.pop()
            out.add(k)
            todo.extend(j for j, v in self.model.items() if v[2] == k)
        return out

    def ancestors(self, key: Key) -> set[Key]:
        out = set()
        while key is not None:
            out.add(key)
            key = self.model[key][2]
        return out

    def drop(self, keys_: set[Key]) -> None:
        for k in keys_:
            del self.model[k]

    def pick(self, data, space: int, page: int) -> Key:
        """Mostly an existing page, sometimes any page."""
        if self.model and data.draw(st.booleans()):
            return data.draw(st.sampled_from(sorted(self.model)))
        return (space, page * PAGE)

    def destination_error(self, src: Key, dst: Key) -> bool:
        if src not in self.model or dst == src or dst in self.ancestors(src):
            return True
        return dst in self.model and self.model[dst][2] is None

    # rules

    @initialize()
    def sigma0(self) -> None:
        for i in range(3):
            self.db.add_root(0, i * PAGE, i * PAGE)
            self.model[(0, i * PAGE)] = [i * PAGE, True, None]

    @rule(space=SPACES, page=PAGES, offset=OFFSETS, frame=FRAMES, writable=st.booleans())
    def add_root(self, space: int, page: int, offset: int, frame: int, writable: bool) -> None:
        key, frame = (space, page * PAGE), frame * PAGE
        taken = {v[0] for v in self.model.values() if v[2] is None}
        if key in self.model or frame in taken:
            with pytest.raises(MapDbError):
                self.db.add_root(space, key[1] + offset, frame, writable)
            return
        node = self.db.add_root(space, key[1] + offset, frame, writable)
        assert node.key == key
        self.model[key] = [frame, writable, None]

    @rule(
        data=st.data(),
        space=SPACES,
        page=PAGES,
        dst_space=SPACES,
        dst_page=PAGES,
        offset=OFFSETS,
        writable=st.booleans(),
    )
    def map(self, data, space, page, dst_space, dst_page, offset, writable) -> None:
        src, dst = self.pick(data, space, page), self.pick(data, dst_space, dst_page)
        if self.destination_error(src, dst):
            with pytest.raises(MapDbError):
                self.db.map(*src, dst[0], dst[1] + offset, writable)
            return
        node, removed = self.db.map(src[0], src[1] + offset, *dst, writable)
        expect = self.subtree(dst) if dst in self.model else set()
        assert set(keys(removed)) == expect and len(removed) == len(expect)
        self.drop(expect)
        frame, src_writable, _ = self.model[src]
        self.model[dst] = [frame, src_writable and writable, src]
        assert node.key == dst and node.parent is self.db.lookup(*src)

    @rule(data=st.data(), space=SPACES, page=PAGES, dst_space=SPACES, dst_page=PAGES)
    def grant(self, data, space, page, dst_space, dst_page) -> None:
        src, dst = self.pick(data, space, page), self.pick(data, dst_space, dst_page)
        if self.destination_error(src, dst):
            with pytest.raises(MapDbError):
                self.db.grant(*src, *dst)
            return
        before = self.db.lookup(*src)
        node, removed = self.db.grant(*src, *dst)
        assert node is before
        expect = self.subtree(dst) if dst in self.model else set()
        assert set(keys(removed)) == expect and len(removed) == len(expect)
        self.drop(expect)
        self.model[dst] = self.model.pop(src)
        for v in self.model.values():
            if v[2] == src:
                v[2] = dst

    @rule(
        data=st.data(),
        space=SPACES,
        page=PAGES,
        offset=OFFSETS,
        mode=st.sampled_from(["flush", "ro"]),
        own=st.booleans(),
    )
    def unmap(self, data, space, page, offset, mode, own) -> None:
        key = self.pick(data, space, page)
        result = self.db.unmap(key[0], key[1] + offset, mode, own)
        if key not in self.model:
            assert result == []
            return
        affected = self.subtree(key) if own else self.subtree(key) - {key}
        if mode == "flush":
            assert set(keys(result)) == affected and len(result) == len(affected)
            for i, n in enumerate(result):  # each after its descendants
                parent = self.model[n.key][2]
                if parent in affected:
                    assert keys(result).index(parent) > i
            self.drop(affected)
        else:
            expect = {k for k in affected if self.model[k][1]}
            assert set(keys(result)) == expect and len(result) == len(expect)
            for k in affected:
                self.model[k][1] = False

    @rule(space=SPACES)
    def remove_space(self, space: int) -> None:
        removed = self.db.remove_space(space)
        expect: set[Key] = set()
        for k in [k for k in self.model if k[0] == space]:
            expect |= self.subtree(k)
        assert set(keys(removed)) == expect and len(removed) == len(expect)
        self.drop(expect)

    # invariants

    @invariant()
    def consistent(self) -> None:
        self.db.check()

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.db) == len(self.model)
        for key, (frame, writable, parent) in self.model.items():
            node = self.db.lookup(*key)
            assert node is not None and node.key == key
            assert (node.frame, node.writable) == (frame, writable)
            assert (node.parent.key if node.parent else None) == parent
        for space in range(4):
            assert keys(self.db.pages(space)) == sorted(k for k in self.model if k[0] == space)
        assert [r.key for r in self.db.roots()] == [
            k for k, v in sorted(self.model.items(), key=lambda kv: kv[1][0]) if v[2] is None
        ]
        assert len(self.db.render()) == len(self.model)


MapDbMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestMapDbMachine = MapDbMachine.TestCase
