"""~95 % intervals from a run's own samples, and the three-way gate decision they allow.

Two constructions, both from samples the run itself made, never from a spread that is not
independent (the 100 per-company RTOs of one fault move together: one slow checkpoint delays
them all, so they say nothing about the next fault):

- `median_interval`: the order statistics around the median that a binomial(n, 1/2) brackets
  with probability ~95 % (distribution-free). For paired, interleaved ratios (benchmarks): each
  pair's two sides ran back to back, so the pairs are close to independent draws of the ratio.
- `batch_interval`: a statistic computed over all samples (a pooled p95) with a half-width of
  Student's t(k-1) x sd / sqrt(k) of the same statistic computed per independent batch: per
  repetition of a chaos fault (each with its own seed and jittered start), per time batch of a
  load run. The k per-batch values are independent draws of the statistic; their standard
  deviation over sqrt(k) is the standard error of a statistic pooled over k of them.

`decide` turns (value, interval, bound) into passed / failed / undecided: a gate passes when the
whole interval is on the good side of its bound, fails when the whole interval misses it, and is
undecided when the interval straddles it (then the harness measures more, within a budget).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

Decision = Literal["passed", "failed", "undecided"]
Interval = tuple[float, float]

Z95 = 1.96
# Student's t, two-sided 95 % (0.975 quantile), by degrees of freedom; beyond 30 -> 1.96.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else Z95


def median_interval(values: Sequence[float], z: float = Z95) -> Interval:
    """A ~95 % confidence interval of the median of `values` (order statistics; for n < 6 it
    is (min, max), whose coverage is 1 - 2^(1-n): 94 % at n = 5)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[lo], ordered[max(lo, hi)]


def batch_interval(center: float | None, per_batch: Sequence[float | None]) -> Interval | None:
    """`center` +- t(k-1) x sd(per_batch) / sqrt(k); None with fewer than 2 batches or a batch
    that has no value (a repetition that never recovered has no RTO to spread)."""
    if center is None or len(per_batch) < 2 or any(v is None for v in per_batch):
        return None
    values = [float(v) for v in per_batch if v is not None]
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return center - half, center + half


def decide(value: float | None, interval: Interval | None, bound: float, *,
           higher_is_better: bool) -> Decision:
    """passed / failed / undecided of one figure against its bound.

    Without an interval the value alone decides (counts such as lost writes: any is a miss).
    A missing value always fails: a gate nobody measured must not pass.
    """
    if value is None:
        return "failed"
    lo, hi = interval if interval is not None else (value, value)
    if higher_is_better:
        return "passed" if lo >= bound else "failed" if hi < bound else "undecided"
    return "passed" if hi <= bound else "failed" if lo > bound else "undecided"


def margin(value: float | None, interval: Interval | None, bound: float, *,
           higher_is_better: bool) -> float:
    """How far the interval's worse end is on the good side of `bound` (negative: it reaches
    past it); a missing value is worst. Orders figures from worst to best."""
    if value is None:
        return float("-inf")
    lo, hi = interval if interval is not None else (value, value)
    return lo - bound if higher_is_better else bound - hi
