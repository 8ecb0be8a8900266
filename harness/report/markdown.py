"""`report.md`: the run as a CI job summary, rendered only from `report.json`'s content.

Written to be pasted into `$GITHUB_STEP_SUMMARY` as is: verdict first, then what failed, then
the numbers, then the environment. Every cell is escaped (test ids contain `|` and `[`).
"""

from __future__ import annotations

from typing import Any

from harness.report import chaos_table, load_table, signal_table, verdict
from harness.report.md_table import cell as _cell
from harness.report.md_table import table as _table

ICON = {"passed": "✅", "failed": "❌", "missed": "❌", "not measured": "⚠️", "error": "💥",
        "undecided": "❔",
        "interrupted": "⏹️", "not applicable": "➖"}
VERDICT_ICON = {"passed": "✅", "skipped": "⏭️", "failed": "❌", "inconclusive": "❔"}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def render(report: dict[str, Any]) -> str:
    run, results = report["run"], report["results"]
    status = run["status"]
    checks = results["checks"]
    out = [f"# authstate-harness run {run['id']}", "",
           f"**{ICON.get(status, '')} {status.upper()}** — profile `{run['profile']}`, "
           f"suites {', '.join(run['suites'])}, {run['duration_s']:.0f} s, "
           f"exit code {run['exit_code']}. " + verdict.summary(report), "", *_scope(report)]
    if run.get("error"):
        out += ["## Harness error", "", "```", run["error"], "```", ""]

    if checks:
        out += ["## Checks", ""]
        out += _table(["", "check", "result"],
                      [[ICON.get(c["status"], ""), c["name"], c["detail"]] for c in checks])

    failures = [(s["name"], f) for s in report["suites"] for f in s["failures"]]
    if failures:
        out += ["## Failures", ""]
        for suite, f in failures[:50]:
            out += [f"- **{_cell(f['test'])}** ({suite}, {f['outcome']} in {f['phase']})", "",
                    "  ```", *["  " + line for line in (f["message"] or "").splitlines()],
                    "  ```", ""]
        if len(failures) > 50:
            out += [f"... and {len(failures) - 50} more (see junit.xml / pytest.log)", ""]

    if report["suites"]:
        out += ["## Suites", ""]
        out += _table(["suite", "passed", "failed", "errors", "skipped", "duration"],
                      [[s["name"], s["counts"]["passed"], s["counts"]["failed"],
                        s["counts"]["error"], s["counts"]["skipped"],
                        f"{s['duration_s']:.1f} s"] for s in report["suites"]])
    skips = [(s["name"], k) for s in report["suites"] for k in s["skipped"]]
    if skips:
        out += ["Skipped:", ""]
        out += [f"- {suite}: {k['count']} × {_cell(k['reason'])}" for suite, k in skips]
        out += [""]

    out += _chaos(report.get("chaos", {}).get("scenarios") or [])
    out += load_table.markdown(report.get("load"))
    out += signal_table.markdown(report.get("signal") or [])
    out += _benchmarks([f for f in report.get("figures") or [] if f.get("suite") == "bench"])
    stats = report.get("benchmark_stats") or []
    if stats:
        out += ["<details><summary>pytest-benchmark statistics</summary>", ""]
        out += _table(["benchmark", "median", "mean", "stddev", "rounds"],
                      [[s["name"], _seconds(s["median"]), _seconds(s["mean"]),
                        _seconds(s["stddev"]), s["rounds"]] for s in stats])
        out += ["</details>", ""]

    env = report["environment"]
    out += ["## Environment", ""]
    out += _table(["", ""], [
        ["harness", f"{env['harness']['version']} ({_commit(env['harness'])})"],
        ["python", f"{env['python']['version']} ({env['python']['implementation']})"],
        ["machine", f"{env['machine']['platform']}, {env['machine']['usable_cpus']} usable CPUs"
                    + (", as root" if env["machine"]["as_root"] else "")],
        ["postgres", verdict.postgres_text(env)],
        ["node", _node(env)],
        ["fault proxy", (report.get("versions") or {}).get("fault_proxy") or "not used"],
        ["gates", ", ".join(f"{g['name']} {g['op']} {g['value']}" +
                            ("" if g["source"] == "pyproject.toml" else f" ({g['source']})")
                            for g in report["config"]["gates"])],
    ])
    out += ["Files: " + ", ".join(f"`{name}`" for name in report["artifacts"].values()), ""]
    return "\n".join(out)


