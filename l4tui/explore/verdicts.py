"""The explorer's verdict on a finished run: the failure it shows, if any (issue 8).

A run fails when the kernel broke an invariant (checked at kernel exits, or
left locks held with nothing to unlock them), deadlocked, lost a message its
sender was told was delivered, or missed the scenario's expectations.
"""

from __future__ import annotations

from collections import Counter

from kernel.system import System
from l4tui.runner.expect import failures
from l4tui.runner.summary import deadlock_message


def judge(system: System) -> tuple[str | None, str]:
    """The failure a finished run shows, if any: (kind, message)."""
    why = system.ended
    if why == "invariant":
        return "invariant", "; ".join(system.violations)
    if why == "deadlock":
        return "deadlock", deadlock_message(system)
    if why == "stuck":
        return "invariant", f"left locked with nothing to unlock them: {', '.join(system.stuck())}"
    if why != "end":
        return None, ""  # cut at the run limit: no verdict
    lost = lost_messages(system)
    if lost:
        return "lost_message", "; ".join(lost)
    failed = failures(system)
    if failed:
        return "expect", "expectation failed: " + "; ".join(failed)
    return None, ""


def lost_messages(system: System) -> list[str]:
    """Sends reported delivered (ok) that their receivers never received, per pair."""
    k = system.kernel
    sent: Counter[tuple[str, str]] = Counter()
    got: Counter[tuple[str, str]] = Counter()
    for th in system.scenario.threads():
        t = k.by_name[th.name]
        for to in t.sent_to:
            sent[th.name, to] += 1
        for r in t.results:
            if r.get("ok") and r.get("from"):
                got[r["from"], th.name] += 1
    return [
        f"{s} sent {n - got[s, r]} message(s) to {r} that {r} never received"
        for (s, r), n in sorted(sent.items())
        if n > got[s, r]
    ]
