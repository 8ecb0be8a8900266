"""`reports/index.html`: every run in a reports folder, its verdict and its key figures over time.

Runs are compared only with like runs: the page groups them by command (`run` or `load`),
profile and target, and plots each group on its own (a quick run of the reference store and a
ci run of a Node.js store are not one series). Within a group, each gated figure -- one chaos
scenario's MTTD, one benchmark ratio, one load percentile -- is a line of its own drawn against
its own bound: black hole's MTTD is judged against the operation deadline + 0.2 s, not against
the 0.5 s of the gate. The figures are report.json's `figures` (reports without that list: each
gate's worst figure, from its check). Harness errors and interrupted runs are attempts, not
runs: listed apart with what stopped them, never plotted. Runs whose report.json cannot be read
are listed as unreadable rather than breaking the page. Links are relative (the folder can be
copied as a CI artifact).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report import stamp
from harness.report.html.charts import WIDTH, Chart
from harness.report.html.style import CSS
from harness.report.html.svg import Panel, Scale, esc, fmt, legend_rows, num, svg
from harness.report.redact import scrub
from harness.report.verdict import UNFINISHED

MAX_RUNS = 200
SERIES_CLASSES = ("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7")
DEFAULT_TARGET = "each suite's default"


@dataclass(frozen=True)
class RunEntry:
    folder: str
    report: Mapping[str, Any] | None
    problem: str | None = None

    @property
    def run(self) -> Mapping[str, Any]:
        run = (self.report or {}).get("run")
        return run if isinstance(run, Mapping) else {}

    @property
    def config(self) -> Mapping[str, Any]:
        config = (self.report or {}).get("config")
        return config if isinstance(config, Mapping) else {}

    @property
    def started(self) -> str:
        return str(self.run.get("started_at") or self.folder)

    @property
    def status(self) -> str:
        return str(self.run.get("status") or "unknown")

    @property
    def finished(self) -> bool:
        """A run that reached its verdict (passed or failed). Harness errors and interrupted
        runs are attempts, not runs: listed apart and never plotted as figures of the store."""
        return self.report is not None and self.status not in UNFINISHED

    @property
    def command(self) -> str:
        """`load` for `authstate-harness load` (its config has a `load` block), else `run`."""
        return "load" if isinstance(self.config.get("load"), Mapping) else "run"

    @property
    def target(self) -> str:
        target = self.config.get("target")
        spec = target.get("spec") if isinstance(target, Mapping) else None
        return str(spec) if spec else DEFAULT_TARGET

    @property
    def group(self) -> tuple[str, str, str]:
        """What makes two runs' figures comparable here: command, profile, target."""
        return self.command, str(self.run.get("profile") or "—"), self.target


def collect(reports_dir: Path) -> list[RunEntry]:
    """Run folders (those with a report.json) oldest first, at most the last MAX_RUNS.

    Folder names are UTC stamps, so only the newest MAX_RUNS (by name) are read at all."""
    entries = []
    for path in sorted(reports_dir.glob("*/report.json"))[-MAX_RUNS:]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not isinstance(doc.get("run"), dict):
                raise ValueError("not a report")
            entries.append(RunEntry(path.parent.name, doc))
        except (OSError, ValueError) as exc:
            entries.append(RunEntry(path.parent.name, None, type(exc).__name__))
    entries.sort(key=lambda e: e.started)
    return entries[-MAX_RUNS:]


# --- what each run measured ---------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    value: float | None
    bound: float | None
    op: str


