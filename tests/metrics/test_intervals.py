"""Intervals from a run's own samples and the three-way decision they allow (issue 16 §1)."""

from __future__ import annotations

import random
import statistics

import pytest

from harness.metrics.figures import Figure
from harness.metrics.intervals import batch_interval, decide, median_interval, t975


def test_the_median_interval_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = random.Random(7)
    hits = 0
    for _ in range(2000):
        sample = [rng.lognormvariate(0.0, 0.3) for _ in range(30)]
        lo, hi = median_interval(sample)
        hits += lo <= 1.0 <= hi  # the lognormal(0, s) median is exactly 1
    assert 0.93 <= hits / 2000 <= 0.99


def test_batch_interval_uses_the_spread_of_independent_batches_with_students_t() -> None:
    per_rep = [0.6, 0.7, 0.8]
    lo, hi = batch_interval(0.7, per_rep)
    half = t975(2) * statistics.stdev(per_rep) / 3 ** 0.5
    assert (lo, hi) == pytest.approx((0.7 - half, 0.7 + half))
    assert batch_interval(0.7, [0.7]) is None  # one repetition: no interval, not a narrow one
    assert batch_interval(0.7, [0.6, None]) is None  # a repetition that never recovered


def test_batch_interval_covers_the_mean_about_95_percent_with_three_batches() -> None:
    rng = random.Random(3)
    hits = 0
    for _ in range(3000):
        reps = [rng.gauss(1.0, 0.2) for _ in range(3)]
        interval = batch_interval(statistics.fmean(reps), reps)
        assert interval is not None
        hits += interval[0] <= 1.0 <= interval[1]
    assert 0.93 <= hits / 3000 <= 0.97


@pytest.mark.parametrize("interval, higher, expected", [
    ((0.74, 1.01), True, "passed"), ((0.42, 0.69), True, "failed"),
    ((0.42, 0.73), True, "undecided"), ((0.5, 0.99), False, "passed"),
    ((1.01, 1.3), False, "failed"), ((0.8, 1.1), False, "undecided")])
def test_decide_passes_clears_fails_misses_and_straddles_undecided(
        interval: tuple[float, float], higher: bool, expected: str) -> None:
    value = sum(interval) / 2
    assert decide(value, interval, 0.7 if higher else 1.0, higher_is_better=higher) == expected


def test_without_an_interval_the_value_decides_and_a_missing_value_fails() -> None:
    assert decide(0.0, None, 0.0, higher_is_better=False) == "passed"
    assert decide(1.0, None, 0.0, higher_is_better=False) == "failed"
    assert decide(None, (0.1, 0.2), 1.0, higher_is_better=False) == "failed"


def test_a_figure_round_trips_its_interval_and_refuses_a_reversed_one() -> None:
    figure = Figure("bench", "r", 0.8, "x", "higher", gate="bench-bulk-min-ratio",
                    interval=(0.75, 0.85))
    again = Figure.from_dict(figure.to_dict())
    assert again.interval == (0.75, 0.85) and again.decide(0.7) == "passed"
    assert Figure.from_dict({**figure.to_dict(), "interval": None}).interval is None
    with pytest.raises(ValueError, match="interval"):
        Figure("bench", "r", 0.8, "x", "higher", interval=(0.9, 0.7))
