"""One scenario's result: the section dict for `record_section("chaos", ...)` and its figures.

Across repetitions, per-company figures (MTTD, time to first success, RTO) are pooled over
companies x fault windows x repetitions and summarised as p50 / p95 / max (`spread`: a company
that never recovered is a missing value, which makes p95 and max None, and a gated figure
without a value fails). Counts are summed; latency is pooled per phase; the per-100-ms timeline
is the first repetition's.

RTO and MTTD are the observed figures (harness.metrics.observed_recovery: the observer's reads
of PostgreSQL and the callers' side of the history); the store's own (`last_source`, breaker)
go under "reported" and decide nothing.

Figures per scenario and target: "chaos <name> [<target>] rto p95" (gate chaos-rto-p95-max-s),
"... mttd p95" (gate chaos-mttd-p95-max-s; for faults that make the client wait instead of
fail - black hole, latency, bandwidth - the bound is the harness's deadline + 0.2 s, given as
the figure's threshold), "... lost writes" (gate chaos-lost-writes-max), "... slowest call"
(gate chaos-deadline-max-s, + the hang margin). Contrast rows (the plain store beside the
resilient one) record their figures with gated=False.
Verdict: "failed" when the checker found an anomaly or an acknowledged write was lost;
"inconclusive" when the fault never met its precondition (it proved nothing); "passed"
otherwise; "skipped" (with the reason) when the scenario cannot run here. The gates themselves
are judged by the main job from the figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.chaos.catalog import ScenarioInfo, ScenarioParams
from harness.chaos.disk_report import disk_fields
from harness.chaos.outcome import Repetition, ScenarioOutcome
from harness.chaos.signal_beside import merge_items
from harness.metrics.figures import Figure
from harness.metrics.intervals import batch_interval
from harness.metrics.latency import latency_stats, phase_of, spread
from harness.metrics.recovery import summarize

SUITE = "chaos"
# A company that is between messages when a black hole opens notices it only when its next
# call has waited the deadline: detection is bounded by the deadline plus the same margin that
# makes a call a hang (measured: blackhole MTTD p95 2.30 s [2.27, 2.33] with a 2 s deadline,
# the resilient store, 100 companies, a quiet 2-core machine; the 0.2 s of the store-reported
# figure timed the breaker, store-wide, not each company's callers).
BLACKHOLE_MARGIN_S = 0.5
HANG_MARGIN_S = 0.5  # the checker's "hang": a call past the harness's deadline + this
EXAMPLES_PER_ANOMALY = 3
COUNTS = ("acked_writes", "failed_writes", "indeterminate_writes", "recovered_writes",
          "lost_writes", "lost_keys", "reads", "failed_reads", "stale_reads")


def _round(value: Any, digits: int = 3) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def _spread3(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _round(v) for k, v in values.items()}


def pooled_latency(reps: Sequence[Repetition]) -> dict[str, Any]:
    """p50/p95/p99/p99.9/max (ms) of completed ops by phase of their invoke, pooled over
    repetitions (each op's phase judged against its own repetition's windows). Setup (pairing,
    812-pre-key uploads) is not traffic: only ops invoked once the workers ran count."""
    pools: dict[str, list[int]] = {"before": [], "during": [], "after": []}
    for rep in reps:
        injected = [w.injected_ns for w in rep.windows]
        traffic_start = rep.timeline.origin_ns
        for op in rep.history.ops():
            if op.complete_ns is None or op.invoke_ns < traffic_start:
                continue
            phase = phase_of(op.invoke_ns, injected, rep.windows)
            pools.setdefault(phase, []).append(op.complete_ns - op.invoke_ns)
    return {phase: latency_stats(samples) for phase, samples in pools.items()
            if samples or phase in ("before", "during", "after")}


def _availability(reps: Sequence[Repetition]) -> dict[str, Any]:
    sums = {k: sum(r.availability.get(k, 0) for r in reps)
            for k in ("reads_ok", "reads_completed", "writes_ok", "writes_completed")}
    return {"reads": _round(sums["reads_ok"] / sums["reads_completed"], 4)
            if sums["reads_completed"] else None,
            "writes": _round(sums["writes_ok"] / sums["writes_completed"], 4)
            if sums["writes_completed"] else None, **sums}


def _max_or_none(values: Sequence[Any]) -> Any:
    present = [v for v in values if isinstance(v, (int, float))]
    return max(present) if present else None


def mttd_threshold(info: ScenarioInfo, deadline_s: float) -> tuple[float | None, str]:
    """The MTTD bound of this fault: the gate's, or the harness's deadline + 0.2 s for faults
    where the client waits instead of failing (nothing can notice silence before a deadline;
    the harness's, never the store's own)."""
    if info.mttd_bound != "deadline":
        return None, ""
    bound = round(deadline_s + BLACKHOLE_MARGIN_S, 3)
    return bound, (f"{info.name} makes calls wait rather than fail, so detection is bounded by "
                   f"the harness's deadline (chaos-deadline-max-s {deadline_s:g} s) + "
                   f"{BLACKHOLE_MARGIN_S:g} s = {bound:g} s, not by the MTTD gate")


INTERVAL_FIGURES = ("rto_s", "mttd_s")


def repetition_intervals(pooled: Mapping[str, Mapping[str, Any]],
                         per_repetition: Sequence[Mapping[str, Mapping[str, Any]]]
                         ) -> dict[str, dict[str, Any]]:
    """Per gated time figure: the p95 of each repetition alone and a ~95 % interval of the
    pooled p95 from their spread (harness.metrics.intervals.batch_interval). The companies of
    one fault move together, so only repetitions (own seed, jittered start) are independent;
    one repetition gives no interval."""
    out: dict[str, dict[str, Any]] = {}
    for name in INTERVAL_FIGURES:
        per = [(rep.get(name) or {}).get("p95") for rep in per_repetition]
        interval = batch_interval((pooled.get(name) or {}).get("p95"), per)
        out[name] = {"per_repetition_p95": [_round(v) for v in per],
                     "interval": None if interval is None else [_round(max(0.0, interval[0])),
                                                                _round(interval[1])],
                     "basis": f"Student t over {len(per)} repetitions"}
    return out


def verdict_of(anomalies: dict[str, int], lost_writes: int,
               reps: Sequence[Repetition]) -> tuple[str, str]:
    """(verdict, reason): an anomaly or a lost write fails; else a precondition never met
    makes it inconclusive (it proved nothing); else it passed. (Signal conversations beside
    the fault carry their own verdict and are judged by the signal gates: a store that fails
    closed breaks sessions under Baileys without any anomaly of its own.)"""
    if anomalies or lost_writes:
        named = ", ".join(f"{n} x{c}" for n, c in sorted(anomalies.items()))
        return "failed", f"anomalies: {named}" if named else f"{lost_writes} lost writes"
    unmet = [(r.index, p) for r in reps for p in r.unmet]
    if unmet:
        index, first = unmet[0]
        return "inconclusive", (f"precondition {first.name} not met in repetition {index + 1} "
                                f"after {reps[index].attempt} attempt(s): {first.detail}")
    return "passed", ""


def _slowest_call_s(reps: Sequence[Repetition]) -> float | None:
    slowest = [op.complete_ns - op.invoke_ns for r in reps for op in r.history.ops()
               if op.complete_ns is not None and op.invoke_ns >= r.timeline.origin_ns]
    return round(max(slowest) / 1e9, 3) if slowest else None


def section(info: ScenarioInfo, params: ScenarioParams, target: str,
            reps: Sequence[Repetition], *, contrast: bool) -> dict[str, Any]:
    first = reps[0]
    recovery = summarize(r.recovery for r in reps)
    reported = summarize(r.reported for r in reps)
    anomalies: dict[str, int] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    for rep in reps:
        for name, count in rep.check.anomaly_counts.items():
            if count:
                anomalies[name] = anomalies.get(name, 0) + count
        for name, found in rep.check.anomalies.items():
            room = EXAMPLES_PER_ANOMALY - len(examples.setdefault(name, []))
            examples[name] += [{**a.to_dict(), "repetition": rep.index + 1}
                               for a in found[:max(0, room)]]
    counts = {k: sum(getattr(r.check, k) for r in reps) for k in COUNTS}
    deadline = max(r.deadline_s for r in reps)
    signal = merge_items([r.signal for r in reps if r.signal is not None])
    verdict, reason = verdict_of(anomalies, counts["lost_writes"], reps)
    preconditions = [{"repetition": r.index + 1, "attempts": r.attempt, **p.to_dict()}
                     for r in reps for p in r.preconditions]
    headline = next((p for p in preconditions if not p["met"]),
                    preconditions[0] if preconditions else None)
    windows = [{"kind": w["kind"], "start_s": w["start_s"], "end_s": w["end_s"]}
               for w in first.timeline.fault_windows]
    per_window = [{"repetition": r.index + 1, "kind": w.kind,
                   "duration_s": _round(w.duration_s),
                   "breaker_open_s": _round(w.breaker_open_s),
                   "breaker_closed_s": _round(w.breaker_closed_s),
                   "journal_drained_s": _round(w.journal_drained_s)}
                  for r in reps for w in r.reported.per_window]
    return {
        "name": info.name, "description": info.description, "proves": info.proves,
        "target": target, "profile": params.profile, "companies": params.companies,
        "repetitions": len(reps), "contrast": contrast, "gated": not contrast,
        "repetitions_planned": params.repetitions,
        "seed": [r.seed for r in reps], "fault_jitter_s": [r.fault_jitter_s for r in reps],
        "intervals": repetition_intervals(recovery, [summarize([r.recovery]) for r in reps]),
        "verdict": verdict, "reason": reason,
        "precondition": None if headline is None else {
            k: headline[k] for k in ("name", "met", "detail")},
        "preconditions": preconditions,
        # observed from outside the store (these are judged):
        "mttd_s": _spread3(recovery["mttd_s"]),
        "masked": recovery["mttd_s"]["masked"],
        "time_to_first_success_s": _spread3(recovery["time_to_first_success_s"]),
        "rto_s": _spread3(recovery["rto_s"]),
        "slowest_call_s": _slowest_call_s(reps),
        # what the store says about itself (never judged):
        "reported": {
            "note": "from the target's own last_source() and breaker transitions; shown "
                    "beside the observed figures, never used for a verdict",
            "mttd_s": _spread3(reported["mttd_s"]),
            "time_to_first_success_s": _spread3(reported["time_to_first_success_s"]),
            "rto_s": _spread3(reported["rto_s"]),
            "deadline_s": _max_or_none([r.store_deadline_s for r in reps]),
            "per_window": per_window},
        "observer": {**first.observer,
                     "rounds_all": sum(r.observer.get("rounds", 0) for r in reps)},
        **counts,
        "anomalies": anomalies,
        "anomaly_examples": {n: e for n, e in examples.items() if e},
        "availability": _availability(reps),
        "latency_ms": pooled_latency(reps),
        "journal": {"peak_depth": _max_or_none([r.journal.get("peak_depth") for r in reps]),
                    "replay_rate": _max_or_none([r.journal.get("replay_rate") for r in reps])},
        "conflicts": _max_or_none([r.conflicts for r in reps]),
        "pg_recovery_s": _spread3(spread(r.pg_recovery_s for r in reps))
        if info.needs_process_control else None,
        "fault": {"kind": info.name, "layer": info.layer, "duration_s": params.outage_s,
                  "cycles": params.cycles, "up_s": params.up_s,
                  "mttd_bound": info.mttd_bound,
                  "mttd_threshold_s": mttd_threshold(info, deadline)[0]},
        "deadline_s": deadline,
        "writes_during_fault": sum(r.writes_during_fault for r in reps),
        "per_window": per_window,
        "flush": [r.flush for r in reps],
        "final_rows": [r.final.rows for r in reps],
        # How late the harness's own 100 ms tick woke (max over repetitions): latencies above
        # include this much of the harness's own scheduling delay on a busy machine.
        "harness_loop_lag_ms": {k: _max_or_none([r.loop_lag_ms.get(k) for r in reps])
                                for k in ("p50", "p99", "max")},
        "workload": first.workload,
        "durations_s": [{"total": _round(r.duration_s, 1),
                         **{k: _round(v, 2) for k, v in r.phases_s.items()}} for r in reps],
        "notes": sorted({n for r in reps for n in r.notes}),
        "timeline": first.timeline.buckets,
        "fault_windows": windows,
        "signal": signal,
        **disk_fields(reps),
    }


def figures(info: ScenarioInfo, item: dict[str, Any]) -> list[Figure]:
    """The gated figures of a scenario run (gated=False for contrast rows): observed RTO and
    MTTD p95, lost writes, the slowest call. An MTTD of a fault every company masked (never
    detected, yet recovered) is not gated: there was nothing to time."""
    base = f"chaos {info.name} [{item['target']}]"
    gated = not item["contrast"]
    context = {"companies": item["companies"], "repetitions": item["repetitions"],
               "profile": item["profile"], "outage_s": item["fault"]["duration_s"],
               "verdict": item["verdict"]}
    threshold, note = mttd_threshold(info, item["deadline_s"])
    rto, mttd = item["rto_s"], item["mttd_s"]
    intervals = item.get("intervals") or {}
    planned = item.get("repetitions_planned", item["repetitions"])
    if item["repetitions"] > planned:
        context["measured_more"] = {"added": item["repetitions"] - planned,
                                    "what": "repetitions"}

    def interval(name: str) -> tuple[float, float] | None:
        got = (intervals.get(name) or {}).get("interval")
        return None if got is None else (got[0], got[1])

    def basis(name: str) -> dict[str, Any]:
        got = intervals.get(name) or {}
        return {"interval_basis": got.get("basis"),
                "per_repetition_p95": got.get("per_repetition_p95")} if got else {}

    reported = item.get("reported") or {}
    contrast_note = "contrast row: shown beside the default target, not gated" if not gated \
        else ""
    rto_note = contrast_note or ("observed: fault cleared -> every write the company had "
                                 "acknowledged, and its first new one, read back from "
                                 "PostgreSQL by the observer; p95 over companies x windows x "
                                 "repetitions")
    if gated and not info.rto_gated:
        rto_note = (f"not gated: the RTO gate is stated for a 10 s outage; after "
                    f"{item['fault']['duration_s']:g} s the journal replay dominates (replay "
                    f"rate {item['journal'].get('replay_rate') or 0:.0f} rows/s)")
    # a gate that does not apply to this scenario at all: "not applicable", not "not measured"
    rto_na = {"not_applicable": info.rto_not_applicable} if info.rto_not_applicable else {}
    if gated and rto_na:
        rto_note = info.rto_not_applicable
    all_masked = mttd["count"] == 0 and item.get("masked", 0) > 0
    mttd_note = " ".join(x for x in (note, contrast_note) if x)
    if all_masked:
        mttd_note = (f"not gated: every company masked the fault ({item['masked']}): callers "
                     "never saw it and the store recovered")
    deadline = item["deadline_s"]
    return [
        Figure(SUITE, f"{base} rto p95", rto["p95"], "s", "lower", gate="chaos-rto-p95-max-s",
               gated=gated and info.rto_gated, notes=rto_note,
               context={**context, "p50": rto["p50"], "max": rto["max"],
                        "missing": rto["missing"],
                        "reported_p95": (reported.get("rto_s") or {}).get("p95"),
                        **basis("rto_s"), **rto_na},
               interval=interval("rto_s")),
        Figure(SUITE, f"{base} mttd p95", mttd["p95"], "s", "lower",
               gate="chaos-mttd-p95-max-s", threshold=threshold,
               gated=gated and not all_masked, notes=mttd_note,
               context={**context, "p50": mttd["p50"], "max": mttd["max"],
                        "missing": mttd["missing"], "masked": item.get("masked", 0),
                        "reported_p95": (reported.get("mttd_s") or {}).get("p95"),
                        **basis("mttd_s")},
               interval=interval("mttd_s")),
        Figure(SUITE, f"{base} lost writes", float(item["lost_writes"]), "writes", "lower",
               gate="chaos-lost-writes-max", gated=gated, notes=contrast_note,
               context={**context, "acked_writes": item["acked_writes"],
                        "indeterminate_writes": item["indeterminate_writes"]}),
        Figure(SUITE, f"{base} slowest call", item.get("slowest_call_s"), "s", "lower",
               gate="chaos-deadline-max-s", threshold=round(deadline + HANG_MARGIN_S, 3),
               gated=gated, notes=contrast_note or (
                   f"the longest any call took once traffic ran; past the harness's deadline "
                   f"({deadline:g} s) + {HANG_MARGIN_S:g} s it is anomaly 'hang'"),
               context=context),
        *signal_figures(item),
    ]


def signal_figures(item: dict[str, Any]) -> list[Figure]:
    """The gated Signal figures of the conversations run beside the fault (none when they
    did not run): undecryptable messages and re-established sessions must both be 0."""
    signal = item.get("signal")
    if not signal:
        return []
    base = f"chaos {item['name']} [{item['target']}] signal"
    gated = not item["contrast"]
    context = {"companies": signal.get("companies"), "messages": signal.get("messages"),
               "deliveries": signal.get("deliveries"), "repetitions": item["repetitions"]}
    return [
        Figure("signal", f"{base} undecryptable",
               float(signal.get("undecryptable_with_new_pod") or 0), "messages", "lower",
               gate="signal-undecryptable-max", gated=gated,
               notes="real Signal messages through the target across the fault that failed "
                     "to decrypt at least once, run and new pod",
               context={**context, "by_error": signal.get("undecryptable")}),
        Figure("signal", f"{base} re-established", float(signal.get("reestablished") or 0),
               "sessions", "lower", gate="signal-reestablished-max", gated=gated,
               context=context),
    ]


def assemble(info: ScenarioInfo, params: ScenarioParams, target: str,
             reps: Sequence[Repetition], *, contrast: bool = False) -> ScenarioOutcome:
    item = section(info, params, target, reps, contrast=contrast)
    return ScenarioOutcome(info, params, target, contrast, item["verdict"], item,
                           figures(info, item), list(reps))


def skipped(info: ScenarioInfo, params: ScenarioParams, target: str, contrast: bool,
            reason: str) -> ScenarioOutcome:
    item = {"name": info.name, "description": info.description, "proves": info.proves,
            "target": target, "profile": params.profile, "companies": params.companies,
            "repetitions": 0, "contrast": contrast, "gated": not contrast,
            "verdict": "skipped", "reason": reason,
            "fault": {"kind": info.name, "layer": info.layer, "duration_s": params.outage_s}}
    return ScenarioOutcome(info, params, target, contrast, "skipped", item, [], reason=reason)


def _s(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def one_line(rep: Repetition) -> str:
    """A repetition in one line of the log."""
    summary = rep.recovery.summary()
    anomalies = {n: c for n, c in rep.check.anomaly_counts.items() if c}
    avail = rep.availability
    return (f"RTO p95 {_s(summary['rto_s']['p95'])}, MTTD p95 {_s(summary['mttd_s']['p95'])}, "
            f"availability reads {_pct(avail.get('reads'))} writes {_pct(avail.get('writes'))},"
            f" acked {rep.check.acked_writes}, lost {rep.check.lost_writes}, "
            f"anomalies {anomalies or 'none'}"
            + "".join(f"; precondition {p.name} NOT met" for p in rep.unmet)
            + f" ({rep.duration_s:.0f} s)")


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_line(outcome: ScenarioOutcome) -> str:
    """A scenario in one line (printed by the suite)."""
    item = outcome.section
    head = f"chaos {item['name']} [{item['target']}]{' (contrast)' if item['contrast'] else ''}"
    if outcome.verdict == "skipped":
        return f"{head}: skipped: {outcome.reason}"
    avail = item["availability"]
    why = f" ({item['reason']})" if item.get("reason") else ""
    reported = item.get("reported") or {}
    return (f"{head}: {outcome.verdict}{why}; RTO p95 {_s(item['rto_s']['p95'])} "
            f"(p50 {_s(item['rto_s']['p50'])}; store reports "
            f"{_s((reported.get('rto_s') or {}).get('p95'))}), "
            f"MTTD p95 {_s(item['mttd_s']['p95'])}"
            + (f" ({item['masked']} masked)" if item.get("masked") else "") + ", "
            f"availability reads {_pct(avail['reads'])} writes {_pct(avail['writes'])}, "
            f"acked {item['acked_writes']}, lost {item['lost_writes']}, indeterminate "
            f"{item['indeterminate_writes']}, anomalies {item['anomalies'] or 'none'}"
            + _signal_words(item.get("signal")))


def _signal_words(signal: Mapping[str, Any] | None) -> str:
    if not signal:
        return ""
    return (f"; Signal: {signal.get('messages')} messages sent, {signal.get('decrypted')} "
            f"decrypted, {signal.get('undecryptable_with_new_pod')} undecryptable, "
            f"{signal.get('reestablished')} re-established, new pod "
            f"{'ok' if signal.get('new_pod_ok') else 'NOT ok'}"
            + ("" if "successor_ok" not in signal else
               f", the killed process's successor {'ok' if signal['successor_ok'] else 'NOT ok'}"))


