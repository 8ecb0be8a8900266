"""report.md's load section: the latency table per operation, steady state, fault, scale.

Rendered only from report.json's `load` section (harness/load/section.py writes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.report.md_table import table as _table

HEADER = ["operation", "calls", "failed", "p50", "p95", "p99", "p99.9", "max",
          "Locust p50 / p95 / p99"]


def _ms(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _spread(value: Any) -> Mapping[str, Any]:
    """A {p50, p95, max} spread; a plain number (older reports) stands for every statistic."""
    if isinstance(value, Mapping):
        return value
    return {} if value is None else {"p50": value, "p95": value, "max": value}


def _s(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3g} s"


PHASE_ORDER = ("setup", "steady", "before", "during", "recovery", "after")
JUDGED_HEADER = ["judged figure (steady state)", "value", "gate", "result"]


def _one(value: Any, unit: str) -> str:
    if unit == "ms":
        return f"{_ms(value)} ms"
    if unit in ("ratio", "x"):
        return f"{float(value):.3g}"
    return f"{float(value):.4g} {unit}".strip()


def _figure_value(figure: Mapping[str, Any]) -> str:
    """The value, and its ~95 % interval when the figure carries one (`interval`)."""
    value, unit = figure.get("value"), str(figure.get("unit") or "")
    if value is None:
        return "—"
    text = _one(value, unit)
    interval = figure.get("interval")
    if isinstance(interval, list | tuple) and len(interval) == 2 \
            and all(isinstance(v, int | float) for v in interval):
        text += f" (95 %: {_one(interval[0], unit)} – {_one(interval[1], unit)})"
    return text


def _figure_result(figure: Mapping[str, Any]) -> str:
    """met / missed / not measured / not gated; a status the figure carries itself (e.g.
    "undecided" once gates judge intervals) wins."""
    if isinstance(figure.get("status"), str):
        return str(figure["status"])
    if not figure.get("gated", True):
        return "not gated"
    if figure.get("value") is None:
        return "not measured"
    passed = figure.get("passed")
    return "no bound" if passed is None else "met" if passed else "missed"


def judged_rows(figures: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The load figures the gates judged (steady state), as [figure, value, gate, result]:
    what report.html shows where the gate is shown, so the all-phase table beside it is not
    read as the judged number."""
    rows = []
    for f in figures:
        if not isinstance(f, Mapping) or f.get("suite") != "load" or not f.get("gate"):
            continue
        op = ">=" if f.get("better") == "higher" else "<="
        bound = f.get("bound")
        unit = " ms" if f.get("unit") == "ms" else ""
        rows.append([str(f.get("name") or "—"), _figure_value(f),
                     "—" if bound is None else f"{op} {float(bound):g}{unit}",
                     _figure_result(f)])
    return rows


