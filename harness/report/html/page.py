"""`report.html`: the run as one self-contained page (inline CSS and SVG, no script, no fetch).

Rendered only from report.json's content, like report.md. Every string from the report goes
through `esc` (test ids carry `<`, `&`, quotes) after the same scrubbing as report.md's free
text, so a failure message holding a DSN or key bytes cannot leak here either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.report import chaos_table, load_table, signal_table, stamp, verdict
from harness.report.html import charts, signal_chart
from harness.report.html.charts import RangeRow
from harness.report.html.style import CSS
from harness.report.html.svg import esc, num
from harness.report.redact import scrub


def t(value: object) -> str:
    """Escaped, scrubbed text of a report value."""
    return esc(scrub("" if value is None else str(value)))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _status_cls(status: str) -> str:
    return "st-" + _slug(status)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] | None = None,
           cls: str = "") -> str:
    """Cells are already-escaped HTML."""
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return (f'<div class="wide"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _without_empty_columns(header: Sequence[str], rows: Sequence[Sequence[str]],
                           numeric: set[int]) -> tuple[list[str], list[list[str]], set[int]]:
    """Drop the columns no row has a value in (all "—"): an empty column reads as a finding."""
    keep = [i for i in range(len(header)) if any(row[i] not in ("—", "", esc("—"))
                                                 for row in rows)]
    return ([header[i] for i in keep], [[row[i] for i in keep] for row in rows],
            {n for n, i in enumerate(keep) if i in numeric})


def _fmt(value: Any, digits: int = 4, unit: str = "") -> str:
    v = num(value)
    if v is None:
        return "—"
    text = f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"
    return f"{text} {unit}".strip()


# --- sections ---------------------------------------------------------------------------------

def _header(report: Mapping[str, Any]) -> str:
    run, results = report.get("run") or {}, report.get("results") or {}
    status = str(run.get("status") or results.get("status") or "unknown")
    checks = results.get("checks") or []
    failed = [c for c in checks if not c.get("passed")]
    gates = [c for c in checks if c.get("kind") == "gate"]
    gates_met = sum(c.get("status") == "passed" for c in gates)
    gates_na = sum(c.get("status") == "not applicable" for c in gates)
    gates_text = (f" Gates met: {gates_met} of {len(gates) - gates_na}"
                  + (f" ({gates_na} not applicable)" if gates_na else "") + "."
                  if gates and status not in verdict.UNFINISHED else "")
    out = [f"<h1>authstate-harness run {t(run.get('id'))}</h1>",
           f'<div class="verdict {esc(_slug(status))}">{esc(status.upper())} — '
           f"{esc(verdict.summary(report))}{esc(gates_text)}</div>",
           f'<p class="muted">profile <b>{t(run.get("profile"))}</b> · suites '
           f'{t(", ".join(run.get("suites") or []))} · {_fmt(run.get("duration_s"), 4, "s")} · '
           f'exit code {t(run.get("exit_code"))} · started '
           f'{t(stamp.shown(run.get("started_at")))}<br>'
           f'<code>{t(run.get("command"))}</code></p>']
    if failed:
        out.append("<p><b>Did not pass:</b></p><ul>" + "".join(
            f'<li><span class="{_status_cls(str(c.get("status")))}">{t(c.get("status"))}</span> '
            f'{t(c.get("name"))}: {t(c.get("detail"))}</li>' for c in failed) + "</ul>")
    if run.get("error"):
        out.append(f"<h2>Harness error</h2><pre>{t(run['error'])}</pre>")
    return "".join(out)


def _checks(report: Mapping[str, Any]) -> str:
    checks = (report.get("results") or {}).get("checks") or []
    if not checks:
        return ""
    rows = [[f'<span class="{_status_cls(str(c.get("status")))} nowrap">{t(c.get("status"))}'
             "</span>",
             t(c.get("name")), t(c.get("detail"))] for c in checks]
    return "<h2>Checks</h2>" + _table(["result", "check", "detail"], rows)


def _figure_bound(figures: Sequence[Mapping[str, Any]], scenario: Mapping[str, Any],
                  what: str) -> tuple[float | None, bool]:
    """The bound a scenario's MTTD/RTO p95 figure was judged against, and whether gated."""
    name = f"chaos {scenario.get('name')} [{scenario.get('target')}] {what} p95"
    for f in figures:
        if f.get("suite") == "chaos" and f.get("name") == name:
            return num(f.get("bound")), bool(f.get("gated", True))
    return None, bool(scenario.get("gated", True)) and not scenario.get("contrast")


def _gate_value(report: Mapping[str, Any], gate: str) -> float | None:
    for g in (report.get("config") or {}).get("gates") or []:
        if isinstance(g, Mapping) and g.get("name") == gate:
            return num(g.get("value"))
    return None


