"""Random small multi-CPU scenarios: cross-processor IPC must keep the invariants and end.

Hypothesis draws 2-4 CPUs and 2-5 threads placed on random CPUs, each with a
short program of compute, sleep, send, recv, call and reply_wait between
random threads. Each scenario runs with `System.run(check_invariants=True)`
under a step budget, under a random IPI policy; `QuiescentChecker` (from
tests/xp_helpers.py) also checks the invariants and for lost wakeups wherever no CPU
is half-way through a kernel path. The run must end — "end",
or "deadlock" where infinite timeouts allow one — never "stuck" (a thread
left locked), "invariant" or the step budget, and raise nothing.

With finite or zero timeouts only, every thread must finish its program. With
some infinite timeouts a thread may stay blocked, but only for good: waiting
or polling with no timeout (a cross-CPU sender is locked_waiting while its
proxy polls for it), and not on a partner that waits for it (a lost
wakeup). At the end no mailbox flag is set and no mailbox is left in use
except the requests of cross-CPU senders still blocked.
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kernel.scenario import parse_scenario
from kernel.system import System
from l4tui.runner.summary import summary as run_summary
from tests.xp_helpers import QuiescentChecker, lost_wakeups, mailbox_problems

STEP_BUDGET = 400_000
FINITE = st.one_of(st.just(0), st.integers(1, 20_000))
WORDS = st.lists(st.integers(0, 2**32 - 1), max_size=6)


@st.composite
def _timeout(draw: st.DrawFn, infinite: bool) -> str:
    if infinite and draw(st.integers(0, 3)) == 0:
        return "inf"
    return str(draw(FINITE))


@st.composite
def _op(draw: st.DrawFn, me: str, names: list[str], infinite: bool) -> str:
    others = [n for n in names if n != me]
    peer = st.sampled_from(others)
    kind = draw(st.sampled_from(["compute", "sleep", "send", "recv", "call", "reply_wait"]))
    if kind == "compute":
        return f"compute: {draw(st.integers(1, 4000))}"
    if kind == "sleep":
        return f"sleep: {draw(st.integers(1, 6000))}"
    words = draw(WORDS)
    to = draw(_timeout(infinite))
    if kind == "send":
        return f"send: {{to: {draw(peer)}, words: {words}, timeout: {to}}}"
    if kind == "recv":
        src = draw(st.sampled_from([*others, "any"]))
        return f"recv: {{from: {src}, timeout: {to}}}"
    if kind == "call":
        rto = draw(_timeout(infinite))
        return f"call: {{to: {draw(peer)}, words: {words}, timeout: {to}, recv_timeout: {rto}}}"
    dest = draw(st.one_of(st.none(), peer))
    fields = [] if dest is None else [f"to: {dest}"]
    fields += [f"words: {words}", f"timeout: {to}", f"recv_timeout: {draw(_timeout(infinite))}"]
    return f"reply_wait: {{{', '.join(fields)}}}"


@st.composite
def random_xp_scenario(draw: st.DrawFn, infinite: bool = False) -> str:
    cpus = draw(st.integers(2, 4))
    n = draw(st.integers(2, 5))
    names = [f"t{i}" for i in range(n)]
    policy = draw(st.sampled_from(["always", "when_needed", "poll_only"]))
    tick = draw(st.sampled_from([2000, 5000, 20000]))
    # Threads grouped into 1..n tasks, in order.
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    groups = [names[i:j] for i, j in zip([0, *cuts], [*cuts, n], strict=True)]
    lines = [
        f"machine: {{profile: p3-dual-450, cpus: {cpus}}}",
        f"kernel: {{xp_ipc: proxy, ipi_policy: {policy}, tick: {tick}}}",
        "tasks:",
    ]
    for g, members in enumerate(groups):
        lines += [f"  - name: task{g}", "    threads:"]
        for name in members:
            lines += [
                f"      - name: {name}",
                f"        cpu: {draw(st.integers(1, cpus))}",
                f"        priority: {draw(st.sampled_from([50, 100, 100, 150]))}",
                "        program:",
            ]
            ops = draw(st.lists(_op(name, names, infinite), min_size=1, max_size=6))
            if draw(st.booleans()) and len(ops) > 1:
                k = draw(st.integers(1, len(ops)))
                lines.append(f"          - repeat: {draw(st.integers(1, 3))}\n            do:")
                lines += [f"              - {o}" for o in ops[:k]]
                ops = ops[k:]
            lines += [f"          - {o}" for o in ops]
    return "\n".join(lines) + "\n"


def _run(text: str) -> System:
    """Run with the kernel's own checks, and ours at quiescent points (lost wakeups too)."""
    s = System(parse_scenario(text, "<random>"))
    q = QuiescentChecker(s)
    s.run(max_steps=STEP_BUDGET, check_invariants=True)
    s.violations = s.violations or q.violations
    return s


def _context(s: System, text: str) -> str:
    summary = run_summary(s)
    states = {n: t["state"] for n, t in summary["threads"].items()}
    extra = {k: summary[k] for k in ("stuck", "waits", "violations") if k in summary}
    return f"ended {s.ended} {states} {extra}\n{textwrap.indent(text, '  ')}"


SETTINGS = settings(
    max_examples=30,
    deadline=None,
    # No "explain" phase: its line tracing makes a failing case take a minute to report.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@SETTINGS
@given(random_xp_scenario())
def test_random_xp_scenarios_with_finite_timeouts_finish(text: str) -> None:
    s = _run(text)
    why = _context(s, text)
    assert s.ended in ("end", "deadlock"), why
    assert s.violations == [], why
    # Every timeout is finite or zero: every thread finishes its program.
    summary = run_summary(s)
    assert summary["deadlock"] is False, why
    assert {t["state"] for t in summary["threads"].values()} == {"inactive"}, why
    for t in summary["threads"].values():
        for r in t["results"]:
            assert (r["ok"] is True) == (r["error"] is None), r
            if r["error"] == "xp_abort":  # pragma: no cover - no op sets xp_fault here
                raise AssertionError(r)
    assert mailbox_problems(s) == [], why


@pytest.mark.slow
@SETTINGS
@given(random_xp_scenario(infinite=True))
def test_random_xp_scenarios_block_only_for_good(text: str) -> None:
    s = _run(text)
    why = _context(s, text)
    assert s.ended in ("end", "deadlock"), why
    assert s.violations == [], why
    k = s.kernel
    for name in run_summary(s)["threads"]:
        t = k.by_name[name]
        st_ = k.state(t)
        if st_ == "inactive":
            continue
        # Blocked for good: waiting or polling, with no timeout that could end it.
        assert t.deadline is None, (name, why)
        if st_ == "locked_waiting":
            # A cross-CPU sender: its proxy polls for it, with no timeout (§8.3.5).
            proxy = k.by_tcb.get(k.field(t, "proxy"))
            assert proxy is not None and proxy.deadline is None, (name, why)
            assert k.state(proxy) == "polling", (name, proxy.name, why)
            continue
        assert st_ in ("waiting", "polling"), (name, st_, why)
    assert lost_wakeups(k) == [], why
    assert mailbox_problems(s, pending_ok=True) == [], why
