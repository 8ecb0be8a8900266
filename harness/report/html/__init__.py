"""report.html: a self-contained page with inline SVG charts, rendered from report.json."""

from harness.report.html.page import render_html

__all__ = ["render_html"]
