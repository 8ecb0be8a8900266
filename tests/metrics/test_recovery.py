"""Recovery: MTTD, time to first success and RTO on synthetic timelines (times in ms)."""

from __future__ import annotations

import pytest
from metrics_testkit import Builder, ms

from harness.metrics.fault_timeline import FaultWindow, Instant
from harness.metrics.recovery import availability, journal_summary, recovery, summarize
from harness.metrics.windows import breaker_transitions, episodes, status_sample

K = ("session", "a")
SEVER = [("sever", ms(1000), ms(2000))]


def by_company(result) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return {(r.company, r.window): r for r in result.per_company}


def outage(b: Builder, company: str, *, detect: str = "error") -> None:
    """Healthy before, fails or falls back during, recovers after the clear at 2000 ms."""
    b.write(company, {K: f"{company}-0"}, 900, 905)
    if detect == "error":
        b.write(company, {K: f"{company}-1"}, 1010, 1015, "fail")
    else:
        b.read(company, {K: f"{company}-0"}, 1005, 1006, source="cache")
    b.read(company, {K: f"{company}-0"}, 1100, 1101, source="cache")
    b.read(company, {K: f"{company}-0"}, 2010, 2020)            # first success from the db
    b.write(company, {K: f"{company}-2"}, 2030, 2050)           # first write that lands


def test_target_with_a_breaker() -> None:
    b = Builder()
    outage(b, "a")
    outage(b, "b", detect="fallback")
    transitions = [(ms(500), "closed"), (ms(1012), "open"), (ms(2005), "half_open"),
                   (ms(2100), "closed")]
    result = recovery(b.history, SEVER, transitions=transitions)
    rows = by_company(result)
    a, bb = rows[("a", 0)], rows[("b", 0)]
    assert a.mttd_s == pytest.approx(0.012) and a.detected_by == "breaker"
    assert bb.mttd_s == pytest.approx(0.006) and bb.detected_by == "fallback"
    assert a.time_to_first_success_s == pytest.approx(0.020)
    assert a.rto_s == pytest.approx(0.100)  # the breaker closed after the first db write
    assert result.per_window[0].breaker_open_s == pytest.approx(0.012)
    assert result.per_window[0].breaker_closed_s == pytest.approx(0.100)
    assert result.reports_breaker


def test_breaker_closed_before_the_write_lands_makes_the_write_the_rto() -> None:
    b = Builder()
    outage(b, "a")
    result = recovery(b.history, SEVER, transitions=[(ms(1012), "open"), (ms(2001), "closed")])
    assert result.per_company[0].rto_s == pytest.approx(0.050)


def test_target_without_status_uses_errors_and_db_writes() -> None:
    b = Builder()
    outage(b, "a")
    (row,) = recovery(b.history, SEVER).per_company
    assert row.mttd_s == pytest.approx(0.015) and row.detected_by == "error"
    assert row.time_to_first_success_s == pytest.approx(0.020)
    assert row.rto_s == pytest.approx(0.050)


def test_source_unknown_counts_as_the_database() -> None:
    b = Builder()
    b.write("a", {K: "1"}, 1010, 1020, "info", source=None)
    b.write("a", {K: "2"}, 2010, 2030, source=None)
    (row,) = recovery(b.history, SEVER).per_company
    assert (row.mttd_s, row.time_to_first_success_s, row.rto_s) == pytest.approx(
        (0.020, 0.030, 0.030))


def test_breaker_state_can_come_from_status_samples() -> None:
    b = Builder()
    outage(b, "a")

    def status(state: str, depth: int) -> dict:  # type: ignore[type-arg]
        return {"mode": "normal", "breaker": {"state": state}, "journal": {"depth": depth}}

    samples = [(ms(900), status("closed", 0)), (ms(1050), status("open", 3)),
               (ms(2200), status("closed", 0))]
    result = recovery(b.history, SEVER, samples=samples)
    assert result.per_company[0].rto_s == pytest.approx(0.200)
    assert result.per_window[0].journal_drained_s == pytest.approx(0.200)


def test_a_company_that_never_recovers_is_none_and_fails_the_spread() -> None:
    b = Builder()
    outage(b, "a")
    b.write("c", {K: "c-0"}, 900, 905)
    b.write("c", {K: "c-1"}, 2010, 2020, "fail")  # still failing after the clear
    b.read("c", {K: "c-0"}, 2030, 2031, source="cache")  # only the cache answers
    result = recovery(b.history, SEVER, companies=["a", "c", "idle"])
    rows = by_company(result)
    assert rows[("c", 0)].rto_s is None and rows[("c", 0)].time_to_first_success_s is None
    assert rows[("idle", 0)].mttd_s is None and rows[("idle", 0)].rto_s is None
    summary = result.summary()
    assert summary["rto_s"]["missing"] == 2 and summary["rto_s"]["count"] == 3
    assert summary["rto_s"]["p95"] is None and summary["rto_s"]["max"] is None


