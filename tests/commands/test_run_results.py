"""The main job's side of the results channel, and how `run` options reach the child pytest.

No child pytest here (test_run_command.py runs real ones): the job is handed a results.json
as a child would leave it, and must turn it into figures, gate checks and the chaos section.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from fixtures.results import ResultsRecorder
from harness.config import KNOWN_GATES, profile
from harness.errors import ConfigError
from harness.metrics.figures import Figure
from harness.runner.job import MainJob, RunOptions, chaos_args, check_scenarios
from harness.runner.pytest_session import Artifacts, ChaosArgs, PytestSession
from harness.runner.suites import SUITES, select_suites


def _job(tmp_path: Path, suites: list[str]) -> MainJob:
    options = RunOptions(profile=profile("ci"), suites=select_suites(suites),
                         out_dir=tmp_path / "run", live=False, argv=["authstate-harness", "run"])
    return MainJob(options, Console(file=io.StringIO()))


def test_the_job_reads_results_json_into_figures_gates_and_the_chaos_section(
        tmp_path: Path) -> None:
    job = _job(tmp_path, ["bench"])
    recorder = ResultsRecorder(job.artifacts.results)
    recorder.figure(Figure("bench", "keys.set 812 pre-keys", 0.9, "x", "higher",
                           gate="bench-bulk-min-ratio", context={"metric": "throughput"}))
    recorder.figure(Figure("bench", "proxy point read", 1.6, "x", "lower",
                           gate="proxy-p50-max-ratio"))
    recorder.section("chaos", {"name": "sever", "target": "resilient", "verdict": "passed",
                               "rto_s": {"p50": 0.2, "p95": 0.4, "max": 0.5}})
    job.pytest_exit = 1
    result = job._finish()
    report = result.report
    assert report["schema_version"] == 2
    by_name = {f["name"]: f for f in report["figures"]}
    assert by_name["keys.set 812 pre-keys"]["passed"] is True
    assert by_name["keys.set 812 pre-keys"]["bound"] == 0.8
    assert by_name["proxy point read"]["passed"] is False
    checks = {c.name: c for c in result.checks}
    assert checks["gate bench-bulk-min-ratio"].status == "passed"
    assert checks["gate proxy-p50-max-ratio"].status == "failed"
    assert checks["gate journal-replay-min-ratio"].status == "not measured"
    assert checks["gate chaos-rto-p95-max-s"].status == "not applicable"
    assert result.status == "failed" and result.exit_code == 1
    assert report["chaos"]["scenarios"][0]["name"] == "sever"
    assert report["artifacts"]["results"] == "results.json"
    assert report["config"]["target"] == {"spec": None, "by_suite": {"bench": "reference"}}
    assert report["config"]["chaos"] is None
    text = (job.out_dir / "report.md").read_text()
    assert "## Chaos" in text and "## Benchmarks" in text


def test_a_run_whose_child_recorded_nothing_reports_every_gate_of_its_suites_unmeasured(
        tmp_path: Path) -> None:
    job = _job(tmp_path, ["bench"])
    job.pytest_exit = 0
    result = job._finish()
    gates = {c.name.removeprefix("gate "): c.status for c in result.checks if c.kind == "gate"}
    assert {s for g, s in gates.items() if KNOWN_GATES[g].suite != "bench"} == {"not applicable"}
    assert {s for g, s in gates.items() if KNOWN_GATES[g].suite == "bench"} == {"not measured"}
    assert result.report["figures"] == [] and result.report["chaos"] == {"scenarios": []}


def test_the_child_gets_results_target_chaos_options_and_the_server_kind(
        tmp_path: Path) -> None:
    session = PytestSession(
        root=tmp_path, suites=select_suites(["bench"]), artifacts=Artifacts(tmp_path),
        pg_dsn="postgresql://u:p@127.0.0.1:5432/x", hypothesis_profile="ci", pg_kind="embedded",
        target="resilient", chaos=ChaosArgs("ci", ("sever", "pg-kill"), "reference"))
    argv = session.command()
    assert argv[argv.index("--results") + 1] == str(tmp_path / "results.json")
    assert "--bench-results" not in argv
    assert argv[argv.index("--target") + 1] == "resilient"
    tail = argv[argv.index("--chaos-profile"):]
    assert tail == ["--chaos-profile", "ci", "--chaos-scenario", "sever", "--chaos-scenario",
                    "pg-kill", "--chaos-contrast", "reference"]
    env = session.environment()
    assert env["AUTHSTATE_PG_KIND"] == "embedded" and env["AUTHSTATE_PG"] == "external"
    assert "postgresql://" not in " ".join(argv)  # the DSN travels in the environment only


def test_the_ci_profile_adds_the_reference_contrast_only_for_the_default_chaos_target() -> None:
    chaos = [SUITES["chaos"]]
    assert chaos_args(profile("ci"), None, (), chaos, 7) == ChaosArgs("ci", (), "reference", 7)
    assert chaos_args(profile("ci"), "resilient", (), chaos).contrast == "reference"
    assert chaos_args(profile("ci"), "reference", (), chaos).contrast is None
    assert chaos_args(profile("ci"), "/x/mine.py:open_store", (), chaos).contrast is None
    assert chaos_args(profile("quick"), None, ("sever",), chaos, 7) == ChaosArgs(
        "quick", ("sever",), seed=7)
    assert chaos_args(profile("thorough"), None, (), [SUITES["bench"]]) is None


def test_every_run_draws_a_fresh_chaos_seed_and_seed_replays_one() -> None:
    chaos = [SUITES["chaos"]]
    seeds = {chaos_args(profile("ci"), None, (), chaos).seed for _ in range(5)}
    assert None not in seeds and len(seeds) > 1
    replay = chaos_args(profile("ci"), None, (), chaos, 1234)
    assert replay.seed == 1234
    argv = replay.argv()
    assert argv[argv.index("--chaos-seed") + 1] == "1234"


def test_scenario_names_are_checked_against_the_catalog() -> None:
    chaos = [SUITES["chaos"]]
    assert check_scenarios(["sever", "pg-kill", "sever"], chaos) == ("sever", "pg-kill")
    with pytest.raises(ConfigError, match="unknown chaos scenario\\(s\\): sevr") as err:
        check_scenarios(["sevr"], chaos)
    assert "sever" in (err.value.hint or "") and "client-crash" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="chaos suite is not selected"):
        check_scenarios(["sever"], [SUITES["bench"]])


def test_the_end_summary_prints_the_rto_table_before_the_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.commands import run as run_command

    job = _job(tmp_path, ["bench"])
    ResultsRecorder(job.artifacts.results).section("chaos", {
        "name": "sever", "target": "reference[x]", "contrast": True, "verdict": "failed",
        "anomalies": {"stale-read": 2}, "rto_s": {"p95": 0.61}, "lost_writes": 0})
    job.pytest_exit = 0
    result = job._finish()
    out = io.StringIO()
    monkeypatch.setattr(run_command, "console", Console(file=out, width=140))
    run_command.print_summary(result)
    text = out.getvalue()
    assert text.index("chaos: detection (MTTD) and recovery (RTO)") < text.index("checks")
    assert "reference[x]*" in text  # escaped for rich markup, marked as a contrast row
    assert "failed: stale-read (2 key reads)" in text and "0.610" in text
    assert "* contrast row: the plain store, not gated" in text
