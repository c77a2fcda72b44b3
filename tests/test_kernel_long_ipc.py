"""Long IPC on one CPU: strings, page faults in either space, map, grant, unmap (§2.2, §8.3.2).

Strings are copied through the comm space; a fault in the sender's space goes
to the sender's pager, one in the receiver's space is redone in the
receiver's context and goes to *its* pager. Map and grant enter page-table
entries into the receiver's window and the mapping database; unmap flushes or
write-protects what was derived. Contents are compared in simulated physical
memory through each space's page tables (`machine.paging.lookup`). After each
run the mapping database must be consistent (`MappingDb.check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.program import Ipc
from kernel.scenario import load_scenario
from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import (
    _pattern,
    mapping_node,
    read_virtual,
    results,
    run,
    space_of,
    state,
    step_until,
    system,
    translation,
    write_virtual,
)

M1 = "machine: {profile: p3-dual-450, cpus: 1}"
PAGE = 4096
ITEM = " " * 18  # the indent of a program item in the scenario strings below


@pytest.fixture
def checked() -> Iterator[list[System]]:
    """Systems appended here get their mapping database checked after the test body."""
    systems: list[System] = []
    yield systems
    for s in systems:
        s.kernel.spaces.mapdb.check()


def _pages(addr: int, size: int) -> list[int]:
    first = addr - addr % PAGE
    return list(range(first, addr + size, PAGE))


def _touches(addr: int, size: int, write: bool = True) -> str:
    w = "true" if write else "false"
    return "".join(f"\n{ITEM}- touch: {{addr: {p:#x}, write: {w}}}" for p in _pages(addr, size))


TASK_OF = {"pgr": "pager", "sigma0": "sigma0"}


def _pager_of(s: System, thread: str, vaddr: int) -> str:
    """The task whose page the mapping of `vaddr` in `thread`'s space was made from."""
    node = mapping_node(s, thread, vaddr)
    assert node is not None, f"{thread}: {vaddr:#x} has no mapping"
    assert node.parent is not None
    return s.kernel.spaces.name_of(node.parent.space)


# --- string copies ------------------------------------------------------------------

COPIES = [
    pytest.param(0x100000, 0x200000, 8192, id="aligned-2pages"),
    pytest.param(0x100000, 0x200000, 6000, id="aligned-partial"),
    pytest.param(0x100010, 0x200008, 6000, id="unaligned"),
    pytest.param(0x100FF8, 0x200FFC, 16, id="both-cross-page"),
    pytest.param(0x100004, 0x20001C, 12284, id="unaligned-3pages"),
]


