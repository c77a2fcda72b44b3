"""Scenario files: loading, and one positioned error per kind of bad input (DESIGN.md §2).

Every bad scenario is one `ConfigError` whose one-line form is
``error: FILE:LINE:COL: what is wrong`` (STYLE.md point 10), never another
exception — a hypothesis test mutates a valid scenario to hold that.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.expectations import Expect
from kernel.layout import THESIS_LINES
from kernel.program import (
    INF,
    Compute,
    ExRegs,
    Fpage,
    Fpu,
    Halt,
    Ipc,
    Loop,
    ReadKip,
    ReadUtcbCpu,
    Repeat,
    Schedule,
    ServeFaults,
    Sleep,
    TaskNew,
    ThreadSwitch,
    Touch,
    Unmap,
)
from kernel.scenario import (
    KernelSpec,
    Scenario,
    TaskSpec,
    ThreadSpec,
    load_scenario,
    parse_scenario,
)
from machine.errors import ConfigError
from machine.profile import Profile
from machine.yamlsrc import load_yaml

DATA = Path(__file__).parent / "data" / "scenarios"
PINGPONG = DATA / "xp-pingpong.yaml"
ALL_OPS = DATA / "all-ops.yaml"
TEXT = PINGPONG.read_text()


# --- helpers -------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str | bytes) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    return info.value, path


def position(err: ConfigError, path: Path) -> tuple[int, int]:
    """(line, column) from the error's one-line form, checking its shape."""
    text = err.format()
    assert "\n" not in text
    assert text.startswith(f"error: {path}:{err.line}:{err.col}: "), text
    match = re.match(rf"error: {re.escape(str(path))}:(\d+):(\d+): \S", text)
    assert match, text
    assert (err.file, err.line, err.col) == (str(path), int(match[1]), int(match[2]))
    return int(match[1]), int(match[2])


