"""`l4tui console --script` and commands on a stdin that is not a terminal: the transcript,
`--quiet`, every line run, exit 2 naming the first failure, a scenario passed by mistake."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from l4tui import console
from l4tui.cli import main
from l4tui.demo import demo_scenario
from l4tui.session import Session

ROOT = Path(__file__).parent.parent
Result = tuple[int, str, str, Path]  # exit code, stdout, stderr, the script
SCRIPT = """\
# Stop where the proxy sends.
break xp.proxy.send

  # an indented comment
continue
frobnicate
print srv.state
break foo.bar
where
"""


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run SCRIPT text through `l4tui console --script`: (exit code, stdout, stderr, file)."""

    def go(text: str, *flags: str) -> Result:
        script = tmp_path / "demo.cmds"
        script.write_text(text)
        code = main(["console", "--script", str(script), *flags])
        out, err = capsys.readouterr()
        return code, out, err, script

    return go


def test_the_default_is_a_transcript_that_runs_every_line(run: Callable[..., Result]) -> None:
    code, out, err, script = run(SCRIPT)
    assert code == 2
    assert err == f"error: {script}:6: unknown command 'frobnicate'; try 'help'\n"
    lines = out.splitlines()
    assert lines[:5] == [
        "# Stop where the proxy sends.",
        "(l4tui) break xp.proxy.send",
        "breakpoint 1 at xp.proxy.send",
        "",
        "  # an indented comment",
    ]
    assert lines[5] == "(l4tui) continue"
    assert lines[6].startswith("breakpoint 1: xp.proxy.send on cpu2")
    # The failing lines print their error in the transcript; the lines after them ran.
    assert "(l4tui) frobnicate\nerror: unknown command 'frobnicate'; try 'help'\n" in out
    assert "(l4tui) print srv.state\nsrv.state = " in out
    assert "(l4tui) break foo.bar\nerror: no phase label matches 'foo.bar'" in out
    assert lines[-5] == "(l4tui) where" and lines[-4].startswith("cpu ")
    assert not [line for line in lines if line.startswith("(l4tui) #")]


def test_echo_is_the_default_and_quiet_prints_results_only(run: Callable[..., Result]) -> None:
    plain = run(SCRIPT)[1]
    echo = run(SCRIPT, "--echo")[1]
    assert echo == plain
    code, quiet, err, script = run(SCRIPT, "--quiet")
    assert code == 2 and err.startswith(f"error: {script}:6: ")
    assert quiet.splitlines()[0] == "breakpoint 1 at xp.proxy.send"
    assert "(l4tui)" not in quiet and "#" not in quiet
    commands = [line for line in plain.splitlines() if line.startswith("(l4tui) ")]
    comments_and_blanks = [
        line for line in plain.splitlines() if not line.strip() or line.lstrip().startswith("#")
    ]
    assert len(quiet.splitlines()) == (
        len(plain.splitlines()) - len(commands) - len(comments_and_blanks)
    )


def test_echo_and_quiet_together_are_bad_usage(run: Callable[..., Result]) -> None:
    assert run("where\n", "--echo", "--quiet")[0] == 2


def test_a_clean_script_exits_0_and_the_transcript_repeats(run: Callable[..., Result]) -> None:
    text = "break xp.*\ncontinue\nx srv.partner\ninfo breakpoints\n"
    first = run(text)
    second = run(text)
    assert first[0] == 0 and first[2] == ""
    assert first[1] == second[1]


def test_quit_stops_reading_and_failures_so_far_count(run: Callable[..., Result]) -> None:
    code, out, err, script = run("where\nbogus\nquit\nstepi 5\n")
    assert code == 2
    assert "(l4tui) quit" in out and "stepi 5" not in out
    assert err.startswith(f"error: {script}:2: unknown command 'bogus'")
    code, out, err, _ = run("where\nquit\nbogus\n")
    assert (code, err) == (0, "")
    assert "bogus" not in out


def test_a_scenario_passed_as_the_script_says_so(
    run: Callable[..., Result], capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = ROOT / "scripts" / "xp-pingpong.yaml"
    code = main(["console", str(scenario), "--script", str(scenario)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    first = next(
        i
        for i, line in enumerate(scenario.read_text().splitlines(), 1)
        if line.strip() and not line.startswith("#")
    )
    assert err == (
        f"error: {scenario}:{first}: this looks like a scenario file (YAML), not console "
        f"commands; try l4tui console {scenario}\n"
    )
    code, out, err, script = run("name: x\ntasks: []\n")
    assert code == 2 and err.startswith(f"error: {script}:1: this looks like a scenario file")
    lab = ROOT / "scripts" / "labs" / "uhlig.yaml"
    assert main(["console", "--script", str(lab)]) == 2
    assert (
        "this looks like a lab file (YAML), not console commands; try l4tui lab"
        in (capsys.readouterr()[1])
    )


def test_a_thread_named_like_a_yaml_key_is_still_a_command() -> None:
    s = Session(demo_scenario())
    assert console.scenario_hint(s, "name: xp", "f") is not None
    assert console.scenario_hint(s, "srv: compute 10", "f") is None
    assert console.scenario_hint(s, "break xp.*", "f") is None


def test_stdin_that_is_not_a_terminal_is_a_script_named_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("# hello\nstepi 3\nstep x\n"))
    assert main(["console"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("# hello\n(l4tui) stepi 3\n")
    assert err == "error: <stdin>:3: N must be a number, not 'x'\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO("tasks:\n  - name: a\n"))
    assert main(["console"]) == 2
    assert capsys.readouterr()[1] == (
        "error: <stdin>:1: this looks like a scenario file (YAML), not console commands; "
        "try l4tui console FILE\n"
    )


def test_a_missing_or_binary_script_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["console", "--script", str(tmp_path / "nope.cmds")]) == 2
    assert capsys.readouterr()[1].startswith(f"error: {tmp_path / 'nope.cmds'}: ")
    binary = tmp_path / "b.cmds"
    binary.write_bytes(b"\xff\xfe\x00")
    assert main(["console", "--script", str(binary)]) == 2
    assert capsys.readouterr()[1] == (
        f"error: {binary}:1:1: the script is not UTF-8 text: invalid byte 0xff\n"
    )


def test_every_shipped_demo_script_runs_clean(capsys: pytest.CaptureFixture[str]) -> None:
    for cmds in sorted((ROOT / "scripts" / "demos").glob("*.cmds")):
        code = main(["console", str(cmds.with_suffix(".yaml")), "--script", str(cmds)])
        out, err = capsys.readouterr()
        assert (code, err) == (0, ""), cmds


def test_the_console_as_a_process_end_to_end(tmp_path: Path) -> None:
    script = tmp_path / "s.cmds"
    script.write_text("# x\nbreak xp.proxy.send\ncontinue\nnope\nx srv.partner 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "l4tui", "console", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"error: {script}:4: unknown command 'nope'; try 'help'\n"
    assert proc.stdout.startswith("# x\n(l4tui) break xp.proxy.send\nbreakpoint 1 at")
    assert proc.stdout.rstrip().endswith("srv.partner")