def op_rows(ops: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for name, s in ops.items():
        locust = s.get("locust") or {}
        rows.append([name if name != "all" else "**all operations**", str(s.get("count")),
                     str(s.get("failures")),
                     *(_ms(s.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms",
                                               "max_ms")),
                     " / ".join(_ms(locust.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms"))])
    return rows


def markdown(load: Mapping[str, Any] | None) -> list[str]:
    """The load section of report.md (nothing when no load run happened)."""
    if not load:
        return []
    total = load.get("total") or {}
    out = ["## Load: latency per store operation", "",
           f"Profile `{load.get('profile')}`, {load.get('companies')} companies (one Locust "
           f"user each), {load.get('processes')} process(es), {load.get('duration_s', 0):.0f} s, "
           f"{load.get('model')} model" + (f" at {load.get('rate'):g} messages/s"
                                           if load.get("rate") else "")
           + f", target `{load.get('target')}`: {total.get('count')} calls, "
           f"{total.get('failures')} failed, {total.get('rate')} calls/s.", "",
           "Milliseconds. HDR histograms (µs resolution, 3 significant digits) merged exactly "
           "across Locust processes; Locust's own figures (bucketed: 1 ms steps below 100 ms, "
           "10 ms to 1 s) on the right. Every phase (setup, fault) included here; the gates "
           "judge steady state (below).", ""]
    out += _table(HEADER, op_rows(load.get("ops") or {}))
    steady = load.get("steady") or {}
    if steady:
        line = (f"**Steady state** ({', '.join(steady.get('phases') or [])}): "
                f"{steady.get('count')} calls, p50 {_ms(steady.get('p50_ms'))} ms, p95 "
                f"{_ms(steady.get('p95_ms'))} ms, p99 {_ms(steady.get('p99_ms'))} ms, p99.9 "
                f"{_ms(steady.get('p999_ms'))} ms, error rate {steady.get('error_rate')}")
        corrected = steady.get("corrected")
        if corrected:
            line += (f"; corrected for coordinated omission (since each message's intended "
                     f"start): p95 {_ms(corrected.get('p95_ms'))} ms, p99 "
                     f"{_ms(corrected.get('p99_ms'))} ms")
        out += [line + ".", ""]
    phases = load.get("phases") or {}
    if len(phases) > 1:
        out += _table(["phase", "calls", "failed", "p50", "p95", "p99", "max"],
                      [[p, v.get("count"), v.get("failures"), _ms(v.get("p50_ms")),
                        _ms(v.get("p95_ms")), _ms(v.get("p99_ms")), _ms(v.get("max_ms"))]
                       for p, v in sorted(phases.items(),
                                          key=lambda kv: PHASE_ORDER.index(kv[0])
                                          if kv[0] in PHASE_ORDER else 99)])
    if load.get("bridge_ratio") is not None:
        b = load.get("bridge") or {}
        out += [f"Bridge: {b.get('bridge_messages_per_s')} messages/s through the "
                f"gevent-asyncio bridge vs {b.get('pure_messages_per_s')} pure asyncio "
                f"({b.get('companies')} companies, same run): ratio "
                f"**{load['bridge_ratio']:.3f}**.", ""]
    fault = load.get("fault")
    if fault:
        rto, mttd = _spread(fault.get("rto_s")), _spread(fault.get("mttd_s"))
        window = fault.get("window") or [None, None]
        anomalies = fault.get("anomalies") or {}
        out += [f"**Fault under load** `{fault.get('schedule')}` (window {window[0]} – "
                f"{window[1]} s): MTTD p95 {_s(mttd.get('p95'))}, RTO p50 {_s(rto.get('p50'))} / "
                f"p95 {_s(rto.get('p95'))} / max {_s(rto.get('max'))} over companies, lost writes "
                f"**{fault.get('lost_writes')}** of {fault.get('acked_writes')} acknowledged, "
                f"anomalies {anomalies or 'none'}"
                + (f"; error: {fault['error']}" if fault.get("error") else "") + ".", ""]
    scale = load.get("scale")
    if scale:
        out += ["Scale curve:", ""]
        out += _table(["companies", "calls/s", "p99 ms", "failed", "RSS growth MB",
                       "MB / company (marginal)"],
                      [[s.get("companies"), s.get("ops_per_s"), _ms(s.get("p99_ms")),
                        s.get("failures"), s.get("rss_growth_mb"),
                        s.get("rss_mb_marginal_per_company")] for s in scale])
    return out


def console_title(load: Mapping[str, Any]) -> str:
    """The terminal table's title: every phase, and the fault when one ran (its failed calls
    are in the table: a reader must not take them for the traffic profile's)."""
    fault = load.get("fault") if isinstance(load.get("fault"), Mapping) else None
    return (f"load: latency per store operation, ms, every phase (HDR; Locust's own right) -- "
            f"traffic profile {load.get('profile')}, {load.get('companies')} companies"
            + (f", fault {fault.get('schedule')} under load" if fault else ""))


def console_lines(load: Mapping[str, Any]) -> list[str]:
    """Below the table: the steady state the gates judge, then the fault under load by name
    with the calls that failed during it (not in the steady state) and its recovery."""
    lines = []
    steady = load.get("steady") if isinstance(load.get("steady"), Mapping) else {}
    if steady:
        lines.append(f"steady state (what the gates judge; phases "
                     f"{', '.join(steady.get('phases') or []) or '—'}): {steady.get('count')} "
                     f"calls, {steady.get('failures')} failed, p95 {_ms(steady.get('p95_ms'))} "
                     f"ms, p99 {_ms(steady.get('p99_ms'))} ms, error rate "
                     f"{steady.get('error_rate')}")
    fault = load.get("fault") if isinstance(load.get("fault"), Mapping) else None
    if fault:
        phases = load.get("phases") if isinstance(load.get("phases"), Mapping) else {}
        window = fault.get("window") or [None, None]
        parts = []
        for phase, what in (("during", "during it"), ("recovery", "in the recovery after it")):
            stats = phases.get(phase)
            if isinstance(stats, Mapping):
                parts.append(f"{stats.get('failures')} of {stats.get('count')} calls failed "
                             f"{what}")
        rto = _spread(fault.get("rto_s"))
        lines.append(
            f"fault under load {fault.get('schedule')} (window {window[0]} - {window[1]} s): "
            + ("; ".join(parts) + " (not part of the steady state); " if parts else "")
            + f"RTO p50 / p95 / max {_s(rto.get('p50'))} / {_s(rto.get('p95'))} / "
            f"{_s(rto.get('max'))}, lost writes {fault.get('lost_writes')} of "
            f"{fault.get('acked_writes')} acknowledged"
            + (f"; error: {fault['error']}" if fault.get("error") else ""))
    return lines
