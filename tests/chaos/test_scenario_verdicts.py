"""A scenario's verdict and figures, from histories whose truth is known.

The engine's whole pipeline after the run — checker, recovery figures, section, gated figures —
on small synthetic histories: an acknowledged write PostgreSQL holds passes, one it lost fails
by name; black-hole-like faults get the deadline-based MTTD bound; contrast rows and the long
outage's RTO are not gated; a skipped scenario records no figure.
"""

from __future__ import annotations

from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.final_read import FinalRead
from harness.chaos.outcome import Repetition
from harness.chaos.results import assemble, skipped
from harness.metrics.checker import check
from harness.metrics.history import WRITE_KEYS, History
from harness.metrics.recovery import availability, recovery
from harness.metrics.timeline import timeline
from harness.metrics.windows import as_window

MS = 1_000_000
KEY = ("session", "123.0")


def _history(*, lose_last: bool) -> tuple[History, FinalRead, list]:
    """co1 writes v1 before the fault, v2 during it (journaled: source journal) and v3 after
    the clear (source db). The final read holds v3, or v2 when the store lost v3."""
    h = History()
    t = 1_000 * MS
    for value, at, source in (("v1", t, "db"), ("v2", t + 500 * MS, "journal"),
                              ("v3", t + 1_500 * MS, "db")):
        op = h.invoke(1, "co1", WRITE_KEYS, [KEY], {KEY: value}, at_ns=at)
        op.ok(source=source, at_ns=at + 2 * MS)
    window = as_window(("sever", t + 400 * MS, t + 1_000 * MS))
    final = FinalRead(final={("co1", KEY): "v2" if lose_last else "v3"}, rows=1)
    return h, final, [window]


def _repetition(history: History, final: FinalRead, windows: list, *,
                deadline_s: float = 2.0) -> Repetition:
    return Repetition(
        index=0, history=history, check=check(history, final.final),
        recovery=recovery(history, windows, companies=["co1"]), windows=windows,
        availability=availability(history, windows), journal={"peak_depth": 1},
        timeline=timeline(history, windows), final=final, flush={"flushed": True},
        workload={}, deadline_s=deadline_s, conflicts=0, pg_recovery_s=None,
        writes_during_fault=1, loop_lag_ms={}, duration_s=2.0, phases_s={})


def _outcome(name: str, *, lose_last: bool = False, contrast: bool = False):
    info = scenario(name)
    rep = _repetition(*_history(lose_last=lose_last))
    return assemble(info, scenario_params(name, "smoke"), "resilient", [rep], contrast=contrast)


def _figure(outcome, suffix: str):
    return next(f for f in outcome.figures if f.name.endswith(suffix))


def test_a_run_whose_acknowledged_writes_are_all_in_postgresql_passes() -> None:
    outcome = _outcome("sever")
    item = outcome.section
    assert outcome.verdict == "passed" and item["anomalies"] == {}
    assert item["acked_writes"] == 3 and item["lost_writes"] == 0
    assert item["rto_s"]["p95"] is not None and item["mttd_s"]["p95"] is not None
    rto, mttd, lost = (_figure(outcome, s) for s in ("rto p95", "mttd p95", "lost writes"))
    assert (rto.gate, mttd.gate, lost.gate) == ("chaos-rto-p95-max-s", "chaos-mttd-p95-max-s",
                                                "chaos-lost-writes-max")
    assert rto.gated and mttd.gated and lost.gated and lost.value == 0.0
    assert mttd.threshold is None  # a refused connection is judged by the gate itself


def test_a_lost_acknowledged_write_fails_the_scenario_by_name() -> None:
    outcome = _outcome("sever", lose_last=True)
    item = outcome.section
    assert outcome.verdict == "failed"
    assert item["anomalies"] == {"lost": 1} and item["lost_writes"] == 1
    assert _figure(outcome, "lost writes").value == 1.0
    example = item["anomaly_examples"]["lost"][0]  # names ops and digests, never values
    assert (example["company"], tuple(example["key"])) == ("co1", KEY)
    assert example["expected"] == ["v3"] and example["found"] == "v2"


def test_black_hole_like_faults_are_bounded_by_the_deadline_not_the_gate() -> None:
    for name in ("blackhole", "latency-spike", "bandwidth"):
        mttd = _figure(_outcome(name), "mttd p95")
        assert mttd.threshold == 2.2, name
        assert "deadline" in mttd.notes


def test_contrast_rows_are_recorded_but_never_gated() -> None:
    outcome = _outcome("sever", contrast=True)
    assert outcome.section["contrast"] and not outcome.section["gated"]
    assert not any(f.gated for f in outcome.figures)


def test_the_long_outage_reports_its_rto_without_gating_it() -> None:
    outcome = _outcome("long-outage")
    assert not _figure(outcome, "rto p95").gated
    assert _figure(outcome, "lost writes").gated  # losing a write is never acceptable


def test_a_skipped_scenario_records_its_reason_and_no_figure() -> None:
    info = scenario("pg-kill")
    outcome = skipped(info, scenario_params("pg-kill", "smoke"), "resilient", False,
                      "process faults need a server the harness owns")
    assert outcome.verdict == "skipped" and outcome.figures == []
    assert "owns" in outcome.section["reason"]
