"""One log line per change of PostgreSQL's availability, as the store's operations see it.

    PostgreSQL at db:5432 unavailable: writing keys for company 'acme' failed: PostgreSQL
        refused the connection (ConnectionRefusedError: ...)
    PostgreSQL at db:5432 still unavailable for 30 s (12 operations failed); last: ...
    PostgreSQL at db:5432 available again after 41 s (17 operations failed meanwhile)

An operator watching a log during an outage needs the cause and the state changes, not a
traceback per reconnect attempt (what asyncpg's pool floor maintenance printed: the store's pool
keeps no floor, connections are reopened by the operations that need them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic

from harness.authstate.errors import StoreError, StoreUnavailable

log = logging.getLogger("harness.authstate.connectivity")

DEFAULT_STILL_DOWN_EVERY_S = 30.0

# Retryable errors that are about one transaction, not about the server being there.
_NOT_AN_OUTAGE = frozenset({"40001", "40P01", "55P03"})


class Connectivity:
    """Tracks whether operations reach PostgreSQL; logs down, still down every
    `still_down_every_s` (while operations keep failing) and back."""

    __slots__ = ("_clock", "_last_line", "down_since", "every_s", "failures", "where")

    def __init__(self, where: str, *, still_down_every_s: float = DEFAULT_STILL_DOWN_EVERY_S,
                 clock: Callable[[], float] = monotonic) -> None:
        self.where = where
        self.every_s = still_down_every_s
        self._clock = clock
        self.down_since: float | None = None
        self._last_line = 0.0
        self.failures = 0

    def failed(self, error: StoreError) -> None:
        """An operation failed with `error`; only unavailability counts."""
        if not isinstance(error, StoreUnavailable) or error.sqlstate in _NOT_AN_OUTAGE:
            return
        now = self._clock()
        self.failures += 1
        if self.down_since is None:
            self.down_since = self._last_line = now
            log.warning("PostgreSQL at %s unavailable: %s", self.where, error.message)
        elif now - self._last_line >= self.every_s:
            self._last_line = now
            log.warning("PostgreSQL at %s still unavailable for %.0f s (%d operations failed); "
                        "last: %s", self.where, now - self.down_since, self.failures,
                        error.message)

    def succeeded(self) -> None:
        """An operation completed: PostgreSQL answers (a no-op unless it was down)."""
        if self.down_since is None:
            return
        log.warning("PostgreSQL at %s available again after %.0f s (%d operations failed "
                    "meanwhile)", self.where, self._clock() - self.down_since, self.failures)
        self.down_since = None
        self.failures = 0
