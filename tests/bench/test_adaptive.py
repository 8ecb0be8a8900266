"""A benchmark whose ratio's interval straddles its gate measures more, within its budget, and
stops as soon as the interval clears or misses the gate (issue 16 §1)."""

from __future__ import annotations

import random

from harness.bench.adaptive import (
    budget_of,
    paired_rounds_until_decided,
    throughput_ratios,
    until_decided,
)
from harness.bench.compare import Comparison, Timings, batch_p50_ratios


class FakeSides:
    """Paired rounds whose true throughput ratio is `ratio`, with multiplicative noise."""

    def __init__(self, ratio: float, noise: float, seed: int = 1) -> None:
        self.ratio, self.noise, self.rng = ratio, noise, random.Random(seed)
        self.calls = 0

    def base(self) -> float:
        return 0.01 * self.rng.uniform(0.9, 1.1)

    def add(self, ours: Timings, base: Timings, n: int) -> None:
        self.calls += n
        for _ in range(n):
            b = self.base()
            base.seconds.append(b)
            ours.seconds.append(b / self.ratio * self.rng.uniform(1 - self.noise, 1 + self.noise))


def _run(sides: FakeSides, bound: float, budget: int, rounds: int = 10):  # type: ignore[no-untyped-def]
    ours, base = Timings(), Timings()
    sides.add(ours, base, rounds)
    return until_decided(ours, base, throughput_ratios, lambda n: sides.add(ours, base, n),
                         bound=bound, higher_is_better=True, budget=budget, step=5)


def test_a_clear_ratio_never_measures_more() -> None:
    sides = FakeSides(ratio=0.95, noise=0.05)
    got = _run(sides, bound=0.7, budget=20)
    assert got.decision == "passed" and got.added == 0 and sides.calls == 10


def test_a_straddling_ratio_measures_more_until_its_interval_clears_the_gate() -> None:
    # true ratio 0.78 against 0.7, noisy: 10 rounds straddle, more rounds narrow the interval
    sides = FakeSides(ratio=0.78, noise=0.35, seed=4)
    got = _run(sides, bound=0.7, budget=200)
    assert got.added > 0 and got.decision == "passed"
    assert got.interval[0] >= 0.7 and len(got.ratios) == 10 + got.added


def test_the_budget_bounds_how_much_more_is_measured_and_leaves_the_gate_undecided() -> None:
    sides = FakeSides(ratio=0.70, noise=0.3, seed=2)  # on the gate: never decidable
    got = _run(sides, bound=0.7, budget=12)
    assert got.decision == "undecided" and got.added == 12 and sides.calls == 22
    assert budget_of(30, 2.0) == 60 and budget_of(30, 0) == 0


def test_an_ungated_ratio_is_measured_once() -> None:
    ours, base = Timings([0.02] * 5), Timings([0.01] * 5)
    got = until_decided(ours, base, throughput_ratios, lambda n: None, bound=None,
                        higher_is_better=True, budget=50, step=5)
    assert got.added == 0 and got.value == 0.5


def test_paired_rounds_until_decided_drives_real_callables_and_records_added_rounds() -> None:
    clock = {"n": 0}

    def slow() -> None:  # ours: twice the work of the baseline
        clock["n"] += 2

    def fast() -> None:
        clock["n"] += 1

    ours, base, got = paired_rounds_until_decided(slow, fast, rounds=6, bound=0.4, factor=1.0,
                                                  warmup=0)
    assert len(ours.seconds) == len(base.seconds) == 6 + got.added
    c = Comparison("x", "throughput", "ops/s", 1.0, 2.0, True, 0.4, rounds=len(got.ratios),
                   paired_ratio=got.value, ratio_ci=got.interval, added_rounds=got.added)
    assert c.decision in ("passed", "undecided", "failed") and "ratio" in c.describe()


def test_batch_p50_ratios_pair_consecutive_calls() -> None:
    ours = Timings([2.0] * 100 + [3.0] * 100 + [9.0] * 7)
    base = Timings([1.0] * 207)
    assert batch_p50_ratios(ours, base, 100) == [2.0, 3.0]  # the short tail is dropped
