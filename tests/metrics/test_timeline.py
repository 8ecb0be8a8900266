"""Timeline: 100 ms buckets with outcomes, latency, fault flag, breaker and journal depth."""

from __future__ import annotations

import json

import pytest
from metrics_testkit import Builder, ms

from harness.metrics.timeline import timeline

K = ("session", "a")


def test_buckets_count_outcomes_and_carry_fault_breaker_and_journal() -> None:
    b = Builder()
    b.write("a", {K: "1"}, 0, 10)                  # bucket 0
    b.read("a", {K: "1"}, 20, 50)                  # bucket 0
    b.write("a", {K: "2"}, 150, 160, "fail")       # bucket 1
    b.write("a", {K: "3"}, 170, 250, "info")       # bucket 2
    b.read("a", {K: "3"}, 390, 395, source="cache")  # bucket 3
    samples = [(ms(120), {"breaker": "open", "journal_depth": 2}),
               (ms(310), {"breaker": "closed", "journal_depth": 0})]
    result = timeline(b.history, [("sever", ms(140), ms(210))], samples=samples)
    buckets = result.buckets
    assert [x["t"] for x in buckets] == [0.0, 0.1, 0.2, 0.3]
    assert [(x["ok"], x["fail"], x["info"]) for x in buckets] == [(2, 0, 0), (0, 1, 0),
                                                                   (0, 0, 1), (1, 0, 0)]
    assert buckets[0]["p50_ms"] == 10.0 and buckets[0]["p99_ms"] == 30.0
    assert buckets[1]["p50_ms"] == 10.0 and buckets[2]["p99_ms"] == 80.0
    assert [x["fault"] for x in buckets] == [False, True, True, False]
    assert [x["breaker"] for x in buckets] == [None, "open", "open", "closed"]
    assert [x["journal_depth"] for x in buckets] == [None, 2, 2, 0]
    assert result.fault_windows == [{"kind": "sever", "start_s": 0.14, "end_s": 0.21}]
    json.dumps(result.to_dict())


def test_origin_is_the_first_event_and_breaker_merges_samples_and_transitions() -> None:
    b = Builder()
    b.history.nemesis("blackhole", "start", at_ns=ms(1000))
    b.write("a", {K: "1"}, 1050, 1060, "info")
    b.history.nemesis("blackhole", "stop", at_ns=ms(1250))
    result = timeline(b.history, samples=[(ms(1000), {"breaker": "closed"})],
                      transitions=[(ms(1100), "open"), (ms(1260), "closed")])
    assert result.origin_ns == ms(1000) and len(result.buckets) == 3
    assert [x["breaker"] for x in result.buckets] == ["closed", "open", "closed"]
    assert all(x["fault"] for x in result.buckets)
    assert result.fault_windows == [{"kind": "blackhole", "start_s": 0.0, "end_s": 0.25}]


def test_empty_history_and_runaway_spans() -> None:
    assert timeline(Builder().history, []).buckets == []
    b = Builder()
    b.write("a", {K: "1"}, 0, 10)
    with pytest.raises(ValueError, match="monotonic_ns"):
        timeline(b.history, [("sever", ms(0), ms(1e9))])  # wall-clock ns mixed in