@pytest.mark.parametrize(("src", "dst", "size"), COPIES)
@pytest.mark.parametrize("pager", ["sigma0", "pgr"])
@pytest.mark.parametrize("receiver_touched", [True, False], ids=["rcv-mapped", "rcv-faults"])
def test_string_copied_byte_exact(
    checked: list[System], src: int, dst: int, size: int, pager: str, receiver_touched: bool
) -> None:
    buf = size + 64
    rtouch = _touches(dst, buf, write=False) if receiver_touched else ""
    s = system(f"""
        {M1}
        tasks:
          - name: pager
            threads:
              - name: pgr
                priority: 150
                program:
                  - serve_faults
          - name: server
            threads:
              - name: srv
                pager: {pager}
                program:{rtouch}
                  - recv: {{from: cli, strings: [{{addr: {dst:#x}, size: {buf}}}]}}
          - name: client
            threads:
              - name: cli
                pager: {pager}
                program:{_touches(src, size)}
                  - send: {{to: srv, words: [1], strings: [{{addr: {src:#x}, size: {size}}}]}}
        """)
    checked.append(s)
    cli = s.kernel.by_name["cli"]
    step_until(s, lambda: isinstance(cli.pc.op, Ipc))
    data = _pattern(size // 4)
    write_virtual(s, "cli", src, data)
    s.run(max_steps=100_000)
    assert s.ended == "end"
    (rc,) = results(s, "cli")
    assert rc["ok"] is True, rc
    (rs,) = results(s, "srv")
    assert rs["ok"] is True and rs["from"] == "cli" and rs["words"] == [1]
    assert read_virtual(s, "srv", dst, size) == data
    # Nothing beyond the string was written in the buffer.
    assert all(w in (0, None) for w in read_virtual(s, "srv", dst + size, buf - size))
    # The sender's copy is untouched.
    assert read_virtual(s, "cli", src, size) == data
    for p in _pages(dst, size):
        assert translation(s, "srv", p) is not None
    if not receiver_touched:
        # The receiver's buffer pages came from its own pager, faulted in its context.
        for p in _pages(dst, size):
            assert _pager_of(s, "srv", p) == TASK_OF[pager]


def test_two_strings_into_two_buffers(checked: list[System]) -> None:
    s = system(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - recv:
                      from: cli
                      strings: [{{addr: 0x200000, size: 4096}}, {{addr: 0x280000, size: 8192}}]
          - name: client
            threads:
              - name: cli
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - touch: {{addr: 0x101000, write: true}}
                  - touch: {{addr: 0x102000, write: true}}
                  - send:
                      to: srv
                      strings: [{{addr: 0x100100, size: 1000}}, {{addr: 0x101000, size: 8000}}]
        """)
    checked.append(s)
    cli = s.kernel.by_name["cli"]
    step_until(s, lambda: isinstance(cli.pc.op, Ipc))
    first, second = _pattern(250, 1), _pattern(2000, 2)
    write_virtual(s, "cli", 0x100100, first)
    write_virtual(s, "cli", 0x101000, second)
    assert s.run(max_steps=100_000) == "end"
    assert results(s, "cli")[0]["ok"] is True
    assert results(s, "srv")[0]["ok"] is True
    assert read_virtual(s, "srv", 0x200000, 1000) == first
    assert read_virtual(s, "srv", 0x280000, 8000) == second


def test_call_reply_with_string(checked: list[System]) -> None:
    """A server replies with a string into the buffer its client's call offered."""
    s = system(f"""
        {M1}
        tasks:
          - name: server
            threads:
              - name: srv
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - recv: {{from: any}}
                  - reply_wait:
                      words: [5]
                      strings: [{{addr: 0x100000, size: 2048}}]
                      timeout: 0
                      recv_timeout: 0
          - name: client
            threads:
              - name: cli
                program:
                  - compute: 1000
                  - call: {{to: srv, words: [1], buffers: [{{addr: 0x600000, size: 4096}}]}}
        """)
    checked.append(s)
    srv = s.kernel.by_name["srv"]
    step_until(s, lambda: isinstance(srv.pc.op, Ipc))
    data = _pattern(512, 3)
    write_virtual(s, "srv", 0x100000, data)
    s.run(max_steps=100_000)
    (rc,) = results(s, "cli")
    assert rc["ok"] is True and rc["words"] == [5] and rc["from"] == "srv"
    assert read_virtual(s, "cli", 0x600000, 2048) == data


@pytest.mark.parametrize(
    ("cli_pager", "srv_pager"),
    [("pgr", "sigma0"), ("sigma0", "pgr"), ("pgr", "pgr"), ("sigma0", "sigma0")],
)
def test_faults_in_both_spaces_go_to_each_threads_pager(
    checked: list[System], cli_pager: str, srv_pager: str
) -> None:
    """Neither side touched its pages: the sender's faults go to the sender's pager,
    the receiver's (redone in its context) to the receiver's pager."""
    s = run(f"""
        {M1}
        tasks:
          - name: pager
            threads:
              - name: pgr
                priority: 150
                program:
                  - serve_faults
          - name: server
            threads:
              - name: srv
                pager: {srv_pager}
                program:
                  - recv: {{from: cli, strings: [{{addr: 0x200000, size: 8192}}]}}
                  - touch: {{addr: 0x201000, write: true}}
          - name: client
            threads:
              - name: cli
                pager: {cli_pager}
                program:
                  - send: {{to: srv, words: [1], strings: [{{addr: 0x100000, size: 8000}}]}}
        """)
    checked.append(s)
    assert s.ended == "end"
    assert results(s, "cli")[0]["ok"] is True
    assert results(s, "srv")[0]["ok"] is True
    assert state(s, "cli") == state(s, "srv") == "inactive"
    for p in (0x100000, 0x101000):
        assert _pager_of(s, "cli", p) == ("pager" if cli_pager == "pgr" else "sigma0")
    for p in (0x200000, 0x201000):
        assert _pager_of(s, "srv", p) == ("pager" if srv_pager == "pgr" else "sigma0")
    if "pgr" in (cli_pager, srv_pager):
        # The user pager's own pages come from sigma0, and are the frames it handed out.
        node = mapping_node(s, "pgr", 0x100000 if cli_pager == "pgr" else 0x200000)
        assert node is not None and s.kernel.spaces.name_of(node.parent.space) == "sigma0"
    faults = run_summary(s)["counters"]["page_faults"]
    assert faults >= 4 + (2 if cli_pager == "pgr" else 0) + (2 if srv_pager == "pgr" else 0)
    # The receiver's later touch of a copied page does not fault again.
    assert all(r["op"] != "page_fault" for r in results(s, "srv"))


def test_pager_long_ipc_script(checked: list[System]) -> None:
    path = Path(__file__).parent.parent / "scripts" / "pager-long-ipc.yaml"
    s = System(load_scenario(path))
    checked.append(s)
    assert s.run(max_steps=100_000) == "end"
    assert all(e["ok"] for e in run_summary(s)["expect"])
    assert translation(s, "srv", 0x200000).frame == translation(s, "pgr", 0x200000).frame


@pytest.mark.parametrize("exact", [True, False])
def test_string_that_fits_exactly(checked: list[System], exact: bool) -> None:
    size = 4096 if exact else 100
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - send: {{to: b, strings: [{{addr: 0x100000, size: {size}}}]}}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a, strings: [{{addr: 0x300000, size: 4096}}]}}
        """)
    checked.append(s)
    assert results(s, "a")[0]["ok"] is True
    assert results(s, "b")[0]["ok"] is True
    assert read_virtual(s, "b", 0x300000, 4) == [1]  # the touch wrote 1 at the first word


@pytest.mark.parametrize(
    "buffers",
    [
        pytest.param("[{addr: 0x300000, size: 100}]", id="too-small"),
        pytest.param("[]", id="no-buffer"),
        pytest.param(None, id="no-strings-field"),
    ],
)
def test_string_cut(checked: list[System], buffers: str | None) -> None:
    """A string larger than the receive buffer, or no buffer: both partners get `cut`."""
    recv = "{from: a}" if buffers is None else f"{{from: a, strings: {buffers}}}"
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - send: {{to: b, words: [1], strings: [{{addr: 0x100000, size: 200}}]}}
                  - read_kip
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {recv}
                  - read_kip
        """)
    checked.append(s)
    ra = results(s, "a")
    assert ra[0]["op"] == "send" and ra[0]["ok"] is False and ra[0]["error"] == "cut"
    assert ra[1]["op"] == "read_kip"
    rb = results(s, "b")
    assert rb, "the receiver never completed its receive"
    assert rb[0]["op"] == "recv" and rb[0]["ok"] is False and rb[0]["error"] == "cut"
    assert rb[1]["op"] == "read_kip"
    assert state(s, "a") == state(s, "b") == "inactive"
    assert s.ended == "end"


