"""Write a run folder's report files atomically (a reader never sees half a report)."""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.report.html import render_html
from harness.report.html.page import fallback_html
from harness.report.markdown import render
from harness.report.redact import scrub


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path, Path]:
    """report.json (the data), report.md and report.html (rendered from it); returns the paths."""
    json_path = out_dir / "report.json"
    atomic_write(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md_path, html_path = render_views(out_dir, report)
    return json_path, md_path, html_path


def render_views(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """report.md and report.html from a report.json document (also `authstate-harness report`).

    A bug in the HTML renderer must not cost the run its report.md: the page then says what
    failed instead of showing charts.
    """
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write(md_path, render(report))
    try:
        page = render_html(report)
    except Exception as exc:  # keep the run's other files; say why the page is bare
        page = fallback_html(report, f"{type(exc).__name__}: {exc}")
    atomic_write(html_path, page)
    return md_path, html_path


def scrub_junit(path: Path) -> None:
    """Scrub every text and attribute of a JUnit XML file (escaping hides patterns from regexes).

    A file that does not parse (pytest killed mid-write) is scrubbed as plain text instead.
    """
    try:
        tree = ET.parse(path)
    except ET.ParseError:
        atomic_write(path, scrub(path.read_text(encoding="utf-8", errors="replace")))
        return
    for element in tree.iter():
        if element.text:
            element.text = scrub(element.text)
        if element.tail:
            element.tail = scrub(element.tail)
        for key, value in element.attrib.items():
            element.attrib[key] = scrub(value)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
