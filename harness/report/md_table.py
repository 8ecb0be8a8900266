"""Markdown tables for report.md (test ids and messages contain `|` and newlines)."""

from __future__ import annotations


def cell(value: object) -> str:
    """One table cell: escaped so `|`, `\\` and newlines cannot break the row."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def table(header: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table's lines, then a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]
