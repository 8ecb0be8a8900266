"""Paired comparisons: the ratio estimator the bulk gates use."""

from __future__ import annotations

import pytest

from harness.bench.compare import Comparison, Timings, median_paired_ratio


def test_a_slow_spell_on_both_sides_of_some_rounds_cancels_in_the_pairs() -> None:
    # Baseline 10 ms, ours 11 ms; rounds 5-10 run 1.6x slower on both sides (a checkpoint).
    base = Timings([0.010] * 4 + [0.016] * 6)
    ours = Timings([0.011] * 4 + [0.0176] * 6)
    assert median_paired_ratio(base, ours) == pytest.approx(10 / 11)
    # One slow baseline round among fast pairs moves the median of ratios by at most one rank.
    base.seconds[0] = 0.030
    assert median_paired_ratio(base, ours) == pytest.approx(10 / 11)


def test_rounds_must_pair_up() -> None:
    with pytest.raises(ValueError, match="same number of rounds"):
        median_paired_ratio(Timings([1.0, 2.0]), Timings([1.0]))
    with pytest.raises(ValueError):
        median_paired_ratio(Timings(), Timings())


def test_a_paired_ratio_is_the_ratio_the_gate_and_the_summary_use() -> None:
    c = Comparison("bulk", "throughput", "keys/s", 40_000.0, 50_000.0, higher_is_better=True,
                   target=0.8, paired_ratio=0.85)
    assert c.ratio == 0.85 and c.passed
    assert "paired ratio 0.850" in c.describe() and c.to_dict()["ratio"] == 0.85
    unpaired = Comparison("bulk", "throughput", "keys/s", 40_000.0, 50_000.0,
                          higher_is_better=True, target=0.8)
    assert unpaired.ratio == 0.8 and "-> ratio 0.800" in unpaired.describe()


def test_the_ratio_ci_brackets_the_median_and_narrows_with_more_rounds() -> None:
    import random

    from harness.bench.compare import median_paired_ratio, paired_ratio_ci

    rng = random.Random(7)

    def sides(rounds: int) -> tuple[Timings, Timings]:
        base = Timings([0.010 * rng.uniform(0.8, 1.2) for _ in range(rounds)])
        ours = Timings([b * rng.uniform(1.0, 1.4) for b in base.seconds])
        return base, ours

    few, many = sides(10), sides(400)
    lo_few, hi_few = paired_ratio_ci(*few)
    lo_many, hi_many = paired_ratio_ci(*many)
    assert lo_few <= median_paired_ratio(*few) <= hi_few
    assert lo_many <= median_paired_ratio(*many) <= hi_many
    assert hi_many - lo_many < hi_few - lo_few


def test_a_benchmark_figure_carries_its_ci_as_its_interval_and_compare_reads_it_as_noise(
        ) -> None:
    from fixtures.bench import comparison_figure
    from harness.report.compare import _figure_noise

    c = Comparison("keys.set 812 pre-keys", "throughput", "keys/s", 90.0, 100.0, True, 0.8,
                   rounds=30, paired_ratio=0.9, ratio_ci=(0.84, 0.96), added_rounds=15)
    figure = comparison_figure(c)
    assert figure.interval == (0.84, 0.96) and figure.context["ci"] == [0.84, 0.96]
    assert figure.context["measured_more"] == {"added": 15, "what": "paired rounds"}
    assert figure.decide(0.8) == "passed" and figure.decide(0.9) == "undecided"
    assert abs(_figure_noise(figure.to_dict()) - 0.06) < 1e-9
