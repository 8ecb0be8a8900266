"""report.html as a document: self-contained, escaped, scrubbed, within its size budget, every
chart present with data, and written by the report writer beside report.md."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_html_data import (  # type: ignore[import-not-found]
    HOSTILE_ID,
    KEY_B64,
    PASSWORD,
    real_load_with_fault,
    real_run_with_load,
)

from harness.report import writer
from harness.report.html import render_html
from harness.report.writer import write_report

SIZE_BUDGET_BYTES = 300_000  # 14 chaos scenarios with timelines + load + benchmarks


class _Refs(HTMLParser):
    """Every attribute that makes a browser fetch something, and every element and chart."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.charts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                self.fetching.append((tag, name, value or ""))
        if tag == "svg":
            self.charts.append(dict(attrs))


def _parse(page: str) -> _Refs:
    refs = _Refs()
    refs.feed(page)
    return refs


def test_page_fetches_nothing_no_external_url_no_script(full_report: dict[str, Any]) -> None:
    page = render_html(full_report)
    refs = _parse(page)
    external = [r for r in refs.fetching if re.match(r"\s*(https?:)?//", r[2], re.I)]
    assert external == []
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, re.I)  # CSS fetches
    assert "@import" not in page and "@font-face" not in page
    assert "script" not in refs.tags and "link" not in refs.tags and "iframe" not in refs.tags
    assert not re.search(r"https?://", page)  # not even a namespace URL


def test_every_text_is_escaped_hostile_test_id_renders_as_text(full_report: dict[str, Any]
                                                               ) -> None:
    page = render_html(full_report)
    assert "<script>" not in page and "<b>failed</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;q&quot; &#x27;s]" in page
    assert "1 &lt;b&gt;failed&lt;/b&gt; &amp; more" in page
    refs = _parse(page)  # a well-formed document: the parser saw no stray script element
    assert "script" not in refs.tags
    assert HOSTILE_ID not in page


def test_no_password_or_key_material_in_the_page(full_report: dict[str, Any]) -> None:
    page = render_html(full_report)
    assert PASSWORD not in page
    assert KEY_B64 not in page and KEY_B64[:20] not in page
    assert "postgresql://app:***@db" in page


def test_fourteen_scenarios_with_load_stay_within_the_size_budget(full_report: dict[str, Any]
                                                                  ) -> None:
    size = len(render_html(full_report).encode())
    assert size < SIZE_BUDGET_BYTES, f"{size} bytes"


def test_real_quick_report_renders_small(quick_report: dict[str, Any]) -> None:
    size = len(render_html(quick_report).encode())
    assert size < 150_000, f"{size} bytes for 4 scenarios"


def test_every_chart_present_with_data_marks(full_report: dict[str, Any]) -> None:
    refs = _parse(render_html(full_report))
    ids = [c["id"] for c in refs.charts]
    n = len(full_report["chaos"]["scenarios"])
    expected = ({f"timeline-{i}" for i in range(n)} | {f"gates-{i}" for i in range(n)}
                | {"overview-rto", "overview-mttd", "bench-ratios", "load-curves",
                   "load-timeline", "load-scale"})
    assert set(ids) == expected
    for chart in refs.charts:
        assert int(chart["data-marks"] or 0) > 0, chart["id"]
        assert chart["aria-label"], chart["id"]


def test_every_chart_has_axes_units_and_a_caption(full_report: dict[str, Any]) -> None:
    page = render_html(full_report)
    figures = re.findall(r'<figure class="chart-box"><figcaption>(.*?)</figcaption>(<svg.*?</svg>)',
                         page, re.S)
    assert len(figures) == len(_parse(page).charts)
    for caption, chart in figures:
        assert "good:" in caption
        axis_labels = re.findall(r'<text class="axis"[^>]*>([^<]+)</text>', chart)
        assert axis_labels, caption[:60]
        assert any(re.search(r"\b(s|ms|ops/s|ratio|seconds|percentile|rows|users|companies)\b",
                             label) for label in axis_labels), axis_labels


def test_timeline_marks_fault_window_mttd_and_rto(quick_report: dict[str, Any]) -> None:
    page = render_html(quick_report)
    chart = re.search(r'<svg class="chart" id="timeline-0".*?</svg>', page, re.S)
    assert chart
    svg = chart.group(0)
    assert svg.count('class="fault"') >= 3  # shaded in each panel
    assert re.search(r'class="mlabel mttd"[^>]*>MTTD [\d.]+ s<', svg)
    assert re.search(r'class="mlabel rto"[^>]*>RTO [\d.]+ s<', svg)
    assert "st-open" in svg and "st-closed" in svg  # breaker band
    assert "s-depth" in svg  # journal depth


def test_report_without_chaos_or_load_renders_fewer_charts(quick_report: dict[str, Any]) -> None:
    quick_report["chaos"] = {"scenarios": []}
    quick_report.pop("load", None)
    ids = [c["id"] for c in _parse(render_html(quick_report)).charts]
    assert ids == ["bench-ratios"]


def test_writer_puts_report_html_beside_report_md(tmp_path: Path,
                                                  quick_report: dict[str, Any]) -> None:
    json_path, md_path, html_path = write_report(tmp_path, quick_report)
    assert html_path == tmp_path / "report.html" and md_path.exists()
    assert json.loads(json_path.read_text())["run"]["id"] == quick_report["run"]["id"]
    assert html_path.read_text().startswith("<!DOCTYPE html>")


def test_a_renderer_bug_still_leaves_a_page_and_report_md(
        tmp_path: Path, quick_report: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(report: Any) -> str:
        raise KeyError("boom <x>")

    monkeypatch.setattr(writer, "render_html", broken)
    md_path, html_path = writer.render_views(tmp_path, quick_report)
    assert "# authstate-harness run" in md_path.read_text()
    page = html_path.read_text()
    assert "could not be rendered (KeyError: &#x27;boom &lt;x&gt;&#x27;)" in page


def test_malformed_sections_are_skipped_not_fatal(quick_report: dict[str, Any]) -> None:
    quick_report["chaos"]["scenarios"][0]["timeline"] = "not a list"
    quick_report["chaos"]["scenarios"][1]["rto_s"] = None
    quick_report["load"] = {"ops": {"x": {"hdr_curve": [["a", 1]]}}, "timeline": [{}]}
    page = render_html(quick_report)
    assert "No timeline recorded for this scenario." in page
    assert "not measured" in page


@pytest.mark.parametrize("source", [real_run_with_load, real_load_with_fault])
def test_real_load_sections_render_every_load_chart(source) -> None:  # type: ignore[no-untyped-def]
    """The load suite's own report.json (not the plan's synthetic shape): the page renders
    without falling back, with the percentile curves and the timeline drawn."""
    report = source()
    page = render_html(report)
    assert "could not be rendered" not in page
    ids = {c["id"]: c for c in _parse(page).charts}
    for chart_id in ("load-curves", "load-timeline"):
        assert int(ids[chart_id]["data-marks"] or 0) > 0, chart_id


def test_a_fault_under_load_is_marked_with_its_p95_mttd_and_rto() -> None:
    report = real_load_with_fault()
    page = render_html(report)
    chart = re.search(r'<svg class="chart" id="load-timeline".*?</svg>', page, re.S)
    assert chart
    svg = chart.group(0)
    assert svg.count('class="fault"') >= 3
    rto = report["load"]["fault"]["rto_s"]["p95"]
    assert f"RTO p95 {rto:.3g} s" in svg
    assert f"RTO p95 {rto:.3g} s" in page.split('id="load-timeline"')[0]  # the text line too
