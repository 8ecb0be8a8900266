"""Compare two runs figure by figure: is NEW worse than OLD beyond noise?

Rows are every number both reports hold: the recorded figures (RTO, MTTD, lost writes,
benchmark ratios, later load figures), plus per chaos scenario its anomaly and stale-read counts,
availability and latency p99 per phase, plus the load section's percentiles when no load
figures exist. Each row is judged by the figure's `better` direction with an allowance of

    max(relative x |old|, the unit's absolute floor, noise)

where noise comes from the runs' own ~95 % intervals (issue 16 §1: paired benchmark rounds,
repetitions of a chaos fault, time batches of a load run): sqrt(2) x the baseline's half-width
(else the new run's), i.e. the half-width of the interval of a difference between two runs as
noisy as the baseline. Reports without intervals fall back on a recorded confidence interval or
2 x stddev. The spread of one fault's companies (p50..max) is never used: those 100 RTOs move
together and say nothing about the next run. Counts of things that must not happen (lost
writes, anomalies, stale reads, failures) get no allowance: any increase regresses.

Before any row is judged, `comparable.differences` says whether the runs can be compared at all
(PostgreSQL major and kind, profile, target, machine cores, load shape); `compare` carries them
and the command refuses incomparable pairs unless told otherwise.

Only rows that decide a verdict (gated figures, anomaly and loss counts of gated scenarios,
the run's own status) make `compare` exit 1; ungated rows (contrast runs, informational
latencies) are shown with their verdict but do not fail unless `strict`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.report.comparable import Difference, differences

REGRESSED, IMPROVED, SAME, MISSING = "regressed", "improved", "within tolerance", "not measured"

ABSOLUTE_FLOOR: Mapping[str, float] = {"s": 0.05, "ms": 0.5, "x": 0.02, "share": 0.002}
COUNT_UNITS = frozenset({"writes", "count", "anomalies", "reads", "ops"})


@dataclass(frozen=True)
class Tolerance:
    relative: float = 0.10
    noise: float = 1.0  # multiplier on the spread-derived noise (0 disables it)
    floors: Mapping[str, float] = field(default_factory=lambda: dict(ABSOLUTE_FLOOR))


@dataclass(frozen=True)
class Row:
    key: str
    unit: str
    better: str  # "higher" | "lower"
    old: float | None
    new: float | None
    allowed: float
    basis: str  # how the allowance was decided
    verdict: str
    decides: bool  # counts toward the exit code

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        return None if d is None or not self.old else d / abs(self.old) * 100


@dataclass(frozen=True)
class Measure:
    """One comparable number of one report, before it is paired with the other report's."""

    key: str
    value: float | None
    unit: str
    better: str
    decides: bool
    count: bool = False  # zero allowance
    spread: float | None = None  # a noise estimate from the report itself (same unit)


@dataclass
class Comparison:
    old_id: str
    new_id: str
    old_status: str
    new_status: str
    rows: list[Row]
    only_old: list[str]
    only_new: list[str]
    strict: bool = False
    differences: list[Difference] = field(default_factory=list)

    @property
    def incomparable(self) -> list[Difference]:
        return [d for d in self.differences if d.refuse]

    @property
    def status_regressed(self) -> bool:
        return self.old_status == "passed" and self.new_status != "passed"

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict in (REGRESSED, MISSING)
                and (r.decides or self.strict)]

    @property
    def improvements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == IMPROVED]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions) or self.status_regressed

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    def headline(self) -> str:
        n = len(self.regressions)
        what = (f"{n} regression{'s' if n != 1 else ''}" if n else "no regression")
        status = (f"; run verdict {self.old_status} -> {self.new_status}"
                  if self.old_status != self.new_status else "")
        caveat = (f" -- INCOMPARABLE runs ({', '.join(d.what for d in self.incomparable)})"
                  if self.incomparable else "")
        return (f"{'REGRESSED' if self.regressed else 'OK'}: {what} in {len(self.rows)} "
                f"figures compared ({len(self.improvements)} improved){status}{caveat}")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _half_width(pair: Any) -> float | None:
    if isinstance(pair, list | tuple) and len(pair) == 2:
        lo, hi = _num(pair[0]), _num(pair[1])
        if lo is not None and hi is not None:
            return abs(hi - lo) / 2
    return None


def _figure_noise(figure: Mapping[str, Any]) -> float | None:
    """Half the width of the figure's ~95 % interval from the run's own independent samples;
    for older reports a recorded confidence interval or 2 x stddev. Never a per-company
    spread (p50..max of one fault): it is not independent between runs."""
    interval = _half_width(figure.get("interval"))
    if interval is not None:
        return interval
    context = figure.get("context") if isinstance(figure.get("context"), Mapping) else {}
    ci = _half_width(context.get("ci"))
    if ci is not None:
        return ci
    stddev = _num(context.get("stddev"))
    return None if stddev is None else 2 * stddev


