"""reports/index.html as a newcomer reads it: failed attempts are not runs, unlike runs are not
one series, every scenario is drawn against its own bound."""

from __future__ import annotations

import copy
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
    assert rto and int(rto.group(1)) == 2  # r1 and r4 only
