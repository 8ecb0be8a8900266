"""The pass/fail checks of a run: every suite green, every benchmark gate measured and met.

A gate that should have been measured but was not (its benchmark crashed or was skipped) is a
failed check, never a silent pass: the point of a gate is that a missing number is visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.config import KNOWN_GATES, HarnessConfig
from harness.report.summary import SuiteSummary


@dataclass(frozen=True)
class Check:
    name: str
    kind: str  # "suite" | "gate"
    status: str  # "passed" | "failed" | "missed" | "not measured"
    detail: str
    value: float | None = None
    threshold: float | None = None
    op: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def suite_checks(suites: Iterable[SuiteSummary]) -> list[Check]:
    checks = []
    for suite in suites:
        c = suite.counts
        bad = c["failed"] + c["error"]
        if suite.passed:
            detail = f"{c['passed']} passed" + (f", {c['skipped']} skipped" if c["skipped"] else "")
        elif bad:
            detail = f"{bad} of {suite.tests} tests failed"
        else:
            detail = f"{c['pending']} of {suite.tests} tests never finished"
        checks.append(Check(f"suite {suite.name}", "suite",
                            "passed" if suite.passed else "failed", detail))
    return checks


def gate_checks(config: HarnessConfig, comparisons: Sequence[Mapping[str, Any]]) -> list[Check]:
    """One check per known gate, from the gated comparisons the benchmarks recorded."""
    checks = []
    for name, spec in KNOWN_GATES.items():
        threshold = config.gate(name)
        measured = [c for c in comparisons if c.get("gate") == name and c.get("gated", True)]
        if not measured:
            checks.append(Check(f"gate {name}", "gate", "not measured",
                                f"{spec.doc}: no benchmark recorded it (see the bench suite)",
                                None, threshold, spec.op))
            continue
        worst = min(measured, key=lambda c: c["ratio"]) if spec.higher_is_better else max(
            measured, key=lambda c: c["ratio"])
        ok = all(bool(c["passed"]) for c in measured)
        checks.append(Check(f"gate {name}", "gate", "passed" if ok else "missed",
                            f"{worst['name']}: {worst['metric']} ratio {worst['ratio']:.3f} "
                            f"({spec.op} {threshold})", float(worst["ratio"]), threshold, spec.op))
    return checks
