"""The page's one stylesheet: light, printable, colours for the chart classes (no web fonts)."""

CSS = """
:root{--ok:#1f8a3b;--bad:#c62828;--warn:#b26a00;--mut:#6b7280;--ink:#111827;--line:#d1d5db}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:#fff;margin:0 auto;max-width:1400px;padding:16px 20px 40px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 4px}
.verdict{font-size:20px;font-weight:700;padding:8px 12px;border-radius:6px;margin:8px 0}
.verdict.passed{background:#e8f5e9;color:var(--ok)}.verdict.failed,.verdict.error{
background:#fdecea;color:var(--bad)}.verdict.interrupted{background:#fff4e5;color:var(--warn)}
.wide{overflow-x:auto}.nowrap{white-space:nowrap}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f4f6}table.compact{font-size:11px}table.compact td,table.compact th{
padding:2px 3px}td.n{text-align:right;font-variant-numeric:tabular-nums}
.st-passed,.st-met{color:var(--ok)}.st-failed,.st-missed,.st-error{color:var(--bad);font-weight:600}
.st-not-measured,.st-inconclusive,.st-undecided{color:var(--warn);font-weight:600}.st-not-applicable,.st-skipped{color:var(--mut)}
.muted{color:var(--mut)}pre{white-space:pre-wrap;background:#f9fafb;border:1px solid var(--line);
padding:6px;font-size:12px;max-height:320px;overflow:auto}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:14px 0;
break-inside:avoid;page-break-inside:avoid}
figure.chart-box{margin:8px 0;break-inside:avoid;page-break-inside:avoid}
figcaption{font-size:12px;color:#374151;margin-bottom:2px}
svg.chart{max-width:100%;height:auto;display:block}
svg text{font:10px system-ui,"DejaVu Sans",sans-serif;fill:#374151}
svg text.axis{font-size:11px;fill:#111827}svg text.miss{fill:var(--warn)}
svg text.ungated{fill:var(--mut)}
.frame{fill:none;stroke:#9ca3af;stroke-width:1}.grid{stroke:#eef0f3;stroke-width:1}
polyline{fill:none;stroke-width:1.5;stroke-linejoin:round}
.s-ok{stroke:var(--ok);fill:var(--ok)}.s-fail{stroke:var(--bad);fill:var(--bad)}
.s-info{stroke:var(--warn);fill:var(--warn)}.s-p50{stroke:#2563eb;fill:#2563eb}
.s-p99{stroke:#7c3aed;fill:#7c3aed}.s-depth{stroke:#0f766e;fill:#0f766e}
.s-users{stroke:#6b7280;fill:#6b7280}
polyline.s-ok,polyline.s-fail,polyline.s-info,polyline.s-p50,polyline.s-p99,polyline.s-depth,
polyline.s-users,polyline.c0,polyline.c1,polyline.c2,polyline.c3,polyline.c4,polyline.c5,
polyline.c6,polyline.c7{fill:none}
.c0{stroke:#2563eb;fill:#2563eb}.c1{stroke:#dc2626;fill:#dc2626}.c2{stroke:#059669;fill:#059669}
.c3{stroke:#d97706;fill:#d97706}.c4{stroke:#7c3aed;fill:#7c3aed}.c5{stroke:#0891b2;fill:#0891b2}
.c6{stroke:#db2777;fill:#db2777}.c7{stroke:#4b5563;fill:#4b5563}
.st-closed{fill:#86efac;stroke:none}.st-open{fill:#fca5a5;stroke:none}
.st-half{fill:#fde68a;stroke:none}.st-other{fill:#d1d5db;stroke:none}
rect.fault{fill:#fee2e2;opacity:.55;stroke:none}.sw.fault{fill:#fecaca}
line.mttd{stroke:#b45309;stroke-width:1.2;stroke-dasharray:4 2}text.mttd{fill:#b45309}
line.rto{stroke:#1d4ed8;stroke-width:1.2;stroke-dasharray:4 2}text.rto{fill:#1d4ed8}
line.ref{stroke:#9ca3af;stroke-dasharray:2 2}
line.bound{stroke:var(--bad);stroke-width:2}line.bnd{stroke-width:1.5;
stroke-dasharray:6 3}.sw.bound{fill:var(--bad)}
line.range{stroke-width:3}.good{stroke:var(--ok);fill:var(--ok)}.bad{stroke:var(--bad);
fill:var(--bad)}.ungated{opacity:.45}.okzone{fill:#dcfce7;stroke:none}
.mlabel{font-size:10px}
@media print{body{max-width:none;padding:0}.wide{overflow:visible}h2{break-after:avoid}
a{color:inherit}}
"""
