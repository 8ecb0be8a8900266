"""A skipped process fault says how to enable it once: the reason the session gives already
carries its hint (the report used to repeat "run without --dsn" twice in one line)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.process_server import PROCESS_SKIP_HINT, PROCESS_SKIP_REASON
from harness.chaos.scenario import ChaosResources, run_scenario


def test_a_process_fault_on_an_external_server_says_its_hint_once() -> None:
    resources = ChaosResources(
        toxiproxy=None, server_admin_dsn="postgresql://u@127.0.0.1:1/x",  # type: ignore[arg-type]
        server_kind="external", process_server=lambda: None,
        process_skip_reason=lambda: f"{PROCESS_SKIP_REASON} ({PROCESS_SKIP_HINT})")
    outcome = asyncio.run(run_scenario(scenario("pg-kill"), scenario_params("pg-kill", "quick"),
                                       SimpleNamespace(name="resilient"), resources))
    assert outcome.verdict == "skipped"
    assert outcome.reason.count("run without --dsn") == 1, outcome.reason
