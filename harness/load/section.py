"""report.json's `load` section and the load figures (gates), from one run's outcome.

Steady state, what the gates judge: every store call outside a company's setup, outside the
fault window and outside the RECOVERY_GRACE_S after it (`phases` steady / before / after).
Setup (a burst: every company pairing at once), the fault window and the recovery are reported
per phase beside it, and recovery is judged by RTO instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.load.hdr import ALL, LatencyRecorder, percentiles_ms
from harness.load.result import duration_s, ops_summary
from harness.load.runner import LoadOutcome
from harness.load.settings import RECOVERY_GRACE_S, STEADY_PHASES
from harness.metrics.figures import Figure

SUITE = "load"


def _steady(recorder: LatencyRecorder) -> dict[str, Any]:
    phases = [p for p in recorder.phases() if p in STEADY_PHASES]
    ok, fail = recorder.count(ALL, phases)
    hist = recorder.merged("raw", ALL, phases)
    corrected = recorder.merged("corrected", ALL, phases)
    return {"phases": phases, "count": ok + fail, "failures": fail,
            "error_rate": round(fail / (ok + fail), 6) if ok + fail else None,
            **percentiles_ms(hist),
            "corrected": percentiles_ms(corrected) if corrected.get_total_count() else None}


def _phases(recorder: LatencyRecorder) -> dict[str, Any]:
    out = {}
    for phase in recorder.phases():
        ok, fail = recorder.count(ALL, [phase])
        out[phase] = {"count": ok + fail, "failures": fail,
                      **percentiles_ms(recorder.merged("raw", ALL, [phase]))}
    return out


def _timeline(recorder: LatencyRecorder, started_wall: float | None,
              live: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not recorder.timeline:
        return []
    origin = int(started_wall) if started_wall else min(recorder.timeline)
    users_at = {int(doc["wall"]) - origin: doc.get("users") for doc in live}
    rows, users = [], 0
    for second in sorted(recorder.timeline):
        ok, fail, hist = recorder.timeline[second]
        t = second - origin
        users = users_at.get(t, users) or users
        rows.append({"t_s": t, "users": users, "ok": ok, "fail": fail,
                     "p99_ms": round(hist.get_value_at_percentile(99.0) / 1000.0, 3)})
    return rows


def _fault(outcome: LoadOutcome) -> dict[str, Any] | None:
    run = outcome.fault
    if run is None:
        return None
    start = outcome.started_monotonic or 0.0
    windows = run.timeline.windows
    window = None
    if windows:
        first, last = windows[0], windows[-1]
        end = run.cleared_at or (last.cleared_at.monotonic if last.cleared_at else None)
        window = [round(first.injected_at.monotonic - start, 3),
                  None if end is None else round(end - start, 3)]
    check = outcome.check or {}
    rec = outcome.recovery or {}
    return {"schedule": run.plan.spec, "window": window,
            "rto_s": rec.get("rto_s"), "mttd_s": rec.get("mttd_s"),
            "time_to_first_success_s": rec.get("time_to_first_success_s"),
            # the store's own figures (last_source, breaker): shown, never judged
            "reported": rec.get("reported"), "observer": rec.get("observer"),
            "lost_writes": check.get("lost_writes"), "anomalies": check.get("anomalies", {}),
            "valid": check.get("valid"), "acked_writes": check.get("acked_writes"),
            "indeterminate_writes": check.get("indeterminate_writes"),
            "history_ops": outcome.history_ops, "recovery_grace_s": RECOVERY_GRACE_S,
            "error": run.error, "notes": list(run.notes)}


def build_section(outcome: LoadOutcome, *, bridge: Mapping[str, Any] | None = None,
                  scale: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    doc = outcome.result
    recorder = LatencyRecorder.from_wire(doc["recorder"])
    seconds = duration_s(doc)
    ok, fail = recorder.count(ALL)
    plan = outcome.plan
    return {
        "profile": plan.profile, "companies": plan.companies,
        "processes": doc.get("processes") or plan.processes,
        "duration_s": round(seconds, 3), "model": plan.model, "rate": plan.rate,
        "target": plan.target,
        "total": {"count": ok + fail, "failures": fail,
                  "rate": round((ok + fail) / seconds, 2) if seconds else None},
        "ops": ops_summary(recorder, seconds, doc.get("locust")),
        "steady": _steady(recorder),
        "phases": _phases(recorder),
        "bridge_ratio": None if bridge is None else bridge.get("ratio"),
        "bridge": None if bridge is None else {k: v for k, v in bridge.items() if k != "runs"},
        "timeline": _timeline(recorder, doc.get("started_wall"), outcome.live),
        "fault": _fault(outcome),
        "check": outcome.check if outcome.fault is None else None,
        "scale": list(scale) if scale else None,
        "errors": dict(sorted(recorder.errors.items(), key=lambda kv: -kv[1])[:10]),
        "memory": memory(doc, plan.companies),
        "locust_exit_code": outcome.exit_code,
        "files": {"locust_html": "locust.html", "locust_csv": "locust_stats.csv",
                  "locust_log": "locust.log"},
    }


def memory(doc: Mapping[str, Any], companies: int) -> dict[str, Any]:
    procs = doc.get("procs") or []
    grown = sum(max(0, (p.get("rss_peak") or 0) - (p.get("rss_start") or 0)) for p in procs)
    peak = sum(p.get("rss_peak") or 0 for p in procs)
    return {"rss_peak_mb": round(peak / 2**20, 1),
            "rss_growth_mb": round(grown / 2**20, 1),
            "rss_mb_per_company": round(grown / 2**20 / companies, 3) if companies else None}


def figures(section: Mapping[str, Any], *, gated: bool = True) -> list[Figure]:
    """The gated figures: steady p95 / p99 / error rate, bridge ratio; ungated: the rest."""
    label = f"[{section['profile']}, {section['companies']} companies]"
    steady = section["steady"]
    context = {"count": steady["count"], "phases": steady["phases"],
               "model": section["model"], "target": section.get("target")}
    out = [
        Figure(SUITE, f"load p95 {label}", steady["p95_ms"], "ms", "lower",
               gate="load-p95-max-ms", gated=gated, context=context,
               notes="every store call in steady state, HDR (µs, 3 significant digits)"),
        Figure(SUITE, f"load p99 {label}", steady["p99_ms"], "ms", "lower",
               gate="load-p99-max-ms", gated=gated, context=context),
        Figure(SUITE, f"load error rate {label}", steady["error_rate"], "ratio", "lower",
               gate="load-error-rate-max", gated=gated,
               context={**context, "failures": steady["failures"]}),
        Figure(SUITE, f"load throughput {label}", section["total"]["rate"], "ops/s", "higher",
               gated=False),
    ]
    if section.get("bridge") is not None:
        bridge = section["bridge"]
        out.append(Figure(
            SUITE, "load bridge ratio (gevent-asyncio bridge / pure asyncio)",
            section["bridge_ratio"], "ratio", "higher", gate="load-bridge-min-ratio",
            gated=gated, context={"metric": "messages/s", "unit": "messages/s",
                                  "ours": bridge.get("bridge_messages_per_s"),
                                  "baseline": bridge.get("pure_messages_per_s"),
                                  "companies": bridge.get("companies")},
            notes=bridge.get("error") or ""))
    fault = section.get("fault")
    if fault is not None:
        rto = fault.get("rto_s") or {}
        out.append(Figure(SUITE, f"load rto p95 under {fault['schedule']}", rto.get("p95"), "s",
                          "lower", gated=False,
                          notes="fault cleared -> the company's first write in PostgreSQL"))
        out.append(Figure(SUITE, f"load lost writes under {fault['schedule']}",
                          fault.get("lost_writes"), "writes", "lower", threshold=0,
                          gated=False, notes="acknowledged writes missing from PostgreSQL"))
    return out