# --- map, grant, unmap -------------------------------------------------------------------


def test_map_into_receive_window(checked: list[System]) -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 4096}}}}
                  - touch: {{addr: 0x300000, write: true}}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a, window: {{addr: 0x500000, size: 4096}}}}
                  - touch: {{addr: 0x500000}}
                  - touch: {{addr: 0x500004, write: true}}
        """)
    checked.append(s)
    assert s.ended == "end"
    assert results(s, "a")[0]["ok"] is True
    assert results(s, "b")[0]["ok"] is True
    # Only a's first touch faulted: b's touches hit the mapped page, and a keeps its page.
    assert run_summary(s)["counters"]["page_faults"] == 1
    ta, tb = translation(s, "a", 0x300000), translation(s, "b", 0x500000)
    assert ta is not None and tb is not None
    assert ta.frame == tb.frame
    assert read_virtual(s, "b", 0x500000, 8) == [1, 1]  # a's write and b's, one frame
    node = mapping_node(s, "b", 0x500000)
    assert node.parent is mapping_node(s, "a", 0x300000)


def test_map_two_pages_into_larger_window(checked: list[System]) -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - touch: {{addr: 0x301000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 8192}}}}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a, window: {{addr: 0x400000, size: 0x400000}}}}
        """)
    checked.append(s)
    assert results(s, "b")[0]["ok"] is True
    for off in (0, PAGE):
        ta = translation(s, "a", 0x300000 + off)
        # A smaller fpage lands at its own offset in the window (L4's rule).
        tb = translation(s, "b", 0x700000 + off)
        assert ta is not None and tb is not None and ta.frame == tb.frame


