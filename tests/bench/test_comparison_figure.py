"""record_comparison's conversion: a Comparison travels as a Figure (value = the ratio)."""

from __future__ import annotations

from fixtures.bench import GateValue, comparison_figure
from harness.bench.compare import Comparison
from harness.metrics.figures import Figure


def test_a_gated_comparison_becomes_a_ratio_figure_naming_its_gate() -> None:
    c = Comparison("keys.set 812 pre-keys", "throughput", "keys/s", 40_000.0, 50_000.0,
                   higher_is_better=True, target=GateValue(0.8, "bench-bulk-min-ratio"),
                   rounds=100, note="paired", paired_ratio=0.85)
    f = comparison_figure(c)
    assert f == Figure("bench", "keys.set 812 pre-keys", 0.85, "x", "higher",
                       gate="bench-bulk-min-ratio", threshold=None, gated=True, notes="paired",
                       context={"metric": "throughput", "unit": "keys/s", "ours": 40_000.0,
                                "baseline": 50_000.0, "rounds": 100, "paired": True})
    assert Figure.from_dict(f.to_dict()) == f


def test_a_plain_target_is_the_figures_own_threshold_and_gated_false_is_kept() -> None:
    c = Comparison("keys.get one session", "p50 latency", "ms", 0.4, 0.2,
                   higher_is_better=False, target=1.25, gated=False)
    f = comparison_figure(c)
    assert f.gate is None and f.threshold == 1.25 and not f.gated
    assert f.better == "lower" and f.value == 2.0 and f.context["paired"] is False


def test_a_ratio_over_a_zero_baseline_is_not_measured() -> None:
    c = Comparison("broken", "throughput", "keys/s", 1.0, 0.0, higher_is_better=True,
                   target=GateValue(0.8, "bench-bulk-min-ratio"))
    assert comparison_figure(c).value is None
