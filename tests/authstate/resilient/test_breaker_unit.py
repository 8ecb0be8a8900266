"""Breaker state machine and probe backoff, without a database (the breaker under real faults
is in test_breaker.py)."""

from __future__ import annotations

import random

import pytest

from harness.authstate.resilient.breaker import Backoff, Breaker


def test_breaker_cycle_records_transitions_and_counts_opens() -> None:
    b = Breaker()
    assert b.state == "closed" and b.opened == 0
    assert b.trip("StoreUnavailable: refused")
    assert not b.trip("StoreUnavailable: again")  # already open: one open, one transition
    assert b.half_open()
    assert b.trip("StoreTimeout: replay timed out")  # a failed replay re-opens
    assert b.half_open()
    assert b.close()
    assert b.opened == 2
    assert [t["state"] for t in b.transitions] == ["closed", "open", "half_open", "open",
                                                   "half_open", "closed"]
    times = [t["at"] for t in b.transitions]
    assert times == sorted(times)
    assert b.snapshot() == {"state": "closed", "since": times[-1], "opened": 2,
                            "last_error": "StoreTimeout: replay timed out"}


def test_transition_ring_is_bounded() -> None:
    b = Breaker()
    for i in range(500):
        b.trip(f"e{i}")
        b.close()
    assert len(b.transitions) == 64
    assert b.transitions[-1]["state"] == "closed"


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(base=0.05, cap=0.5, rng=random.Random(7))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delay = backoff.next()
        assert 0 <= delay <= ceilings[-1]
    assert ceilings[:5] == [0.05, 0.1, 0.2, 0.4, 0.5]
    assert max(ceilings) == 0.5
    backoff.reset()
    assert backoff.ceiling() == 0.05


def test_backoff_jitter_spreads_delays() -> None:
    backoff = Backoff(base=0.5, cap=0.5, rng=random.Random(1))
    delays = [backoff.next() for _ in range(200)]
    assert min(delays) < 0.1 and max(delays) > 0.4  # full jitter: the whole range is used


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base=1.0, cap=0.5)
