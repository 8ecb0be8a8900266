"""A scenario's verdict and figures, from histories whose truth is known.

The engine's whole pipeline after the run — checker, recovery figures, section, gated figures —
on small synthetic histories and observer reads: an acknowledged write PostgreSQL holds passes,
one it lost fails by name; RTO is the observed one, the store's own beside it; black-hole-like
faults get the harness's deadline as MTTD bound; contrast rows and the long outage's RTO are not
gated; a skipped scenario records no figure.
"""

from __future__ import annotations

from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.outcome import Repetition
from harness.chaos.preconditions import Precondition
from harness.chaos.results import assemble, skipped
from harness.metrics.checker import check
from harness.metrics.durability import Durability
from harness.metrics.history import WRITE_KEYS, History
from harness.metrics.observations import Observations
from harness.metrics.observed_recovery import observed_recovery
from harness.metrics.recovery import availability, recovery
from harness.metrics.timeline import timeline
from harness.metrics.windows import as_window
from harness.observe.final_read import FinalRead

MS = 1_000_000
KEY = ("session", "123.0")


def _history(*, lose_last: bool) -> tuple[History, FinalRead, list, Observations]:
    """co1 writes v1 before the fault, v2 during it (journaled: source journal) and v3 after
    the clear (source db). The observer reads v1, then v2 only once the journal drained after
    the clear, then v3. The final read holds v3, or v2 when the store lost v3."""
    h = History()
    t = 1_000 * MS
    for value, at, source in (("v1", t, "db"), ("v2", t + 500 * MS, "journal"),
                              ("v3", t + 1_500 * MS, "db")):
        op = h.invoke(1, "co1", WRITE_KEYS, [KEY], {KEY: value}, at_ns=at)
        op.ok(source=source, at_ns=at + 2 * MS)
    window = as_window(("sever", t + 400 * MS, t + 1_000 * MS))
    observations = Observations()
    for at, value in ((10, "v1"), (600, "v1"), (1_100, "v2"),
                      (1_510, "v2" if lose_last else "v3")):
        observations.record(t + at * MS, t + (at + 3) * MS, {("co1", KEY): value})
    final = FinalRead(final={("co1", KEY): "v2" if lose_last else "v3"}, rows=1)
    return h, final, [window], observations


def _repetition(history: History, final: FinalRead, windows: list,
                observations: Observations, *, deadline_s: float = 2.0) -> Repetition:
    durability = Durability(history.ops(), observations)
    return Repetition(
        index=0, history=history, check=check(history, final.final, durability=durability),
        recovery=observed_recovery(history, windows, durability, deadline_s=deadline_s,
                                   companies=["co1"]),
        reported=recovery(history, windows, companies=["co1"]),
        preconditions=[Precondition("path-down", True, "probe down in 1 of 1 window")],
        observer=observations.summary(), windows=windows,
        availability=availability(history, windows), journal={"peak_depth": 1},
        timeline=timeline(history, windows), final=final, flush={"flushed": True},
        workload={}, deadline_s=deadline_s, store_deadline_s=None, conflicts=0,
        pg_recovery_s=None, writes_during_fault=1, loop_lag_ms={}, duration_s=2.0,
        phases_s={})


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
    # observed: the journaled v2 seen at +1103 ms, v3 at +1513: 513 ms after the clear
    assert item["rto_s"]["p95"] == 0.513
    assert item["reported"]["rto_s"]["p95"] == 0.502  # the store's word: v3 "from the db"
    # v2 acknowledged at +502 ms, yet the read at +600 still showed v1: it switched to its
    # journal (it wrote through before), detected 102 ms after the injection at +400
    assert item["mttd_s"]["p95"] == 0.102 and item["masked"] == 0
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
    assert item["rto_s"]["p95"] is None  # v3 was never seen in PostgreSQL: not recovered


def test_black_hole_like_faults_are_bounded_by_the_deadline_not_the_gate() -> None:
    for name in ("blackhole", "latency-spike", "bandwidth"):
        mttd = _figure(_outcome(name), "mttd p95")
        assert mttd.threshold == 2.5, name  # the harness's 2 s deadline + 0.5, not the store's
        assert "chaos-deadline-max-s" in mttd.notes


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


def test_a_fault_every_company_masked_has_no_mttd_to_gate() -> None:
    """terminate-backends hidden by an inline retry: the callers never noticed, the store
    recovered. Not a missed detection (that would fail the gate): reported as masked."""
    history, final, windows, _ = _history(lose_last=False)
    observations = Observations()
    t = 1_000 * MS
    for at, value in ((10, "v1"), (510, "v2"), (1_510, "v3")):  # v2 durable when acked
        observations.record(t + at * MS, t + (at + 3) * MS, {("co1", KEY): value})
    rep = _repetition(history, final, windows, observations)
    outcome = assemble(scenario("terminate-backends"),
                       scenario_params("terminate-backends", "smoke"), "resilient", [rep])
    assert outcome.section["masked"] == 1 and outcome.section["mttd_s"]["missing"] == 0
    mttd = _figure(outcome, "mttd p95")
    assert mttd.value is None and not mttd.gated and "masked" in mttd.notes
    assert outcome.verdict == "passed"
