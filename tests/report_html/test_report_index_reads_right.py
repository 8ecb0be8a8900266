"""reports/index.html as a newcomer reads it: failed attempts are not runs, unlike runs are not
one series, every scenario is drawn against its own bound."""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path
from typing import Any

from report_html_data import quick  # type: ignore[import-not-found]

from harness.report.index_page import write_index


def _save(reports: Path, report: dict[str, Any]) -> None:
    folder = reports / report["run"]["id"]
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")


def _run(run_id: str, day: int, **run: Any) -> dict[str, Any]:
    report = copy.deepcopy(quick())
    report["run"].update(id=run_id, started_at=f"2026-01-{day:02d}T10:00:00+00:00", **run)
    return report


def _never_reached_postgres(run_id: str, day: int) -> dict[str, Any]:
    report = _run(run_id, day, status="error", exit_code=2,
                  error="cannot connect to PostgreSQL at postgresql://app@db:5432/x: "
                        "ConnectionRefusedError\nmore detail")
    report["suites"], report["results"]["checks"], report["figures"] = [], [], []
    report["chaos"] = {"scenarios": []}
    return report


def test_errors_and_interruptions_are_listed_apart_and_never_plotted(tmp_path: Path) -> None:
    _save(tmp_path, _run("r1", 1))
    _save(tmp_path, _never_reached_postgres("r2-error", 2))
    interrupted = _run("r3-interrupted", 3, status="interrupted", exit_code=130)
    rto = next(c for c in interrupted["results"]["checks"]
               if c["name"] == "gate chaos-rto-p95-max-s")
    rto["value"] = 99.0  # a half-finished run's number must not enter the trend
    for f in interrupted["figures"]:
        if f.get("gate") == "chaos-rto-p95-max-s":
            f["value"] = 99.0
    _save(tmp_path, interrupted)
    _save(tmp_path, _run("r4", 4))
    page = write_index(tmp_path).read_text()
    runs, rest = page.split("Attempts that did not finish", 1)
    attempts, trends = rest.split("Key figures over time", 1)
    assert "r1/report.html" in runs and "r4/report.html" in runs
    assert "r2-error" not in runs and "r3-interrupted" not in runs
    assert "2 runs, newest first" in runs
    assert "cannot connect to PostgreSQL" in attempts and "more detail" not in attempts
    assert "stopped by Ctrl-C" in attempts
    rto = re.search(r'<svg[^>]*data-marks="(\d+)"[^>]*aria-label="gate chaos-rto-p95-max-s"',
                    trends)
    assert rto and int(rto.group(1)) == 4 * 2  # 4 scenarios in r1 and r4 only


def test_unlike_runs_are_grouped_by_command_profile_and_target(tmp_path: Path) -> None:
    from report_html_data import real_load_with_fault  # type: ignore[import-not-found]

    _save(tmp_path, _run("a-quick", 1))
    node = _run("b-node", 2)
    node["config"]["target"] = {"spec": "node:examples/node-store/store.js",
                                "by_suite": {"chaos": "node:store.js"}}
    _save(tmp_path, node)
    _save(tmp_path, _run("c-ci", 3, profile="ci"))
    load = real_load_with_fault()
    load["run"].update(id="d-load", started_at="2026-01-04T10:00:00+00:00")
    _save(tmp_path, load)
    page = write_index(tmp_path).read_text()
    table = page[:page.index("Key figures over time")]
    assert "<th>target</th>" in table and "<th>command</th>" in table
    assert "node:examples/node-store/store.js" in table
    trends = page[page.index("Key figures over time"):]
    headings = re.findall(r"<h3>(.*?)</h3>", trends)
    assert len(headings) == 4, headings
    groups = {html.unescape(re.sub(r"<[^>]+>", "", h)).split(" — ")[0] for h in headings}
    assert groups == {
        "load · profile steady · target reference",
        "run · profile ci · target each suite's default",
        "run · profile quick · target node:examples/node-store/store.js",
        "run · profile quick · target each suite's default"}
    sections = re.split(r"<h3>", trends)[1:]
    load_section = next(s for s in sections if s.startswith("<code>load</code>"))
    assert "gate load-p95-max-ms" in load_section and "gate chaos" not in load_section
    for section in sections:  # one run each: no chart mixes runs of another group
        folders = {t.split(":")[0] for t in re.findall(r'<circle class="pt c\d"[^>]*><title>'
                                                        r"([^<]+)</title>", section)}
        assert len(folders) == 1, folders


def test_each_scenario_is_drawn_against_its_own_bound(tmp_path: Path) -> None:
    """Black hole's MTTD (2.05 s) is judged against the deadline + 0.2 s (2.2 s); the gate's
    0.5 s belongs to the other scenarios. A later sever-only run made the old page draw
    black hole's point under a single 0.5 s line."""
    _save(tmp_path, _run("r1", 1))
    sever_only = _run("r2", 2)
    sever_only["figures"] = [f for f in sever_only["figures"]
                             if f["suite"] != "chaos" or f["name"].startswith("chaos sever")]
    sever_only["chaos"]["scenarios"] = sever_only["chaos"]["scenarios"][:1]
    mttd_check = next(c for c in sever_only["results"]["checks"]
                      if c["name"] == "gate chaos-mttd-p95-max-s")
    mttd_check.update(value=0.043, threshold=0.5, detail="chaos sever [resilient] mttd p95")
    _save(tmp_path, sever_only)
    page = write_index(tmp_path).read_text()
    chart = re.search(r'<svg class="chart"[^>]*aria-label="gate chaos-mttd-p95-max-s".*?</svg>',
                      page, re.S)
    assert chart
    svg = html.unescape(chart.group(0))
    assert "blackhole: bound <= 2.2" in svg
    assert "sever, pg-restart, client-crash: bound <= 0.5" in svg
    assert "r1: chaos blackhole [resilient] mttd p95 2.046 (bound <= 2.2)" in svg
    assert 'class="bound"' not in svg  # no single line every scenario is read against
