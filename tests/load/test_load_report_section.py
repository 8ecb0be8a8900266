"""report.json's `load` section has the keys the plan promises, and report.md renders it."""

from __future__ import annotations

from pathlib import Path

from harness.load.faults import FaultRun, parse_fault
from harness.load.hdr import LatencyRecorder
from harness.load.result import result_document
from harness.load.runner import LoadOutcome, LoadPlan
from harness.load.section import build_section, figures
from harness.metrics.fault_timeline import Instant
from harness.report.load_table import markdown

OP_KEYS = {"count", "failures", "rate", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms",
           "locust", "corrected", "hdr_curve"}


def _outcome(tmp_path: Path, *, rate: float | None = None) -> LoadOutcome:
    recorder = LatencyRecorder()
    for i in range(300):
        phase = "setup" if i < 20 else ("during" if 150 <= i < 180 else
                                        ("before" if i < 150 else "after"))
        recorder.record("keys.get session", phase, 400 + i, ok=phase != "during",
                        second=1000 + i // 30, corrected_us=None if rate is None else 900 + i,
                        error=None if phase != "during" else "StoreUnavailable: refused")
    doc = result_document(recorder=recorder, locust={"keys.get session": {
        "count": 300, "failures": 30, "p50_ms": 1, "p95_ms": 1, "p99_ms": 1}},
        profile="steady", users=10, processes=2, rate=rate, started_wall=1000.0,
        ended_wall=1010.0, procs=[{"rss_start": 50 << 20, "rss_peak": 60 << 20}],
        target="reference")
    plan = LoadPlan(companies=10, duration_s=10, rate=rate, processes=2,
                    fault=parse_fault("sever@5s+1s", 10))
    run = FaultRun(plan.fault)
    window = run.timeline.open("sever", "proxy", {}, at=Instant(105.0, 1005.0))
    run.timeline.close(window, at=Instant(106.0, 1006.0))
    run.cleared_at = 106.0
    return LoadOutcome(plan=plan, out_dir=tmp_path, result=doc, exit_code=1, live=[
        {"wall": 1003.2, "users": 10}], started_monotonic=100.0, fault=run,
        check={"valid": True, "lost_writes": 0, "anomalies": {}, "acked_writes": 12},
        recovery={"rto_s": {"p50": 0.2, "p95": 0.4, "max": 0.5, "count": 10, "missing": 0},
                  "mttd_s": {"p50": 0.01, "p95": 0.02, "max": 0.03}})


def test_section_has_the_planned_keys(tmp_path: Path) -> None:
    section = build_section(_outcome(tmp_path), bridge={"ratio": 0.93,
                                                        "bridge_messages_per_s": 93.0,
                                                        "pure_messages_per_s": 100.0})
    assert {"profile", "companies", "processes", "duration_s", "model", "rate", "total", "ops",
            "bridge_ratio", "timeline", "fault", "scale"} <= set(section)
    assert section["total"] == {"count": 300, "failures": 30, "rate": 30.0}
    assert OP_KEYS <= set(section["ops"]["keys.get session"])
    assert section["model"] == "closed" and section["bridge_ratio"] == 0.93
    assert section["steady"]["failures"] == 0 and section["steady"]["phases"] == [
        "after", "before"]
    assert section["fault"]["window"] == [5.0, 6.0] and section["fault"]["lost_writes"] == 0
    row = section["timeline"][0]
    assert set(row) == {"t_s", "users", "ok", "fail", "p99_ms"} and row["t_s"] == 0
    names = {f.gate for f in figures(section) if f.gated and f.gate}
    assert names == {"load-p95-max-ms", "load-p99-max-ms", "load-error-rate-max",
                     "load-bridge-min-ratio"}


def test_open_model_reports_corrected_beside_raw(tmp_path: Path) -> None:
    section = build_section(_outcome(tmp_path, rate=50.0))
    op = section["ops"]["keys.get session"]
    assert section["model"] == "open" and op["corrected"] is not None
    assert op["corrected"]["p50_ms"] > op["p50_ms"]


def test_open_model_gates_read_the_corrected_figure_with_raw_beside(tmp_path: Path) -> None:
    # Issue 16: load gates read the raw histogram even when the open model ran.
    section = build_section(_outcome(tmp_path, rate=50.0))
    steady = section["steady"]
    by_gate = {f.gate: f for f in figures(section) if f.gated and f.gate}
    p95 = by_gate["load-p95-max-ms"]
    assert p95.value == steady["corrected"]["p95_ms"] > steady["p95_ms"]
    assert p95.context["latency"] == "corrected" and p95.context["raw_ms"] == steady["p95_ms"]
    assert "50 messages/s" in p95.notes and "earlier calls" in p95.notes
    raw = [f for f in figures(section) if f.name.startswith("load p95 raw service time")]
    assert len(raw) == 1 and not raw[0].gated and raw[0].value == steady["p95_ms"]
    closed = {f.gate: f for f in figures(build_section(_outcome(tmp_path))) if f.gate}
    assert closed["load-p95-max-ms"].context["latency"] == "raw"


def test_gated_percentiles_carry_an_interval_from_time_batches(tmp_path: Path) -> None:
    section = build_section(_outcome(tmp_path, rate=50.0))
    p99 = next(f for f in figures(section) if f.gate == "load-p99-max-ms")
    batches = section["steady"]["intervals"]["corrected"]["p99_ms"]["per_batch"]
    assert len(batches) >= 2 and p99.interval is not None
    assert p99.interval[0] <= p99.value <= p99.interval[1]
    assert p99.context["per_batch_ms"] == batches


def test_the_bridge_ratio_interval_comes_from_its_interleaved_rounds(tmp_path: Path) -> None:
    bridge = {"ratio": 0.81, "bridge_messages_per_s": 81.0, "pure_messages_per_s": 100.0,
              "round_ratios": [0.78, 0.81, 0.84]}
    figure = next(f for f in figures(build_section(_outcome(tmp_path), bridge=bridge))
                  if f.gate == "load-bridge-min-ratio")
    assert figure.interval is not None and figure.interval[0] < 0.8 < figure.interval[1]
    assert figure.decide(0.8) == "undecided" and figure.decide(0.6) == "passed"


def test_markdown_has_the_latency_table_and_the_fault_line(tmp_path: Path) -> None:
    text = "\n".join(markdown(build_section(_outcome(tmp_path))))
    assert "| keys.get session | 300 | 30 |" in text
    assert "Locust p50 / p95 / p99" in text
    assert "lost writes **0**" in text and "RTO p50 0.2 s" in text
    assert markdown(None) == []
