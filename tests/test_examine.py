"""`x ADDR [N]`: memory examine — address forms, the owner of each word, bad input, no effects."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.layout import THESIS_LINES
from kernel.memmap import KIP_FRAME, KIP_VADDR
from kernel.xcpu import MAILBOX_BASE
from l4tui.cli import main
from l4tui.demo import demo_scenario
from l4tui.examine import MAX_WORDS, words
from l4tui.executor import execute
from l4tui.session import Session
from machine.ops import KERNEL_BASE


@pytest.fixture(scope="module")
def stopped() -> Session:
    """The demo stopped where the proxy sends on cpu2: mailboxes and partners are in use."""
    s = Session(demo_scenario())
    execute(s, "break xp.proxy.send")
    execute(s, "continue")
    return s


def columns(out: str) -> list[list[str]]:
    return [line.split("  ") for line in out.splitlines()]


def test_a_tcb_field_by_name_word_by_word(stopped: Session) -> None:
    t = stopped.system.kernel.by_name["srv"]
    fields = list(THESIS_LINES[4][:4])  # partner's line, from partner on
    out = execute(stopped, "x srv.partner 4")
    rows = out.splitlines()
    assert len(rows) == 4
    for i, (row, field) in enumerate(zip(rows, fields, strict=True)):
        addr, value, owner = row.split()[:3]
        assert int(addr, 16) == t.f["partner"] + 4 * i
        assert owner == f"srv.{field}"
        assert int(value, 16) == stopped.system.kernel.field(t, field)
        assert len(addr) == len(value) == 10  # 0x and 8 hex digits: the columns line up


def test_a_thread_alone_is_its_tcb_and_multiword_fields_are_counted(stopped: Session) -> None:
    rows = columns(execute(stopped, "x cli"))
    assert rows[0][0] == f"{stopped.system.kernel.by_name['cli'].tcb:#010x}"
    assert [r[2] for r in rows] == [
        "cli.ipc_buffer",
        "cli.ipc_buffer+4",
        "cli.ipc_buffer+8",
        "cli.ipc_timeout",
    ]


def test_kernel_virtual_and_physical_addresses_show_the_same_words(stopped: Session) -> None:
    tcb = stopped.system.kernel.by_name["srv"].tcb
    virtual = columns(execute(stopped, f"x {tcb:#x} 8"))
    physical = columns(execute(stopped, f"x {tcb - KERNEL_BASE} 8"))  # decimal works too
    assert [r[1:] for r in virtual] == [r[1:] for r in physical]
    assert int(physical[0][0], 16) == tcb - KERNEL_BASE


def test_a_proxy_tcb_and_a_field_holding_a_thread(stopped: Session) -> None:
    out = execute(stopped, "x proxy2.1.partner 1")
    assert "proxy2.1.partner" in out
    k = stopped.system.kernel
    partner = k.field(k.by_name["proxy2.1"], "partner")
    named = k.by_tcb.get(partner)
    if named is not None:
        assert out.endswith(f"= {named.name}")
    # The proxies share one thread id (they are never IPC partners by id): not named.
    assert execute(stopped, "x proxy2.1.myself 1").endswith("proxy2.1.myself")
    assert execute(stopped, "x srv.myself 1").endswith("srv.myself  = srv")


def test_mailbox_words_are_named(stopped: Session) -> None:
    rows = columns(execute(stopped, f"x {MAILBOX_BASE:#x} 8"))
    names = ("lock", "op", "sender", "dest", "param", "target", "next", "error")
    assert [r[2].strip() for r in rows] == [f"mailbox 0 {f}" for f in names]
    assert execute(stopped, "x 0xc0014 1").endswith("mailbox 0 target  = proxy2.1")


def test_a_user_address_goes_through_the_threads_page_tables(stopped: Session) -> None:
    out = execute(stopped, f"x cli:{KIP_VADDR:#x} 2")
    assert out.splitlines() == [
        f"{KIP_VADDR:#010x}  0x00000000  -> {KIP_FRAME:#010x} KIP+0x0",
        f"{KIP_VADDR + 4:#010x}  0x00000000  -> {KIP_FRAME + 4:#010x} KIP+0x4",
    ]
    # The KIP says how many CPUs there are (§7.2); read through cli's space it is 2.
    assert execute(stopped, f"x cli:{KIP_VADDR + 0x20:#x} 1").split()[1] == "0x00000002"
    assert execute(stopped, "x cli:0x1000") == "error: 0x1000 is not mapped in cli's space"
    # A range running off the mapped page stops there and says so.
    last = KIP_VADDR + 0xFF8
    out = execute(stopped, f"x cli:{last:#x} 4")
    assert out.splitlines()[-1] == "0xc0000000  is not mapped in cli's space"
    assert len(out.splitlines()) == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x", "usage: x ADDR [N]"),
        ("x nobody.partner", "no thread 'nobody'"),
        ("x srv.partnr", "no TCB field 'partnr' (did you mean 'partner'?)"),
        ("x srvv", "no address or thread 'srvv' (did you mean 'srv'?)"),
        ("x srv 0", "N must be 1..256 words, not 0"),
        ("x srv 257", "N must be 1..256 words, not 257"),
        ("x srv many", "N must be a number"),
        ("x 0x8000000", "physical address 0x8000000 is outside memory"),
        ("x 0xe4000000", "0xe4000000 maps no memory: the kernel window is"),
        ("x 0x3fffffc 2", "2 words from 0x3fffffc run past the end of memory"),
        ("x 0x100000000", "0x100000000 is not a 32-bit address"),
        ("x -4", "no address or thread '-4'"),
        ("x proxy2.1:0x1000", "proxy2.1 is a kernel thread: it has no user address space"),
        ("x cli:zz", "the address in 'cli:zz' must be a number"),
        ("x cli:0x1000", "0x1000 is not mapped in cli's space"),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    stopped: Session, line: str, message: str
) -> None:
    before = stopped.system.machine.fingerprint(), stopped.position, len(stopped.commands)
    out = execute(stopped, line)
    assert out.startswith(f"error: {message}"), out
    assert "\n" not in out
    after = stopped.system.machine.fingerprint(), stopped.position, len(stopped.commands)
    assert after == before


def test_unaligned_addresses_read_whole_words(stopped: Session) -> None:
    tcb = stopped.system.kernel.by_name["srv"].tcb
    assert execute(stopped, f"x {tcb + 3:#x} 1") == execute(stopped, f"x {tcb:#x} 1")


def test_page_tables_and_flag_lines_are_named(stopped: Session) -> None:
    k = stopped.system.kernel
    client = next(sp for sp in k.spaces.spaces if sp.name == "client")
    assert "client PDE for 0x00400000" in execute(stopped, f"x {client.pdbr + 4:#x} 1")
    assert "cpu2 flags word 0" in execute(stopped, "x 0xb0020 1")


ADDRESSES = st.one_of(
    st.integers(-10, 2**33).map(str),
    st.integers(0, 2**32 - 1).map(hex),
    st.integers(0, 0x0100_0000).map(lambda a: hex(KERNEL_BASE + a)),
    st.sampled_from(["srv", "cli", "proxy2.1", "ctl1", "nobody", "idle1"]).flatmap(
        lambda t: st.one_of(
            st.just(t),
            st.sampled_from(["partner", "myself", "nofield", "1", ""]).map(lambda f: f"{t}.{f}"),
            st.integers(-1, 2**32 + 5).map(lambda a: f"{t}:{a:#x}"),
        )
    ),
    st.text(max_size=12),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(addr=ADDRESSES, n=st.one_of(st.none(), st.integers(-2, 300).map(str)))
def test_x_never_raises_and_never_changes_the_machine(
    stopped: Session, addr: str, n: str | None
) -> None:
    m = stopped.system.machine
    before = m.fingerprint(), dict(m.memory.words), stopped.position
    args = [addr] if n is None else [addr, n]
    line = "x " + " ".join(f"'{a}'" if a.strip() == a and "'" not in a else a for a in args)
    out = execute(stopped, line)
    assert out.startswith("error: ") or 1 <= len(out.splitlines()) <= MAX_WORDS + 1
    if not out.startswith("error: ") and "'" in line:
        assert len(words(stopped, *args)) >= 1
    assert (m.fingerprint(), dict(m.memory.words), stopped.position) == before


def test_x_through_the_cli_console(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "x.cmds"
    script.write_text("x srv.partner 2\nx srv 999\n")
    assert main(["console", "--script", str(script)]) == 2
    out, err = capsys.readouterr()
    assert "(l4tui) x srv.partner 2\n0x" in out
    assert "srv.proxy" in out
    assert err == f"error: {script}:2: N must be 1..256 words, not 999\n"
