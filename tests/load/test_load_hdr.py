"""HDR recording: µs resolution where Locust buckets, exact merge across processes."""

from __future__ import annotations

import json
import random

from harness.load.hdr import ALL, LatencyRecorder, curve, percentiles_ms
from harness.load.result import format_table, op_summary, result_document


def _values(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.choice((150.0, 180.0, 210.0, 240.0, 1800.0, 95_000.0)) * rng.uniform(0.9, 1.1)
            for _ in range(n)]


def test_split_over_two_workers_merges_to_the_same_histogram_as_one() -> None:
    values = _values(5000)
    whole, left, right = LatencyRecorder(), LatencyRecorder(), LatencyRecorder()
    for i, us in enumerate(values):
        ok = i % 97 != 0
        whole.record("keys.get session", "steady", us, ok=ok, second=1000 + i // 1000)
        (left if i % 2 else right).record("keys.get session", "steady", us, ok=ok,
                                          second=1000 + i // 1000)
    master = LatencyRecorder()
    for worker in (left, right):  # as Locust's report_to_master / worker_report carry them
        master.absorb(json.loads(json.dumps(worker.take_delta())))
    for op in ("keys.get session", ALL):
        a, b = whole.merged("raw", op), master.merged("raw", op)
        assert a.get_total_count() == b.get_total_count() == len(values)
        for p in (50.0, 90.0, 99.0, 99.9, 100.0):
            assert a.get_value_at_percentile(p) == b.get_value_at_percentile(p)
        assert whole.count(op) == master.count(op)
    assert {s: v[:2] for s, v in whole.timeline.items()} == {
        s: v[:2] for s, v in master.timeline.items()}


def test_take_delta_empties_the_recorder_so_deltas_never_double_count() -> None:
    recorder = LatencyRecorder()
    recorder.record("creds.save", "steady", 500, ok=True, second=1)
    first = LatencyRecorder.from_wire(recorder.take_delta())
    recorder.record("creds.save", "steady", 700, ok=True, second=2)
    second = LatencyRecorder.from_wire(recorder.take_delta())
    assert first.count("creds.save") == (1, 0) and second.count("creds.save") == (1, 0)
    assert recorder.count("creds.save") == (0, 0)


def test_sub_millisecond_latencies_keep_three_significant_digits() -> None:
    """Locust would call 212 µs and 968 µs both "1 ms"; the HDR figures keep them apart."""
    recorder = LatencyRecorder()
    for us in [212.0] * 50 + [968.0] * 50:
        recorder.record("keys.get pre-key", "steady", us, ok=True, second=0)
    stats = percentiles_ms(recorder.merged("raw", "keys.get pre-key"))
    assert abs(stats["p50_ms"] - 0.212) <= 0.001
    assert abs(stats["p99_ms"] - 0.968) <= 0.001


def test_phases_split_and_summary_shape() -> None:
    recorder = LatencyRecorder()
    recorder.record("load", "setup", 90_000, ok=True, second=0)
    recorder.record("load", "steady", 900, ok=True, second=1)
    recorder.record("load", "during", 2_000_000, ok=False, second=2, error="StoreTimeout: x")
    steady = recorder.merged("raw", "load", ["steady"])
    assert steady.get_total_count() == 1
    summary = op_summary(recorder, "load", 3.0, {"load": {"p50_ms": 1, "p95_ms": 2,
                                                          "p99_ms": 3}})
    assert summary["count"] == 3 and summary["failures"] == 1
    assert set(summary) >= {"count", "failures", "rate", "p50_ms", "p95_ms", "p99_ms",
                            "p999_ms", "max_ms", "locust", "corrected", "hdr_curve"}
    assert [p for p, _ in summary["hdr_curve"]][:6] == [50.0, 75.0, 90.0, 95.0, 99.0, 99.9]
    assert summary["corrected"] is None  # closed model: nothing to correct
    assert recorder.errors == {"load: StoreTimeout: x": 1}


def test_curve_is_monotonic_and_ends_at_the_max() -> None:
    recorder = LatencyRecorder()
    for us in _values(2000, seed=7):
        recorder.record("x", "steady", us, ok=True, second=0)
    points = curve(recorder.merged("raw", "x"))
    ms = [v for _, v in points]
    assert ms == sorted(ms)
    assert points[-1] == [100.0, percentiles_ms(recorder.merged("raw", "x"))["max_ms"]]


def test_table_names_every_operation_beside_locusts_figures() -> None:
    recorder = LatencyRecorder()
    recorder.record("keys.set pre-key x812", "setup", 40_000, ok=True, second=0)
    doc = result_document(recorder=recorder, locust={"keys.set pre-key x812": {
        "count": 1, "failures": 0, "p50_ms": 40, "p95_ms": 40, "p99_ms": 40}},
        profile="steady", users=1, processes=1, rate=None, started_wall=1.0, ended_wall=2.0,
        procs=[], target="reference")
    text = format_table(doc)
    assert "keys.set pre-key x812" in text and "locust p50" in text
