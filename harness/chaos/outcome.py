"""What a chaos scenario measured: one `Repetition` per run of the fault, and the
`ScenarioOutcome` the suite asserts on (its section dict and figures go to the report).

Kept apart from the runner (`scenario.py`) and the summariser (`results.py`) so both can use
them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.chaos.catalog import ScenarioInfo, ScenarioParams
from harness.chaos.preconditions import Precondition
from harness.metrics.checker import CheckResult
from harness.metrics.history import History
from harness.metrics.recovery import RecoveryResult
from harness.metrics.timeline import Timeline
from harness.metrics.windows import Window
from harness.observe.final_read import FinalRead


@dataclass
class Repetition:
    """What one repetition measured (kept whole for tests; the section holds summaries)."""

    index: int
    history: History
    check: CheckResult
    recovery: RecoveryResult  # observed from outside the store: these decide the verdict
    reported: RecoveryResult  # from the store's own word (last_source, breaker): shown only
    preconditions: list[Precondition]
    observer: dict[str, Any]  # how the observer read: mode, rounds, durations, durability
    windows: list[Window]
    availability: dict[str, Any]
    journal: dict[str, Any]
    timeline: Timeline
    final: FinalRead
    flush: dict[str, Any]
    workload: dict[str, Any]
    deadline_s: float  # the harness's (gate chaos-deadline-max-s)
    store_deadline_s: float | None  # what the target says it keeps (reported only)
    conflicts: int | None
    pg_recovery_s: float | None
    writes_during_fault: int
    loop_lag_ms: dict[str, Any]
    duration_s: float
    phases_s: dict[str, float]
    notes: list[str] = field(default_factory=list)
    attempt: int = 1  # > 1: earlier attempts did not meet the precondition
    signal: dict[str, Any] | None = None  # real Signal conversations beside it (signal item)
    seed: int = 0  # this repetition's traffic seed (catalog.repetition_draw)
    fault_jitter_s: float = 0.0  # how much later than the warmup the fault started

    @property
    def unmet(self) -> list[Precondition]:
        return [p for p in self.preconditions if not p.met]


@dataclass
class ScenarioOutcome:
    info: ScenarioInfo
    params: ScenarioParams
    target: str
    contrast: bool
    verdict: str  # passed | failed | inconclusive | skipped | error
    section: dict[str, Any]
    figures: list[Any]
    repetitions: list[Repetition] = field(default_factory=list)
    reason: str = ""
