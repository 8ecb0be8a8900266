"""The chaos suite: one test per scenario of the selected profile (and per contrast target).

Each test runs the scenario (see harness/chaos/scenario.py), records its section and figures
for the report and the gates, prints one summary line, then asserts what must hold whatever
the gates say: no anomaly (the message names them with examples: op indices, key refs and
digests, never values), acknowledged writes happened, writes were attempted while the fault was
on, and the store recovered (an RTO exists) within a generous bound. The RTO / MTTD gates
themselves are judged by the main job from the figures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from fixtures.targets import record_target
from harness.chaos import results
from harness.chaos.catalog import (
    CONTRAST_SCENARIOS,
    ScenarioInfo,
    ScenarioParams,
    scenario,
    scenario_params,
    scenarios_for,
)
from harness.chaos.outcome import Repetition
from harness.chaos.results import summary_line
from harness.chaos.scenario import ChaosResources, ScenarioOutcome, run_scenario
from harness.chaos.signal_beside import chaos_signal_params
from harness.config import HarnessConfig, load_config
from harness.errors import ConfigError, HarnessError
from harness.metrics.figures import Figure
from harness.report.checks import bound_of
from harness.targets import TargetSpec, resolve_target

# Far above any gate: this bound only catches a store that never comes back; the gates judge
# how fast it does.
RECOVERY_BOUND_S = 15.0
TIMEOUT_MARGIN_S = 240.0  # setup, flush, final read and check on a busy machine


@dataclass(frozen=True)
class ChaosCase:
    name: str
    contrast: str | None = None  # a target spec run beside the default one, not gated


def _case_id(case: ChaosCase) -> str:
    if case.contrast is None:
        return case.name
    return f"{case.name}-contrast-{re.sub(r'[^A-Za-z0-9_.-]+', '_', case.contrast)}"


def more_of(configured: int, params: ScenarioParams) -> int:
    """Extra repetitions allowed while an interval straddles: the judging setting, capped by
    the profile (quick keeps the main job short)."""
    return configured if params.more_cap is None else min(configured, params.more_cap)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    profile = config.getoption("--chaos-profile")
    try:
        more = load_config(config.rootpath / "pyproject.toml",
                           config.getoption("--gate")).judging.more_chaos_repetitions
    except ConfigError:
        more = 0  # harness_config reports the error when the test asks for it
    cases = []
    for info in scenarios_for(profile, config.getoption("--chaos-scenario")):
        params = scenario_params(info.name, profile)
        runs = params.repetitions + more_of(more, params)
        per_run = (params.warmup_s + params.fault_jitter_s + params.fault_span_s
                   + params.recovery_s + params.settle_s) * runs
        mark = pytest.mark.timeout(int(per_run + TIMEOUT_MARGIN_S * runs))
        contrasts = config.getoption("--chaos-contrast") if info.name in CONTRAST_SCENARIOS \
            else []
        for contrast in [None, *contrasts]:
            case = ChaosCase(info.name, contrast)
            cases.append(pytest.param(case, id=_case_id(case), marks=mark))
    metafunc.parametrize("chaos_case", cases)


def _spec(case: ChaosCase, default: TargetSpec, config: pytest.Config) -> TargetSpec:
    if case.contrast is None:
        return default
    try:
        spec = resolve_target(case.contrast)
    except HarnessError as exc:
        raise pytest.UsageError(f"--chaos-contrast {case.contrast}: {exc}") from None
    record_target(config, spec, "contrast")
    return spec


_EXAMPLE_FIELDS = ("company", "key", "where", "op", "expected", "expected_ops", "found",
                   "found_op", "note", "repetition")


def _anomaly_message(outcome: ScenarioOutcome) -> str:
    item = outcome.section
    lines = [f"{item['name']} [{item['target']}]: anomalies {item['anomalies']} "
             f"(lost writes {item['lost_writes']} of {item['acked_writes']} acknowledged)"]
    for name, examples in item.get("anomaly_examples", {}).items():
        for example in examples:
            keep = {k: example.get(k) for k in _EXAMPLE_FIELDS
                    if example.get(k) not in (None, "", [])}
            lines.append(f"  {name}: {json.dumps(keep, default=str)}")
    return "\n".join(lines)


def straddles_a_gate(info: ScenarioInfo, params: ScenarioParams, target: str,
                     config: HarnessConfig) -> Callable[[list[Repetition]], bool]:
    """Whether the figures of the repetitions so far leave a gated interval straddling its
    bound: the same figures and decision the main job's gates use, so the suite measures more
    exactly when the gate would otherwise be undecided -- and not when the scenario already
    failed (an anomaly, a lost write, a figure clearly past its gate): more would not change
    the run's verdict."""

    def wanted(reps: list[Repetition]) -> bool:
        outcome = results.assemble(info, params, target, reps)
        if outcome.verdict != "passed":
            return False  # anomalies or lost writes: more repetitions cannot pass it
        decisions = [figure.decide(bound) for figure in outcome.figures if figure.gated
                     and (bound := bound_of(figure, config)) is not None]
        return "undecided" in decisions and "failed" not in decisions

    return wanted


