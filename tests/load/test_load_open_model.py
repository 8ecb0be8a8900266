"""The open model's correction, on a synthetic stall whose truth is known.

One company, messages intended every 10 ms, every call takes 1 ms except one that stalls for
1 s. A closed-loop measurement sees one slow call (raw); the ~100 messages that should have
arrived during the stall waited too, which only the corrected figure shows.
"""

from __future__ import annotations

from harness.load import open_model
from harness.load.hdr import LatencyRecorder, percentiles_ms

INTERVAL_S = 0.010
SERVICE_S = 0.001
STALL_S = 1.0
MESSAGES = 2000
STALL_AT = 500


def _simulate() -> LatencyRecorder:
    """Virtual time: a company processes its messages one at a time, starting each at its
    intended time or, when behind, as soon as the previous one finished."""
    schedule = open_model.ArrivalSchedule(start_s=0.0, interval_s=INTERVAL_S)
    recorder = LatencyRecorder()
    free_at = 0.0
    for i in range(MESSAGES):
        intended = schedule.next_intended()
        started = max(intended, free_at)
        service = STALL_S if i == STALL_AT else SERVICE_S
        free_at = started + service
        lag = open_model.lag_s(intended, started)
        raw_us = service * 1e6
        recorder.record("keys.get session", "steady", raw_us, ok=True, second=int(started),
                        corrected_us=open_model.corrected_us(raw_us, lag))
    return recorder


def test_raw_latency_hides_the_stall_the_corrected_latency_shows() -> None:
    recorder = _simulate()
    raw = percentiles_ms(recorder.merged("raw", "keys.get session"))
    corrected = percentiles_ms(recorder.merged("corrected", "keys.get session"))
    # raw: one slow call in 2000: p99 is the ordinary 1 ms, only max sees the stall
    assert abs(raw["p99_ms"] - 1.0) < 0.01
    assert abs(raw["max_ms"] - 1000.0) < 1.0
    # corrected: the ~100 messages due during the stall (5 % of them) waited up to 1 s
    assert corrected["p95_ms"] > 100.0
    assert corrected["p99_ms"] > 500.0
    queued = sum(1 for p in (90.0, 95.0, 99.0)
                 if recorder.merged("corrected", "keys.get session")
                 .get_value_at_percentile(p) > 2000)
    assert queued >= 2


def test_no_stall_no_correction() -> None:
    schedule = open_model.ArrivalSchedule(start_s=0.0, interval_s=INTERVAL_S)
    for _ in range(100):
        intended = schedule.next_intended()
        assert open_model.lag_s(intended, intended) == 0.0
    assert open_model.corrected_us(1000.0, 0.0) == 1000.0


def test_companies_share_the_rate_interleaved() -> None:
    slots = [open_model.ArrivalSchedule.for_company(0.0, 100.0, 10, k) for k in range(10)]
    assert all(s.interval_s == 0.1 for s in slots)  # 10 companies x 10/s = 100 messages/s
    starts = sorted(s.start_s for s in slots)
    assert starts == sorted(set(starts)) and starts[-1] < 0.1  # spread over one interval


def test_a_calls_corrected_latency_counts_the_messages_earlier_calls() -> None:
    # Issue 16: a message of three 10 ms calls, started on time. The third answer came 30 ms
    # after the message was due; "raw + the message's late start" said 10 ms.
    intended = 100.0
    calls = [(100.000, 10_000.0), (100.010, 10_000.0), (100.020, 10_000.0)]
    got = open_model.message_latencies(calls, intended)
    assert [round(c) for _, c in got] == [10_000, 20_000, 30_000]  # type: ignore[arg-type]
    assert [r for r, _ in got] == [10_000.0] * 3
    late = open_model.message_latencies([(100.5, 1_000.0), (100.501, 1_000.0)], intended)
    assert [round(c) for _, c in late] == [501_000, 502_000]  # type: ignore[arg-type]
    assert open_model.message_latencies(calls, None) == [(10_000.0, None)] * 3  # closed model
