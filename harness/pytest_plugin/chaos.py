"""`authstate_chaos`: run one of the harness's chaos scenarios against the project's store and
get back what the chaos suite judges -- verdict, lost writes, anomalies, the checked history.

    def test_store_survives_a_severed_database(authstate_chaos):
        run = authstate_chaos.run("sever")
        assert run.lost_writes == 0, run

The runner is the chaos suite's own (harness.chaos.scenario.run_scenario: fresh database and
role, a proxy in front of PostgreSQL, 100 companies of Baileys traffic, the fault, recovery, a
final read straight from PostgreSQL, the checker over the operation history). A run that
proved nothing fails the test whatever the caller asserts next: no write acknowledged, or none
attempted while the fault was on. A scenario that cannot run here (a process fault against an
external server) skips the test with the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.chaos.outcome import ScenarioOutcome
    from harness.chaos.scenario import ChaosResources
    from harness.metrics.checker import CheckResult
    from harness.metrics.history import History
    from harness.targets import TargetSpec

log = logging.getLogger("harness.chaos")
DEFAULT_PROFILE = "smoke"  # the shortest outages: what a test beside unit tests can afford


@dataclasses.dataclass(frozen=True)
class ChaosRun:
    """One scenario's outcome; `section` is the item report.json's chaos section would hold."""

    outcome: ScenarioOutcome

    @property
    def section(self) -> dict[str, Any]:
        return self.outcome.section

    @property
    def verdict(self) -> str:
        return self.outcome.verdict

    @property
    def lost_writes(self) -> int:
        """Acknowledged writes missing from PostgreSQL after recovery (the RPO count)."""
        return int(self.section.get("lost_writes", 0))

    @property
    def acked_writes(self) -> int:
        return int(self.section.get("acked_writes", 0))

    @property
    def writes_during_fault(self) -> int:
        return int(self.section.get("writes_during_fault", 0))

    @property
    def anomalies(self) -> dict[str, int]:
        """Anomaly counts by name (lost, stale-read, torn, ...); empty when there were none."""
        return {k: v for k, v in (self.section.get("anomalies") or {}).items() if v}

    @property
    def rto_s(self) -> dict[str, Any]:
        """Observed recovery times over companies x repetitions (p50, p95, max, missing)."""
        return dict(self.section.get("rto_s") or {})

    @property
    def histories(self) -> list[History]:
        """Each repetition's operation history (invoke / ok / fail / info, monotonic times)."""
        return [rep.history for rep in self.outcome.repetitions]

    @property
    def checks(self) -> list[CheckResult]:
        """The checker's verdict over each repetition's history and final read."""
        return [rep.check for rep in self.outcome.repetitions]

    @property
    def history(self) -> History:
        return self.histories[0]

    @property
    def check(self) -> CheckResult:
        return self.checks[0]

    def __repr__(self) -> str:
        return (f"ChaosRun({self.section.get('name')} [{self.outcome.target}]: verdict "
                f"{self.verdict}, acked {self.acked_writes}, lost {self.lost_writes}, "
                f"anomalies {self.anomalies or 'none'})")


class ChaosRunner:
    """What the `authstate_chaos` fixture gives: `run(...)` in a plain test, `await arun(...)`
    in an asyncio one."""

    def __init__(self, resources: ChaosResources, target: Callable[[], TargetSpec],
                 deadline_s: float) -> None:
        self._resources = resources
        self._target = target
        self._deadline_s = deadline_s  # gate chaos-deadline-max-s of the project (default 2 s)

    def run(self, scenario: str = "sever", *, target: str | None = None,
            profile: str = DEFAULT_PROFILE, **params: Any) -> ChaosRun:
        """Run `scenario` (its `profile` durations; `params` override ScenarioParams fields,
        e.g. companies=30, outage_s=3.0) against the project's target, or `target`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(scenario, target=target, profile=profile, **params))
        raise RuntimeError("authstate_chaos.run() blocks; in an async test use "
                           "`await authstate_chaos.arun(...)`")

    async def arun(self, scenario: str = "sever", *, target: str | None = None,
                   profile: str = DEFAULT_PROFILE, **params: Any) -> ChaosRun:
        from harness.chaos.catalog import scenario as scenario_info
        from harness.chaos.catalog import scenario_params
        from harness.chaos.scenario import run_scenario
        from harness.errors import ConfigError
        from harness.targets import resolve_target

        try:
            info = scenario_info(scenario)
            chosen = scenario_params(info.name, profile)
            unknown = sorted(set(params) - {f.name for f in dataclasses.fields(chosen)})
            if unknown:
                fields = ", ".join(f.name for f in dataclasses.fields(chosen))
                raise ConfigError(f"unknown scenario parameter(s): {', '.join(unknown)}",
                                  hint=f"choose from: {fields}")
            chosen = dataclasses.replace(chosen, **params)
            spec = resolve_target(target) if target else self._target()
        except ConfigError as exc:
            pytest.fail(f"authstate_chaos: {exc.message} (hint: {exc.hint})", pytrace=False)
        outcome = await run_scenario(info, chosen, spec, self._resources,
                                     deadline_s=self._deadline_s)
        run = ChaosRun(outcome)
        log.info("%r", run)
        if outcome.verdict == "skipped":
            pytest.skip(f"chaos {info.name}: {outcome.reason}")
        if outcome.verdict == "inconclusive":
            pytest.fail(f"chaos {info.name} was inconclusive (its fault never met its "
                        f"precondition): {outcome.reason or outcome.section.get('precondition')}",
                        pytrace=False)
        if run.acked_writes == 0 or run.writes_during_fault == 0:
            pytest.fail(f"chaos {info.name} proved nothing about writes: {run.acked_writes} "
                        f"acknowledged, {run.writes_during_fault} attempted during the fault "
                        f"({run!r})", pytrace=False)
        return run
