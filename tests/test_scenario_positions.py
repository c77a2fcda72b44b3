"""Where a scenario error points: positioned errors inside ops, custom TCB
layouts and profiles, and the guards of the YAML reader (`machine.yamlsrc`)
that report aliases, merge keys, size and control characters at their position
(DESIGN.md §2).

Every bad scenario is one `ConfigError` whose one-line form is
``error: FILE:LINE:COL: what is wrong`` (STYLE.md point 10), never another
exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.layout import THESIS_LINES
from kernel.program import Halt, Ipc
from kernel.scenario import load_scenario, parse_scenario
from machine.errors import ConfigError
from machine.yamlsrc import load_yaml
from tests.scenario_helpers import bad, replaced, write

# --- positioned errors --------------------------------------------------------------


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
