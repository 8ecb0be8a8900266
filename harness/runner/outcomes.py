"""Fold the pytest event stream into one outcome per test and totals per suite."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.report.summary import COUNT_KEYS, SuiteSummary, TestSummary
from harness.runner.suites import Suite, suite_of

# A test's outcome is the worst of its phases (a passed call with a failing teardown is an error).
_SEVERITY = {"passed": 0, "xfailed": 0, "skipped": 1, "xpassed": 2, "failed": 3, "error": 3}
FAILING = frozenset({"failed", "error"})


@dataclass
class TestOutcome:
    nodeid: str
    outcome: str = "pending"
    duration: float = 0.0
    message: str | None = None
    phase: str = "call"

    def absorb(self, event: dict[str, Any]) -> None:
        self.duration += float(event.get("duration") or 0.0)
        outcome = str(event["outcome"])
        if self.outcome == "pending" or _SEVERITY.get(outcome, 3) > _SEVERITY.get(self.outcome, 3):
            self.outcome, self.message, self.phase = outcome, event.get("message"), event["when"]

    @property
    def done(self) -> bool:
        return self.outcome != "pending"

    def summary(self) -> TestSummary:
        return TestSummary(self.nodeid, self.outcome, self.duration, self.message, self.phase)


@dataclass
class SuiteOutcome:
    name: str
    description: str
    tests: list[TestOutcome] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(t.outcome for t in self.tests)
        return {k: counts.get(k, 0) for k in COUNT_KEYS}

    @property
    def duration(self) -> float:
        return sum(t.duration for t in self.tests)

    def failures(self) -> list[TestOutcome]:
        return [t for t in self.tests if t.outcome in FAILING]

    def skip_reasons(self) -> dict[str, int]:
        return dict(Counter(t.message or "no reason given" for t in self.tests
                            if t.outcome == "skipped"))

    def summary(self, slowest: int = 5) -> SuiteSummary:
        """The frozen view the report is built from."""
        return SuiteSummary(
            name=self.name, description=self.description, counts=self.counts,
            tests=len(self.tests), duration=self.duration,
            failures=tuple(t.summary() for t in self.failures()),
            skip_reasons=self.skip_reasons(),
            slowest=tuple(t.summary() for t in
                          sorted(self.tests, key=lambda t: -t.duration)[:slowest]))


class RunOutcomes:
    """Live state of a run: fed events as they arrive, queried by the progress display."""

    def __init__(self, suites: Sequence[Suite]) -> None:
        self.suites = {s.name: SuiteOutcome(s.name, s.description) for s in suites}
        self._specs = list(suites)
        self._tests: dict[str, TestOutcome] = {}
        self.facts: dict[str, Any] = {}
        self.harness_errors: list[dict[str, Any]] = []  # tests the harness failed
        self.exitstatus: int | None = None
        self.outside: list[str] = []  # collected tests that match no suite (should not happen)

    def feed(self, events: Iterable[dict[str, Any]]) -> list[TestOutcome]:
        """Apply events; return the tests whose outcome became known."""
        finished: list[TestOutcome] = []
        for event in events:
            kind = event.get("event")
            if kind == "collected":
                for nodeid in event["tests"]:
                    if nodeid in self._tests:
                        continue  # a test is counted once, whatever repeats the event
                    name = suite_of(nodeid, self._specs)
                    if name is None:
                        self.outside.append(nodeid)
                        continue
                    test = TestOutcome(nodeid)
                    self._tests[nodeid] = test
                    self.suites[name].tests.append(test)
            elif kind == "result":
                test = self._tests.get(event["nodeid"])
                if test is None:
                    continue
                was_done = test.done
                test.absorb(event)
                if not was_done and event["when"] != "teardown":
                    finished.append(test)
            elif kind == "harness_error":
                self.harness_errors.append(event)
            elif kind == "fact":
                self.facts[str(event["key"])] = event["value"]
            elif kind == "finished":
                self.exitstatus = int(event["exitstatus"])
        return finished

    @property
    def collected(self) -> bool:
        return bool(self._tests) or self.exitstatus is not None
