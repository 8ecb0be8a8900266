"""Paired measurements: ours and a baseline alternate round by round on the same machine.

On shared, noisy 2-core machines absolute times drift; alternating the two sides every round
cancels most of that drift, so the *ratio* is what we gate on. For rounds (bulk writes), the
ratio is the median of each round's own ratio: the two sides of a round run back to back, so a
slow spell (autovacuum, a checkpoint, a busy neighbour) scales both and cancels in the pair,
where it would shift only one side's median. Measured here: over 6 runs of 100 rounds the
ratio of medians spread 0.76-0.87, the median of paired ratios 0.83-0.86.

Latency comparisons (p50 of many sub-millisecond calls) are paired the same way in batches:
the calls alternate sides, each batch of consecutive calls gives one p50 ratio, and the figure
is the median of those ratios with the same order-statistics interval (`batch_p50_ratios`).
Every gated ratio thus carries a ~95 % interval from the run itself, which the gates judge.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.metrics.intervals import Decision, decide, median_interval


@dataclass
class Timings:
    """Wall-clock seconds of each round of one side of a comparison."""

    seconds: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.seconds)

    def percentile(self, q: float) -> float:
        data = sorted(self.seconds)
        if not data:
            raise ValueError("no timings")
        k = min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))
        return data[k]


def median_paired_ratio(numerator: Timings, denominator: Timings) -> float:
    """Median over rounds of `numerator[i] / denominator[i]` (rounds timed by `paired_rounds`).

    A throughput ratio ours/baseline is `median_paired_ratio(baseline_t, ours_t)` (times invert).
    """
    if not numerator.seconds or len(numerator.seconds) != len(denominator.seconds):
        raise ValueError(f"need the same number of rounds on both sides, got "
                         f"{len(numerator.seconds)} and {len(denominator.seconds)}")
    return statistics.median(n / d for n, d in zip(numerator.seconds, denominator.seconds,
                                                   strict=True))


def paired_ratio_ci(numerator: Timings, denominator: Timings,
                    z: float = 1.96) -> tuple[float, float]:
    """A ~95 % confidence interval of `median_paired_ratio` (distribution-free: the order
    statistics around the median that a binomial(n, 1/2) brackets with probability ~95 %).

    It travels with the figure (as its interval) so the gate and `compare` can tell a miss or
    a regression from this run's own noise.
    """
    ratios = [n / d for n, d in zip(numerator.seconds, denominator.seconds, strict=True)]
    if not ratios:
        raise ValueError("no rounds")
    return median_interval(ratios, z)


def batch_p50_ratios(ours: Timings, base: Timings, batch: int) -> list[float]:
    """p50(ours) / p50(baseline) of each batch of `batch` consecutive paired calls (the calls
    alternate sides, so a batch's two halves saw the same machine); a short tail is dropped."""
    if len(ours.seconds) != len(base.seconds):
        raise ValueError(f"need as many calls on both sides, got {len(ours.seconds)} and "
                         f"{len(base.seconds)}")
    out = []
    for start in range(0, len(ours.seconds) - batch + 1, batch):
        b = statistics.median(base.seconds[start:start + batch])
        out.append(statistics.median(ours.seconds[start:start + batch]) / b if b else math.inf)
    return out


def paired_rounds(ours: Callable[[], Any], baseline: Callable[[], Any], *, rounds: int,
                  warmup: int = 3, benchmark: Any = None) -> tuple[Timings, Timings]:
    """Run `baseline` then `ours`, `rounds` times, timing each call separately.

    With a pytest-benchmark fixture, `ours` is driven through `benchmark.pedantic` (baseline in
    its untimed `setup`), so pytest-benchmark's table, JSON and `--benchmark-compare` cover our
    side too.
    """
    ours_t, base_t = Timings(), Timings()
    for _ in range(warmup):
        baseline()
        ours()

    def timed_baseline() -> None:
        start = time.perf_counter()
        baseline()
        base_t.seconds.append(time.perf_counter() - start)

    def timed_ours() -> None:
        start = time.perf_counter()
        ours()
        ours_t.seconds.append(time.perf_counter() - start)

    if benchmark is not None and not getattr(benchmark, "disabled", False):
        benchmark.pedantic(timed_ours, setup=timed_baseline, rounds=rounds, iterations=1)
    else:
        for _ in range(rounds):
            timed_baseline()
            timed_ours()
    return ours_t, base_t


async def paired_calls(ours: Callable[[], Awaitable[Any]],
                       baseline: Callable[[], Awaitable[Any]], *, iterations: int,
                       warmup: int = 50) -> tuple[Timings, Timings]:
    """Time each awaited call inside the running loop, alternating which side goes first.

    For sub-millisecond operations: timing around `run_until_complete` would add the same loop
    start-up cost to both sides and pull the ratio towards 1, flattering the slower side.
    """
    ours_t, base_t = Timings(), Timings()
    clock = time.perf_counter
    for _ in range(warmup):
        await baseline()
        await ours()
    for i in range(iterations):
        first, second = (baseline, ours) if i % 2 == 0 else (ours, baseline)
        t0 = clock()
        await first()
        t1 = clock()
        await second()
        t2 = clock()
        a, b = t1 - t0, t2 - t1
        if first is baseline:
            base_t.seconds.append(a)
            ours_t.seconds.append(b)
        else:
            ours_t.seconds.append(a)
            base_t.seconds.append(b)
    return ours_t, base_t


@dataclass(frozen=True)
class Comparison:
    """One gated ratio: ours / baseline for a metric, and the bound it must meet."""

    name: str
    metric: str  # e.g. "p50 latency", "throughput"
    unit: str  # unit of `ours` and `baseline`, e.g. "ms", "keys/s"
    ours: float
    baseline: float
    higher_is_better: bool
    target: float  # bound on the ratio: >= target if higher is better, else <= target
    rounds: int = 0
    note: str = ""
    gated: bool = True  # False: reported for context, never fails a run
    # When set, the ratio (the median of per-round ratios); `ours` and `baseline` stay the
    # medians of each side, shown for scale.
    paired_ratio: float | None = None
    # ~95 % confidence interval of the ratio (`paired_ratio_ci`), when rounds were paired
    ratio_ci: tuple[float, float] | None = None
    added_rounds: int = 0  # pairs measured beyond `rounds` because the interval straddled

    @property
    def ratio(self) -> float:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def passed(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    @property
    def decision(self) -> Decision:
        """passed / failed / undecided with the ratio's interval (the value alone without)."""
        ratio = self.ratio if math.isfinite(self.ratio) else None
        return decide(ratio, self.ratio_ci, float(self.target),
                      higher_is_better=self.higher_is_better)

    def describe(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        verdict = {"passed": "met", "failed": "MISSED", "undecided": "UNDECIDED"}[
            self.decision] if self.gated else "not gated"
        interval = ("" if self.ratio_ci is None else
                    f" [95 % {self.ratio_ci[0]:.3f}..{self.ratio_ci[1]:.3f}]")
        more = f", +{self.added_rounds} rounds measured" if self.added_rounds else ""
        return (f"{self.name}: {self.metric} ours {self.ours:.4g} {self.unit} vs baseline "
                f"{self.baseline:.4g} {self.unit} -> "
                f"{'paired ' if self.paired_ratio is not None else ''}ratio {self.ratio:.3f}"
                f"{interval} (target {op} {self.target}{more}) {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "passed": self.passed,
                "decision": self.decision}
