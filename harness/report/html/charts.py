"""The report's charts, each built from report.json data only, each with axes, units and a caption.

Every function returns `Chart` (SVG markup + caption), or None when the data it needs is absent,
so a report of an older run or a partial run simply shows fewer charts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.report.html.svg import Panel, Scale, esc, fmt, legend, log_range, num, svg

WIDTH = 1160  # the page is up to 1400 px wide (style.py); narrower screens scale charts down
LEGEND_CHAR_PX = 6.2  # a conservative width of one 10 px legend character (measured ~5.6)
LEFT, RIGHT = 64, 64


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    caption: str

    def html(self) -> str:
        return (f'<figure class="chart-box"><figcaption><b>{esc(self.title)}</b> — '
                f'{esc(self.caption)}</figcaption>{self.svg}</figure>')


def _stats(value: Any) -> dict[str, float | None]:
    m = value if isinstance(value, Mapping) else {}
    return {k: num(m.get(k)) for k in ("p50", "p95", "max")}


# --- chaos timeline ---------------------------------------------------------------------------

BREAKER_CLASSES = {"closed": "closed", "open": "open", "half-open": "half", "half_open": "half"}


def _breaker_spans(buckets: Sequence[Mapping[str, Any]], dt: float) -> list[tuple[float, float,
                                                                                   str]]:
    spans: list[tuple[float, float, str]] = []
    for b in buckets:
        t, state = num(b.get("t")), b.get("breaker")
        if t is None or not isinstance(state, str):
            continue
        cls = BREAKER_CLASSES.get(state, "other")
        if spans and spans[-1][2] == cls and abs(spans[-1][1] - t) < dt * 1.5:
            spans[-1] = (spans[-1][0], t + dt, cls)
        else:
            spans.append((t, t + dt, cls))
    return spans


def _bucket_width(times: Sequence[float]) -> float:
    gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    return gaps[len(gaps) // 2] if gaps else 0.1


def _markers(scenario: Mapping[str, Any]) -> list[tuple[float, str, str]]:
    """(time, css class, label) of MTTD p95 after each fault start and RTO p95 after each end
    (process faults: after PostgreSQL accepted connections again)."""
    windows = [w for w in scenario.get("fault_windows") or [] if isinstance(w, Mapping)]
    mttd, rto = _stats(scenario.get("mttd_s"))["p95"], _stats(scenario.get("rto_s"))["p95"]
    pg = scenario.get("pg_recovery_s")
    pg_s = _stats(pg)["p50"] if isinstance(pg, Mapping) else num(pg)
    out = []
    for i, w in enumerate(windows):
        start, end = num(w.get("start_s")), num(w.get("end_s"))
        if start is not None and mttd is not None:
            out.append((start + mttd, "mttd", f"MTTD {mttd:.3g} s" if i == 0 else ""))
        if end is not None and rto is not None:
            out.append((end + (pg_s or 0.0) + rto, "rto", f"RTO {rto:.3g} s" if i == 0 else ""))
    return out


def chaos_timeline(scenario: Mapping[str, Any], chart_id: str) -> Chart | None:
    buckets = [b for b in scenario.get("timeline") or [] if isinstance(b, Mapping)
               and num(b.get("t")) is not None]
    if not buckets:
        return None
    times = [num(b["t"]) or 0.0 for b in buckets]
    dt = _bucket_width(times)
    windows = [(num(w.get("start_s")), num(w.get("end_s")), str(w.get("kind") or "fault"))
               for w in scenario.get("fault_windows") or [] if isinstance(w, Mapping)]
    windows = [(a, b, k) for a, b, k in windows if a is not None and b is not None]
    markers = _markers(scenario)
    t_hi = max([times[-1] + dt, *[m[0] for m in markers], *[b for _, b, _ in windows]])
    x_lo, x_hi = 0.0, t_hi

    rate = {k: [(t, (num(b.get(k)) or 0.0) / dt) for t, b in zip(times, buckets, strict=True)]
            for k in ("ok", "fail", "info")}
    lat = {k: [(t, num(b.get(k))) for t, b in zip(times, buckets, strict=True)]
           for k in ("p50_ms", "p99_ms")}
    depth = [(t, num(b.get("journal_depth"))) for t, b in zip(times, buckets, strict=True)]
    has_depth = any(v is not None for _, v in depth)
    spans = _breaker_spans(buckets, dt)

    top = 24
    heights = {"ops": 110, "lat": 90, "band": 12, "depth": 60}
    gap = 10
    y_ops = (top, top + heights["ops"])
    y_lat = (y_ops[1] + gap, y_ops[1] + gap + heights["lat"])
    y_band = (y_lat[1] + gap, y_lat[1] + gap + heights["band"])
    y_depth = (y_band[1] + 4, y_band[1] + 4 + heights["depth"])
    bottom = (y_depth[1] if has_depth else y_band[1]) + 32
    x0, x1 = LEFT, WIDTH - RIGHT

    def xs() -> Scale:
        return Scale(x_lo, x_hi, x0, x1)

    def shade(p: Panel, labels: bool = False) -> None:
        for a, b, kind in windows:
            p.shade_x(a, b, title=f"fault {kind}: {a:.2f}-{b:.2f} s")
        for t, cls, label in markers:
            p.vline(t, cls, label if labels else None,
                    title=f"{label or cls.upper()} at t={t:.2f} s")

    ops_max = max([v for series in rate.values() for _, v in series] + [1.0])
    ops = Panel(xs(), Scale(0, ops_max * 1.08, y_ops[1], y_ops[0]))
    shade(ops, labels=True)
    ops.y_axis("ops/s")
    ops.x_axis(None, tick_labels=False)
    ops.line(rate["ok"], "s-ok", "ok ops/s")
    ops.line(rate["info"], "s-info", "indeterminate (info) ops/s")
    ops.line(rate["fail"], "s-fail", "failed ops/s")
    ops.frame()

    lo, hi = log_range([v for s in lat.values() for _, v in s])
    lp = Panel(xs(), Scale(lo, hi, y_lat[1], y_lat[0], log=True))
    shade(lp)
    lp.y_axis("latency ms (log)")
    lp.x_axis(None, tick_labels=False)
    lp.line(lat["p50_ms"], "s-p50", "p50 latency ms")
    lp.line(lat["p99_ms"], "s-p99", "p99 latency ms")
    lp.frame()

    band = Panel(xs(), Scale(0, 1, y_band[1], y_band[0]))
    band.text(x0 - 4, y_band[1] - 2, "breaker", anchor="end")
    band.step_band(spans, y_band[0], y_band[1], "breaker ")
    band.frame()
    panels = [ops, lp, band]
    if has_depth:
        dmax = max([v or 0.0 for _, v in depth] + [1.0])
        dp = Panel(xs(), Scale(0, dmax * 1.08, y_depth[1], y_depth[0]))
        shade(dp)
        dp.y_axis("journal rows", ticks=[0, dmax])
        dp.line(depth, "s-depth", "journal depth (rows)")
        dp.frame()
        panels.append(dp)
    last = panels[-1]
    last.x_axis("time since traffic started (s)", grid=False)

    leg = legend([("s-ok", "ok/s"), ("s-fail", "failed/s"), ("s-info", "indeterminate/s"),
                  ("s-p50", "p50 ms"), ("s-p99", "p99 ms"), ("st-closed", "breaker closed"),
                  ("st-open", "open"), ("st-half", "half-open"), ("s-depth", "journal depth"),
                  ("fault", "fault window")], x0, 14)
    body = [leg, *(part for p in panels for part in p.parts)]
    name = scenario.get("name") or "scenario"
    title = f"{name} timeline"
    caption = ("good: the ok line barely dips in the shaded fault window, no red failures, "
               "latency back to its pre-fault level and the breaker closed with the journal at 0 "
               "soon after the RTO marker. Buckets of "
               f"{dt * 1000:.0f} ms; markers at fault start + MTTD p95 and fault end + RTO p95"
               + (" (after PostgreSQL accepted connections again)"
                  if scenario.get("pg_recovery_s") else "")
               + (f"; timeline of repetition 1 of {scenario.get('repetitions')}"
                  if (num(scenario.get("repetitions")) or 1) > 1 else ""))
    marks = sum(p.marks for p in panels)
    return Chart(title, svg(WIDTH, bottom, body, title=title, marks=marks, chart_id=chart_id),
                 caption)


# --- ranges against a gate (RTO / MTTD) -------------------------------------------------------

@dataclass(frozen=True)
class RangeRow:
    label: str
    p50: float | None
    p95: float | None
    max: float | None
    bound: float | None
    gated: bool = True
    missing: str = "not measured"  # what to say when there is no p95 (e.g. "skipped")


def range_chart(rows: Sequence[RangeRow], *, title: str, unit: str, caption: str,
                chart_id: str) -> Chart | None:
    """Per row: p50..max range, the p95 (the gated statistic) as a diamond, the bound as a red
    tick. Rows without any number are listed as "not measured"."""
    if not rows:
        return None
    label_w = min(260, 12 + 6.3 * max(len(r.label) for r in rows))
    row_h, top = 22, 22
    height = top + row_h * len(rows) + 34
    values = [v for r in rows for v in (r.p50, r.p95, r.max, r.bound) if v is not None]
    hi = max([*values, 0.001]) * 1.1
    p = Panel(Scale(0, hi, label_w, WIDTH - 30), Scale(0, len(rows), top, top + row_h * len(rows)))
    p.x_axis(unit)
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        cls = "" if r.gated else " ungated"
        p.text(label_w - 6, cy + 4, r.label + ("" if r.gated else " (not gated)"),
               cls="tick" + cls, anchor="end")
        if r.bound is not None:
            bx = p.x(r.bound)
            p.parts.append(f'<line class="bound" x1="{bx:.1f}" x2="{bx:.1f}" y1="{cy - 9:g}" '
                           f'y2="{cy + 9:g}"><title>bound {fmt(r.bound)} {esc(unit)}</title>'
                           '</line>')
        if r.p95 is None:
            p.text(label_w + 4, cy + 4, r.missing, cls="tick miss")
            continue
        lo = r.p50 if r.p50 is not None else r.p95
        top_v = r.max if r.max is not None else r.p95
        ok = r.bound is None or r.p95 <= r.bound
        state = ("good" if ok else "bad") + cls
        p.parts.append(f'<line class="mark range {state}" x1="{p.x(lo):.1f}" '
                       f'x2="{p.x(top_v):.1f}" y1="{cy:g}" y2="{cy:g}"><title>p50 {fmt(lo)} .. '
                       f'max {fmt(top_v)} {esc(unit)}</title></line>')
        x95 = p.x(r.p95)
        p.parts.append(f'<path class="mark p95 {state}" d="M{x95:.1f} {cy - 6:g}l6 6-6 6-6-6z">'
                       f'<title>p95 {fmt(r.p95)} {esc(unit)}'
                       + (f" (bound {fmt(r.bound)})" if r.bound is not None else "")
                       + "</title></path>")
        p.marks += 2
        p.text(WIDTH - 28, cy + 4, f"{fmt(r.p95)}", anchor="end")
    p.frame()
    body = [legend([("good", "p50..max, ◆ p95 within bound"), ("bad", "p95 over bound"),
                    ("bound", "bound (gate)")], label_w, 12), *p.parts]
    return Chart(title, svg(WIDTH, height, body, title=title, marks=p.marks, chart_id=chart_id),
                 caption)


# --- benchmark ratios -------------------------------------------------------------------------

def bench_ratios(figures: Sequence[Mapping[str, Any]], chart_id: str) -> Chart | None:
    benches = [f for f in figures if f.get("suite") == "bench" and f.get("unit") == "x"]
    if not benches:
        return None
    benches.sort(key=lambda f: (not f.get("gated", True), str(f.get("name"))))
    label_w = min(300, 12 + 6.1 * max(len(str(f.get("name"))) for f in benches))
    row_h, top = 22, 22
    height = top + row_h * len(benches) + 34
    vals = [v for f in benches for v in (num(f.get("value")), num(f.get("bound"))) if v]
    hi = min(max([*vals, 1.5]) * 1.08, 5.0)
    p = Panel(Scale(0, hi, label_w, WIDTH - 60), Scale(0, 1, top, top + row_h * len(benches)))
    p.x_axis("ratio ours / baseline (same run)")
    p.vline(1.0, "ref", "1.0 = parity", label_y=top - 3)
    for i, f in enumerate(benches):
        cy = top + row_h * i + row_h / 2
        gated = f.get("gated", True)
        higher = f.get("better") == "higher"
        bound, value = num(f.get("bound")), num(f.get("value"))
        metric = (f.get("context") or {}).get("metric") or ""
        p.text(label_w - 6, cy + 4, str(f.get("name")), cls="tick" + ("" if gated
                                                                       else " ungated"),
               anchor="end")
        if bound is not None:
            a, b = (bound, hi) if higher else (0.0, bound)
            p.parts.append(f'<rect class="okzone" x="{p.x(a):.1f}" y="{cy - 8:g}" '
                           f'width="{max(p.x(min(b, hi)) - p.x(a), 0):.1f}" height="16">'
                           f'<title>{"≥" if higher else "≤"} {fmt(bound)} passes</title></rect>')
            p.parts.append(f'<line class="bound" x1="{p.x(min(bound, hi)):.1f}" '
                           f'x2="{p.x(min(bound, hi)):.1f}" y1="{cy - 9:g}" y2="{cy + 9:g}"/>')
        if value is None:
            p.text(label_w + 4, cy + 4, "not measured", cls="tick miss")
            continue
        ok = f.get("passed") is not False
        state = ("good" if ok else "bad") + ("" if gated else " ungated")
        p.parts.append(f'<circle class="mark dot {state}" cx="{p.x(min(value, hi)):.1f}" '
                       f'cy="{cy:g}" r="5"><title>{esc(f.get("name"))}: {value:.3f} '
                       f'({esc(metric)}; {"higher" if higher else "lower"} is better)</title>'
                       '</circle>')
        p.marks += 1
        p.text(WIDTH - 56, cy + 4, f"{value:.3f}" + (" ▶" if value > hi else ""))
    p.frame()
    body = [legend([("okzone", "passing zone"), ("good", "ratio met"), ("bad", "ratio missed"),
                    ("bound", "gate")], label_w, 12), *p.parts]
    title = "Benchmark ratios against their gates"
    caption = ("good: every dot inside its green zone. Throughput ratios must reach their "
               "gate (higher is better), latency ratios stay under it (lower is better); grey "
               "rows are not gated")
    return Chart(title, svg(WIDTH, height, body, title=title, marks=p.marks, chart_id=chart_id),
                 caption)


# --- load -------------------------------------------------------------------------------------

def _nines(percentile: float) -> float:
    """x position of a percentile on a "nines" log axis: 90 -> 1, 99 -> 2, 99.99 -> 4."""
    if percentile >= 100:
        return 5.0
    return min(-math.log10(1 - percentile / 100), 5.0)


OP_CLASSES = ("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7")


def latency_curves(load: Mapping[str, Any], chart_id: str) -> Chart | None:
    ops = load.get("ops")
    if not isinstance(ops, Mapping):
        return None
    curves = []
    for name, op in ops.items():
        curve = op.get("hdr_curve") if isinstance(op, Mapping) else None
        pts = [(num(c[0]), num(c[1])) for c in curve or []
               if isinstance(c, Sequence) and len(c) >= 2]
        pts = [(p, v) for p, v in pts if p is not None and v is not None and p >= 0]
        if pts:
            curves.append((str(name), sorted(pts)))
    if not curves:
        return None
    # the legend column is as wide as the longest name (up to 40 % of the chart; longer names
    # are shortened with the full one in a tooltip), the plot gets the rest
    longest = max(len(name) for name, _ in curves)
    max_chars = int((WIDTH * 0.4 - 28) / LEGEND_CHAR_PX)
    legend_w = 28 + LEGEND_CHAR_PX * min(longest, max_chars)
    x0, x1, top = LEFT, WIDTH - legend_w - 16, 24
    h = max(220, 14 * len(curves))
    lo, hi = log_range([v for _, c in curves for _, v in c])
    p = Panel(Scale(0, 5, x0, x1), Scale(lo, hi, top + h, top, log=True))
    ticks = [_nines(q) for q in (50, 90, 99, 99.9, 99.99)] + [5.0]
    p.x_axis("percentile (log scale of nines)", ticks,
             ["p50", "p90", "p99", "p99.9", "p99.99", "max"])
    p.y_axis("latency ms (log)")
    items = []
    for i, (name, c) in enumerate(curves):
        cls = OP_CLASSES[i % len(OP_CLASSES)]
        p.line([(_nines(q), v) for q, v in c], cls, f"{name} latency by percentile", dots=True)
        items.append((cls, name))
    p.frame()
    def shown(name: str) -> str:
        return name if len(name) <= max_chars else name[:max_chars - 1] + "…"

    leg = "".join(f'<rect class="sw {cls}" x="{x1 + 12:g}" y="{top + 14 * i}" width="12" '
                  f'height="8"/><text class="tick" x="{x1 + 28:g}" y="{top + 8 + 14 * i}">'
                  f'<title>{esc(name)}</title>{esc(shown(name))}</text>'
                  for i, (cls, name) in enumerate(items))
    title = "Latency percentile curves per operation (HDR)"
    caption = ("good: flat curves low on the chart; a curve that bends up sharply after p99 is "
               "a tail (queueing, lock waits, GC). Log-log: each gridline is 10x")
    return Chart(title, svg(WIDTH, top + h + 36, [*p.parts, leg], title=title, marks=p.marks,
                            chart_id=chart_id), caption)


def p95_of(value: object) -> float | None:
    """A figure that is a number, or a spread over companies ({"p50", "p95", "max", ...}): the
    p95 the gates judge."""
    return num(value.get("p95")) if isinstance(value, Mapping) else num(value)


def load_timeline(load: Mapping[str, Any], chart_id: str) -> Chart | None:
    rows = [r for r in load.get("timeline") or [] if isinstance(r, Mapping)
            and num(r.get("t_s")) is not None]
    if not rows:
        return None
    ts = [num(r["t_s"]) or 0.0 for r in rows]
    dt = _bucket_width(ts) or 1.0
    fault = load.get("fault") if isinstance(load.get("fault"), Mapping) else None
    window = fault.get("window") if fault else None
    x_hi = max([ts[-1] + dt, *(num(w) or 0.0 for w in (window or []))])
    x0, x1 = LEFT, WIDTH - RIGHT
    ok = [(t, (num(r.get("ok")) or 0.0) / dt) for t, r in zip(ts, rows, strict=True)]
    fail = [(t, (num(r.get("fail")) or 0.0) / dt) for t, r in zip(ts, rows, strict=True)]
    p99 = [(t, num(r.get("p99_ms"))) for t, r in zip(ts, rows, strict=True)]
    users = [(t, num(r.get("users"))) for t, r in zip(ts, rows, strict=True)]
    top = 24
    ops = Panel(Scale(0, x_hi, x0, x1), Scale(0, max([v for _, v in ok + fail] + [1]) * 1.08,
                                               top + 110, top))
    lo, hi = log_range([v for _, v in p99])
    lat = Panel(Scale(0, x_hi, x0, x1), Scale(lo, hi, top + 210, top + 120, log=True))
    umax = max([v or 0 for _, v in users] + [1])
    us = Panel(Scale(0, x_hi, x0, x1), Scale(0, umax * 1.08, top + 280, top + 220))
    panels = [ops, lat, us]
    marks: list[tuple[float, str, str]] = []
    if window and len(window) == 2 and num(window[0]) is not None and num(window[1]) is not None:
        a, b = num(window[0]) or 0.0, num(window[1]) or 0.0
        mttd = p95_of(fault.get("mttd_s"))  # type: ignore[union-attr]
        rto = p95_of(fault.get("rto_s"))  # type: ignore[union-attr]
        if mttd is not None:
            marks.append((a + mttd, "mttd", f"MTTD p95 {mttd:.3g} s"))
        if rto is not None:
            marks.append((b + rto, "rto", f"RTO p95 {rto:.3g} s"))
        for i, p in enumerate(panels):
            p.shade_x(a, b, title=f"fault window {a:g}-{b:g} s")
            for t, cls, label in marks:
                p.vline(t, cls, label if i == 0 else None)
    ops.y_axis("ops/s")
    ops.x_axis(None, tick_labels=False)
    ops.line(ok, "s-ok", "ok ops/s")
    ops.line(fail, "s-fail", "failed ops/s")
    lat.y_axis("p99 ms (log)")
    lat.x_axis(None, tick_labels=False)
    lat.line(p99, "s-p99", "p99 latency ms")
    us.y_axis("users", ticks=[0, umax])
    us.line(users, "s-users", "simulated users")
    us.x_axis("time since load started (s)", grid=False)
    for p in panels:
        p.frame()
    leg = legend([("s-ok", "ok/s"), ("s-fail", "failed/s"), ("s-p99", "p99 ms"),
                  ("s-users", "users"), ("fault", "fault window")], x0, 14)
    title = "Load timeline"
    caption = ("good: ops/s flat once all users are in, no failed ops, p99 steady under its "
               "gate" + ("; during the shaded fault window ops/s may dip but must come back "
                         "by the RTO marker" if marks else ""))
    body = [leg, *(part for p in panels for part in p.parts)]
    return Chart(title, svg(WIDTH, top + 316, body, title=title,
                            marks=sum(p.marks for p in panels), chart_id=chart_id), caption)


def load_scale(load: Mapping[str, Any], chart_id: str) -> Chart | None:
    steps = [s for s in load.get("scale") or [] if isinstance(s, Mapping)
             and num(s.get("companies")) is not None]
    if len(steps) < 1:
        return None
    xs = [num(s["companies"]) or 0.0 for s in steps]
    top = 24
    x = Scale(0, max(xs) * 1.05, LEFT, WIDTH - RIGHT)
    thr = [(c, num(s.get("ops_per_s"))) for c, s in zip(xs, steps, strict=True)]
    p99 = [(c, num(s.get("p99_ms"))) for c, s in zip(xs, steps, strict=True)]
    a = Panel(x, Scale(0, max([v or 0 for _, v in thr] + [1]) * 1.1, top + 110, top))
    lo, hi = log_range([v for _, v in p99])
    b = Panel(Scale(0, max(xs) * 1.05, LEFT, WIDTH - RIGHT),
              Scale(lo, hi, top + 210, top + 120, log=True))
    a.y_axis("ops/s")
    a.x_axis(None, tick_labels=False)
    a.line(thr, "s-ok", "throughput ops/s", dots=True)
    b.y_axis("p99 ms (log)")
    b.x_axis("companies")
    b.line(p99, "s-p99", "p99 latency ms", dots=True)
    a.frame()
    b.frame()
    title = "Scale: throughput and p99 by number of companies"
    caption = "good: throughput grows with companies while p99 stays flat"
    body = [legend([("s-ok", "ops/s"), ("s-p99", "p99 ms")], LEFT, 14), *a.parts, *b.parts]
    return Chart(title, svg(WIDTH, top + 246, body, title=title, marks=a.marks + b.marks,
                            chart_id=chart_id), caption)