def _range_row(report: Mapping[str, Any], scenario: Mapping[str, Any], what: str,
               label: str) -> RangeRow:
    figures = report.get("figures") or []
    stats = scenario.get(f"{what}_s")
    s = stats if isinstance(stats, Mapping) else {}
    bound, gated = _figure_bound(figures, scenario, what)
    if bound is None:
        bound = _gate_value(report, f"chaos-{what}-p95-max-s")
    missing = ("skipped (see the scenario's note)" if scenario.get("verdict") == "skipped"
               else "not measured")
    return RangeRow(label, num(s.get("p50")), num(s.get("p95")), num(s.get("max")), bound, gated,
                    missing)


PHASE = {"rto": "RTO: fault cleared → every acknowledged write and a new one read back "
                "from PostgreSQL", "mttd": "MTTD: fault injected → the callers saw it"}


def _scenario_label(s: Mapping[str, Any]) -> str:
    return f"{s.get('name')} [{s.get('target')}]"


def _chaos(report: Mapping[str, Any]) -> str:
    scenarios = [s for s in (report.get("chaos") or {}).get("scenarios") or []
                 if isinstance(s, Mapping)]
    if not scenarios:
        return ""
    out = ["<h2>Chaos: detection and recovery</h2>",
           f"<p>{t(chaos_table.DEFINITIONS)}</p>"]
    rows = [[t(c) for c in chaos_table.row(s)] for s in scenarios]
    for row, s in zip(rows, scenarios, strict=True):
        row[-1] = f'<span class="st-{chaos_table.verdict_kind(s)}">{row[-1]}</span>'
    out.append(_table(chaos_table.HEADER, rows, numeric={3, 4, 5, 6, 7, 8, 9, 10, 12},
                      cls="compact"))
    out.append(f'<p class="muted legend">{t(chaos_table.LEGEND)}</p>')
    for what, title in (("rto", "RTO p95 per scenario against its gate"),
                        ("mttd", "MTTD p95 per scenario against its bound")):
        chart = charts.range_chart(
            [_range_row(report, s, what, _scenario_label(s)) for s in scenarios],
            title=title, unit="seconds",
            caption=("good: every ◆ (p95 over companies × repetitions) left of its red "
                     "bound; the bar spans p50 to max. " + PHASE[what]),
            chart_id=f"overview-{what}")
        if chart:
            out.append(chart.html())
    for i, s in enumerate(scenarios):
        out.append(_scenario_card(report, s, i))
    return "".join(out)


def _scenario_card(report: Mapping[str, Any], s: Mapping[str, Any], i: int) -> str:
    kind = chaos_table.verdict_kind(s)
    head = (f'<div class="card" id="scenario-{i}-{esc(_slug(_scenario_label(s)))}">'
            f"<h3>{t(s.get('name'))} <span class=\"muted\">"
            f"{t(chaos_table.target(s))}</span> — "
            f'<span class="st-{kind}">{t(chaos_table.verdict(s))}</span></h3>')
    parts = [head]
    if s.get("description") or s.get("proves"):
        parts.append(f"<p>{t(s.get('description'))}. <i>Proves:</i> {t(s.get('proves'))}</p>")
    notes = chaos_table.notes(s)
    if notes:
        parts.append(f'<p class="muted">{t(notes)}</p>')
    examples = s.get("anomaly_examples")
    if isinstance(examples, Mapping) and examples:
        parts.append(f"<pre>{t(examples)}</pre>")
    label = _scenario_label(s)
    rng = charts.range_chart(
        [_range_row(report, s, "mttd", "MTTD"), _range_row(report, s, "rto", "RTO")],
        title=f"{label}: MTTD and RTO against the gates", unit="seconds",
        caption="good: each ◆ (p95) left of its red bound", chart_id=f"gates-{i}")
    timeline = charts.chaos_timeline(s, f"timeline-{i}")
    for chart in (rng, timeline):
        if chart:
            parts.append(chart.html())
    if timeline is None:
        parts.append('<p class="muted">No timeline recorded for this scenario.</p>')
    parts.append("</div>")
    return "".join(parts)