def test_map_without_window_is_cut(checked: list[System]) -> None:
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 4096}}}}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a}}
                  - read_kip
        """)
    checked.append(s)
    ra = results(s, "a")[0]
    assert ra["ok"] is False and ra["error"] == "cut"
    rb = results(s, "b")
    assert rb and rb[0]["ok"] is False and rb[0]["error"] == "cut"
    assert state(s, "a") == state(s, "b") == "inactive"


@pytest.mark.parametrize("granter_touches_again", [True, False])
def test_grant_moves_the_page(checked: list[System], granter_touches_again: bool) -> None:
    again = f"\n{ITEM}- touch: {{addr: 0x300000}}" if granter_touches_again else ""
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - send: {{to: b, grant: {{addr: 0x300000, size: 4096}}}}{again}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a, window: {{addr: 0x500000, size: 4096}}}}
                  - touch: {{addr: 0x500000, write: true}}
        """)
    checked.append(s)
    assert results(s, "a")[0]["ok"] is True
    assert results(s, "b")[0]["ok"] is True
    tb = translation(s, "b", 0x500000)
    assert tb is not None
    assert read_virtual(s, "b", 0x500000, 4) == [1]
    ta = translation(s, "a", 0x300000)
    if granter_touches_again:
        # a lost the page: its next touch faulted and got a different frame.
        assert run_summary(s)["counters"]["page_faults"] == 2
        assert ta is not None and ta.frame != tb.frame
    else:
        assert ta is None
        assert mapping_node(s, "a", 0x300000) is None
        assert run_summary(s)["counters"]["page_faults"] == 1
    node = mapping_node(s, "b", 0x500000)
    assert s.kernel.spaces.name_of(node.parent.space) == "sigma0"  # kept its place


def _unmap_scenario(mode: str, own: bool, b_writes: bool, a_touches: bool) -> str:
    b_touch = "touch: {addr: 0x500000, write: true}" if b_writes else "read_kip"
    a_touch = "touch: {addr: 0x300000, write: true}" if a_touches else "read_kip"
    return f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 4096}}}}
                  - recv: {{from: c}}
                  - unmap: {{addr: 0x300000, size: 4096, mode: {mode}, own: {str(own).lower()}}}
                  - send: {{to: b, words: [1]}}
                  - {a_touch}
          - name: t2
            threads:
              - name: b
                program:
                  - recv: {{from: a, window: {{addr: 0x500000, size: 4096}}}}
                  - send: {{to: c, map: {{addr: 0x500000, size: 4096}}}}
                  - recv: {{from: a}}
                  - {b_touch}
          - name: t3
            threads:
              - name: c
                program:
                  - recv: {{from: b, window: {{addr: 0x700000, size: 4096}}}}
                  - touch: {{addr: 0x700000}}
                  - send: {{to: a}}
        """


@pytest.mark.parametrize("own", [False, True])
def test_unmap_flush(checked: list[System], own: bool) -> None:
    """flush removes every mapping derived from the page (b's and c's, recursively),
    and the caller's own only with own: true."""
    s = run(_unmap_scenario("flush", own, b_writes=False, a_touches=False))
    checked.append(s)
    assert s.ended == "end"
    assert all(r["ok"] for n in ("a", "b", "c") for r in results(s, n)), run_summary(s)["threads"]
    unmap = next(r for r in results(s, "a") if r["op"] == "unmap")
    assert unmap["ok"] is True
    assert translation(s, "b", 0x500000) is None
    assert translation(s, "c", 0x700000) is None
    assert mapping_node(s, "b", 0x500000) is None
    assert mapping_node(s, "c", 0x700000) is None
    if own:
        assert translation(s, "a", 0x300000) is None
        assert mapping_node(s, "a", 0x300000) is None
    else:
        assert translation(s, "a", 0x300000) is not None
        assert mapping_node(s, "a", 0x300000) is not None
    assert run_summary(s)["counters"]["page_faults"] == 1  # c's read hit the mapped page


