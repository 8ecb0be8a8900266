"""`reports/index.html`: every run in a reports folder, its verdict and its key figures over time.

Key figures are the gates' checks (each gate's worst figure of the run, the number the verdict
was decided on), so the page needs nothing a report does not already hold and a gate added
later simply starts a new line. Runs whose report.json cannot be read are listed as unreadable
rather than breaking the page. Links are relative (the folder can be copied as a CI artifact).
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
from harness.report.html.svg import Panel, Scale, esc, fmt, num, svg
from harness.report.redact import scrub
from harness.report.verdict import UNFINISHED

MAX_RUNS = 200


@dataclass(frozen=True)
class RunEntry:
    folder: str
    report: Mapping[str, Any] | None
    problem: str | None = None

    @property
    def started(self) -> str:
        return str(((self.report or {}).get("run") or {}).get("started_at") or self.folder)

    @property
    def status(self) -> str:
        return str(((self.report or {}).get("run") or {}).get("status") or "unknown")

    @property
    def finished(self) -> bool:
        """A run that reached its verdict (passed or failed). Harness errors and interrupted
        runs are attempts, not runs: listed apart and never plotted as figures of the store."""
        return self.report is not None and self.status not in UNFINISHED


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


def _gate_values(report: Mapping[str, Any]) -> dict[str, tuple[float | None, float | None, str]]:
    """gate name -> (value, threshold, op) of each gate that applied in this run."""
    out = {}
    for c in (report.get("results") or {}).get("checks") or []:
        if not isinstance(c, Mapping) or c.get("kind") != "gate":
            continue
        if c.get("status") == "not applicable":
            continue
        name = str(c.get("name", "")).removeprefix("gate ")
        out[name] = (num(c.get("value")), num(c.get("threshold")), str(c.get("op") or ""))
    return out


def _trend(gate: str, entries: Sequence[RunEntry], idx: int) -> Chart | None:
    pts, bounds, op = [], [], ""
    for i, e in enumerate(entries):
        if e.report is None or not e.finished:
            continue
        value, bound, o = _gate_values(e.report).get(gate, (None, None, ""))
        if value is not None:
            pts.append((float(i), value))
        if bound is not None:
            bounds.append(bound)
            op = o
    if not pts:
        return None
    values = [v for _, v in pts] + bounds
    lo, hi = min([*values, 0.0]), max(values) * 1.1 or 1.0
    p = Panel(Scale(-0.5, max(len(entries) - 0.5, 0.5), 64, WIDTH - 20),
              Scale(lo, hi, 130, 14))
    p.y_axis(None)
    labels = [e.folder[:15] for e in entries]
    shown = list(range(0, len(entries), max(1, len(entries) // 6)))
    p.x_axis("run (oldest → newest)", [float(i) for i in shown], [labels[i] for i in shown])
    if bounds:
        p.hline(bounds[-1], "bound", f"gate {op} {fmt(bounds[-1])}")
    p.line(pts, "s-p50", f"{gate} per run", dots=True)
    p.frame()
    title = f"gate {gate}"
    side = "above" if op == ">=" else "below"
    return Chart(title, svg(WIDTH, 164, p.parts, title=title, marks=p.marks,
                            chart_id=f"trend-{idx}"),
                 f"the worst figure of each run for this gate; good: every point {side} the "
                 "red line, with no drift toward it")


def _t(value: object) -> str:
    return esc(scrub("" if value is None else str(value)))


def _first_line(text: object) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""


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
        run = e.report.get("run") or {}
        why = _first_line(run.get("error")) or ("stopped by Ctrl-C" if e.status == "interrupted"
                                               else "no reason recorded")
        rows.append(f'<tr><td><a href="{esc(e.folder)}/report.html">{_t(e.folder)}</a></td>'
                    f'<td>{_t(stamp.shown(run.get("started_at")))}</td>'
                    f'<td class="st-{esc(e.status)}">'
                    f"{_t(e.status)}</td><td>{_t(why)}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Attempts that did not finish</h2><p class=\"muted\">Harness errors, "
            "interrupted runs and unreadable folders: not verdicts on the store, not counted "
            "above and not plotted below.</p><table><thead><tr><th>folder</th><th>started</th>"
            "<th>status</th><th>what stopped it</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def render_index(entries: Sequence[RunEntry], title: str = "authstate-harness runs") -> str:
    rows = []
    for e in reversed(entries):
        if not e.finished or e.report is None:
            continue
        run = e.report.get("run") or {}
        status = str(run.get("status") or "unknown")
        gates = _gate_values(e.report)
        missed = [g for g, (v, b, op) in gates.items()
                  if v is None or (b is not None and not (v >= b if op == ">=" else v <= b))]
        href = f"{esc(e.folder)}/report.html"
        rows.append(
            f'<tr><td><a href="{href}">{_t(e.folder)}</a></td>'
            f'<td>{_t(stamp.shown(run.get("started_at")))}'
            f'</td><td>{_t(run.get("profile"))}</td><td class="st-{esc(status)}">{_t(status)}'
            f'</td><td class="n">{esc(fmt(num(run.get("duration_s")) or 0))} s</td><td>'
            + (_t(", ".join(missed)) if missed else f"{len(gates)} gates met") + "</td></tr>")
    gates = sorted({g for e in entries if e.report and e.finished
                    for g in _gate_values(e.report)})
    trends = [c for i, g in enumerate(gates) if (c := _trend(g, entries, i)) is not None]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"muted\">{len(rows)} runs, newest first; "
            "each links to its report.html.</p>"
            "<table><thead><tr><th>run</th><th>started</th><th>profile</th><th>verdict</th>"
            "<th>duration</th><th>gates</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>" + _attempts(entries) + "<h2>Key figures over time</h2>"
            + ("".join(c.html() for c in trends) or "<p>No gate was measured yet.</p>")
            + "</body></html>\n")


def write_index(reports_dir: Path) -> Path:
    """(Re)write reports_dir/index.html from the run folders in it."""
    from harness.report.writer import atomic_write

    path = reports_dir / "index.html"
    atomic_write(path, render_index(collect(reports_dir)))
    return path
