"""Benchmarks as ratios against a baseline measured in the same run (never absolute thresholds)."""

from harness.bench.compare import (
    Comparison,
    Timings,
    median_paired_ratio,
    paired_calls,
    paired_rounds,
)

__all__ = ["Comparison", "Timings", "median_paired_ratio", "paired_calls", "paired_rounds"]