def at(text: str, fragment: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the `nth` occurrence of `fragment` in `text`."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(fragment, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def replaced(old: str, new: str, text: str = TEXT) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def bad(tmp_path: Path, text: str, fragment: str, nth: int = 0) -> ConfigError:
    """Load `text`; the error must sit at `fragment` (its nth occurrence)."""
    err, path = error_of(tmp_path, text)
    assert position(err, path) == at(text, fragment, nth), err.format()
    return err


# --- the example of DESIGN.md §2 -----------------------------------------------------


def test_design_example_loads() -> None:
    s = load_scenario(str(PINGPONG))
    assert isinstance(s, Scenario)
    assert (s.name, s.seed, s.boot, s.file) == ("xp-pingpong", 1, False, str(PINGPONG))
    assert isinstance(s.profile, Profile)
    assert (s.profile.name, s.profile.cpus) == ("p3-dual-450", 2)
    assert s.kernel == KernelSpec("proxy", "thesis", 50_000)
    assert [t.name for t in s.tasks] == ["server", "client"]
    assert all(isinstance(t, TaskSpec) and t.start for t in s.tasks)
    srv, cli = s.threads()
    assert s.thread("srv") is srv and s.thread("cli") is cli
    assert isinstance(srv, ThreadSpec)
    assert (srv.name, srv.task, srv.cpu, srv.priority, srv.timeslice, srv.mcp, srv.pager) == (
        "srv", "server", 2, 100, None, 0, "sigma0",
    )  # fmt: skip
    assert srv.program == (
        Ipc("recv"),
        Loop((Compute(200), Ipc("reply_wait", words=(7,)))),
    )
    assert (cli.cpu, cli.task) == (1, "client")
    assert cli.program == (Repeat(3, (Ipc("call", to="srv", source="srv", words=(1, 2, 3)),)),)
    assert s.script == ("break xp.proxy.send", "continue")
    assert s.expect == (
        Expect("cli state inactive", "cli", {"state": "inactive"}, None,
               (str(PINGPONG), 26, 5)),
        Expect("cli result[0] ok=true xp=true", "cli", {"ok": True, "xp": True}, 0,
               (str(PINGPONG), 27, 5)),
    )  # fmt: skip
    assert srv.where == (str(PINGPONG), 8, 9)
    assert s.tasks[1].where == (str(PINGPONG), 16, 5)
    with pytest.raises(KeyError):
        s.thread("nobody")


def test_parse_from_text_defaults() -> None:
    s = parse_scenario("tasks: [{name: t, threads: [{name: a}]}]")
    assert s.name == "scenario" and s.seed == 0 and not s.boot
    assert s.profile.name == "p3-dual-450"
    assert s.kernel == KernelSpec()
    assert s.threads() == (ThreadSpec("a", "t", where=("<string>", 1, 29)),)
    assert s.script == () and s.expect == ()


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks: [{name: t, threads: [{name: a}]}]", "my-demo.yaml")
    assert load_scenario(path).name == "my-demo"


def test_every_op_and_expectation() -> None:
    s = load_scenario(ALL_OPS)
    assert s.profile.cpus == 4 and s.boot
    assert s.kernel == KernelSpec("naive", "naive", 100_000)
    late = s.tasks[-1]
    assert (late.name, late.start) == ("late", False)
    pager, srv, cli, child = s.threads()
    assert (pager.priority, pager.mcp, srv.timeslice, srv.pager, child.program) == (
        200, 255, 10_000, "pager", (),
    )  # fmt: skip
    assert pager.program == (ServeFaults(), ServeFaults(2))
    assert srv.program == (
        Ipc("recv", recv_timeout=INF, window=Fpage(0x400000, 0x400000)),
        Ipc("recv", source="cli", recv_timeout=0, xfer_timeout=1000,
            buffers=(Fpage(0x10000, 4096),)),
        Loop((
            Compute(200),
            Fpu(50),
            Ipc("reply_wait", words=(7, 0xFFFFFFFF), timeout=0, recv_timeout=INF,
                map=Fpage(0x200000, 0x1000)),
        )),
    )  # fmt: skip
    assert cli.program == (
        Touch(0x8000),
        Touch(0x9000, write=True),
        Repeat(3, (Ipc("call", to="srv", source="srv", words=(1, 2, 3), timeout=5000,
                       recv_timeout=5000, xp_fault=True),)),
        Ipc("call", to="sigma0", source="sigma0", strings=(Fpage(0x10000, 100),),
            buffers=(Fpage(0x20000, 0x400000),), grant=Fpage(0x300000, 0x1000),
            window=Fpage(0, 0x80000000)),
        Ipc("send", to="srv", timeout=10, map=Fpage(0x1000, 0x1000)),
        ThreadSwitch("srv"),
        ThreadSwitch(None),
        Schedule("srv", 3, 90, 2000),
        Schedule("cli"),
        ExRegs("srv", 0, 0x7000, "sigma0"),
        Unmap(Fpage(0x200000, 0x200000), "ro", True),
        Unmap(Fpage(0x1000, 0x1000)),
        TaskNew("late"),
        TaskNew("late"),
        ReadUtcbCpu(),
        ReadKip(),
        Sleep(300),
        Halt(),
    )  # fmt: skip
    checks = [e.check for e in s.expect]
    assert checks == [
        "cli state inactive",
        "srv cpu 3",
        "srv priority 90",
        "cli result[0] ok=true xp=true",
        "cli result[-1] op=read_kip value=4",
        "srv result[1] from=cli words=[1, 2, 3] error=null cpu=null",
        "cli result[2] ok=false error=xp_abort cpu=2",
        "deadlock false",
        "counter ipc >= 3 <= 10",
        "counter page_faults == 0",
        "counter mesi.E->S <= 100",
    ]
    by_check = {e.check: e for e in s.expect}
    e = by_check["srv result[1] from=cli words=[1, 2, 3] error=null cpu=null"]
    assert (e.thread, e.result, e.fields) == (
        "srv", 1, {"from": "cli", "words": [1, 2, 3], "error": None, "cpu": None},
    )  # fmt: skip
    assert by_check["deadlock false"].thread is None
    assert by_check["counter ipc >= 3 <= 10"].fields == {"counter": "ipc", "min": 3, "max": 10}


# --- one test per kind of bad input --------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = bad(tmp_path, TEXT + "scirpt: []\n", "scirpt")
    assert "unknown top-level key 'scirpt' (did you mean 'script'?)" in err.message


def test_unknown_op(tmp_path: Path) -> None:
    text = replaced("- call: {to: srv", "- cal: {to: srv")
    err = bad(tmp_path, text, "cal:")
    assert "unknown op 'cal' (did you mean 'call'?)" in err.message
    assert err.message.startswith("tasks[1].threads[0].program[0].do[0]: ")


def test_unknown_bare_op(tmp_path: Path) -> None:
    text = replaced("- compute: 200", "- hlat")
    err = bad(tmp_path, text, "hlat")
    assert "unknown op 'hlat' (did you mean 'halt'?)" in err.message


def test_unknown_op_field(tmp_path: Path) -> None:
    text = replaced("{to: srv, words: [1, 2, 3]}", "{to: srv, wrds: [1, 2, 3]}")
    err = bad(tmp_path, text, "wrds")
    assert "unknown field 'wrds' (did you mean 'words'?)" in err.message


def test_unknown_thread_field(tmp_path: Path) -> None:
    text = replaced("        priority: 100\n", "        prio: 100\n")
    err = bad(tmp_path, text, "prio")
    assert "tasks[0].threads[0]: unknown field 'prio'" in err.message


def test_unknown_thread_name(tmp_path: Path) -> None:
    text = replaced("{to: srv,", "{to: nobody,")
    err = bad(tmp_path, text, "nobody")
    assert err.message == "tasks[1].threads[0].program[0].do[0].call.to: no thread 'nobody'"


def test_misspelled_thread_name_gets_a_suggestion(tmp_path: Path) -> None:
    text = replaced("{to: srv,", "{to: svr,")
    err = bad(tmp_path, text, "svr")
    assert "no thread 'svr' (did you mean 'srv'?)" in err.message


def test_misspelled_expect_thread(tmp_path: Path) -> None:
    text = replaced("{thread: cli, state", "{thread: clu, state")
    err = bad(tmp_path, text, "clu")
    assert "did you mean 'cli'?" in err.message


def test_cpu_beyond_the_machine(tmp_path: Path) -> None:
    text = replaced("cpu: 2\n", "cpu: 3\n")
    err = bad(tmp_path, text, "3\n")
    assert err.message == "tasks[0].threads[0].cpu: CPU 3 does not exist: the machine has 2 CPUs"
    # An override gives the machine more CPUs.
    ok = replaced("cpus: 2}", "cpus: 4}", text)
    assert load_scenario(write(tmp_path, ok, "ok.yaml")).thread("srv").cpu == 3


def test_schedule_cpu_beyond_the_machine(tmp_path: Path) -> None:
    text = replaced("- compute: 200", "- schedule: {thread: cli, cpu: 9}")
    err = bad(tmp_path, text, "9}")
    assert "CPU 9 does not exist: the machine has 2 CPUs" in err.message


@pytest.mark.parametrize(
    ("old", "new", "fragment", "words"),
    [
        ("cpu: 2\n", "cpu: two\n", "two", "expected an integer, not a string 'two'"),
        ("priority: 100", "priority: true", "true", "expected an integer, not a bool True"),
        ("seed: 1", "seed: 1.5", "1.5", "expected an integer, not a number 1.5"),
        ("ok: true", "ok: 1", "1, xp", "expected true or false, not an integer 1"),
        ("cpus: 2}", "cpus: 2, boot: 1}", "1}", "expected true or false, not an integer 1"),
        ("- name: client\n", "- name: client\n    start: 0\n", "0\n", "expected true or false"),
    ],
)
def test_wrong_types(tmp_path: Path, old: str, new: str, fragment: str, words: str) -> None:
    text = replaced(old, new)
    err = bad(tmp_path, text, fragment, nth=text.count(fragment, 0, text.index(new)))
    assert words in err.message


def test_bool_for_a_timeout(tmp_path: Path) -> None:
    text = replaced("{to: srv,", "{to: srv, timeout: true,")
    err = bad(tmp_path, text, "true")
    assert "a timeout is inf or a number of cycles >= 0, not True" in err.message


def test_duplicate_thread_names(tmp_path: Path) -> None:
    text = replaced("- name: cli\n", "- name: srv\n")
    err = bad(tmp_path, text, "srv", nth=1)
    assert "duplicate thread name 'srv' (first at tasks[0].threads[0])" in err.message


def test_duplicate_task_names(tmp_path: Path) -> None:
    text = replaced("- name: client\n", "- name: server\n")
    err = bad(tmp_path, text, "server", nth=1)
    assert "duplicate task name 'server'" in err.message


def test_duplicate_mapping_keys(tmp_path: Path) -> None:
    text = replaced("        cpu: 1\n", "        cpu: 1\n        cpu: 2\n")
    err = bad(tmp_path, text, "cpu: 2", nth=1)
    assert err.message == "duplicate key 'cpu'"


def test_not_yaml_at_all(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "tasks: [")
    assert position(err, path) == (1, 9)
    assert err.message.startswith("invalid YAML: ")


def test_tab_indentation_is_invalid_yaml(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "tasks:\n\t- name: x\n")
    assert position(err, path)[0] == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    err, path = error_of(tmp_path, text)
    assert position(err, path) == (1, 1)
    assert "empty" in err.message


def test_top_level_list(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "\n- name: x\n")
    assert position(err, path) == (2, 1)
    assert "a scenario must be a mapping" in err.message and "not a list" in err.message


def test_top_level_scalar(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "hello")
    assert position(err, path) == (1, 1)


def test_missing_tasks(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "name: x\nseed: 3\n")
    assert position(err, path) == (1, 1)
    assert "needs `tasks:`" in err.message


def test_empty_task_list(tmp_path: Path) -> None:
    bad(tmp_path, "name: x\ntasks: []\n", "[]")


def test_fifty_megabyte_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:  # sparse: nothing to read but its size
        f.truncate(50_000_000)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    err = info.value
    # The size comes from stat, before any read.
    assert err.format() == (f"error: {path}: file is 50000000 bytes; scenarios are limited to 1 MB")
    assert (err.line, err.col) == (None, None)


def test_big_text_is_refused_before_parsing() -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario("#" * 1_000_001, "big.yaml")
    assert info.value.format() == (
        "error: big.yaml: file is 1000001 bytes; scenarios are limited to 1 MB"
    )


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
tasks: *i
"""


def test_alias_bomb(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, BILLION_LAUGHS)
    assert position(err, path) == (2, 8)
    assert err.message == "YAML aliases are not supported"


def test_anchors_alone_are_harmless() -> None:
    s = parse_scenario(replaced("cpu: 2\n", "cpu: &two 2\n"))
    assert s.thread("srv").cpu == 2


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "tasks: &t [*t]\n")
    assert position(err, path) == (1, 12)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    err, path = error_of(tmp_path, "tasks: " + "[" * 5000 + "]" * 5000 + "\n")
    assert position(err, path)[0] == 1
    assert "nesting deeper than" in err.message


def test_non_utf8_file(tmp_path: Path) -> None:
    text = TEXT.encode().replace(b"name: xp-pingpong", b"name: xp-ping\xe9pong")
    err, path = error_of(tmp_path, text)
    assert position(err, path) == (1, 14)
    assert err.message == "scenario is not UTF-8 text: invalid byte 0xe9"


def test_utf8_with_bom_loads(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + TEXT.encode(), "bom.yaml")
    assert load_scenario(path).name == "xp-pingpong"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    assert info.value.format() == f"error: {path}: cannot read scenario: No such file or directory"


def test_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(tmp_path)
    assert info.value.format().startswith(f"error: {tmp_path}: cannot read scenario: ")


@pytest.mark.parametrize(
    ("fpage", "fragment", "words"),
    [
        ("map: {addr: 0x1000, size: 0x2000}", "0x1000", "not a multiple of 0x2000"),
        ("grant: {addr: 0, size: 0x3000}", "0x3000", "power of two >= 4096"),
        ("map: {addr: 0, size: 2048}", "2048", "between 4096 and"),
        ("window: {addr: 0x80000000, size: 0x80000000}", "0x80000000}",
         "runs past the user address space"),
        ("strings: [{addr: 0, size: 0x400001}]", "0x400001", "between 1 and 4194304"),
        ("buffers: [{addr: 0xbffff000, size: 0x2000}]", "0x2000",
         "runs past the user address space"),
        ("map: {addr: 0x1000}", "{addr", "needs `size`"),
        ("map: {addr: 0x1000, size: 0x1000, sz: 1}", "sz:", "unknown field 'sz'"),
    ],
)  # fmt: skip
def test_bad_fpages(tmp_path: Path, fpage: str, fragment: str, words: str) -> None:
    text = replaced("{to: srv, words: [1, 2, 3]}", f"{{to: srv, {fpage}}}")
    err = bad(tmp_path, text, fragment)
    assert words in err.message


def test_bad_unmap_alignment(tmp_path: Path) -> None:
    text = replaced("- compute: 200", "- unmap: {addr: 0x3000, size: 0x2000, mode: ro}")
    err = bad(tmp_path, text, "0x3000")
    assert "tasks[0].threads[0].program[1].loop[0].unmap.addr: " in err.message


def test_negative_timeout(tmp_path: Path) -> None:
    text = replaced("{to: srv,", "{to: srv, timeout: -5,")
    err = bad(tmp_path, text, "-5")
    assert err.message.endswith("timeout: a timeout is inf or a number of cycles >= 0, not -5")


@pytest.mark.parametrize("word", ["inf", "infinite", "never", ".inf", "0", "12345"])
def test_timeouts(word: str) -> None:
    s = parse_scenario(replaced("{to: srv,", f"{{to: srv, timeout: {word},"))
    call = s.thread("cli").program[0].body[0]  # type: ignore[union-attr]
    expected = INF if not word.isdigit() else int(word)
    assert call.timeout == expected and call.recv_timeout == expected


def test_task_new_of_a_task_that_starts_anyway(tmp_path: Path) -> None:
    text = replaced("- compute: 200", "- task_new: client")
    err = bad(tmp_path, text, "client", nth=0)
    assert "task 'client' already exists at start" in err.message
    assert "start: false" in err.message


def test_task_new_of_an_unknown_task(tmp_path: Path) -> None:
    text = replaced("- compute: 200", "- task_new: {task: clients}")
    err = bad(tmp_path, text, "clients")
    assert "no task 'clients' (did you mean 'client'?)" in err.message


# --- more positioned errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "fragment", "words"),
    [
        ("priority: 100", "priority: 256", "256", "between 0 and 255, not 256"),
        ("cpu: 1\n", "cpu: 0\n", "0\n", "at least 1, not 0"),
        ("cpu: 1\n", "cpu: 1\n        mcp: -1\n", "-1", "between 0 and 255"),
        ("cpu: 1\n", "cpu: 1\n        timeslice: 0\n", "0\n", "at least 1"),
        ("cpu: 1\n", "cpu: 1\n        pager: cli\n", "cli\n", "its own pager"),
        ("cpu: 1\n", "cpu: 1\n        pager: srvv\n", "srvv", "did you mean 'srv'?"),
        ("- name: cli\n", "- name: 9lives\n", "9lives", "a thread name must start with"),
        ("- name: cli\n", "- name: sigma0\n", "sigma0", "'sigma0' is reserved"),
        ("- name: client", "- name: any", "any", "'any' is reserved"),
        ("xp_ipc: proxy", "xp_ipc: proxi", "proxi", "(did you mean 'proxy'?)"),
        ("tcb_layout: thesis", "tcb_layout: thesys", "thesys", "did you mean 'thesis'"),
        ("tcb_layout: thesis", "tcb_layout: [[state, 1]]", "1]]", "a TCB field name"),
        ("tcb_layout: thesis", "tick: 0", "0}", "at least 1"),
        ("tcb_layout: thesis", "tik: 5", "tik", "did you mean 'tick'"),
        ("profile: p3-dual-450", "profile: p3-dual-45", "p3-dual-45",
         "no profile 'p3-dual-45' (did you mean 'p3-dual-450'?)"),
        # A name too long for the file system: `Path.exists` raised (found by test_bounds).
        ("profile: p3-dual-450", "profile: " + "a" * 300, "a" * 300, "no profile 'aaa"),
        ("profile: p3-dual-450", "profile: /" + "b" * 300 + ".yaml", "/bbb", "no profile '/bbb"),
        ("cpus: 2}", "cpus: 0}", "0}", "cpus must be at least 1"),
        ("cpus: 2}", "cpuss: 2}", "cpuss", "did you mean 'cpus'"),
        ("cpus: 2}", "cpus: 2, clock: {cpu_mhz: x}}", "x}", "cpu_mhz must be a number"),
        ("- recv: {from: any}", "- recv: {from: anyone}", "anyone", "no thread 'anyone'"),
        ("- recv: {from: any}", "- recv: {to: srv}", "to:", "unknown field 'to'"),
        ("- recv: {from: any}", "- recv", "recv", "recv needs a value"),
        ("- compute: 200", "- compute: -1", "-1", "at least 0"),
        ("- compute: 200", "- halt: 3", "3", "halt takes no arguments"),
        ("- compute: 200", "- {compute: 1, fpu: 2}", "fpu", "one op per list item"),
        ("- compute: 200", "- {compute: 1, do: []}", "do", "`do` belongs to `repeat`"),
        ("- compute: 200", "- repeat: 2", "2\n", "repeat needs `do: [ops]`"),
        ("- compute: 200", "- 42", "42", "an op is a mapping"),
        ("- compute: 200", "- thread_switch: cly", "cly", "did you mean 'cli'"),
        ("- compute: 200", "- schedule: {cpu: 1}", "{cpu", "schedule needs `thread`"),
        ("- compute: 200", "- schedule: {thread: cli, priority: 300}", "300", "255"),
        ("- compute: 200", "- ex_regs: {thread: cli, pager: nobody}", "nobody", "no thread"),
        ("- compute: 200", "- unmap: {addr: 0, size: 4096, mode: rw}", "rw", "flush, ro"),
        ("- compute: 200", "- serve_faults: {count: -1}", "-1", "at least 0"),
        ("- compute: 200", "- touch: {addr: 0xc0000000}", "0xc0000000", "between 0 and"),
        ("- compute: 200", "- loop: 3", "3\n", "must be a list"),
        ("words: [7]", "words: [7, 0x100000000]", "0x100000000", "between 0 and 4294967295"),
        ("words: [7]", "words: [" + ", ".join(["1"] * 65) + "]", "[1", "at most 64 words"),
        ("words: [7]", "to: sigma1", "sigma1", "did you mean 'sigma0'"),
        ("{to: srv,", "{", "{ words", "call needs `to`"),
        ("script: [ \"break xp.proxy.send\"", "script: [ 5", "5", "a console command"),
        ("state: inactive", "state: sleeping", "sleeping", "expected one of running"),
        ("state: inactive", "state: inactive, cpu: 1", "cpu", "one check per expectation"),
        ("state: inactive", "ok: true", "ok", "add `result: INDEX`"),
        ("result: 0, ok: true, xp: true", "result: 0", "{thread: cli, result",
         "compares at least one"),
        ("result: 0, ok: true", "result: 0, error: 7", "7", "error name or null"),
        ("result: 0, ok: true", "result: 0, op: cal", "cal", "did you mean 'call'"),
        ("result: 0, ok: true", "result: x, ok: true", "x,", "expected an integer"),
        ("{thread: cli, state: inactive}", "{counter: ipcs, min: 1}", "ipcs",
         "did you mean 'ipc'"),
        ("{thread: cli, state: inactive}", "{counter: mesi.E->E, min: 1}", "mesi", "mesi.X->Y"),
        ("{thread: cli, state: inactive}", "{counter: ipc}", "{counter", "equals, min or max"),
        ("{thread: cli, state: inactive}", "{counter: ipc, equals: 1, max: 2}", "max",
         "cannot be combined"),
        ("{thread: cli, state: inactive}", "{counter: ipc, min: 3, max: 2}", "2}", "below min"),
        ("{thread: cli, state: inactive}", "{deadlock: no_}", "no_", "true or false"),
        ("{thread: cli, state: inactive}", "{deadlock: false, thread: cli}", "thread",
         "unknown field 'thread'"),
    ],
)  # fmt: skip
def test_positioned_errors(tmp_path: Path, old: str, new: str, fragment: str, words: str) -> None:
    text = replaced(old, new)
    err = bad(tmp_path, text, fragment, nth=text.count(fragment, 0, text.index(new)))
    assert words in err.message, err.message


def test_recv_from_sigma0_and_named_partner() -> None:
    s = parse_scenario(replaced("- recv: {from: any}", "- recv: {from: sigma0}"))
    assert s.thread("srv").program[0] == Ipc("recv", source="sigma0")


def test_empty_mapping_ops() -> None:
    s = parse_scenario(replaced("- recv: {from: any}", "- recv:\n          - halt:"))
    assert s.thread("srv").program[:2] == (Ipc("recv"), Halt())


def test_custom_tcb_layout_errors_point_into_the_layout(tmp_path: Path) -> None:
    lines = [list(line) for line in THESIS_LINES]
    flow = "[" + ", ".join("[" + ", ".join(line) + "]" for line in lines) + "]"
    good = replaced("tcb_layout: thesis", f"tcb_layout: {flow}")
    assert parse_scenario(good).kernel.tcb_layout == tuple(map(tuple, lines))
    typo = flow.replace("partner", "partnr")
    err = bad(tmp_path, replaced("tcb_layout: thesis", f"tcb_layout: {typo}"), "partnr")
    assert "did you mean 'partner'?" in err.message
    assert err.message.startswith("kernel.tcb_layout[4][0]: ")
    short = replaced("tcb_layout: thesis", "tcb_layout: [[myself]]")
    err = bad(tmp_path, short, "[[myself")
    assert "leaves out TCB fields" in err.message


def test_profile_path_relative_to_the_scenario(tmp_path: Path) -> None:
    profile = Path(__file__).parents[1] / "machine" / "profiles" / "p4-dual-2000.yaml"
    (tmp_path / "mine.yaml").write_text(profile.read_text().replace("cpus: 2", "cpus: 3"))
    path = write(tmp_path, replaced("profile: p3-dual-450", "profile: mine.yaml"), "s.yaml")
    assert load_scenario(path).profile.cpus == 2  # the scenario's override wins
    path = write(
        tmp_path, replaced("{profile: p3-dual-450, cpus: 2}", "{profile: mine.yaml}"), "u.yaml"
    )
    assert load_scenario(path).profile.cpus == 3


def test_errors_inside_a_profile_point_at_the_profile(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\ncpus: [\n")
    path = write(tmp_path, replaced("profile: p3-dual-450", "profile: broken.yaml"), "s.yaml")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert info.value.file == str(tmp_path / "broken.yaml")


# --- yamlsrc guards ------------------------------------------------------------------


def test_load_yaml_rejects_aliases_at_their_position() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml("a: &x {b: 1}\nc:\n  - *x\n", "f.yaml")
    assert info.value.format() == "error: f.yaml:3:5: YAML aliases are not supported"


def test_load_yaml_rejects_merge_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml("a: &x {b: 1}\nc: {<<: *x}\n", "f.yaml")
    assert (info.value.line, info.value.col) == (2, 9)


def test_load_yaml_size_guard() -> None:
    load_yaml("a: 1\n", "f.yaml", max_bytes=5)
    with pytest.raises(ConfigError) as info:
        load_yaml("a: é\n", "f.yaml", max_bytes=5)  # 6 bytes in UTF-8
    assert info.value.format() == (
        "error: f.yaml: file is 6 bytes; YAML files are limited to 5 bytes"
    )


def test_load_yaml_control_character_is_positioned() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml("a: 1\nb: x\x07\n", "f.yaml")
    assert (info.value.line, info.value.col) == (2, 5)


# --- property: mutations load or fail with a ConfigError -------------------------------

BASE = yaml.safe_load(ALL_OPS.read_text())
REPLACEMENTS = [
    None,
    True,
    False,
    0,
    1,
    2,
    -1,
    3.5,
    2**70,
    "",
    "x",
    "srv",
    "inf",
    "nil",
    "late",
    [],
    [1],
    ["halt"],
    {},
    {"a": 1},
    {"addr": 4096, "size": 4096},
    [[1]],
    "mesi.M->S",
]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, path + (i,))
    return out


PATHS = _paths(BASE)[1:]


def _mutate(data: Any, path: tuple[Any, ...], action: str, new: Any) -> None:
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "rename" and isinstance(last, str):
        parent[last + "x"] = parent.pop(last)
    else:
        parent[last] = copy.deepcopy(new)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_load_or_raise_config_error(data: st.DataObject) -> None:
    doc = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(doc)[1:]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        action = data.draw(st.sampled_from(["delete", "replace", "replace", "rename"]))
        new = data.draw(st.sampled_from(REPLACEMENTS), label="new")
        _mutate(doc, path, action, new)
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        s = parse_scenario(text, "mutated.yaml")
    except ConfigError as e:
        line = e.format()
        assert line.startswith("error: mutated.yaml") and "\n" not in line
    else:
        assert isinstance(s, Scenario)
