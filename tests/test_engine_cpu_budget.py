"""A served session's CPU limit holds across engine handovers (issue 14's bound, issue 15).

RLIMIT_CPU counts per process and a fork starts at zero: going back hands the session
to a fork of a checkpoint, which without the carried count would have the whole budget
again — a student could go back and forth for ever. Run in a subprocess: a lowered hard
limit cannot be raised again.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import resource
    resource.setrlimit(resource.RLIMIT_CPU, (600, 600))
    from l4tui import engine
    from l4tui.demo import demo_scenario
    from l4tui.session import Session
    from tests.test_engine_cpu_budget import limits, spent

    s = engine.start(Session(demo_scenario()), spacing=500, keep=8)
    s.stepi(3000)
    first = s.engine_pid
    print("before", *s.call(limits), s.call(spent))
    s.reverse_stepi(1200)
    assert s.engine_pid != first, "no handover happened"
    print("after", *s.call(limits), s.call(spent))
    s.close()
    """
)


def limits(session: object) -> tuple[int, int]:
    return resource.getrlimit(resource.RLIMIT_CPU)


def spent(session: object) -> float:
    return session.checkpoints.cpu_before  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="engines need fork")
def test_a_handover_lowers_the_limit_by_what_the_engines_before_used() -> None:
    env = {**os.environ, "L4TUI_ENGINE": ""}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert out.returncode == 0, out.stderr
    before, after = (line.split() for line in out.stdout.splitlines())
    assert before[1:] == ["600", "600", "0.0"]  # the first engine: the budget, nothing carried
    soft, hard, carried = int(after[1]), int(after[2]), float(after[3])
    assert carried > 0  # the first engine's CPU came along
    assert hard == max(1, int(600 - carried)) and soft == hard