def _load(report: Mapping[str, Any]) -> str:
    load = report.get("load")
    if not isinstance(load, Mapping) or not load:
        return ""
    total = load.get("total") if isinstance(load.get("total"), Mapping) else {}
    out = ["<h2>Load</h2>",
           f"<p>profile <b>{t(load.get('profile'))}</b>, {t(load.get('companies'))} companies, "
           f"{t(load.get('processes'))} processes, {t(load.get('model'))} model"
           + (f" at {_fmt(load.get('rate'))} ops/s" if num(load.get("rate")) else "")
           + f", {_fmt(load.get('duration_s'), 4, 's')}: {_fmt(total.get('count'))} ops, "
           f"{_fmt(total.get('failures'))} failed, {_fmt(total.get('rate'))} ops/s"
           + (f"; bridge ratio {_fmt(load.get('bridge_ratio'), 3)}"
              if num(load.get("bridge_ratio")) is not None else "") + "</p>"]
    out.append(_load_judged(report, load))
    ops = load.get("ops") if isinstance(load.get("ops"), Mapping) else {}
    rows = []
    for name, op in ops.items():
        if not isinstance(op, Mapping):
            continue
        corrected = op.get("corrected") if isinstance(op.get("corrected"), Mapping) else {}
        rows.append([t(name), *(esc(_fmt(op.get(k))) for k in (
            "count", "failures", "rate", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")),
            esc(_fmt(corrected.get("p99_ms")))])
    if rows:
        out.append("<h3>Every phase, per operation</h3><p class=\"muted\">Setup (every company "
                   "pairing at once) and any fault window included: <b>not</b> the figures the "
                   "gates judge (above).</p>")
        out.append(_table(*_without_empty_columns(
            ["operation", "count", "failures", "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms",
             "max ms", "p99 ms corrected"], rows, set(range(1, 10)))))
    fault = load.get("fault")
    if isinstance(fault, Mapping):
        out.append(f"<p>Fault under load: {t(fault.get('schedule'))}; RTO p95 "
                   f"{_fmt(charts.p95_of(fault.get('rto_s')), 3, 's')}, MTTD p95 "
                   f"{_fmt(charts.p95_of(fault.get('mttd_s')), 3, 's')},"
                   f" lost writes {_fmt(fault.get('lost_writes'))}, anomalies "
                   f"{t(fault.get('anomalies') or 'none')}</p>")
    for chart in (charts.latency_curves(load, "load-curves"),
                  charts.load_timeline(load, "load-timeline"),
                  charts.load_scale(load, "load-scale")):
        if chart:
            out.append(chart.html())
    return "".join(out)


def _signal(report: Mapping[str, Any]) -> str:
    items = [i for i in report.get("signal") or [] if isinstance(i, Mapping)]
    if not items:
        return ""
    out = ["<h2>Signal conversations</h2>"]
    for n, item in enumerate(items):
        if item.get("verdict") == "error":
            out.append(f"<p>{t(item.get('name'))} [{t(item.get('target'))}]: error: "
                       f"{t(item.get('reason'))}</p>")
            continue
        out.append(f"<p>{esc(signal_table.summary_line(item))}</p>")
        chart = signal_chart.signal_timeline(item, f"signal-{n}")
        if chart:
            out.append(chart.html())
    return "".join(out)


def _load_judged(report: Mapping[str, Any], load: Mapping[str, Any]) -> str:
    """The steady-state figures the load gates judged, each beside its gate (as report.md's
    steady-state line), before the all-phase table."""
    figures = [f for f in report.get("figures") or [] if isinstance(f, Mapping)]
    rows = [[t(c) for c in row] for row in load_table.judged_rows(figures)]
    steady = load.get("steady") if isinstance(load.get("steady"), Mapping) else {}
    if not rows and not steady:
        return ""
    for row in rows:
        row[-1] = f'<span class="{_status_cls(row[-1])}">{row[-1]}</span>'
    phases = ", ".join(str(p) for p in steady.get("phases") or []) or "—"
    intro = (f"<h3>What the gates judge: steady state</h3><p class=\"muted\">Every store call "
             f"outside setup, any fault window and the recovery after it (phases {t(phases)}): "
             f"{_fmt(steady.get('count'))} calls, {_fmt(steady.get('failures'))} failed.</p>")
    if not rows:  # an older report without figures: the steady section alone
        rows = [[t(k), esc(_fmt(steady.get(f"{k}_ms"), 3, "ms")), "—", ""]
                for k in ("p50", "p95", "p99", "p999")]
    return intro + _table(load_table.JUDGED_HEADER, rows, numeric={1})


def _benchmarks(report: Mapping[str, Any]) -> str:
    figures = [f for f in report.get("figures") or [] if isinstance(f, Mapping)]
    chart = charts.bench_ratios(figures, "bench-ratios")
    if chart is None:
        return ""
    rows = []
    for f in figures:
        if f.get("suite") != "bench":
            continue
        c = f.get("context") or {}
        unit = c.get("unit") or ""
        op = ">=" if f.get("better") == "higher" else "<="
        verdict = ("not gated" if not f.get("gated", True) else "not measured"
                   if f.get("value") is None else "met" if f.get("passed") else "MISSED")
        ratio = f.get("unit") in ("x", None)  # a figure in µs or ms is no ratio: shown as ours
        ours = c.get("ours") if ratio or c.get("ours") is not None else f.get("value")
        ours_unit = unit if ratio or c.get("ours") is not None else str(f.get("unit") or "")
        bound = num(f.get("bound"))
        rows.append([t(f.get("name")), t(c.get("metric")), esc(_fmt(ours, 4, ours_unit)),
                     esc(_fmt(c.get("baseline"), 4, unit)),
                     esc(_fmt(f.get("value"), 4) if ratio else "—"),
                     esc("—" if bound is None else f"{op} {_fmt(bound)}"),
                     f'<span class="{_status_cls(verdict.lower())}">{esc(verdict)}</span>'])
    return ("<h2>Benchmarks (ours vs a baseline measured in the same run)</h2>" + chart.html()
            + _table(["benchmark", "metric", "ours", "baseline", "ratio", "gate", ""], rows,
                     numeric={2, 3, 4}))


def _suites(report: Mapping[str, Any]) -> str:
    suites = [s for s in report.get("suites") or [] if isinstance(s, Mapping)]
    if not suites:
        return ""
    rows = [[t(s.get("name")), *(esc(str((s.get("counts") or {}).get(k, "—")))
                                 for k in ("passed", "failed", "error", "skipped")),
             esc(_fmt(s.get("duration_s"), 4, "s"))] for s in suites]
    out = ["<h2>Suites</h2>", _table(["suite", "passed", "failed", "errors", "skipped",
                                      "duration"], rows, numeric={1, 2, 3, 4, 5})]
    failures = [(s.get("name"), f) for s in suites for f in s.get("failures") or []]
    if failures:
        out.append("<h3>Failures</h3>")
        for suite, f in failures[:50]:
            out.append(f"<p><b>{t(f.get('test'))}</b> ({t(suite)}, {t(f.get('outcome'))} in "
                       f"{t(f.get('phase'))})</p><pre>{t(f.get('message'))}</pre>")
        if len(failures) > 50:
            out.append(f"<p>… and {len(failures) - 50} more (see junit.xml / pytest.log)</p>")
    skips = [(s.get("name"), k) for s in suites for k in s.get("skipped") or []]
    if skips:
        out.append("<p>Skipped:</p><ul>" + "".join(
            f"<li>{t(suite)}: {t(k.get('count'))} × {t(k.get('reason'))}</li>"
            for suite, k in skips) + "</ul>")
    return "".join(out)


def _environment(report: Mapping[str, Any]) -> str:
    env = report.get("environment") or {}
    versions = report.get("versions") or {}
    harness = env.get("harness") or {}
    commit = harness.get("commit")
    commit_text = (str(commit)[:12] + (", uncommitted changes" if harness.get("dirty") else "")
                   if commit else "not a git checkout")
    machine = env.get("machine") or {}
    rows = [["harness", f"{t(harness.get('version'))} ({esc(commit_text)})"],
            ["machine", f"{t(machine.get('platform'))}, {t(machine.get('usable_cpus'))} usable "
                        "CPUs"],
            ["postgres", t(verdict.postgres_text(env))]]
    rows += [[t(k), t(v)] for k, v in versions.items() if k not in ("harness", "postgres") and v]
    gates = (report.get("config") or {}).get("gates") or []
    rows.append(["gates", t(", ".join(f"{g.get('name')} {g.get('op')} {g.get('value')}"
                                      for g in gates if isinstance(g, Mapping)))])
    artifacts = report.get("artifacts") or {}
    rows.append(["files", t(", ".join(str(v) for v in artifacts.values()))])
    return "<h2>Environment and versions</h2>" + _table(["", ""], rows)


def render_html(report: Mapping[str, Any]) -> str:
    run = report.get("run") or {}
    body = [_header(report), _checks(report), _chaos(report), _load(report), _signal(report),
            _benchmarks(report), _suites(report), _environment(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>authstate-harness {t(run.get('id'))}: {t(run.get('status'))}</title>"
            f"<style>{CSS}</style></head><body>" + "".join(body)
            + '<p class="muted">Rendered from report.json by authstate-harness; the page '
              "fetches nothing.</p></body></html>\n")


def fallback_html(report: Mapping[str, Any], problem: str) -> str:
    """A bare page for when rendering failed: the verdict and where the data is."""
    run = report.get("run") or {}
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>authstate-harness {t(run.get('id'))}</title><style>{CSS}</style></head>"
            f"<body><h1>authstate-harness run {t(run.get('id'))}: {t(run.get('status'))}</h1>"
            f"<p>The charts could not be rendered ({t(problem)}); report.md and report.json "
            "in this folder hold every number. Re-render with <code>authstate-harness report "
            "DIR</code> once fixed.</p></body></html>\n")
