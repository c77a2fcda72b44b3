"""Machine profiles: loading, overrides and errors that point into the file (thesis §3.2).

Every bad profile is a `ConfigError` whose one-line form is
``error: FILE:LINE:COL: what is wrong`` (DESIGN.md §2, STYLE.md point 10).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from l4tui.cli import main
from machine import ConfigError, Machine, load_profile
from machine.profile import PROFILE_DIR, Profile, profile_names

SHIPPED = PROFILE_DIR / "p3-dual-450.yaml"
TEXT = SHIPPED.read_text()


def line_of(text: str, fragment: str) -> int:
    """1-based number of the only line of `text` containing `fragment`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) == 1, f"{fragment!r} is on lines {hits}"
    return hits[0]


def bad_profile(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    assert old in TEXT, old
    text = TEXT.replace(old, new, 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path, text


def load_error(path: Path, overrides: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_profile(str(path), overrides)
    return info.value


def position(err: ConfigError, path: Path) -> tuple[int, int]:
    """(line, column) from the error's one-line form, checking its shape."""
    text = err.format()
    assert "\n" not in text
    match = re.match(rf"error: {re.escape(str(path))}:(\d+):(\d+): \S", text)
    assert match, text
    assert (err.file, err.line, err.col) == (str(path), int(match[1]), int(match[2]))
    return int(match[1]), int(match[2])


# --- the shipped profiles ------------------------------------------------------------


def test_shipped_profiles_are_listed() -> None:
    assert {"p3-dual-450", "p4-dual-2000"} <= set(profile_names())


@pytest.mark.parametrize("name", ["p3-dual-450", "p4-dual-2000"])
def test_shipped_profiles_load_and_build_machines(name: str) -> None:
    p = load_profile(name)
    assert isinstance(p, Profile)
    assert p.name == name
    assert p.cpus == 2
    m = Machine(p, seed=0)
    assert len(m.cpus) == 2
    assert m.coherence.line_size == p.cache.line_size
    # Bus and APIC cycles are whole numbers of ticks.
    assert (p.ticks_per_cycle * p.clock.cpu_mhz) % p.clock.bus_mhz == 0
    assert (p.ticks_per_cycle * p.clock.cpu_mhz) % p.clock.apic_bus_mhz == 0


def test_thesis_machine_parameters() -> None:
    p = load_profile("p3-dual-450")
    assert (p.clock.cpu_mhz, p.clock.bus_mhz, p.clock.apic_bus_mhz) == (450, 100, 16)
    assert p.cache.line_size == 32
    assert (p.cache.l1.size_kb, p.cache.l1.ways, p.cache.l2.size_kb) == (16, 4, 512)
    assert p.bus_ratio == 4.5
    assert p.apic.slots == 2


def test_p4_has_64_byte_lines() -> None:
    assert load_profile("p4-dual-2000").cache.line_size == 64


def test_load_by_path() -> None:
    assert load_profile(str(SHIPPED)) == load_profile("p3-dual-450")


@pytest.mark.parametrize("cpus", [1, 2, 4, 8, 10, 16])
def test_cpus_override(cpus: int) -> None:
    p = load_profile("p3-dual-450", {"cpus": cpus})
    assert p.cpus == cpus
    assert len(Machine(p).cpus) == cpus
    assert load_profile("p3-dual-450").cpus == 2, "an override does not change the file"


def test_nested_override() -> None:
    p = load_profile("p3-dual-450", {"cpu": {"cli": 3}, "apic": {"slots": 4}})
    assert p.cpu.cli == 3 and p.cpu.sti == 1
    assert p.apic.slots == 4 and p.apic.eoi == 40


def test_profiles_are_frozen() -> None:
    p = load_profile("p3-dual-450")
    with pytest.raises(AttributeError):
        p.cpus = 4  # type: ignore[misc]


# --- errors in a profile file ---------------------------------------------------------------


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    path, text = bad_profile(tmp_path, "  cpu_mhz: 450", "  cpu_mzh: 450")
    err = load_error(path)
    assert position(err, path) == (line_of(text, "cpu_mzh"), 3)
    assert "unknown field 'cpu_mzh'" in err.message
    assert "did you mean 'cpu_mhz'?" in err.message


def test_unknown_top_level_field(tmp_path: Path) -> None:
    path, text = bad_profile(tmp_path, "cpus: 2\n", "cpus: 2\ncpuss: 2\n")
    err = load_error(path)
    assert position(err, path) == (line_of(text, "cpuss"), 1)
    assert "did you mean 'cpus'?" in err.message


def test_unknown_field_in_flow_mapping(tmp_path: Path) -> None:
    path, text = bad_profile(tmp_path, "latency: 7.5}", "latncy: 7.5}")
    err = load_error(path)
    line, col = position(err, path)
    assert line == line_of(text, "latncy")
    assert col == text.splitlines()[line - 1].index("latncy") + 1
    assert "did you mean 'latency'?" in err.message


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("cpus: 2", "cpus: two", "cpus: two"),
        ("cpus: 2", "cpus: 2.5", "cpus: 2.5"),
        ("  cli: 1", "  cli: true", "cli: true"),
        ("  cli: 1", "  cli: [1]", "cli: [1]"),
        ("  cli: 1", "  cli: -1", "cli: -1"),
        ("  entries: 64", "  entries: 0", "entries: 0"),
        ("  size_mb: 64", "  size_mb: '64'", "size_mb: '64'"),
    ],
)
def test_wrong_type_points_at_the_value(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    path, text = bad_profile(tmp_path, old, new)
    err = load_error(path)
    line, col = position(err, path)
    assert line == line_of(text, fragment)
    value = fragment.split(": ", 1)[1]
    assert col == text.splitlines()[line - 1].index(value) + 1


@pytest.mark.parametrize("cpus", [17, 64])
def test_too_many_cpus(tmp_path: Path, cpus: int) -> None:
    path, text = bad_profile(tmp_path, "cpus: 2", f"cpus: {cpus}")
    err = load_error(path)
    assert position(err, path) == (line_of(text, f"cpus: {cpus}"), 7)
    assert "16" in err.message


def test_too_many_cpus_as_override() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("p3-dual-450", {"cpus": 17})
    assert info.value.format().startswith("error: ")
    assert "16" in info.value.message


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        # 3 ways: not a power of two.
        ("l1: {size_kb: 16, ways: 4", "l1: {size_kb: 16, ways: 3", "l1: {"),
        # 24 KB / 32 B / 4 ways = 192 sets: not a power of two.
        ("l1: {size_kb: 16, ways: 4", "l1: {size_kb: 24, ways: 4", "l1: {"),
        # A 48-byte line.
        ("  line_size: 32", "  line_size: 48", "line_size: 48"),
        # An L2 smaller than the L1 cannot include it.
        ("l2: {size_kb: 512", "l2: {size_kb: 8", "l2: {"),
    ],
)
def test_bad_cache_geometry(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    path, text = bad_profile(tmp_path, old, new)
    err = load_error(path)
    line, _ = position(err, path)
    assert line == line_of(text, fragment)


@pytest.mark.parametrize(
    ("old", "new", "bad_line_fragment"),
    [
        ("cpus: 2", "cpus: 2: 3", "cpus: 2: 3"),
        ("  cli: 1", "  cli: 1\n bad indent: 2", "bad indent"),
        ("  rdtsc: 1", "  rdtsc: 1\n  rdtsc: 2", "rdtsc: 2"),  # duplicate key
    ],
)
def test_invalid_yaml(tmp_path: Path, old: str, new: str, bad_line_fragment: str) -> None:
    path, text = bad_profile(tmp_path, old, new)
    err = load_error(path)
    line, _ = position(err, path)
    assert line == line_of(text, bad_line_fragment)


def test_missing_field(tmp_path: Path) -> None:
    path, text = bad_profile(tmp_path, "  rdtsc: 1\n", "")
    err = load_error(path)
    line, _ = position(err, path)
    assert "'cpu.rdtsc'" in err.message
    assert "missing" in err.message
    # The position is in the `cpu:` section that lacks it: its key or its first entry.
    header = line_of(text, "cpu:  ")
    assert header <= line <= header + 1


def test_missing_section(tmp_path: Path) -> None:
    path, _ = bad_profile(tmp_path, "tlb:\n  entries: 64\n", "")
    err = load_error(path)
    position(err, path)
    assert "'tlb'" in err.message


def test_profile_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    err = load_error(path)
    assert position(err, path)[0] == 1


def test_error_in_override_source_is_not_blamed_on_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("p3-dual-450", {"cpu": {"cli": "fast"}})
    assert "p3-dual-450.yaml" not in info.value.format()


def test_unknown_profile_name_suggests_one() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("p3-dual-45")
    assert info.value.format().startswith("error: ")
    assert "p3-dual-450" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_profile(str(tmp_path / "nope.yaml"))


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("  cpu_mhz: 450", "  cpu_mhzz: 450", "cpu_mhzz"),
        ("cpus: 2", "cpus: 17", "cpus: 17"),
        ("cpus: 2", "cpus: 2: 3", "cpus: 2: 3"),
    ],
)
def test_cli_reports_bad_profile_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, fragment: str
) -> None:
    pytest.importorskip("l4tui.bench.thesis")

    path, text = bad_profile(tmp_path, old, new)
    assert main(["bench", "thesis", "--profile", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {path}:{line_of(text, fragment)}:")
    assert "Traceback" not in captured.err
