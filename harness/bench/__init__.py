"""Benchmarks as ratios against a baseline measured in the same run (never absolute thresholds)."""

from harness.bench.compare import Comparison, Timings, paired_calls, paired_rounds

__all__ = ["Comparison", "Timings", "paired_calls", "paired_rounds"]