async def test_chaos_scenario(chaos_case: ChaosCase, chaos_profile: str,
                              chaos_resources: ChaosResources, chaos_target_spec: TargetSpec,
                              chaos_seed: int, harness_config: HarnessConfig,
                              pytestconfig: pytest.Config,
                              record_section: Callable[[str, Mapping[str, Any]], None],
                              record_figure: Callable[[Figure], Figure]) -> None:
    info = scenario(chaos_case.name)
    params = scenario_params(info.name, chaos_profile)
    spec = _spec(chaos_case, chaos_target_spec, pytestconfig)
    contrast = chaos_case.contrast is not None
    try:
        outcome = await run_scenario(
            info, params, spec, chaos_resources, contrast=contrast,
            deadline_s=harness_config.gate("chaos-deadline-max-s"), run_seed=chaos_seed,
            more_repetitions=0 if contrast else more_of(
                harness_config.judging.more_chaos_repetitions, params),
            more_wanted=None if contrast else straddles_a_gate(info, params, spec.name,
                                                               harness_config),
            signal=None if contrast else chaos_signal_params(chaos_profile))
    except HarnessError as exc:
        record_section("chaos", {"name": info.name, "target": spec.name,
                                 "profile": params.profile, "contrast": contrast,
                                 "gated": not contrast, "verdict": "error",
                                 "reason": str(exc)})
        raise
    record_section("chaos", outcome.section)
    for figure in outcome.figures:
        record_figure(figure)
    chaos_resources.say(summary_line(outcome))
    if outcome.verdict == "skipped":
        pytest.skip(outcome.reason)

    item = outcome.section
    assert not item["anomalies"] and item["lost_writes"] == 0, _anomaly_message(outcome)
    if outcome.verdict == "inconclusive" and contrast:
        pytest.skip(f"contrast row inconclusive (not gated): {item['reason']}")
    assert outcome.verdict != "inconclusive", (
        f"{info.name} [{spec.name}] is inconclusive: {item['reason']}; the fault never did "
        "what the scenario needs, so it proved nothing")
    assert item["acked_writes"] > 0, f"{info.name}: no write was acknowledged at all"
    assert item["writes_during_fault"] > 0, (
        f"{info.name}: no write was attempted while the fault was on; the scenario proved "
        "nothing about writes")
    mttd = item["mttd_s"]
    assert mttd["count"] > 0 or item["masked"] > 0, (
        f"{info.name} [{spec.name}]: no company's callers detected the fault and none masked it")
    assert mttd["missing"] == 0, (
        f"{info.name} [{spec.name}]: {mttd['missing']} company-window(s) never detected the "
        "fault and never recovered")
    rto = item["rto_s"]
    assert rto["p95"] is not None, (
        f"{info.name} [{spec.name}]: {rto['missing']} of {rto['count']} company recoveries "
        f"never happened within the {params.recovery_s:g} s recovery period (observed: every "
        "acknowledged write and a new one read back from PostgreSQL)")
    assert rto["p95"] <= RECOVERY_BOUND_S, (
        f"{info.name} [{spec.name}]: RTO p95 {rto['p95']:.2f} s > {RECOVERY_BOUND_S:g} s")
