"""report.html in a real headless Chromium: loads with no console error and no network request,
every chart is drawn with data marks of non-zero size, and a full-page screenshot is kept.

Uses the system's Chromium and chromedriver (Debian: `apt-get install chromium
chromium-driver`; CI's .ci/run installs them); never downloads a browser. The screenshot is
written to the test's tmp dir and copied to reports/test-output/report-html/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.report.html import render_html
from harness.report.index_page import write_index
from harness.report.writer import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "reports" / "test-output" / "report-html"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")

pytestmark = [
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs /usr/bin/chromium and /usr/bin/chromedriver: "
                              "apt-get install chromium chromium-driver"),
    pytest.mark.timeout(180),
]

# Per chart: what was drawn. A polyline counts its vertices; rect/circle/path/line one each.
COUNT_MARKS = """
return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  let drawn = 0, sized = 0;
  for (const el of svg.querySelectorAll('.mark')) {
    const n = el.tagName === 'polyline' ? el.points.numberOfItems : 1;
    drawn += n;
    const box = el.getBoundingClientRect();
    if (box.width > 0 || box.height > 0) sized += n;
  }
  const r = svg.getBoundingClientRect();
  return {id: svg.id, declared: +svg.dataset.marks, drawn, sized,
          width: r.width, height: r.height};
});
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="pip install selenium (a pyproject dependency)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1000,1200")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def _requests_by(driver: Any, document: str) -> list[str]:
    """URLs requested on behalf of `document` (performance log), besides the page itself.
    Chromium's own pages (the new tab it starts with) are other documents and not counted."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        params = message["params"]
        if params.get("documentURL") == document and params["request"]["url"] != document:
            urls.append(params["request"]["url"])
    return urls


def _screenshot(driver: Any, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1000, min(int(height) + 40, 16000))
    driver.save_screenshot(str(path))


def test_report_html_renders_every_chart_without_console_errors(
        browser: Any, tmp_path: Path, full_report: dict[str, Any]) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(full_report), encoding="utf-8")
    browser.get(page.as_uri())
    errors = [e for e in browser.get_log("browser") if e.get("level") in ("SEVERE", "WARNING")]
    assert errors == []
    assert _requests_by(browser, page.as_uri()) == []
    charts = browser.execute_script(COUNT_MARKS)
    assert len(charts) == 2 * len(full_report["chaos"]["scenarios"]) + 6
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 40, chart
        assert chart["drawn"] > 0 and chart["sized"] > 0, chart
        assert chart["declared"] > 0, chart
    shot = tmp_path / "report-html.png"
    _screenshot(browser, shot)
    assert shot.stat().st_size > 50_000
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, OUTPUT / "report-html.png")
    shutil.copy(page, OUTPUT / "report.html")


def test_run_folder_page_and_index_render_in_the_browser(
        browser: Any, tmp_path: Path, quick_report: dict[str, Any]) -> None:
    run = tmp_path / "reports" / quick_report["run"]["id"]
    run.mkdir(parents=True)
    write_report(run, quick_report)
    index = write_index(run.parent)
    browser.get(index.as_uri())
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []
    charts = browser.execute_script(COUNT_MARKS)
    assert charts and all(c["drawn"] > 0 for c in charts)
    link = browser.find_element("link text", quick_report["run"]["id"])
    link.click()
    assert browser.current_url == (run / "report.html").as_uri()
    assert browser.title.startswith("authstate-harness " + quick_report["run"]["id"])
    charts = browser.execute_script(COUNT_MARKS)
    assert len(charts) == 2 * len(quick_report["chaos"]["scenarios"]) + 3
    assert all(c["sized"] > 0 for c in charts)
    browser.set_window_size(1000, 1200)
    browser.save_screenshot(str(tmp_path / "quick-report-top.png"))  # the verdict, at a glance
    timeline = browser.find_element("css selector", "figure:has(#timeline-0)")
    timeline.screenshot(str(tmp_path / "quick-timeline-sever.png"))
    _screenshot(browser, tmp_path / "quick-report.png")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name in ("quick-report.png", "quick-report-top.png", "quick-timeline-sever.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
        shutil.copy(tmp_path / name, OUTPUT / name)


def test_the_checks_catch_a_page_that_fetches(browser: Any, tmp_path: Path,
                                              quick_report: dict[str, Any]) -> None:
    """The detectors above are not vacuous: an image from a closed local port is seen as a
    request and a console error."""
    page = tmp_path / "fetching.html"
    html = render_html(quick_report).replace(
        "<body>", '<body><img src="http://127.0.0.1:9/logo.png" alt="">', 1)
    page.write_text(html, encoding="utf-8")
    browser.get(page.as_uri())
    assert _requests_by(browser, page.as_uri()) == ["http://127.0.0.1:9/logo.png"]
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


# Per chart: texts drawn (partly) outside the chart's own box -- a cut legend or label.
TEXT_OUTSIDE = """
return Array.from(document.querySelectorAll('svg.chart')).flatMap(svg => {
  const r = svg.getBoundingClientRect();
  return Array.from(svg.querySelectorAll('text')).filter(t => {
    const b = t.getBoundingClientRect();
    return b.left < r.left - 0.5 || b.right > r.right + 0.5 || b.top < r.top - 0.5
      || b.bottom > r.bottom + 0.5;
  }).map(t => svg.id + ': ' + t.textContent);
});
"""


def test_a_wide_screen_is_used_and_no_chart_text_is_cut(browser: Any, tmp_path: Path) -> None:
    """A real run with load (operation names up to 43 characters): at 1400 px the page is not a
    960 px column, and every legend and label stays inside its chart."""
    from report_html_data import real_run_with_load  # type: ignore[import-not-found]

    page = tmp_path / "report.html"
    page.write_text(render_html(real_run_with_load()), encoding="utf-8")
    browser.set_window_size(1400, 1000)
    browser.get(page.as_uri())
    assert browser.execute_script("return document.body.clientWidth") >= 1300
    assert browser.execute_script(TEXT_OUTSIDE) == []