@pytest.mark.parametrize("own", [False, True])
def test_touch_after_unmap_flush_faults(checked: list[System], own: bool) -> None:
    s = run(_unmap_scenario("flush", own, b_writes=True, a_touches=True))
    checked.append(s)
    assert s.ended == "end"
    faults = run_summary(s)["counters"]["page_faults"]
    # a's first touch, b's touch after the flush, and a's own touch only if it lost the page.
    assert faults == 2 + (1 if own else 0)
    tb = translation(s, "b", 0x500000)
    ta = translation(s, "a", 0x300000)
    assert tb is not None and ta is not None
    assert tb.frame != ta.frame  # b got a fresh page from its pager


def test_unmap_ro(checked: list[System]) -> None:
    s = run(_unmap_scenario("ro", False, b_writes=False, a_touches=True))
    checked.append(s)
    assert s.ended == "end"
    ta, tb, tc = (
        translation(s, "a", 0x300000),
        translation(s, "b", 0x500000),
        translation(s, "c", 0x700000),
    )
    assert ta is not None and tb is not None and tc is not None
    assert ta.frame == tb.frame == tc.frame
    assert ta.writable is True  # the caller's own page keeps its rights
    assert tb.writable is False and tc.writable is False
    assert mapping_node(s, "b", 0x500000).writable is False
    assert mapping_node(s, "c", 0x700000).writable is False
    assert run_summary(s)["counters"]["page_faults"] == 1  # a's write to its own page is fine


def test_write_after_unmap_ro_faults(checked: list[System]) -> None:
    s = run(_unmap_scenario("ro", False, b_writes=True, a_touches=False))
    checked.append(s)
    assert s.ended == "end"
    assert run_summary(s)["counters"]["page_faults"] == 2  # a's first touch, b's write
    assert state(s, "b") == "inactive"
    assert all(r["op"] != "page_fault" for r in results(s, "b"))  # resolved, not killed


def test_unmap_ro_own(checked: list[System]) -> None:
    s = run(_unmap_scenario("ro", True, b_writes=False, a_touches=True))
    checked.append(s)
    # a write-protected its own page too: its write faults.
    assert run_summary(s)["counters"]["page_faults"] == 2
    assert all(r["op"] != "page_fault" for r in results(s, "a"))


def test_spaces_are_distinct(checked: list[System]) -> None:
    """Two tasks touching the same virtual address get different frames."""
    s = run(f"""
        {M1}
        tasks:
          - name: t1
            threads:
              - name: a
                program:
                  - touch: {{addr: 0x300000, write: true}}
          - name: t2
            threads:
              - name: b
                program:
                  - touch: {{addr: 0x300000, write: true}}
        """)
    checked.append(s)
    assert space_of(s, "a") is not space_of(s, "b")
    assert translation(s, "a", 0x300000).frame != translation(s, "b", 0x300000).frame
    assert run_summary(s)["counters"]["page_faults"] == 2