def _figure_measures(report: Mapping[str, Any]) -> Iterator[Measure]:
    for f in report.get("figures") or []:
        if not isinstance(f, Mapping) or not f.get("name"):
            continue
        unit = str(f.get("unit") or "")
        name, suite = str(f.get("name")), str(f.get("suite"))
        key = name if name.startswith(suite + " ") else f"{suite}: {name}"
        yield Measure(key, _num(f.get("value")), unit,
                      "higher" if f.get("better") == "higher" else "lower",
                      decides=bool(f.get("gated", True)) and f.get("gate") is not None,
                      count=unit in COUNT_UNITS, spread=_figure_noise(f))


def _chaos_measures(report: Mapping[str, Any]) -> Iterator[Measure]:
    for s in (report.get("chaos") or {}).get("scenarios") or []:
        if not isinstance(s, Mapping):
            continue
        if s.get("verdict") == "skipped":
            continue
        label = f"chaos: {s.get('name')} [{s.get('target')}]"
        gated = bool(s.get("gated", True)) and not s.get("contrast")
        anomalies = s.get("anomalies") if isinstance(s.get("anomalies"), Mapping) else {}
        total = sum(_num(v) or 0.0 for v in anomalies.values())
        yield Measure(f"{label} anomalies", total, "count", "lower", gated, count=True)
        stale = _num(s.get("stale_reads"))
        if stale is not None:
            yield Measure(f"{label} stale reads", stale, "count", "lower", gated, count=True)
        availability = s.get("availability")
        if isinstance(availability, Mapping):
            for k in ("reads", "writes"):
                v = _num(availability.get(k))
                if v is not None:
                    yield Measure(f"{label} availability {k}", v, "share", "higher", False)
        latency = s.get("latency_ms")
        if isinstance(latency, Mapping):
            for phase in ("during", "after"):
                p = latency.get(phase)
                if isinstance(p, Mapping) and _num(p.get("p99")) is not None:
                    yield Measure(f"{label} latency p99 {phase}", _num(p.get("p99")), "ms",
                                  "lower", False)


LOAD_PERCENTILES = (("p50_ms", False), ("p95_ms", True), ("p99_ms", True), ("p999_ms", False))


def _load_measures(report: Mapping[str, Any]) -> Iterator[Measure]:
    """The load section's numbers, unless the load suite recorded them as figures already."""
    load = report.get("load")
    if not isinstance(load, Mapping):
        return
    if any(isinstance(f, Mapping) and f.get("suite") == "load"
           for f in report.get("figures") or []):
        return
    ops = load.get("ops") if isinstance(load.get("ops"), Mapping) else {}
    for name, op in ops.items():
        if not isinstance(op, Mapping):
            continue
        for key, decides in LOAD_PERCENTILES:
            v = _num(op.get(key))
            if v is not None:
                yield Measure(f"load: {name} {key.removesuffix('_ms').replace('p999', 'p99.9')}",
                              v, "ms", "lower", decides)
        fails = _num(op.get("failures"))
        if fails is not None:
            yield Measure(f"load: {name} failures", fails, "count", "lower", True, count=True)
    total = load.get("total") if isinstance(load.get("total"), Mapping) else {}
    rate = _num(total.get("rate"))
    if rate is not None:
        yield Measure("load: total ops/s", rate, "ops/s", "higher", False)
    bridge = _num(load.get("bridge_ratio"))
    if bridge is not None:
        yield Measure("load: bridge ratio", bridge, "x", "higher", True)
    fault = load.get("fault") if isinstance(load.get("fault"), Mapping) else {}
    for key, unit, count in (("rto_s", "s", False), ("mttd_s", "s", False),
                             ("lost_writes", "writes", True)):
        v = _num(fault.get(key))
        if v is not None:
            yield Measure(f"load: under fault {key.removesuffix('_s')}", v, unit, "lower", True,
                          count=count)


def measures(report: Mapping[str, Any]) -> dict[str, Measure]:
    out: dict[str, Measure] = {}
    for m in (*_figure_measures(report), *_chaos_measures(report), *_load_measures(report)):
        out.setdefault(m.key, m)
    return out


