"""What the report needs to know about one suite, frozen: the report's own input type.

The runner follows a run live (mutable outcomes fed by pytest events) and hands the report a
`SuiteSummary` once the run is over. The report never sees the runner's types, so the arrow
points one way: runner -> report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

COUNT_KEYS = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "pending")


@dataclass(frozen=True)
class TestSummary:
    """One test's final outcome (the worst of its phases) and the phase it came from."""

    nodeid: str
    outcome: str
    duration: float = 0.0
    message: str | None = None
    phase: str = "call"


@dataclass(frozen=True)
class SuiteSummary:
    """A suite's result: counts per outcome, failures, skip reasons, slowest tests."""

    name: str
    description: str
    counts: Mapping[str, int]  # every key of COUNT_KEYS
    tests: int
    duration: float
    failures: tuple[TestSummary, ...] = ()
    skip_reasons: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    slowest: tuple[TestSummary, ...] = ()

    @property
    def passed(self) -> bool:
        """No failure, no error, and every collected test ran (an interrupted run did not pass)."""
        c = self.counts
        return not (c["failed"] or c["error"] or c["pending"])
