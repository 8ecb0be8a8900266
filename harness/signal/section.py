"""The report's `signal` item, its gated figures and its one-line summary.

Item fields (report.json `signal[]`; later `chaos.scenarios[].signal`): messages, deliveries,
decrypted, undecryptable {error: count}, retries, reestablished, lost, new_pod_ok, plus the
details a reader needs to trust them (what the checker found on the same keys, attribution,
throughput and where the time went, the fault window, a timeline of decrypt outcomes).
Across a client-crash (harness/chaos/crash_signal.py) also `successor` / `successor_ok`: the
new process on the killed one's cache_dir received what the server still held and continued
every conversation; its failures count as undecryptable like the new pod's, and what died
with the killed process (`in_flight_at_kill`) is counted apart.

Verdict: `failed` when any delivery failed to decrypt (run or new pod), a session had to be
re-established, a message was lost, the new pod (or a crash's successor) could not continue,
the checker found an
anomaly, the target's close() hung or threw, or the harness itself failed an op;
`inconclusive` when the fault scenario saw no store call while PostgreSQL was away (the fault
proved nothing); else `passed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from harness.metrics.checker import CheckResult
from harness.metrics.figures import Figure
from harness.metrics.history import History
from harness.report import signal_table
from harness.signal.newpod import NewPodResult
from harness.signal.profiles import SignalParams
from harness.signal.tally import Tally

BUCKET_S = 0.5


class SignalRun(Protocol):
    """What the item is built from: a SignalWorkload, or the one a killed process journaled."""

    companies: list[str]
    tally: Tally
    started_ns: int | None
    stopped_ns: int | None

    def traffic_window_s(self) -> float | None: ...

    def stats(self) -> dict[str, Any]: ...


def _timeline(workload: SignalRun, windows: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Decrypt outcomes per 0.5 s bucket from the start of traffic (setup excluded)."""
    origin = workload.started_ns
    if origin is None:
        return {}
    end = max([t for t, _ in workload.tally.events] + [origin])
    buckets = int((end - origin) / 1e9 / BUCKET_S) + 1
    series = {kind: [0] * buckets for kind in ("decrypted", "failed", "lost")}
    for at, kind in workload.tally.events:
        if at >= origin:
            series[kind][int((at - origin) / 1e9 / BUCKET_S)] += 1
    return {"bucket_s": BUCKET_S, **series,
            "faults": [[round((a - origin) / 1e9, 3), round((b - origin) / 1e9, 3)]
                       for a, b in windows]}


