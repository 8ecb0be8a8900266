"""Fixtures: reports to render (see report_html_data for where they come from)."""

from __future__ import annotations

from typing import Any

import pytest
from report_html_data import full, quick  # type: ignore[import-not-found]


@pytest.fixture
def quick_report() -> dict[str, Any]:
    return quick()


@pytest.fixture
def full_report() -> dict[str, Any]:
    return full()
