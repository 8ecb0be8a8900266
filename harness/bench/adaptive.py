"""Measure more when a ratio's interval straddles its gate, within a stated budget.

A paired benchmark gives a ratio and a ~95 % interval (order statistics of the per-pair
ratios). When that interval straddles the gate, neither "met" nor "missed" is supported by the
data, so the benchmark runs more pairs -- `step` at a time, at most `budget` in all -- until
the interval clears the gate, misses it entirely, or the budget is spent (then the gate is
`undecided`, and the run's policy says what that means). The budget is
`more-bench-rounds` x the base rounds (pyproject's [tool.authstate-harness]).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from harness.bench.compare import Timings
from harness.metrics.intervals import Decision, decide, median_interval

Ratios = Callable[[Timings, Timings], list[float]]


@dataclass(frozen=True)
class Adaptive:
    ratios: list[float]
    value: float
    interval: tuple[float, float]
    decision: Decision
    added: int  # rounds (or batches) measured beyond the base


def budget_of(base_rounds: int, factor: float) -> int:
    """How many rounds a benchmark of `base_rounds` may add (`more-bench-rounds` x base)."""
    return max(0, math.floor(base_rounds * factor))


def until_decided(ours: Timings, base: Timings, ratios: Ratios,
                  measure: Callable[[int], None], *, bound: float | None,
                  higher_is_better: bool, budget: int, step: int) -> Adaptive:
    """Judge the per-pair `ratios(ours, base)`; while their median's interval straddles
    `bound` and budget is left, `measure(n)` appends n more rounds to `ours` and `base`.

    `bound` None (an ungated figure) never measures more.
    """
    added = 0
    while True:
        values = ratios(ours, base)
        lo, hi = median_interval(values)
        value = statistics.median(values)
        decision = ("passed" if bound is None else
                    decide(value, (lo, hi), bound, higher_is_better=higher_is_better))
        if decision != "undecided" or added >= budget or step <= 0:
            return Adaptive(values, value, (lo, hi), decision, added)
        n = min(step, budget - added)
        measure(n)
        added += n


def throughput_ratios(ours: Timings, base: Timings) -> list[float]:
    """Per round: ours' throughput / the baseline's = baseline time / our time."""
    return [b / o for o, b in zip(ours.seconds, base.seconds, strict=True)]


def extend(into: tuple[Timings, Timings], more: tuple[Timings, Timings]) -> None:
    into[0].seconds.extend(more[0].seconds)
    into[1].seconds.extend(more[1].seconds)


def paired_rounds_until_decided(ours: Callable[[], object], baseline: Callable[[], object], *,
                                rounds: int, bound: float | None, factor: float,
                                warmup: int = 3, benchmark: object = None
                                ) -> tuple[Timings, Timings, Adaptive]:
    """`paired_rounds` for a throughput ratio (ours / baseline, higher is better), then more
    rounds while its interval straddles `bound` (at most `factor` x `rounds` more)."""
    from harness.bench.compare import paired_rounds

    sides = paired_rounds(ours, baseline, rounds=rounds, warmup=warmup, benchmark=benchmark)
    got = until_decided(
        *sides, throughput_ratios,
        lambda n: extend(sides, paired_rounds(ours, baseline, rounds=n, warmup=0)),
        bound=bound, higher_is_better=True, budget=budget_of(rounds, factor),
        step=max(1, rounds // 2))
    return sides[0], sides[1], got


POINT_BATCH = 100  # calls per side in one batch of a latency comparison


def paired_calls_until_decided(run: Callable[[Any], Any], ours: Callable[[], Awaitable[Any]],
                               baseline: Callable[[], Awaitable[Any]], *, calls: int,
                               bound: float | None, factor: float, batch: int = POINT_BATCH
                               ) -> tuple[Timings, Timings, Adaptive]:
    """`paired_calls` for a p50 latency ratio (ours / baseline, lower is better) judged as the
    median of per-batch p50 ratios; more batches while its interval straddles `bound`.
    `run` drives a coroutine to completion (the benchmark's loop)."""
    from harness.bench.compare import batch_p50_ratios, paired_calls

    sides = run(paired_calls(ours, baseline, iterations=calls))
    batches = max(1, calls // batch)
    got = until_decided(
        *sides, lambda o, b: batch_p50_ratios(o, b, batch),
        lambda n: extend(sides, run(paired_calls(ours, baseline, iterations=n * batch,
                                                 warmup=0))),
        bound=bound, higher_is_better=False, budget=budget_of(batches, factor),
        step=max(1, batches // 2))
    return sides[0], sides[1], got