def _gate_checks(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """gate name -> its check, for the gates that applied in this run."""
    out = {}
    for c in (report.get("results") or {}).get("checks") or []:
        if isinstance(c, Mapping) and c.get("kind") == "gate" \
                and c.get("status") != "not applicable":
            out[str(c.get("name", "")).removeprefix("gate ")] = c
    return out


def _gate_values(report: Mapping[str, Any]) -> dict[str, tuple[float | None, float | None, str]]:
    """gate name -> (value, threshold, op) of its check: the worst figure the verdict used."""
    return {name: (num(c.get("value")), num(c.get("threshold")), str(c.get("op") or ""))
            for name, c in _gate_checks(report).items()}


def measured(report: Mapping[str, Any]) -> dict[str, dict[str, Point]]:
    """gate -> {figure name -> Point}: every gated figure of the run with its own bound."""
    applied = _gate_checks(report)
    out: dict[str, dict[str, Point]] = {}
    figures = [f for f in report.get("figures") or [] if isinstance(f, Mapping)]
    for f in figures:
        gate = f.get("gate")
        context = f.get("context") if isinstance(f.get("context"), Mapping) else {}
        if not gate or not f.get("gated", True) or context.get("not_applicable"):
            continue
        if applied and gate not in applied:
            continue
        op = ">=" if f.get("better") == "higher" else "<="
        out.setdefault(str(gate), {})[str(f.get("name"))] = Point(
            num(f.get("value")), num(f.get("bound")), op)
    if not figures:  # an older report: each gate's worst figure, from its check
        for name, (value, threshold, op) in _gate_values(report).items():
            out[name] = {"worst figure of the run": Point(value, threshold, op)}
    return out


# --- charts -------------------------------------------------------------------------------------

def _short_names(names: Sequence[str]) -> list[str]:
    """Drop the words every name shares at its start and end ("chaos ", " mttd p95")."""
    words = [n.split() for n in names]
    if len(words) < 2:
        return list(names)
    head = 0
    while all(len(w) > head + 1 for w in words) and len({w[head] for w in words}) == 1:
        head += 1
    tail = 0
    while all(len(w) > head + tail + 1 for w in words) and len({w[-1 - tail] for w in words}) == 1:
        tail += 1
    return [" ".join(w[head:len(w) - tail]) for w in words]


def _trend(gate: str, entries: Sequence[RunEntry], chart_id: str) -> Chart | None:
    """One line per figure of `gate` over the group's runs, each against its own bound."""
    per_run = [measured(e.report or {}).get(gate, {}) for e in entries]
    names = list(dict.fromkeys(name for run in per_run for name in run))
    points = {name: [(float(i), run[name]) for i, run in enumerate(per_run) if name in run]
              for name in names}
    values = [p.value for pts in points.values() for _, p in pts if p.value is not None]
    if not values:
        return None
    latest_bound = {name: next((p.bound for _, p in reversed(pts) if p.bound is not None), None)
                    for name, pts in points.items()}
    op = next((p.op for pts in points.values() for _, p in pts), "<=")
    bounds = [b for b in latest_bound.values() if b is not None]
    short = dict(zip(names, _short_names(names), strict=True))
    cls = {name: SERIES_CLASSES[i % len(SERIES_CLASSES)] for i, name in enumerate(names)}
    leg, leg_bottom = legend_rows([(cls[n], short[n]) for n in names], 64, 12, WIDTH - 20)
    top = leg_bottom + 12
    lo = min([*values, *bounds, 0.0])
    hi = max([*values, *bounds]) * 1.1 or 1.0
    p = Panel(Scale(-0.5, max(len(entries) - 0.5, 0.5), 64, WIDTH - 20), Scale(lo, hi, top + 130,
                                                                              top))
    p.y_axis(None)
    labels = [e.folder[:16] for e in entries]
    shown = list(range(0, len(entries), max(1, len(entries) // 6)))
    p.x_axis("run (oldest → newest)", [float(i) for i in shown], [labels[i] for i in shown])
    by_bound: dict[float, list[str]] = {}
    for name in names:
        if latest_bound[name] is not None:
            by_bound.setdefault(latest_bound[name], []).append(name)  # type: ignore[index]
    for bound, owners in by_bound.items():
        if len(by_bound) == 1:  # one bound for every line: the plain red gate line
            p.hline(bound, "bound", f"bound {op} {fmt(bound)}")
        else:
            who = ", ".join(short[o] for o in owners)
            p.hline(bound, f"bnd {cls[owners[0]]}", f"{who}: bound {op} {fmt(bound)}")
    for name in names:
        pts = points[name]
        p.line([(x, pt.value) for x, pt in pts], cls[name], short[name])
        for x, pt in pts:
            if pt.value is None:
                continue
            bound = "" if pt.bound is None else f" (bound {op} {fmt(pt.bound)})"
            p.parts.append(f'<circle class="pt {cls[name]}" cx="{p.x(x):.1f}" '
                           f'cy="{p.y(pt.value):.1f}" r="2.5"><title>{esc(entries[int(x)].folder)}'
                           f": {esc(name)} {fmt(pt.value)}{esc(bound)}</title></circle>")
    p.frame()
    title = f"gate {gate}"
    side = "above" if op == ">=" else "below"
    caption = (f"each gated figure of each run, against its own bound (a dashed line in its "
               f"colour when figures have different bounds); good: every point {side} its "
               "line, with no drift toward it")
    return Chart(title, svg(WIDTH, top + 164, [leg, *p.parts], title=title, marks=p.marks,
                            chart_id=chart_id), caption)


def _group_title(group: tuple[str, str, str], runs: Sequence[RunEntry]) -> str:
    command, profile, target = group
    newest = stamp.shown(runs[-1].run.get("started_at")) if runs else "—"
    return (f"<h3><code>{_t(command)}</code> · profile {_t(profile)} · target {_t(target)}"
            f' <span class="muted">— {len(runs)} run{"s" if len(runs) != 1 else ""}, newest '
            f"{_t(newest)}</span></h3>")


def _trends(entries: Sequence[RunEntry]) -> str:
    groups: dict[tuple[str, str, str], list[RunEntry]] = {}
    for e in entries:
        if e.finished:
            groups.setdefault(e.group, []).append(e)
    out = []
    # the group with the newest run first
    for g, (group, runs) in enumerate(sorted(groups.items(), key=lambda kv: kv[1][-1].started,
                                             reverse=True)):
        gates = sorted({gate for e in runs for gate in measured(e.report or {})})
        charts = [c for i, gate in enumerate(gates)
                  if (c := _trend(gate, runs, f"trend-{g}-{i}")) is not None]
        if charts:
            out.append(_group_title(group, runs) + "".join(c.html() for c in charts))
    return "".join(out) or "<p>No gate was measured yet.</p>"


# --- tables -------------------------------------------------------------------------------------

def _t(value: object) -> str:
    return esc(scrub("" if value is None else str(value)))


def _first_line(text: object) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""


def _missed(report: Mapping[str, Any]) -> tuple[list[str], int]:
    gates = _gate_values(report)
    missed = [g for g, (v, b, op) in gates.items()
              if v is None or (b is not None and not (v >= b if op == ">=" else v <= b))]
    return missed, len(gates)


def _runs(entries: Sequence[RunEntry]) -> tuple[str, int]:
    rows = []
    for e in reversed(entries):
        if not e.finished or e.report is None:
            continue
        run = e.run
        missed, gates = _missed(e.report)
        rows.append(
            f'<tr><td><a href="{esc(e.folder)}/report.html">{_t(e.folder)}</a></td>'
            f"<td>{_t(stamp.shown(run.get('started_at')))}</td><td><code>{_t(e.command)}</code>"
            f"</td><td>{_t(run.get('profile'))}</td><td>{_t(e.target)}</td>"
            f'<td class="st-{esc(e.status)}">{_t(e.status)}</td>'
            f'<td class="n">{esc(fmt(num(run.get("duration_s")) or 0))} s</td><td>'
            + (_t("missed: " + ", ".join(missed)) if missed else f"{gates} gates met")
            + "</td></tr>")
    table = ("<table><thead><tr><th>run</th><th>started</th><th>command</th><th>profile</th>"
             "<th>target</th><th>verdict</th><th>duration</th><th>gates</th></tr></thead>"
             "<tbody>" + "".join(rows) + "</tbody></table>")
    return table, len(rows)


def _attempts(entries: Sequence[RunEntry]) -> str:
    """Harness errors, interruptions and unreadable folders: what stopped each, never a verdict."""
    rows = []
    for e in reversed(entries):
        if e.finished:
            continue
        if e.report is None:
            rows.append(f"<tr><td>{_t(e.folder)}</td><td></td><td class=\"st-error\">"
                        f"unreadable</td><td>report.json unreadable ({_t(e.problem)})</td></tr>")
            continue
        why = _first_line(e.run.get("error")) or ("stopped by Ctrl-C"
                                                  if e.status == "interrupted"
                                                  else "no reason recorded")
        rows.append(f'<tr><td><a href="{esc(e.folder)}/report.html">{_t(e.folder)}</a></td>'
                    f"<td>{_t(stamp.shown(e.run.get('started_at')))}</td>"
                    f'<td class="st-{esc(e.status)}">{_t(e.status)}</td><td>{_t(why)}</td></tr>')
    if not rows:
        return ""
    return ("<h2>Attempts that did not finish</h2><p class=\"muted\">Harness errors, "
            "interrupted runs and unreadable folders: not verdicts on the store, not counted "
            "above and not plotted below.</p><table><thead><tr><th>folder</th><th>started</th>"
            "<th>status</th><th>what stopped it</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def render_index(entries: Sequence[RunEntry], title: str = "authstate-harness runs") -> str:
    runs, count = _runs(entries)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"muted\">{count} runs, newest first; each links "
            "to its report.html.</p>" + runs + _attempts(entries)
            + "<h2>Key figures over time</h2><p class=\"muted\">One section per command, "
              "profile and target: only like runs share a chart.</p>" + _trends(entries)
            + "</body></html>\n")


def write_index(reports_dir: Path) -> Path:
    """(Re)write reports_dir/index.html from the run folders in it."""
    from harness.report.writer import atomic_write

    path = reports_dir / "index.html"
    atomic_write(path, render_index(collect(reports_dir)))
    return path
