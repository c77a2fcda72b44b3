"""Password guessing across connections: a failure budget per user and per peer address.

A limit per connection alone is no limit: reconnecting resets it (issue 14 — forty
reconnects gave 120 guesses in 7.5 s). `Guard` counts bad passwords for each user
name and each client address over a sliding `window`. A name or an address that
spends its budget is locked out — every password refused unchecked — for `lockout`
seconds, doubling with each lockout that follows within a window of the last one
(up to `longest`); each lockout is a log line. Checks in flight count against the
budget too (`begin` reserves, `end` settles), so guesses sent in parallel over many
connections cannot overrun it. The budget per address is larger than per user: a
class behind one NAT address shares it. Unknown names are counted like known ones,
so a lockout says nothing about who exists. Key logins are not guesses and are not
limited here.

The clock is injected (`clock`): tests drive hours of it in microseconds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("l4tui.serve")

SWEEP = 4096  # records kept before the quiet ones are swept out (memory stays bounded)


@dataclass(slots=True)
class _Record:
    failures: deque[float] = field(default_factory=deque)  # times of recent bad passwords
    pending: int = 0  # checks in flight
    until: float = float("-inf")  # locked out until then
    strikes: int = 0  # lockouts in a row (each doubles the next)


@dataclass
class Guard:
    """The failure budgets: `begin` before checking a password, `end` with the result."""

    per_user: int = 5  # bad passwords for one name within `window`
    per_peer: int = 60  # bad passwords from one address within `window`
    window: float = 300.0
    lockout: float = 60.0
    longest: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _records: dict[tuple[str, str], _Record] = field(default_factory=dict)

    def _keys(self, user: str, peer: str) -> tuple[tuple[tuple[str, str], int], ...]:
        return ((("user", user), self.per_user), (("peer", peer), self.per_peer))

    def _recent(self, record: _Record, now: float) -> int:
        failures = record.failures
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return len(failures)

    def locked(self, user: str, peer: str) -> float:
        """Seconds left of a lockout of `user` or of `peer` (0: neither is locked out)."""
        now = self.clock()
        records = (self._records.get(key) for key, _ in self._keys(user, peer))
        return max([0.0, *(r.until - now for r in records if r is not None)])

    def begin(self, user: str, peer: str) -> bool:
        """May a password for `user` from `peer` be checked now? If so it is in flight until
        `end`; if not (locked out, or the budget is spent by checks in flight) it is refused
        unchecked."""
        now = self.clock()
        for key, budget in self._keys(user, peer):
            record = self._records.get(key)
            if record is not None and (
                record.until > now or self._recent(record, now) + record.pending >= budget
            ):
                return False
        for key, _ in self._keys(user, peer):
            self._records.setdefault(key, _Record()).pending += 1
        return True

    def end(self, user: str, peer: str, ok: bool) -> None:
        """The check `begin` allowed is done: a success forgets the user's failures (not the
        address's); a failure spends from both budgets and locks out a spent one."""
        now = self.clock()
        for (kind, name), budget in self._keys(user, peer):
            record = self._records.setdefault((kind, name), _Record())
            record.pending = max(0, record.pending - 1)
            if ok:
                if kind == "user":
                    record.failures.clear()
                    record.strikes = 0
                continue
            record.failures.append(now)
            if self._recent(record, now) < budget:
                continue
            if now > record.until + self.window:
                record.strikes = 0  # a whole window since the last lockout ended: forgiven
            record.strikes += 1
            span = min(self.longest, self.lockout * 2 ** (record.strikes - 1))
            record.until = now + span
            record.failures.clear()
            what = "user" if kind == "user" else "address"
            log.warning(
                "locked out %s %s for %.0f s: %d bad passwords in %.0f s",
                what,
                name,
                span,
                budget,
                self.window,
            )
        if len(self._records) > SWEEP:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for key, record in list(self._records.items()):
            idle = not record.pending and not self._recent(record, now)
            if idle and now > record.until + self.window:
                del self._records[key]
