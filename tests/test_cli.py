"""The `l4tui` command line: version, help, bad usage (DESIGN.md §2, "Commands")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from l4tui import __version__
from l4tui.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"l4tui {__version__}\n"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: l4tui" in out
    assert "bench" in out


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: l4tui" in capsys.readouterr().out


def test_bench_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("thesis", "engine", "--json", "--profile", "--cpus"):
        assert word in out


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["bench", "nonsense"],
        ["bench", "--cpus", "0"],
        ["bench", "--cpus", "17"],
        ["bench", "--cpus", "two"],
        ["--no-such-option"],
    ],
)
def test_bad_usage_is_one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err


def test_config_error_is_reported_without_traceback(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("machine.profile")  # the profile is loaded before any benchmark runs
    missing = tmp_path / "no-such-profile.yaml"
    assert main(["bench", "thesis", "--profile", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l4tui", *args], capture_output=True, text=True, timeout=60
    )


def test_python_m_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"l4tui {__version__}"


def test_python_m_unknown_command_has_no_traceback() -> None:
    proc = _run("frobnicate")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_bench_thesis_json_row_names() -> None:
    pytest.importorskip("machine.profile")
    pytest.importorskip("l4tui.bench.thesis")
    proc = _run("bench", "thesis", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    names = {row["name"] for row in result["rows"]}
    for name in ("register", "L1 hit", "E to S", "IPI delivery", "poll 256 mailboxes"):
        assert name in names
    for row in result["rows"]:
        assert set(row) >= {"name", "unit", "thesis", "simulated", "ratio"}
