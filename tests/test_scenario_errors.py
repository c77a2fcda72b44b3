"""Scenario files that do not load: one test per kind of bad input — unknown
names, wrong types, duplicates, files that are not YAML, too big, alias bombs,
bad fpages and timeouts (DESIGN.md §2).

Every bad scenario is one `ConfigError` whose one-line form is
``error: FILE:LINE:COL: what is wrong`` (STYLE.md point 10), never another
exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.program import INF
from kernel.scenario import load_scenario, parse_scenario
from machine.errors import ConfigError
from tests.scenario_helpers import TEXT, bad, error_of, position, replaced, write

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