def judge(old: Measure, new: Measure, tolerance: Tolerance) -> Row:
    decides = old.decides or new.decides
    better = new.better
    if new.value is None or old.value is None:
        verdict = MISSING if new.value is None and old.value is not None else SAME
        return Row(new.key, new.unit, better, old.value, new.value, 0.0,
                   "new run did not measure it" if verdict == MISSING else "old run had none",
                   verdict, decides)
    if old.count or new.count:
        allowed, basis = 0.0, "count: any increase"
    else:
        rel = tolerance.relative * abs(old.value)
        floor = tolerance.floors.get(new.unit, 0.0)
        # The baseline's interval: a regression that widens the new run's interval must not
        # widen its own allowance. The new run's only when the baseline recorded none. Two runs
        # as noisy as that: the difference's interval is sqrt(2) x as wide as one run's.
        spread = old.spread if old.spread is not None else new.spread
        noise = tolerance.noise * math.sqrt(2) * spread if spread is not None else 0.0
        allowed = max(rel, floor, noise)
        basis = ("runs' intervals" if allowed == noise and noise > 0
                 else f"{tolerance.relative * 100:g} % of old" if allowed == rel
                 else f"floor {floor:g} {new.unit}")
    worse = new.value - old.value if better == "lower" else old.value - new.value
    if worse > allowed + 1e-12:
        verdict = REGRESSED
    elif -worse > allowed + 1e-12:
        verdict = IMPROVED
    else:
        verdict = SAME
    return Row(new.key, new.unit, better, old.value, new.value, allowed, basis, verdict, decides)


def compare(old: Mapping[str, Any], new: Mapping[str, Any], tolerance: Tolerance | None = None,
            *, strict: bool = False) -> Comparison:
    tolerance = tolerance or Tolerance()
    a, b = measures(old), measures(new)
    rows = [judge(a[k], b[k], tolerance) for k in a if k in b]
    order = {REGRESSED: 0, MISSING: 1, IMPROVED: 2, SAME: 3}
    rows.sort(key=lambda r: (order[r.verdict], not r.decides))
    run_a, run_b = old.get("run") or {}, new.get("run") or {}
    return Comparison(str(run_a.get("id")), str(run_b.get("id")),
                      str(run_a.get("status")), str(run_b.get("status")), rows,
                      only_old=sorted(k for k in a if k not in b),
                      only_new=sorted(k for k in b if k not in a), strict=strict,
                      differences=differences(old, new))


# --- rendering --------------------------------------------------------------------------------

def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "share":
        return f"{value * 100:.2f} %"
    text = f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return f"{text} {unit}".rstrip()


def fmt_delta(row: Row) -> str:
    d = row.delta
    if d is None:
        return "—"
    if row.unit == "share":
        return f"{d * 100:+.2f} pp"
    pct = row.delta_pct
    return f"{d:+.4g}" + (f" ({pct:+.1f} %)" if pct is not None else "")


def fmt_allowed(row: Row) -> str:
    if row.basis.startswith("count"):
        return "0 (count)"
    if row.verdict == MISSING or row.basis == "old run had none":
        return "—"
    value = f"{row.allowed * 100:.2f} pp" if row.unit == "share" else f"±{row.allowed:.3g}"
    return f"{value} ({row.basis})"


ICON = {REGRESSED: "❌", MISSING: "⚠️", IMPROVED: "✅", SAME: "➖"}
HEADER = ["figure", "better", "old", "new", "delta", "allowed", "verdict"]


def table_rows(cmp: Comparison) -> list[list[str]]:
    return [[r.key, r.better, fmt_value(r.old, r.unit), fmt_value(r.new, r.unit),
             fmt_delta(r), fmt_allowed(r),
             r.verdict + ("" if r.decides or r.verdict == SAME else " (not gated)")]
            for r in cmp.rows]


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(cmp: Comparison) -> str:
    icon = "❌" if cmp.regressed else "✅"
    out = [f"## {icon} compare {_cell(cmp.old_id)} → {_cell(cmp.new_id)}", "",
           f"**{cmp.headline()}**", ""]
    for d in cmp.differences:
        out.append(f"- {'⛔ not comparable' if d.refuse else '⚠️ differs'}: "
                   f"{_cell(d.describe())}")
    if cmp.differences:
        out.append("")
    out += ["Allowance per row: max(relative tolerance × old, the unit's floor, √2 × half the "
            "baseline's ~95 % interval); counts of lost writes / anomalies allow no increase. "
            "Rows marked (not gated) do not fail the comparison.", "",
           "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r, cells in zip(cmp.rows, table_rows(cmp), strict=True):
        cells[-1] = f"{ICON[r.verdict]} {cells[-1]}"
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if cmp.only_old or cmp.only_new:
        out += ["", f"Not compared: {len(cmp.only_old)} only in the old run, "
                    f"{len(cmp.only_new)} only in the new run."]
        if cmp.only_old:
            out.append("- only in old: " + _cell(", ".join(cmp.only_old[:20]))
                       + (" …" if len(cmp.only_old) > 20 else ""))
        if cmp.only_new:
            out.append("- only in new: " + _cell(", ".join(cmp.only_new[:20]))
                       + (" …" if len(cmp.only_new) > 20 else ""))
    return "\n".join(out) + "\n"
