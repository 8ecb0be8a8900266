"""Circuit breaker and probe backoff.

    closed ──retryable error──► open ──probe ok──► half_open ──journal drained──► closed
                                 ▲                      │
                                 └──replay or probe fails┘

Threshold 1: the first retryable error opens the breaker. The error model tells a retryable
failure (outage, timeout, 57P0x, 53300, 25006) from a permanent one, so there is no noise to
average away; and a false open is cheap (the write is journaled, fsynced, and replayed as soon
as a probe answers, ~tens of ms), whereas waiting for N failures under a black hole makes N
callers each wait for the full operation deadline. Permanent errors (`retryable=False`) never
reach the breaker.

Probes use capped exponential backoff with full jitter (AWS architecture blog, "Exponential
Backoff And Jitter"): sleep uniform(0, min(cap, base * 2**n)). Many stores that lost the same
server do not probe it in lockstep, and the cap bounds how late a recovery is noticed.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Literal

State = Literal["closed", "open", "half_open"]
CLOSED: State = "closed"
OPEN: State = "open"
HALF_OPEN: State = "half_open"
TRANSITIONS_KEPT = 64


class Breaker:
    """State, when it last changed, how often it opened, and a ring of transitions."""

    __slots__ = ("last_error", "opened", "since", "state", "transitions")

    def __init__(self, state: State = CLOSED, reason: str = "start") -> None:
        self.state: State = state
        self.since = time.monotonic()
        self.opened = 1 if state == OPEN else 0
        self.last_error: str | None = None
        self.transitions: collections.deque[dict[str, object]] = collections.deque(
            [{"at": self.since, "state": state, "reason": reason}], maxlen=TRANSITIONS_KEPT)

    def _move(self, state: State, reason: str) -> bool:
        if self.state == state:
            return False
        self.state = state
        self.since = time.monotonic()
        self.transitions.append({"at": self.since, "state": state, "reason": reason})
        return True

    def trip(self, error: str) -> bool:
        """A retryable error: open (True if it was not open already)."""
        self.last_error = error
        moved = self._move(OPEN, error)
        if moved:
            self.opened += 1
        return moved

    def half_open(self, reason: str = "probe succeeded") -> bool:
        return self._move(HALF_OPEN, reason)

    def close(self, reason: str = "journal drained") -> bool:
        return self._move(CLOSED, reason)

    def snapshot(self) -> dict[str, object]:
        return {"state": self.state, "since": self.since, "opened": self.opened,
                "last_error": self.last_error}


class Backoff:
    """Capped exponential backoff with full jitter: delay n is uniform(0, min(cap, base*2**n))."""

    __slots__ = ("_rng", "attempt", "base", "cap")

    def __init__(self, base: float = 0.05, cap: float = 0.5,
                 rng: random.Random | None = None) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base, self.cap = base, cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap, self.base * (2 ** min(self.attempt, 32)))

    def next(self) -> float:
        delay = self._rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