def _store_calls_during(history: History,
                        windows: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Store calls invoked while the fault was on, and the first failed ones (key refs and
    the error, never values): what libsignal could not get from the store."""
    calls, failed = 0, []
    for op in history.ops():
        if any(a <= op.invoke_ns <= b for a, b in windows):
            calls += 1
            if op.outcome != "ok":
                failed.append(op)
    examples = [{"op": op.index, "f": op.f, "company": op.company,
                 "keys": [list(k) for k in op.keys[:4]], "outcome": op.outcome,
                 "error": op.error} for op in failed[:10]]
    return {"calls": calls, "failed": len(failed), "examples": examples}


def build_section(*, scenario: str, params: SignalParams, target: str, contrast: bool,
                  workload: SignalRun, new_pod: NewPodResult, check: CheckResult,
                  attribution: dict[str, Any], history: History,
                  windows: Sequence[tuple[int, int]], engine_stats: dict[str, Any],
                  notes: list[str], duration_s: float,
                  target_errors: Sequence[str] = (), successor: NewPodResult | None = None,
                  crash: Mapping[str, Any] | None = None) -> dict[str, Any]:
    summary = workload.tally.summary()
    stats = workload.stats()
    window_s = workload.traffic_window_s() or 0.0
    decrypted_in_window = sum(
        1 for t, kind in workload.tally.events
        if kind == "decrypted" and workload.started_ns is not None
        and workload.started_ns <= t <= (workload.stopped_ns or t))
    fault = None
    if scenario != "healthy":
        during = _store_calls_during(history, windows)
        fault = {"kind": scenario, "outage_s": params.outage_s,
                 "store_calls": during["calls"], "store_calls_failed": during["failed"],
                 "failed_calls": during["examples"], "met": during["calls"] > 0}
    new_pod_summary = new_pod.summary()
    undecryptable = (summary["undecryptable_total"] + len(new_pod.failures)
                     + (len(successor.failures) if successor is not None else 0))
    item: dict[str, Any] = {
        "name": scenario, "target": target, "profile": params.profile, "contrast": contrast,
        "gated": not contrast, "companies": len(workload.companies),
        "conversations": stats["conversations"],
        **{k: summary[k] for k in ("messages", "deliveries", "decrypted", "decrypted_after_retry",
                                   "undecryptable", "undecryptable_total", "failed_attempts",
                                   "retries", "retry_failures", "reestablished",
                                   "reestablished_by", "lost", "lost_by", "send_failures",
                                   "duplicates", "rekeys")},
        "new_pod_ok": new_pod.ok, "new_pod": new_pod_summary,
        "undecryptable_with_new_pod": undecryptable,
        "checker": {"valid": check.valid,
                    "anomalies": {n: c for n, c in check.anomaly_counts.items() if c},
                    "lost_writes": check.lost_writes, "acked_writes": check.acked_writes,
                    "reads": check.reads, "failed_reads": check.failed_reads,
                    "failed_writes": check.failed_writes,
                    "indeterminate_writes": check.indeterminate_writes},
        "attribution": attribution,
        "throughput": {"window_s": round(window_s, 2),
                       "deliveries_per_s": round(decrypted_in_window / window_s, 1)
                       if window_s else None,
                       "messages_per_s": round(summary["messages"] / window_s, 1)
                       if window_s else None,
                       "time_split": stats["time_split"],
                       "cpu_s": stats["cpu_s"]},
        "fault": fault, "timeline": _timeline(workload, windows),
        "engine": engine_stats, "server": stats["server"],
        "harness_errors": stats["harness_errors"], "target_errors": list(target_errors),
        "setup_s": stats["setup_s"],
        "duration_s": round(duration_s, 1), "notes": notes,
    }
    if successor is not None:
        item["successor_ok"] = successor.ok
        item["successor"] = {**successor.summary(), **(crash or {})}
    item["verdict"] = verdict(item)
    return item


def verdict(item: dict[str, Any]) -> str:
    bad = (item["undecryptable_with_new_pod"] or item["reestablished"] or item["lost"]
           or not item["new_pod_ok"] or not item["checker"]["valid"] or item["harness_errors"]
           or item.get("target_errors") or item.get("successor_ok") is False)
    if bad:
        return "failed"
    if item["fault"] is not None and not item["fault"]["met"]:
        return "inconclusive"
    return "passed"


def figures_of(item: dict[str, Any]) -> list[Figure]:
    name = f"signal {item['name']} [{item['target']}]"
    gated = bool(item["gated"])
    context = {"companies": item["companies"], "messages": item["messages"],
               "deliveries": item["deliveries"]}
    rate = item["throughput"]["deliveries_per_s"]
    return [
        Figure("signal", f"{name} undecryptable", float(item["undecryptable_with_new_pod"]),
               "messages", "lower", gate="signal-undecryptable-max", gated=gated,
               notes="deliveries that failed to decrypt at least once, run and new pod",
               context={**context, "by_error": item["undecryptable"]}),
        Figure("signal", f"{name} re-established", float(item["reestablished"]), "sessions",
               "lower", gate="signal-reestablished-max", gated=gated,
               context={**context, "by_reason": item["reestablished_by"]}),
        Figure("signal", f"{name} lost for good", float(item["lost"]), "messages", "lower",
               gated=False, context={**context, "by_reason": item["lost_by"]}),
        Figure("signal", f"{name} throughput", None if rate is None else float(rate),
               "deliveries/s", "higher", gated=False,
               notes="decrypted deliveries per second of traffic on this machine",
               context={"time_split": item["throughput"]["time_split"],
                        "cpu_s": item["throughput"].get("cpu_s"),
                        "window_s": item["throughput"].get("window_s")}),
    ]


def summary_line(item: dict[str, Any]) -> str:
    """The console line (harness/report/signal_table.py renders it from the item alone)."""
    return signal_table.summary_line(item)
