"""Where the checkout is (stdlib only: the first-use bootstrap imports it before any dependency).

The suites, `conftest.py`, `pyproject.toml` and `reports/` live next to the package in a clone;
they are not part of an installed wheel, so every command that needs them starts here.
"""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The directory holding the `harness` package this code runs from (a clone's root)."""
    return Path(__file__).resolve().parent.parent
