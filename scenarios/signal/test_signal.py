"""The signal suite: real Signal conversations through the store, healthy and with PostgreSQL
severed, then a new pod that must continue every conversation.

One test per scenario (and per contrast target). Each records its `signal` section and its
figures (undecryptable and re-established are gated: signal-undecryptable-max,
signal-reestablished-max), prints one summary line, then asserts what must hold for the tested
target whatever the gates say: every message decrypted on the first try, no session started
again, nothing lost, the new pod continued every conversation, the checker found no anomaly on
any key libsignal read or wrote, and a sever was felt (store calls while PostgreSQL was away).
A contrast row (the plain store in a `ci` run) is reported, not gated; its test asserts only
what makes it a fair contrast: the fault was felt and its store told no lie (no anomaly).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from fixtures.signal import contrasts, profile_name
from fixtures.targets import record_target
from harness.errors import HarnessError
from harness.metrics.figures import Figure
from harness.signal.profiles import SCENARIOS, signal_params
from harness.signal.run import SignalEnv, run_signal
from harness.signal.section import summary_line
from harness.targets import TargetSpec, resolve_target

TIMEOUT_MARGIN_S = 240.0  # setup (pairing, first messages), new pod, final read, check


@dataclass(frozen=True)
class SignalCase:
    scenario: str
    contrast: str | None = None


def _case_id(case: SignalCase) -> str:
    if case.contrast is None:
        return case.scenario
    return f"{case.scenario}-contrast-{re.sub(r'[^A-Za-z0-9_.-]+', '_', case.contrast)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "signal_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    params = signal_params(profile_name(config))
    mark = pytest.mark.timeout(int(params.warmup_s + params.outage_s + params.recovery_s
                                   + params.workload.drain_s + TIMEOUT_MARGIN_S))
    chosen = config.getoption("--signal-scenario") or list(SCENARIOS)
    cases = [pytest.param(case, id=_case_id(case), marks=mark)
             for scenario in SCENARIOS if scenario in chosen
             for case in [SignalCase(scenario)]
             + [SignalCase(scenario, spec) for spec in contrasts(config)]]
    metafunc.parametrize("signal_case", cases)


def _spec(case: SignalCase, default: TargetSpec, config: pytest.Config) -> TargetSpec:
    if case.contrast is None:
        return default
    try:
        spec = resolve_target(case.contrast)
    except HarnessError as exc:
        raise pytest.UsageError(f"--signal-contrast {case.contrast}: {exc}") from None
    record_target(config, spec, "signal contrast")
    return spec


def _failures(item: Mapping[str, Any]) -> str:
    shown = {k: item[k] for k in ("undecryptable", "reestablished_by", "lost_by",
                                  "send_failures", "checker", "harness_errors",
                                  "target_errors")}
    shown["new_pod"] = {k: item["new_pod"][k] for k in ("ok", "failed_by", "failures")}
    shown["attribution"] = {k: item["attribution"][k]
                            for k in ("attributed", "by_anomaly", "examples")}
    shown["attribution"]["examples"] = shown["attribution"]["examples"][:5]
    return json.dumps(shown, default=str, indent=1)[:6000]


async def test_signal_scenario(signal_case: SignalCase, signal_params_of: Callable[..., Any],
                               signal_target_spec: TargetSpec, signal_env: SignalEnv,
                               signal_say: Callable[[str], None], pytestconfig: pytest.Config,
                               record_section: Callable[[str, Mapping[str, Any]], None],
                               record_figure: Callable[[Figure], Figure]) -> None:
    spec = _spec(signal_case, signal_target_spec, pytestconfig)
    contrast = signal_case.contrast is not None
    params = signal_params_of()
    try:
        outcome = await run_signal(signal_case.scenario, params, spec, signal_env,
                                   contrast=contrast, say=signal_say)
    except HarnessError as exc:
        record_section("signal", {"name": signal_case.scenario, "target": spec.name,
                                  "profile": params.profile, "contrast": contrast,
                                  "gated": not contrast, "verdict": "error",
                                  "reason": str(exc)})
        raise
    item = outcome.section
    record_section("signal", item)
    for figure in outcome.figures:
        record_figure(figure)
    signal_say(summary_line(item))

    if item["fault"] is not None:
        assert item["fault"]["met"], (
            f"{signal_case.scenario}: no store call happened while PostgreSQL was severed; "
            "the scenario proved nothing (inconclusive)")
    assert not item["harness_errors"], f"the harness failed ops: {item['harness_errors']}"
    if contrast:
        assert item["checker"]["valid"], _failures(item)
        return
    assert item["verdict"] == "passed", _failures(item)
    assert item["decrypted"] == item["deliveries"] > 0
