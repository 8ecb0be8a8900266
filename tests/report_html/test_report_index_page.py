"""reports/index.html: every run folder listed newest first with its verdict and a relative
link, an unreadable report listed as such, and each gate's worst figure plotted over runs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from report_html_data import quick  # type: ignore[import-not-found]

from harness.report.index_page import write_index


def _save(folder: Path, report: dict) -> None:  # type: ignore[type-arg]
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")


def test_index_lists_runs_newest_first_with_verdicts_and_trends(tmp_path: Path) -> None:
    older, newer = quick(), quick()
    older["run"]["id"], older["run"]["started_at"] = "20260101T000000Z", "2026-01-01T00:00:00"
    newer["run"]["id"], newer["run"]["started_at"] = "20260102T000000Z", "2026-01-02T00:00:00"
    newer["run"]["status"] = "failed"
    rto = next(c for c in newer["results"]["checks"] if c["name"] == "gate chaos-rto-p95-max-s")
    rto.update(status="missed", value=1.7, passed=False)
    _save(tmp_path / older["run"]["id"], older)
    _save(tmp_path / newer["run"]["id"], newer)
    (tmp_path / "20260103T000000Z").mkdir()
    (tmp_path / "20260103T000000Z" / "report.json").write_text("{not json")
    (tmp_path / "test-output").mkdir()  # no report.json: not a run
    page = write_index(tmp_path).read_text()
    links = re.findall(r'href="([^"]+)"', page)
    assert links == ["20260102T000000Z/report.html", "20260101T000000Z/report.html"]
    assert "report.json unreadable (JSONDecodeError)" in page
    attempts = page[page.index("Attempts that did not finish"):page.index("Key figures")]
    assert "20260103T000000Z" in attempts and "20260102T000000Z" not in attempts
    assert 'class="st-failed">failed' in page and "chaos-rto-p95-max-s" in page
    trend = re.search(r'<svg class="chart" id="trend-[\d-]+" [^>]*aria-label="gate '
                      r'chaos-rto-p95-max-s".*?</svg>', page, re.S)
    assert trend and trend.group(0).count('class="mark c0"') == 1  # one line per scenario
    assert trend.group(0).count('<circle class="pt c0"') == 2  # over both runs
    assert not re.search(r"https?://", page)


def test_gates_that_did_not_apply_are_not_plotted(tmp_path: Path) -> None:
    report = copy.deepcopy(quick())
    for check in report["results"]["checks"]:
        if check["name"].startswith("gate bench"):
            check.update(status="not applicable", value=None)
    _save(tmp_path / "r1", report)
    page = write_index(tmp_path).read_text()
    assert 'aria-label="gate bench-bulk-min-ratio"' not in page
    assert 'aria-label="gate chaos-rto-p95-max-s"' in page
