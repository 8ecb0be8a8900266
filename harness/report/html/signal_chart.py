"""The signal suite in report.html: decrypt outcomes over time, the fault window shaded.

Built from a report.json `signal` item only (its `timeline`: counts per 0.5 s bucket since
traffic started, and the fault windows on the same clock), self-contained inline SVG like the
other charts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.report.html.charts import LEFT, RIGHT, WIDTH, Chart
from harness.report.html.svg import Panel, Scale, legend, num, svg


def signal_timeline(item: Mapping[str, Any], chart_id: str) -> Chart | None:
    timeline = item.get("timeline")
    if not isinstance(timeline, Mapping):
        return None
    dt = num(timeline.get("bucket_s")) or 0.5
    series = {k: [num(v) or 0.0 for v in timeline.get(k) or []]
              for k in ("decrypted", "failed", "lost")}
    n = max((len(v) for v in series.values()), default=0)
    if not n:
        return None
    faults = [w for w in timeline.get("faults") or []
              if isinstance(w, list) and len(w) == 2 and all(num(x) is not None for x in w)]
    x_hi = max([n * dt, *(num(w[1]) or 0.0 for w in faults)])
    top = 24
    rates = {k: [(i * dt, v / dt) for i, v in enumerate(vs)] for k, vs in series.items()}
    y_hi = max([v for pts in rates.values() for _, v in pts] + [1.0]) * 1.08
    panel = Panel(Scale(0, x_hi, LEFT, WIDTH - RIGHT), Scale(0, y_hi, top + 160, top))
    for a, b in faults:
        panel.shade_x(num(a) or 0.0, num(b) or 0.0, title=f"fault window {a:g}-{b:g} s")
    panel.y_axis("deliveries/s")
    panel.x_axis("time since traffic started (s)")
    panel.line(rates["decrypted"], "s-ok", "decrypted/s")
    panel.line(rates["failed"], "s-fail", "failed decrypts/s")
    panel.line(rates["lost"], "s-p99", "lost for good/s")
    panel.frame()
    leg = legend([("s-ok", "decrypted/s"), ("s-fail", "failed decrypts/s"),
                  ("s-p99", "lost/s"), ("fault", "fault window")], LEFT, 14)
    title = f"Signal {item.get('name')} [{item.get('target')}]: decrypt outcomes"
    caption = ("good: decrypted/s carries on through the shaded fault window and no failed "
               "decrypt or lost message appears at all (each is a message a user could not "
               "read: Bad MAC, No session record, Invalid PreKey ID ...)")
    return Chart(title, svg(WIDTH, top + 200, [leg, *panel.parts], title=title,
                            marks=panel.marks, chart_id=chart_id), caption)