def test_breaker_that_reopens_after_closing_has_not_recovered() -> None:
    b = Builder()
    outage(b, "a")
    flappy = [(ms(1012), "open"), (ms(2040), "closed"), (ms(2300), "open")]
    assert recovery(b.history, SEVER, transitions=flappy).per_company[0].rto_s is None
    flappy.append((ms(2600), "closed"))
    assert recovery(b.history, SEVER, transitions=flappy).per_company[0].rto_s == \
        pytest.approx(0.600)


def test_flapping_windows_each_bounded_by_the_next_injection() -> None:
    b = Builder()
    windows = [("flap", ms(1000), ms(1100)), ("flap", ms(1300), ms(1400)),
               ("flap", ms(1600), ms(1700))]
    b.write("a", {K: "0"}, 1010, 1020, "fail")
    b.write("a", {K: "1"}, 1150, 1160)               # recovered from window 0
    b.write("a", {K: "2"}, 1310, 1320, "fail")
    b.write("a", {K: "3"}, 1590, 1650)               # lands only during window 2: too late
    b.write("a", {K: "4"}, 1610, 1615, "fail")
    b.write("a", {K: "5"}, 1750, 1760)
    result = recovery(b.history, windows)
    rto = result.values("rto_s")
    assert rto[0] == pytest.approx(0.060) and rto[1] is None and rto[2] == pytest.approx(0.060)
    assert summarize([result, result])["rto_s"]["count"] == 6
    assert summarize([result])["mttd_s"]["p95"] == pytest.approx(0.020)


def test_overlapping_windows_are_one_episode_cleared_by_the_last() -> None:
    merged = episodes([("latency", 100, 300), ("sever", 200, 250), ("sever", 400, 500)])
    assert [(w.kind, w.injected_ns, w.cleared_ns) for w in merged] == [
        ("latency+sever", 100, 300), ("sever", 400, 500)]


def test_fault_windows_and_nemesis_events_are_accepted() -> None:
    b = Builder()
    outage(b, "a")
    window = FaultWindow("sever", "pg", {}, Instant(1.0, 0.0), Instant(2.0, 1.0))
    (row,) = recovery(b.history, [window]).per_company
    assert row.rto_s == pytest.approx(0.050)
    b.history.nemesis("sever", "start", at_ns=ms(1000))
    b.history.nemesis("sever", "stop", at_ns=ms(2000))
    (row,) = recovery(b.history).per_company
    assert row.rto_s == pytest.approx(0.050)


def test_window_never_cleared_has_no_recovery() -> None:
    b = Builder()
    outage(b, "a")
    (row,) = recovery(b.history, [("long-outage", ms(1000), None)]).per_company
    assert row.mttd_s == pytest.approx(0.015)
    assert row.rto_s is None and row.time_to_first_success_s is None


def test_availability_counts_ops_invoked_inside_windows() -> None:
    b = Builder()
    outage(b, "a")
    outage(b, "b", detect="fallback")
    b.read("a", None, 1200, 1300, "fail", keys=[K])
    result = availability(b.history, SEVER)
    assert result["reads_completed"] == 4 and result["reads_ok"] == 3
    assert result["reads"] == pytest.approx(0.75)
    assert result["writes_completed"] == 1 and result["writes"] == 0.0
    assert availability(b.history, [])["reads"] is None


def test_journal_summary_peaks_and_passes_replay_rate_through() -> None:
    samples = [(1, {"journal_depth": 3}), (2, {"journal": {"depth": 40}}), (3, {})]
    status = {"journal": {"peak_depth": 41, "replay_rate": 1234.5}}
    assert journal_summary(samples, status) == {"peak_depth": 41, "replay_rate": 1234.5}
    assert journal_summary([]) == {"peak_depth": None, "replay_rate": None}


def test_status_helpers_flatten_status_and_collect_transitions() -> None:
    status = {"mode": "degraded", "breaker": {"state": "open"}, "journal": {"depth": 7},
              "transitions": [{"at": 1.5, "state": "open", "reason": "refused"}]}
    later = {"transitions": [{"at": 1.5, "state": "open", "reason": "refused"},
                             {"at": 2.0, "state": "closed", "reason": "probe ok"}]}
    assert status_sample(status) == {"breaker": "open", "journal_depth": 7, "mode": "degraded"}
    assert breaker_transitions(status, later) == [(1_500_000_000, "open"),
                                                  (2_000_000_000, "closed")]
