"""`l4tui explore`: Uhlig's lost wake-up found in the naive kernel and in no interleaving of the
proxy design (§8.3.3–§8.3.5), the other races of §8.4.3 and §8.5 bounded, the failure kinds,
the schedule file followed in the debugger, and determinism (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.scenario import load_scenario, parse_scenario
from kernel.system import System
from l4tui.cli import main
from l4tui.executor import execute, load_schedule, load_session
from l4tui.explore import Choice, Explorer, judge, lost_messages, read_schedule
from l4tui.inputs import from_json
from l4tui.runner.summary import summary as run_summary
from l4tui.session import Session
from machine.errors import ConfigError

RACES = Path(__file__).parent.parent / "scripts" / "races"
NAIVE, PROXY = str(RACES / "uhlig-naive.yaml"), str(RACES / "uhlig-proxy.yaml")


def explore_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["explore", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_naive_kernel_loses_the_wakeup(tmp_path: Path, capsys) -> None:
    saved = tmp_path / "race.json"
    code, data = explore_json(capsys, NAIVE, "--save", str(saved))
    assert code == 1
    assert data["found"] is True and data["kind"] == "deadlock"
    assert set(data["message"].split(", ")) == {"snd polling on rcv", "rcv waiting for snd"}
    assert 1 <= len(data["schedule"]) <= 2  # the fewest preemptions: breadth first
    for choice in data["schedule"]:
        assert set(choice) >= {"cpu", "phase", "at", "held"}
        assert choice["cpu"] in (1, 2) and choice["held"]["cpu"] in (1, 2)
    assert {"scenario", "schedules", "states"} <= set(data)
    assert data["saved"] == str(saved) and saved.exists()


def test_the_proxy_design_exhausts_the_bound(capsys) -> None:
    code, data = explore_json(capsys, PROXY)
    assert code == 0
    assert data["found"] is False and data["schedule"] == [] and data["kind"] is None
    assert data["exhausted"] is True and data["preemptions"] == 2
    assert data["schedules"] > 100  # it did branch: every shared access of both CPUs


@pytest.mark.parametrize("name", ["exregs-xp-ipc", "migrate-ipc"])
def test_the_other_races_of_the_thesis_hold_within_one_preemption(name: str) -> None:
    """An ex_regs abort racing an XP-IPC (§8.4.3) and a migration racing an IPC (§8.5)."""
    report = Explorer(load_scenario(str(RACES / f"{name}.yaml")), preemptions=1).explore()
    assert report.failure is None and report.exhausted
    assert report.schedules > 10


def test_human_report_and_bad_input(capsys, tmp_path: Path) -> None:
    assert main(["explore", NAIVE, "--save", str(tmp_path / "s.json")]) == 1
    out = capsys.readouterr().out
    assert "found: deadlock: snd polling on rcv" in out
    assert "goes ahead of cpu" in out and "schedules/s" in out
    assert f"--schedule {tmp_path / 's.json'}" in out
    assert main(["explore", str(tmp_path / "none.yaml")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["explore", NAIVE, "--preemptions", "-1"]) == 2
    assert main(["explore", PROXY, "--max-schedules", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schedules"] == 5 and data["exhausted"] is False


def test_a_failing_expectation_is_found_in_the_timed_order(tmp_path: Path) -> None:
    text = Path(PROXY).read_text().replace("words: [42], from: snd", "words: [43], from: snd")
    report = Explorer(parse_scenario(text, str(tmp_path / "x.yaml"))).explore()
    assert report.failure is not None and report.failure.kind == "expect"
    assert report.failure.shown == []  # no preemption needed
    assert "words=[43]" in report.failure.message


def test_a_delivered_send_never_received_is_a_lost_message() -> None:
    system = System(load_scenario(PROXY))
    system.run()
    assert judge(system) == (None, "")
    system.kernel.by_name["snd"].sent_to.append("rcv")  # one more than rcv received
    assert lost_messages(system) == ["snd sent 1 message(s) to rcv that rcv never received"]
    assert judge(system)[0] == "lost_message"


def test_the_schedule_replays_in_the_debugger_with_a_stop_at_each_choice(tmp_path: Path) -> None:
    saved = tmp_path / "race.json"
    assert main(["explore", NAIVE, "--save", str(saved)]) == 1
    _, stops, data = read_schedule(str(saved))
    s = load_schedule(str(saved))
    assert s.position == 0 and s.scenario.name == "uhlig-naive"
    out = execute(s, "continue")
    first = min(stops)
    assert out.startswith("schedule 1/") and s.position == first
    assert execute(s, "info waits").startswith("nobody waits")  # not yet
    while not s.ended:
        execute(s, "continue")
    assert s.position == data["steps"]
    assert s.system.ended == "deadlock"
    assert "snd polling on rcv" in execute(s, "info waits")
    # Back and forth along the schedule: the same stop, the same end.
    execute(s, "reverse-step 5")
    assert execute(s, "continue").startswith("here the explorer found deadlock")
    # Saved and loaded, the session still follows the schedule.
    execute(s, f"save {tmp_path / 'session.json'}")
    again = load_session(str(tmp_path / "session.json"))
    assert again.schedule == s.schedule and again.position == s.position
    assert again.system.machine.fingerprint() == s.system.machine.fingerprint()


def test_stepping_by_hand_leaves_the_schedule(tmp_path: Path) -> None:
    saved = tmp_path / "race.json"
    assert main(["explore", NAIVE, "--save", str(saved)]) == 1
    s = load_schedule(str(saved))
    assert "you left the schedule" in execute(s, "step cpu 2")
    assert s.schedule is None


def test_console_and_schedule_errors(tmp_path: Path, capsys) -> None:
    saved = tmp_path / "race.json"
    assert main(["explore", NAIVE, "--save", str(saved)]) == 1
    capsys.readouterr()
    s = Session(load_scenario(PROXY))
    assert execute(s, f"load schedule {saved}").startswith("following ")
    assert s.scenario.name == "uhlig-naive"
    bad = tmp_path / "bad.json"
    for text, message in (
        ("{", "cannot read the schedule"),
        ('{"l4tui_session": 2}', "not an l4tui schedule"),
        ('{"l4tui_schedule": 1, "log": [null, "x"], "stops": {}}', "log entry 1"),
    ):
        bad.write_text(text)
        before = s.position
        assert message in execute(s, f"load schedule {bad}")
        assert s.position == before  # nothing changed
    with pytest.raises(ConfigError, match="not 'uhlig-proxy'"):
        load_schedule(str(saved), PROXY)
    assert main(["console", PROXY, "--schedule", str(saved)]) == 2
    assert "is for scenario 'uhlig-naive'" in capsys.readouterr().err


SCENARIO = load_scenario(str(RACES / "uhlig-naive.yaml"))
CANDIDATES = Explorer(SCENARIO).run(()).candidates


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(CANDIDATES), min_size=1, max_size=2, unique_by=lambda c: c[0]))
def test_a_schedule_runs_the_same_twice_and_replays_in_a_session(picks: list) -> None:
    """Determinism: the explorer's run of a schedule, run again and replayed as a session."""
    picks.sort(key=lambda c: c[0])
    choices = tuple(Choice(pos, 2 if cpu == 1 else 1, cpu) for pos, cpu, *_ in picks)
    one, two = Explorer(SCENARIO).run(choices), Explorer(SCENARIO).run(choices)
    assert one.log == two.log and (one.kind, one.message) == (two.kind, two.message)
    s = Session(SCENARIO)
    s.follow([from_json(e) for e in one.log], {})
    s.stepi(sum(1 for entry in one.log if not isinstance(entry, list)))
    replayed = run_summary(s.system)
    system = System(SCENARIO)
    for entry in one.log:
        system.advance(cpu=entry[1] if isinstance(entry, list) else entry)
    assert replayed["threads"] == run_summary(system)["threads"]
    assert s.system.machine.fingerprint() == system.machine.fingerprint()


