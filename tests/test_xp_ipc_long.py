"""Long cross-processor IPC: strings copied with page faults in both spaces, map,
grant and cut across CPUs (thesis §8.4.2).

Each test is a scenario run headless with `System` (tests/xp_helpers.py), looking
at what `run --json` reports and at the kernel's memory where the thesis names
the structure; the invariants are checked at every quiescent kernel exit, and
after every run the mailbox flags are all clear, every mailbox is free and no
thread has a mailbox hooked — except where a sender stays blocked for good.
"""

from __future__ import annotations

import pytest

from kernel.program import Ipc, ServeFaults
from kernel.system import System
from l4tui.runner.figures import counters
from l4tui.runner.summary import summary as run_summary
from tests.kernel_helpers import (
    _pattern,
    mapping_node,
    read_virtual,
    results,
    step_until,
    translation,
    write_virtual,
)
from tests.xp_helpers import (
    CPUS,
    PAGE,
    POLICIES,
    STEPS,
    _all_inactive,
    _ok,
    assert_mailboxes_clean,
    checked,
    finish,
    xp_run,
    xp_system,
)

# --- long IPC: strings, faults in both spaces, map, grant, cut -----------------------------------

SRC, DST, SIZE = 0x100010, 0x200008, 10000  # unaligned, three pages on each side

PAGER_PAGES = (0x100000, 0x101000, 0x102000)


def _pager_task(s: System, thread: str, vaddr: int) -> str:
    node = mapping_node(s, thread, vaddr)
    assert node is not None and node.parent is not None, f"{thread}: {vaddr:#x} has no mapping"
    return s.kernel.spaces.name_of(node.parent.space)


