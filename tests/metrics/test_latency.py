"""Nearest-rank percentiles, spread with missing values, latency per phase."""

from __future__ import annotations

import pytest
from metrics_testkit import Builder, ms

from harness.metrics.latency import latency_by_phase, latency_stats, nearest_rank, spread

K = ("session", "a")


def test_nearest_rank_uses_integer_ranks() -> None:
    values = list(range(1, 1001))
    assert nearest_rank(values, 500) == 500
    assert nearest_rank(values, 999) == 999   # not 1000: 0.999 * 1000 is not rounded up
    assert nearest_rank([7.0], 990) == 7.0
    with pytest.raises(ValueError):
        nearest_rank([], 500)


def test_spread_of_complete_values() -> None:
    assert spread(range(1, 101)) == {"p50": 50.0, "p95": 95.0, "max": 100.0, "count": 100,
                                     "missing": 0}


def test_any_missing_value_voids_p95_and_max() -> None:
    result = spread([*range(1, 100), None])
    assert result["missing"] == 1 and result["p95"] is None and result["max"] is None
    assert result["p50"] == 50.0
    assert spread([1.0, None, None])["p50"] is None
    assert spread([]) == {"p50": None, "p95": None, "max": None, "count": 0, "missing": 0}


def test_latency_stats_in_milliseconds() -> None:
    stats = latency_stats(ms(x) for x in range(1, 1001))
    assert stats == {"p50": 500.0, "p95": 950.0, "p99": 990.0, "p99.9": 999.0, "max": 1000.0,
                     "count": 1000}
    assert latency_stats([])["p50"] is None and latency_stats([])["count"] == 0


def test_latency_by_phase_before_during_between_after() -> None:
    b = Builder()
    windows = [("sever", ms(1000), ms(2000)), ("sever", ms(3000), ms(4000))]
    b.write("a", {K: "1"}, 0, 2)                 # before: 2 ms
    b.read("a", {K: "1"}, 10, 11)                # before: 1 ms
    b.write("a", {K: "2"}, 1500, 3500, "info")   # during: 2000 ms
    b.read("a", {K: "1"}, 2500, 2503)            # between: 3 ms
    b.read("a", {K: "2"}, 4100, 4104)            # after: 4 ms
    b.read("a", None, 4200, None, None, keys=[K])  # never completed: no latency
    phases = latency_by_phase(b.history, windows)
    assert phases["before"]["count"] == 2 and phases["before"]["max"] == 2.0
    assert phases["before"]["by_f"]["read-keys"]["p50"] == 1.0
    assert phases["during"]["p99"] == 2000.0 and phases["during"]["count"] == 1
    assert phases["between"]["p50"] == 3.0
    assert phases["after"]["p50"] == 4.0 and phases["after"]["count"] == 1
    no_between = latency_by_phase(b.history, windows[:1])
    assert "between" not in no_between and no_between["after"]["count"] == 2
    assert latency_by_phase(b.history, [])["before"]["count"] == 5


def test_phase_of_overlapping_windows() -> None:
    from harness.metrics.latency import phase_of
    from harness.metrics.windows import Window

    windows = [Window("latency", 100, 500), Window("sever", 200, 300)]
    injected = [w.injected_ns for w in windows]
    assert [phase_of(t, injected, windows) for t in (50, 400, 600)] == ["before", "during",
                                                                        "after"]
    open_ended = [Window("sever", 100, 200), Window("long", 300, None)]
    assert phase_of(250, [100, 300], open_ended) == "between"
    assert phase_of(900, [100, 300], open_ended) == "during"