def test_pingpong_calls_survive_every_interleaving_of_two_preemptions() -> None:
    """Found by the explorer: a caller that locked itself *after* triggering its mailbox
    overwrote the WAITING state its proxy had already given it for the call's receive phase
    (§8.3.1, §8.3.5): the reply was lost and the next call deadlocked four ways."""
    report = Explorer(load_scenario(str(RACES.parent / "xp-pingpong.yaml"))).explore()
    assert report.failure is None and report.exhausted


def test_a_migration_deletes_the_thread_from_its_old_priority_list() -> None:
    """Found by the explorer (§8.7.2): B read the priority after (=1), when A may already have
    written the new one, and left the thread in its old ready list; CPU 3 later ran it while
    CPU 2 did, and trapped from kernel mode. Held at the start, CPU 3 now deletes it right."""
    demo = load_scenario(str(RACES.parent / "demos" / "migration.yaml"))
    run = Explorer(demo).run((Choice(17, 1, 3),))
    assert (run.kind, run.ended) == (None, "end")


def test_a_failing_schedule_is_saved_in_the_state_directory_not_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --save: the schedule goes beside the labs' sessions (issue 17), not into the cwd."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["explore", NAIVE]) == 1
    assert list(work.iterdir()) == []
    saved = tmp_path / "state" / "l4tui" / "schedules" / "uhlig-naive.schedule.json"
    assert saved.is_file()
    assert f"schedule saved to {saved}" in capsys.readouterr().out
