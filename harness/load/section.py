"""report.json's `load` section and the load figures (gates), from one run's outcome.

Steady state, what the gates judge: every store call outside a company's setup, outside the
fault window and outside the RECOVERY_GRACE_S after it (`phases` steady / before / after).
Setup (a burst: every company pairing at once), the fault window and the recovery are reported
per phase beside it, and recovery is judged by RTO instead.

In the open model (messages arrive at a stated rate whatever the latency) the latency gates
read the coordinated-omission-corrected figure -- from each message's intended start to the
call's end, its earlier calls included -- with the raw service time beside it; in the closed
model only raw exists and is judged. Each gated percentile carries a ~95 % interval from the
spread of the same percentile over ~10 contiguous time batches of the steady state
(`hdr.batch_percentiles`, harness.metrics.intervals.batch_interval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.load.hdr import ALL, LatencyRecorder, batch_percentiles, percentiles_ms
from harness.load.result import duration_s, ops_summary
from harness.load.runner import LoadOutcome
from harness.load.settings import RECOVERY_GRACE_S, STEADY_PHASES
from harness.metrics.figures import Figure
from harness.metrics.intervals import batch_interval

SUITE = "load"


GATED_PERCENTILES = (("p95_ms", 95.0), ("p99_ms", 99.0))


def _intervals(recorder: LatencyRecorder, kind: str, phases: list[str],
               figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, q in GATED_PERCENTILES:
        per_batch = batch_percentiles(recorder, kind, phases, q)
        interval = batch_interval(figures.get(key), per_batch)
        out[key] = {"per_batch": per_batch,
                    "interval": None if interval is None else [round(max(0.0, interval[0]), 3),
                                                               round(interval[1], 3)]}
    return out


def _steady(recorder: LatencyRecorder) -> dict[str, Any]:
    phases = [p for p in recorder.phases() if p in STEADY_PHASES]
    ok, fail = recorder.count(ALL, phases)
    hist = recorder.merged("raw", ALL, phases)
    corrected = recorder.merged("corrected", ALL, phases)
    raw_figures = percentiles_ms(hist)
    corrected_figures = percentiles_ms(corrected) if corrected.get_total_count() else None
    return {"phases": phases, "count": ok + fail, "failures": fail,
            "error_rate": round(fail / (ok + fail), 6) if ok + fail else None,
            **raw_figures, "corrected": corrected_figures,
            "intervals": {"raw": _intervals(recorder, "raw", phases, raw_figures),
                          "corrected": None if corrected_figures is None else
                          _intervals(recorder, "corrected", phases, corrected_figures)}}


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


def gated_latency(section: Mapping[str, Any]) -> tuple[str, Mapping[str, Any],
                                                     Mapping[str, Any]]:
    """(kind, percentiles, intervals) the latency gates judge: corrected in the open model,
    raw in the closed one."""
    steady = section["steady"]
    intervals = steady.get("intervals") or {}
    if section.get("model") == "open" and steady.get("corrected"):
        return "corrected", steady["corrected"], intervals.get("corrected") or {}
    return "raw", steady, intervals.get("raw") or {}


def figures(section: Mapping[str, Any], *, gated: bool = True) -> list[Figure]:
    """The gated figures: steady p95 / p99 (corrected in the open model) / error rate, bridge
    ratio; ungated: the raw service time beside corrected ones, throughput, fault figures."""
    label = f"[{section['profile']}, {section['companies']} companies]"
    steady = section["steady"]
    kind, judged, intervals = gated_latency(section)
    rate = section.get("rate")
    context = {"count": steady["count"], "phases": steady["phases"],
               "model": section["model"], "target": section.get("target"), "rate": rate,
               "latency": kind}

    def interval(key: str) -> tuple[float, float] | None:
        got = (intervals.get(key) or {}).get("interval")
        return None if got is None else (got[0], got[1])

    def extra(key: str) -> dict[str, Any]:
        per = (intervals.get(key) or {}).get("per_batch")
        return {"interval_basis": f"Student t over {len(per)} time batches",
                "per_batch_ms": per} if per else {}

    what = (f"corrected for coordinated omission at {rate:g} messages/s (open model: from each "
            f"message's intended start, its earlier calls included)" if kind == "corrected"
            else "service time (closed model: no intended start to correct from)")
    out = []
    for key, gate, word in (("p95_ms", "load-p95-max-ms", "p95"),
                            ("p99_ms", "load-p99-max-ms", "p99")):
        raw_note = (f"; raw service time {word} {steady[key]} ms beside it"
                    if kind == "corrected" else "")
        out.append(Figure(SUITE, f"load {word} {label}", judged[key], "ms", "lower", gate=gate,
                          gated=gated, context={**context, **extra(key), "raw_ms": steady[key]},
                          interval=interval(key),
                          notes=f"every store call in steady state, HDR, {what}{raw_note}"))
        if kind == "corrected":
            out.append(Figure(SUITE, f"load {word} raw service time {label}", steady[key], "ms",
                              "lower", gated=False, context={**context, "latency": "raw"},
                              notes="the service time beside the gated corrected figure"))
    out += [
        Figure(SUITE, f"load error rate {label}", steady["error_rate"], "ratio", "lower",
               gate="load-error-rate-max", gated=gated,
               context={**context, "failures": steady["failures"]}),
        Figure(SUITE, f"load throughput {label}", section["total"]["rate"], "ops/s", "higher",
               gated=False),
    ]
    if section.get("bridge") is not None:
        bridge = section["bridge"]
        rounds = bridge.get("round_ratios") or []
        bridge_interval = batch_interval(section["bridge_ratio"], rounds)
        out.append(Figure(
            SUITE, "load bridge ratio (gevent-asyncio bridge / pure asyncio)",
            section["bridge_ratio"], "ratio", "higher", gate="load-bridge-min-ratio",
            gated=gated, context={"metric": "messages/s", "unit": "messages/s",
                                  "ours": bridge.get("bridge_messages_per_s"),
                                  "baseline": bridge.get("pure_messages_per_s"),
                                  "companies": bridge.get("companies"),
                                  **({"round_ratios": rounds, "interval_basis":
                                      f"Student t over {len(rounds)} interleaved rounds"}
                                     if bridge_interval else {})},
            interval=bridge_interval, notes=bridge.get("error") or ""))
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
