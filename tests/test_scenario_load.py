"""Scenario files that load: the example of DESIGN.md §2, defaults, every op and
expectation — and a hypothesis test that mutates a valid scenario: it loads or
is one `ConfigError`, never another exception (DESIGN.md §2).

Every bad scenario is one `ConfigError` whose one-line form is
``error: FILE:LINE:COL: what is wrong`` (STYLE.md point 10), never another
exception.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.expectations import Expect
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
from tests.scenario_helpers import ALL_OPS, PINGPONG, write

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


@pytest.mark.slow(15)
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
