"""Suite and gate checks: gates come from figures only; a gate nobody measured fails, a gate of
a suite that did not run is not applicable, the worst of several figures decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import KNOWN_GATES, load_config
from harness.metrics.figures import Figure
from harness.report.checks import gate_checks, judged, suite_checks
from harness.runner.outcomes import RunOutcomes
from harness.runner.suites import select_suites

CONFIG = load_config(Path("/nonexistent"))
BOTH = {"bench", "chaos"}


def _figure(gate: str, value: float | None, *, gated: bool = True,
            threshold: float | None = None, name: str | None = None) -> Figure:
    spec = KNOWN_GATES[gate]
    return Figure(spec.suite, name or f"{gate} {value}", value,
                  "x" if "ratio" in gate else "s", "higher" if spec.higher_is_better else "lower",
                  gate=gate, threshold=threshold, gated=gated, context={"metric": "m"})


def _by_name(checks):  # type: ignore[no-untyped-def]
    return {c.name: c for c in checks}


def test_gates_missing_from_the_figures_are_not_measured_and_fail() -> None:
    checks = _by_name(gate_checks(CONFIG, [_figure("bench-bulk-min-ratio", 0.9)], BOTH))
    assert checks["gate bench-bulk-min-ratio"].status == "passed"
    assert checks["gate proxy-p50-max-ratio"].status == "not measured"
    assert not checks["gate proxy-p50-max-ratio"].passed
    assert "bench suite" in checks["gate proxy-p50-max-ratio"].detail


def test_gates_of_a_suite_that_did_not_run_are_not_applicable_and_do_not_fail() -> None:
    checks = _by_name(gate_checks(CONFIG, [_figure("bench-bulk-min-ratio", 0.9)], {"bench"}))
    chaos = [c for c in checks.values() if c.name.startswith("gate chaos-")]
    assert len(chaos) == 4  # rto, mttd, lost writes, deadline
    assert all(c.status == "not applicable" and c.passed for c in chaos)
    assert "chaos suite did not run" in chaos[0].detail
    assert checks["gate resilient-bulk-min-ratio"].status == "not measured"


def test_informational_figures_never_count_for_a_gate() -> None:
    checks = _by_name(gate_checks(CONFIG, [
        _figure("proxy-p50-max-ratio", 1.1),
        _figure("proxy-p50-max-ratio", 9.0, gated=False)], BOTH))
    assert checks["gate proxy-p50-max-ratio"].passed
    only_contrast = _by_name(gate_checks(CONFIG, [
        _figure("chaos-rto-p95-max-s", 30.0, gated=False)], BOTH))
    assert only_contrast["gate chaos-rto-p95-max-s"].status == "not measured"


def test_worst_gated_figure_is_reported_and_any_miss_fails() -> None:
    checks = _by_name(gate_checks(CONFIG, [
        _figure("proxy-p50-max-ratio", 1.1),
        _figure("proxy-p50-max-ratio", 1.6, name="slow one")], BOTH))
    check = checks["gate proxy-p50-max-ratio"]
    assert check.status == "failed" and check.value == 1.6 and check.op == "<="
    assert check.detail.startswith("slow one: m ratio 1.600 (<= 1.5)")
    assert "worst of 2" in check.detail


def test_a_figure_without_a_value_is_a_missed_gate() -> None:
    checks = _by_name(gate_checks(CONFIG, [_figure("chaos-rto-p95-max-s", 0.4),
                                           _figure("chaos-rto-p95-max-s", None, name="never")],
                                  BOTH))
    check = checks["gate chaos-rto-p95-max-s"]
    assert check.status == "failed" and check.value is None
    assert check.detail.startswith("never: not measured")


def test_a_figures_own_threshold_overrides_the_configured_gate() -> None:
    # Black-hole MTTD is bounded by the target's deadline + 0.2 s, not by the 0.5 s gate.
    blackhole = _figure("chaos-mttd-p95-max-s", 2.1, threshold=2.2, name="blackhole mttd")
    sever = _figure("chaos-mttd-p95-max-s", 0.3, name="sever mttd")
    checks = _by_name(gate_checks(CONFIG, [blackhole, sever], BOTH))
    check = checks["gate chaos-mttd-p95-max-s"]
    assert check.status == "passed"
    assert check.detail.startswith("blackhole mttd: 2.1 s (<= 2.2)")  # the closest to its bound
    assert check.threshold == 2.2
    late = _figure("chaos-mttd-p95-max-s", 2.3, threshold=2.2)
    assert _by_name(gate_checks(CONFIG, [late, sever], BOTH))[
        "gate chaos-mttd-p95-max-s"].status == "failed"
    assert judged(blackhole, CONFIG)["bound"] == 2.2 and judged(sever, CONFIG)["bound"] == 0.5


def test_a_zero_gate_passes_at_zero_and_misses_at_one() -> None:
    lost = "chaos-lost-writes-max"
    assert CONFIG.gate(lost) == 0
    ok = _by_name(gate_checks(CONFIG, [_figure(lost, 0)], BOTH))[f"gate {lost}"]
    assert ok.status == "passed" and ok.threshold == 0
    missed = _by_name(gate_checks(CONFIG, [_figure(lost, 0), _figure(lost, 1)], BOTH))
    assert missed[f"gate {lost}"].status == "failed" and missed[f"gate {lost}"].value == 1


def test_overridden_gate_value_is_the_bound() -> None:
    config = load_config(Path("/nonexistent"), ["chaos-rto-p95-max-s=2"])
    check = _by_name(gate_checks(config, [_figure("chaos-rto-p95-max-s", 1.5)], BOTH))[
        "gate chaos-rto-p95-max-s"]
    assert check.status == "passed" and check.threshold == 2


def test_a_figure_naming_an_unknown_gate_fails_the_run() -> None:
    typo = Figure("bench", "x", 1.0, "x", "higher", gate="bench-bulk-min-ratoi")
    checks = _by_name(gate_checks(CONFIG, [typo], BOTH))
    assert checks["gate bench-bulk-min-ratoi"].status == "failed"


@pytest.mark.parametrize("value, passed", [(0.9, True), (0.7, False), (None, False)])
def test_judged_figures_carry_bound_and_verdict(value: float | None, passed: bool) -> None:
    item = judged(_figure("bench-bulk-min-ratio", value), CONFIG)
    assert item["bound"] == 0.8 and item["passed"] is passed
    free = judged(Figure("chaos", "journal peak", 12.0, "records", "lower"), CONFIG)
    assert free["bound"] is None and free["passed"] is None


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


def _not_applicable(gate: str, reason: str) -> Figure:
    spec = KNOWN_GATES[gate]
    return Figure(spec.suite, f"{gate} [node:store.js]", None, "x",
                  "higher" if spec.higher_is_better else "lower", gate=gate,
                  context={"not_applicable": reason})


def test_a_gate_whose_figures_all_say_it_does_not_apply_is_not_applicable_with_the_reason() -> None:
    checks = _by_name(gate_checks(CONFIG, [
        _not_applicable("bench-bulk-min-ratio", "runs in another process")], BOTH))
    check = checks["gate bench-bulk-min-ratio"]
    assert (check.status, check.passed) == ("not applicable", True)
    assert "another process" in check.detail


def test_a_not_applicable_figure_never_hides_a_measured_miss_of_the_same_gate() -> None:
    checks = _by_name(gate_checks(CONFIG, [
        _not_applicable("bench-bulk-min-ratio", "runs in another process"),
        _figure("bench-bulk-min-ratio", 0.5)], BOTH))
    assert checks["gate bench-bulk-min-ratio"].status == "failed"


# -- gates judged with their intervals (issue 16 §1) --------------------------------------------
def _with_interval(gate: str, value: float, interval: tuple[float, float],
                   name: str = "replay") -> Figure:
    spec = KNOWN_GATES[gate]
    return Figure(spec.suite, name, value, "x", "higher" if spec.higher_is_better else "lower",
                  gate=gate, context={"metric": "throughput"}, interval=interval)


def test_an_interval_straddling_the_gate_is_undecided_not_a_pass_or_a_miss() -> None:
    # The trial's journal replay: 0.642 with (0.42, 0.73) against >= 0.7 was a "miss" that the
    # report's own interval could not support; 0.75 with the same width would have "passed".
    for value in (0.642, 0.75):
        check = _by_name(gate_checks(CONFIG, [
            _with_interval("journal-replay-min-ratio", value, (0.42, 0.78))], BOTH))[
            "gate journal-replay-min-ratio"]
        assert check.status == "undecided"
        assert check.interval == (0.42, 0.78)
        assert "[95 % 0.420..0.780]" in check.detail and "undecided" in check.detail


def test_a_gate_passes_only_when_its_whole_interval_clears_it_and_fails_when_all_misses() -> None:
    clear = _with_interval("journal-replay-min-ratio", 0.86, (0.74, 1.01))
    miss = _with_interval("journal-replay-min-ratio", 0.5, (0.42, 0.69))
    assert _by_name(gate_checks(CONFIG, [clear], BOTH))[
        "gate journal-replay-min-ratio"].status == "passed"
    check = _by_name(gate_checks(CONFIG, [clear, miss], BOTH))["gate journal-replay-min-ratio"]
    assert check.status == "failed" and check.value == 0.5 and not check.passed


def test_the_undecided_policy_decides_whether_an_undecided_gate_blocks_the_run() -> None:
    straddling = _with_interval("chaos-rto-p95-max-s", 1.4, (1.2, 1.7), name="blackhole rto")
    warn = _by_name(gate_checks(CONFIG, [straddling], BOTH))["gate chaos-rto-p95-max-s"]
    assert (warn.status, warn.policy, warn.passed, warn.warning) == (
        "undecided", "warn", True, True)
    strict = load_config(Path("/nonexistent"), undecided="fail")
    fail = _by_name(gate_checks(strict, [straddling], BOTH))["gate chaos-rto-p95-max-s"]
    assert (fail.status, fail.passed, fail.warning) == ("undecided", False, False)
    assert "fails the run" in fail.detail


def test_a_clear_miss_outranks_an_undecided_figure_of_the_same_gate() -> None:
    straddling = _with_interval("chaos-rto-p95-max-s", 1.4, (1.2, 1.7), name="blackhole")
    missed = _with_interval("chaos-rto-p95-max-s", 2.1, (1.8, 2.4), name="sever")
    check = _by_name(gate_checks(CONFIG, [straddling, missed], BOTH))["gate chaos-rto-p95-max-s"]
    assert check.status == "failed" and check.detail.startswith("sever")


def test_judged_figures_say_undecided_as_a_decision_without_a_pass() -> None:
    item = judged(_with_interval("journal-replay-min-ratio", 0.642, (0.42, 0.73)), CONFIG)
    assert item["decision"] == "undecided" and item["passed"] is None
    assert item["interval"] == [0.42, 0.73]