@pytest.mark.parametrize("srv_pager", ["pgr", "sigma0"])
@pytest.mark.parametrize("cli_pager", ["pgr", "sigma0"])
@pytest.mark.parametrize(
    "cpus,cli,srv,pgr", [(3, 1, 2, 3), (4, 2, 3, 4)], ids=["3cpus", "4cpus-sigma0-apart"]
)
def test_string_copy_cross_cpu_with_faults_in_both_spaces(
    cpus: int, cli: int, srv: int, pgr: int, cli_pager: str, srv_pager: str
) -> None:
    """The proxy copies on the receiver's CPU in the sender's space (§8.4.2): a fault in the
    sender's space is redone by the sender on its own CPU, one in the receiver's space by the
    receiver; each goes to that thread's pager (a user pager on a third CPU, or sigma0 on CPU 1).
    The copy is byte-exact."""
    touches = "".join(f"\n          - touch: {{addr: {p:#x}, write: true}}" for p in PAGER_PAGES)
    body = f"""
tasks:
  - name: pager
    threads:
      - name: pgr
        cpu: {pgr}
        priority: 150
        program:{touches}
          - serve_faults
  - name: server
    threads:
      - name: srv
        cpu: {srv}
        pager: {srv_pager}
        program:
          - recv: {{from: cli, strings: [{{addr: {DST:#x}, size: {SIZE + 64}}}]}}
          - read_kip
  - name: client
    threads:
      - name: cli
        cpu: {cli}
        pager: {cli_pager}
        program:
          - compute: 30000
          - touch: {{addr: {SRC:#x}, write: true}}
          - compute: 10000
          - send: {{to: srv, words: [1], strings: [{{addr: {SRC:#x}, size: {SIZE}}}]}}
          - read_kip
"""
    s = xp_system(body, cpus)
    q = checked(s)
    k = s.kernel
    tc, tp = k.by_name["cli"], k.by_name["pgr"]
    step_until(
        s,
        lambda: isinstance(tc.pc.op, Ipc) and isinstance(tp.pc.op, ServeFaults),
        max_steps=STEPS,
    )
    assert results(s, "cli") == []  # the send has not started
    # The client's first page is present; the user pager's pages are all present (its own
    # touches), so a fault the pager serves maps a page whose contents we set here.
    head = (PAGE - SRC % PAGE) // 4
    data = _pattern(SIZE // 4)
    if cli_pager == "pgr":
        write_virtual(s, "pgr", SRC, data)
        assert translation(s, "cli", SRC).frame == translation(s, "pgr", SRC).frame
    else:
        write_virtual(s, "cli", SRC, data[:head])
    for p in PAGER_PAGES[1:]:
        assert translation(s, "cli", p) is None  # these fault during the proxy's copy
    faults_before = counters(s)["page_faults"]
    assert finish(s, q) == "end"
    rc, rk = results(s, "cli")
    _ok(rc, "send")
    assert rk["op"] == "read_kip"
    rs = results(s, "srv")[0]
    _ok(rs, "recv")
    assert rs["from"] == "cli" and rs["words"] == [1]
    _all_inactive(s, "cli", "srv")
    got = read_virtual(s, "srv", DST, SIZE)
    src_now = read_virtual(s, "cli", SRC, SIZE)
    assert None not in got
    assert got == src_now  # byte-exact, whatever the sender's pages held
    if cli_pager == "pgr":
        assert got == data
    else:
        assert got[:head] == data[:head]
    # Nothing beyond the string in the receiver's last page.
    tail_end = (DST + SIZE + PAGE - 1) // PAGE * PAGE
    assert all(w == 0 for w in read_virtual(s, "srv", DST + SIZE, tail_end - DST - SIZE))
    owner = {"pgr": "pager", "sigma0": "sigma0"}
    for p in PAGER_PAGES:
        assert _pager_task(s, "cli", p) == owner[cli_pager]
    for p in range(DST - DST % PAGE, DST + SIZE, PAGE):
        assert _pager_task(s, "srv", p) == owner[srv_pager]
    # Two sender faults and three receiver faults at least, during the copy.
    assert counters(s)["page_faults"] - faults_before >= 5
    assert counters(s)["xp_ipc"] >= 1
    k.spaces.mapdb.check()
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_receiver_faults_served_by_sigma0_on_the_senders_cpu(cpus: int, policy: str) -> None:
    """The smallest case of the above: a one-page string from CPU 1, the receiver's buffer not
    yet mapped, sigma0 (CPU 1) its pager. sigma0's reply to the receiver's fault comes from
    the sender's CPU, so to the very proxy that is copying and waits for the fault to be
    resolved: it must not wake that proxy before the fault is resolved."""
    s = xp_system(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: {cpus}
                program:
                  - recv: {{from: cli, strings: [{{addr: 0x200000, size: 4096}}]}}
          - name: client
            threads:
              - name: cli
                cpu: 1
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - send: {{to: srv, strings: [{{addr: 0x100000, size: 4096}}]}}
        """,
        cpus,
        policy,
    )
    q = checked(s)
    cli = s.kernel.by_name["cli"]
    step_until(s, lambda: isinstance(cli.pc.op, Ipc), max_steps=STEPS)
    data = _pattern(1024, 11)
    write_virtual(s, "cli", 0x100000, data)
    assert finish(s, q) == "end", run_summary(s).get("stuck")
    _ok(results(s, "cli")[0], "send")
    _ok(results(s, "srv")[0], "recv")
    assert read_virtual(s, "srv", 0x200000, 4096) == data
    _all_inactive(s, "cli", "srv")
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
def test_string_copy_cross_cpu_policies(policy: str) -> None:
    """A string with faults on both sides, pager on a third CPU, under every IPI policy."""
    s = xp_system(
        """
        tasks:
          - name: pager
            threads:
              - name: pgr
                cpu: 3
                priority: 150
                program:
                  - serve_faults
          - name: server
            threads:
              - name: srv
                cpu: 2
                pager: pgr
                program:
                  - recv: {from: cli, strings: [{addr: 0x200000, size: 8192}]}
          - name: client
            threads:
              - name: cli
                cpu: 1
                pager: pgr
                program:
                  - touch: {addr: 0x100000, write: true}
                  - touch: {addr: 0x101000, write: true}
                  - send: {to: srv, strings: [{addr: 0x100000, size: 8192}]}
        """,
        3,
        policy,
    )
    q = checked(s)
    cli = s.kernel.by_name["cli"]
    step_until(s, lambda: isinstance(cli.pc.op, Ipc), max_steps=STEPS)
    data = _pattern(2048, 7)
    write_virtual(s, "cli", 0x100000, data)
    assert finish(s, q) == "end"
    _ok(results(s, "cli")[0], "send")
    assert read_virtual(s, "srv", 0x200000, 8192) == data
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_call_reply_with_string_cross_cpu(cpus: int) -> None:
    """The server replies with a string into the buffer the client's call offered."""
    s = xp_system(
        f"""
        tasks:
          - name: server
            threads:
              - name: srv
                cpu: {cpus}
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - recv: {{from: any}}
                  - reply_wait:
                      words: [5]
                      strings: [{{addr: 0x100004, size: 2040}}]
                      timeout: 0
                      recv_timeout: 0
          - name: client
            threads:
              - name: cli
                cpu: 1
                program:
                  - compute: 5000
                  - call: {{to: srv, words: [1], buffers: [{{addr: 0x600002, size: 4096}}]}}
        """,
        cpus,
    )
    q = checked(s)
    srv = s.kernel.by_name["srv"]
    step_until(s, lambda: isinstance(srv.pc.op, Ipc), max_steps=STEPS)
    data = _pattern(510, 3)
    write_virtual(s, "srv", 0x100004, data)
    assert finish(s, q) == "end"
    rc = results(s, "cli")[0]
    _ok(rc, "call")
    assert rc["words"] == [5] and rc["from"] == "srv"
    # Unaligned by two bytes: compare the bytes.
    mem = s.machine.memory

    def bytes_at(thread: str, vaddr: int, n: int) -> bytes:
        out = bytearray()
        for a in range(vaddr, vaddr + n):
            tr = translation(s, thread, a)
            assert tr is not None
            out.append(mem.read(tr.frame + (a % PAGE & ~3)) >> 8 * (a & 3) & 0xFF)
        return bytes(out)

    assert bytes_at("cli", 0x600002, 2040) == bytes_at("srv", 0x100004, 2040)
    assert bytes_at("cli", 0x600002, 8) != bytes(8)
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cpus", CPUS)
def test_map_and_grant_cross_cpu(cpus: int, policy: str) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - touch: {{addr: 0x301000, write: true}}
                  - send: {{to: b, words: [1], map: {{addr: 0x300000, size: 4096}}}}
                  - send: {{to: b, words: [2], grant: {{addr: 0x301000, size: 4096}}}}
          - name: t2
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - recv: {{from: a, window: {{addr: 0x500000, size: 4096}}}}
                  - recv: {{from: a, window: {{addr: 0x600000, size: 4096}}}}
                  - touch: {{addr: 0x500004, write: true}}
                  - touch: {{addr: 0x600004, write: true}}
        """,
        cpus,
        policy,
    )
    assert s.ended == "end"
    ra = results(s, "a")
    _ok(ra[0], "send")
    _ok(ra[1], "send")
    rb = results(s, "b")
    _ok(rb[0], "recv")
    _ok(rb[1], "recv")
    assert rb[0]["mapped"] == [[0x500000, 4096]]
    assert rb[1]["mapped"] == [[0x600000, 4096]]
    # map: one frame, shared; b's write hit the mapped page (no fault).
    ta, tb = translation(s, "a", 0x300000), translation(s, "b", 0x500000)
    assert ta is not None and tb is not None and ta.frame == tb.frame
    assert read_virtual(s, "b", 0x500000, 8) == [1, 1]
    assert mapping_node(s, "b", 0x500000).parent is mapping_node(s, "a", 0x300000)
    # grant: the page moved; a has it no more.
    assert translation(s, "a", 0x301000) is None
    assert mapping_node(s, "a", 0x301000) is None
    assert read_virtual(s, "b", 0x600000, 8) == [1, 1]
    assert _pager_task(s, "b", 0x600000) == "sigma0"
    # a's two first touches went to sigma0 (CPU 1); b's touches hit the pages.
    assert counters(s)["page_faults"] == 2
    assert counters(s)["xp_ipc"] == 2
    s.kernel.spaces.mapdb.check()
    assert_mailboxes_clean(s)


@pytest.mark.parametrize(
    "recv",
    [
        pytest.param("{from: a, strings: [{addr: 0x300000, size: 100}]}", id="string-too-big"),
        pytest.param("{from: a}", id="no-buffer"),
    ],
)
@pytest.mark.parametrize("cpus", CPUS)
def test_cut_cross_cpu_reaches_both(cpus: int, recv: str) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: 0x100000, write: true}}
                  - send: {{to: b, words: [1], strings: [{{addr: 0x100000, size: 200}}]}}
                  - read_kip
          - name: t2
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - recv: {recv}
                  - read_kip
        """,
        cpus,
    )
    assert s.ended == "end"
    ra, rak = results(s, "a")
    assert ra["op"] == "send" and ra["ok"] is False and ra["error"] == "cut", ra
    assert ra["xp"] is True
    assert rak["op"] == "read_kip"
    rb = results(s, "b")
    assert rb, "the receiver never completed its receive"
    assert rb[0]["op"] == "recv" and rb[0]["ok"] is False and rb[0]["error"] == "cut", rb
    assert rb[1]["op"] == "read_kip"
    _all_inactive(s, "a", "b")
    assert counters(s)["xp_ipc"] == 0  # a failed transfer is no IPC
    assert_mailboxes_clean(s)


@pytest.mark.parametrize("cpus", CPUS)
def test_map_without_window_cut_cross_cpu(cpus: int) -> None:
    s = xp_run(
        f"""
        tasks:
          - name: t1
            threads:
              - name: a
                cpu: 1
                program:
                  - touch: {{addr: 0x300000, write: true}}
                  - send: {{to: b, map: {{addr: 0x300000, size: 4096}}}}
          - name: t2
            threads:
              - name: b
                cpu: {cpus}
                program:
                  - recv: {{from: a}}
                  - read_kip
        """,
        cpus,
    )
    assert results(s, "a")[0]["error"] == "cut"
    rb = results(s, "b")
    assert rb and rb[0]["error"] == "cut" and rb[1]["op"] == "read_kip"
    assert translation(s, "b", 0x300000) is None
    _all_inactive(s, "a", "b")
    assert_mailboxes_clean(s)
