"""The one sentence after a run's verdict, shared by report.md and report.html.

A report must say only what is true. A run the harness could not finish (PostgreSQL never
reached, a harness error, Ctrl-C) is not a verdict on the store, whatever its checks say: a
check list that is empty, or holds only what ran before the stop, must never read as "All 1
check passed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

UNFINISHED = frozenset({"error", "interrupted"})


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def summary(report: Mapping[str, Any]) -> str:
    """E.g. "All 14 checks passed.", "2 of 14 checks did not pass.", or for a run that did not
    finish, why this is not a verdict and what ran before the stop."""
    run = report.get("run") or {}
    status = str(run.get("status") or "unknown")
    checks: Sequence[Mapping[str, Any]] = [
        c for c in (report.get("results") or {}).get("checks") or [] if isinstance(c, Mapping)]
    inapplicable = sum(c.get("status") == "not applicable" for c in checks)
    judged = len(checks) - inapplicable
    failed = [c for c in checks if not c.get("passed")]
    if status in UNFINISHED:
        lead = ("Interrupted before the end" if status == "interrupted"
                else "The harness could not complete the run")
        text = f"{lead}: this is not a verdict on the store."
        if not checks:
            return text + " No suite ran."
        so_far = (f"{len(failed)} of them did not pass" if failed
                  else "none of them failed")
        return text + f" {_n(judged, 'check')} recorded before it stopped; {so_far}."
    text = (f"{len(failed)} of {_n(judged, 'check')} did not pass." if failed
            else f"All {_n(judged, 'check')} passed.")
    if inapplicable:
        text += (f" ({_n(inapplicable, 'check')} not applicable: "
                 f"{'its suite' if inapplicable == 1 else 'their suites'} did not run.)")
    return text


def postgres_text(env: Mapping[str, Any]) -> str:
    """The PostgreSQL a run used, or that it never got one (no "None (None)")."""
    pg = env.get("postgres") if isinstance(env.get("postgres"), Mapping) else {}
    if not pg or pg.get("version") is None:
        return "not reached (the run stopped before PostgreSQL was ready)"
    return f"{pg.get('version')} ({pg.get('kind')})"