def _scope(report: dict[str, Any]) -> list[str]:
    """What the verdict is about: which target each suite tested, and what the run left out
    (a PASSED that does not say it skipped resilience is a claim it did not earn)."""
    config = report.get("config") or {}
    by_suite = (config.get("target") or {}).get("by_suite") or {}
    scope = config.get("scope") or {}
    deselected = set(scope.get("suites_deselected") or ())
    targets: dict[str, list[str]] = {}
    for suite, target in by_suite.items():
        if suite not in deselected:
            targets.setdefault(str(target), []).append(suite)
    lines = []
    if targets:
        lines += ["**Tested:** " + "; ".join(
            f"`{_cell(t)}` ({', '.join(suites)})" for t, suites in targets.items()) + ".", ""]
    gaps = [f"suite {name} not run ({_cell(desc.split(':')[0])})"
            for name, desc in (scope.get("suites_not_run") or {}).items()]
    gaps += [f"suite {name}: every test deselected by --pytest-args" for name in deselected]
    missing = scope.get("chaos_scenarios_not_run") or []
    if missing:
        gaps.append(f"chaos scenarios not run: {', '.join(missing)}")
    skipped = sum(s["counts"].get("skipped", 0) for s in report.get("suites") or [])
    if skipped:
        gaps.append(f"{skipped} test(s) skipped (see Suites)")
    if gaps:
        lines += ["**Not covered by this run:** " + "; ".join(gaps) + ".", ""]
    return lines


def _chaos(scenarios: list[dict[str, Any]]) -> list[str]:
    """The RTO table, then one line per scenario on the fault and PostgreSQL's own recovery."""
    if not scenarios:
        return []
    out = ["## Chaos: detection and recovery per scenario", "",
           chaos_table.DEFINITIONS, ""]
    rows = []
    for scenario in scenarios:
        cells = chaos_table.row(scenario)
        cells[-1] = f"{VERDICT_ICON.get(chaos_table.verdict_kind(scenario), '')} {cells[-1]}"
        rows.append(cells)
    out += _table(chaos_table.HEADER, rows)
    out += [f"<sub>{chaos_table.LEGEND}</sub>", ""]
    lines = [(s, chaos_table.notes(s)) for s in scenarios]
    out += [f"- {_cell(s.get('name'))} ({_cell(chaos_table.target(s))}): {_cell(text)}"
            for s, text in lines if text]
    return [*out, ""] if any(text for _, text in lines) else out


def _benchmarks(benches: list[dict[str, Any]]) -> list[str]:
    if not benches:
        return []
    out = ["## Benchmarks (ours vs a baseline measured in the same run)", ""]
    rows = []
    for b in benches:
        c = b.get("context") or {}
        op = ">=" if b["better"] == "higher" else "<="
        if not b.get("gated", True):
            verdict = "not gated"
        elif b.get("passed") is None:
            verdict = "not measured" if b.get("value") is None else "no bound"
        else:
            verdict = "met" if b["passed"] else "MISSED"
        is_ratio = b.get("unit") in ("x", None)  # a figure in µs or ms is no ratio
        ratio = "—" if b.get("value") is None or not is_ratio else f"{b['value']:.3f}"
        bound = "—" if b.get("bound") is None else f"{op} {b['bound']:g}"
        ours, unit = c.get("ours"), c.get("unit", "")
        if not is_ratio and ours is None:
            ours, unit = b.get("value"), b.get("unit", "")
        rows.append([b["name"], c.get("metric"), f"{_fmt(ours)} {unit}".strip(),
                     f"{_fmt(c.get('baseline'))} {c.get('unit', '')}".strip(), ratio, bound,
                     verdict])
    out += _table(["benchmark", "metric", "ours", "baseline", "ratio", "target", ""], rows)
    out += [f"- {_cell(b['name'])}: {_cell(b['notes'])}" for b in benches if b.get("notes")]
    return [*out, ""]


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _commit(harness: dict[str, Any]) -> str:
    commit = harness.get("commit")
    install = harness.get("install") or {}
    if not commit:
        if install.get("kind") not in (None, "clone"):  # an installed copy: how it came
            how = [install["kind"]] + [install[k] for k in ("installer", "environment")
                                       if install.get(k)]
            return "installed: " + ", ".join(how)
        return "not a git checkout"
    return commit[:12] + (", uncommitted changes" if harness.get("dirty") else "")


def _node(env: dict[str, Any]) -> str:
    node = env["node"].get("node")
    if not node:
        return "absent (Baileys interop skipped)"
    baileys = (env.get("session") or {}).get("baileys")
    return f"{node}, Baileys {baileys['version']}" if baileys else f"{node} (Baileys not used)"
