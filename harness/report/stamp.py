"""Timestamps as a reader wants them: to the second, in UTC, without ISO's `T` and microseconds.

report.json keeps the full ISO 8601 value (machines compare it); pages show
`2026-12-01 22:27:16 UTC`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def shown(value: object) -> str:
    """`value` (ISO 8601, as report.json stores it) to the second in UTC; other text as is."""
    text = "" if value is None else str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")
