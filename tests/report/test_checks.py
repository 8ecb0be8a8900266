"""Suite and gate checks: a gate nobody measured fails; the worst of several ratios decides."""

from __future__ import annotations

from pathlib import Path

from harness.config import load_config
from harness.report.checks import gate_checks, suite_checks
from harness.runner.outcomes import RunOutcomes
from harness.runner.suites import select_suites

CONFIG = load_config(Path("/nonexistent"))


def _comparison(gate: str, ratio: float, passed: bool, gated: bool = True) -> dict[str, object]:
    return {"gate": gate, "name": f"bench {ratio}", "metric": "m", "ratio": ratio,
            "passed": passed, "gated": gated}


def _by_name(checks):  # type: ignore[no-untyped-def]
    return {c.name: c for c in checks}


def test_gates_missing_from_the_benchmarks_are_not_measured_and_fail() -> None:
    checks = _by_name(gate_checks(CONFIG, [_comparison("bench-bulk-min-ratio", 0.9, True)]))
    assert checks["gate bench-bulk-min-ratio"].status == "passed"
    assert checks["gate proxy-p50-max-ratio"].status == "not measured"
    assert not checks["gate proxy-p50-max-ratio"].passed


def test_informational_comparisons_never_count_for_a_gate() -> None:
    checks = _by_name(gate_checks(CONFIG, [
        _comparison("proxy-p50-max-ratio", 1.1, True),
        _comparison("proxy-p50-max-ratio", 9.0, False, gated=False)]))
    assert checks["gate proxy-p50-max-ratio"].passed


def test_worst_gated_ratio_is_reported_and_any_miss_fails() -> None:
    checks = _by_name(gate_checks(CONFIG, [
        _comparison("proxy-p50-max-ratio", 1.1, True),
        _comparison("proxy-p50-max-ratio", 1.4, False)]))
    check = checks["gate proxy-p50-max-ratio"]
    assert check.status == "missed" and check.value == 1.4 and check.op == "<="


def test_suite_checks_fail_on_failures_errors_and_tests_that_never_finished() -> None:
    outcomes = RunOutcomes(select_suites(["property", "bench"]))
    outcomes.feed([
        {"event": "collected", "tests": ["scenarios/property/a.py::t1",
                                         "scenarios/property/a.py::t2",
                                         "scenarios/bench/b.py::t3", "tests/x.py::other"]},
        {"event": "result", "nodeid": "scenarios/property/a.py::t1", "when": "call",
         "outcome": "passed", "duration": 0.5},
        {"event": "result", "nodeid": "scenarios/property/a.py::t1", "when": "teardown",
         "outcome": "error", "duration": 0.1, "message": "teardown broke"},
        {"event": "result", "nodeid": "scenarios/property/a.py::t2", "when": "setup",
         "outcome": "skipped", "duration": 0.0, "message": "needs node"},
    ])
    checks = _by_name(suite_checks(s.summary() for s in outcomes.suites.values()))
    assert checks["suite property"].detail == "1 of 2 tests failed"
    assert checks["suite bench"].detail == "1 of 1 tests never finished"
    prop = outcomes.suites["property"]
    assert prop.tests[0].outcome == "error" and prop.tests[0].message == "teardown broke"
    assert prop.tests[0].duration == 0.6
    assert prop.skip_reasons() == {"needs node": 1}
    assert outcomes.outside == ["tests/x.py::other"]
