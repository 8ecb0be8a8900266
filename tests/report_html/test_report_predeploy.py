"""The `predeploy` profile: the suites and scenarios it names, its time budget, its one-line
verdict, and a real run against an external --dsn where process faults skip with a reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.chaos.catalog import scenario_params, scenarios_for
from harness.commands.run import verdict_line
from harness.config import profile
from harness.infra.postgres import PostgresServer
from harness.report.checks import Check
from harness.runner.job import RunResult
from harness.runner.suites import select_suites

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^predeploy (PASSED|FAILED|REGRESSED|ERROR) exit=(\d+) gates=(\d+)/(\d+)"
                  r"( failed=\S+)?( undecided=\S+)?( baseline=regressed)? report=\S+report\.html$")


def test_predeploy_names_the_chaos_and_load_suites() -> None:
    prof = profile("predeploy")
    assert prof.suites == ("chaos", "load")
    assert [s.name for s in select_suites(prof.suites)] == ["chaos", "load"]
    assert prof.verdict_line


def test_predeploy_chaos_scenarios_fit_a_five_minute_pipeline() -> None:
    names = [s.name for s in scenarios_for("predeploy")]
    assert names == ["sever", "blackhole", "pg-restart", "client-crash"]
    # fault + warmup + jitter + recovery per repetition, plus ~4 s of setup and checking each:
    # the chaos part's planned time (3 repetitions, issue 16), leaving ~90 s of the 5 minutes
    # to load and provisioning (more only while a gate's interval straddles it).
    planned = sum((p.warmup_s + p.fault_jitter_s / 2 + p.fault_span_s + p.recovery_s + 4)
                  * p.repetitions for p in (scenario_params(n, "predeploy") for n in names))
    assert planned <= 210
    assert scenario_params("sever", "predeploy").outage_s == 10.0  # the RTO gate's claim


def _result(tmp_path: Path, status: str, exit_code: int, checks: list[Check]) -> RunResult:
    return RunResult(exit_code=exit_code, status=status, out_dir=tmp_path, report={},
                     checks=checks)


def test_verdict_line_is_one_parseable_line(tmp_path: Path) -> None:
    checks = [Check("suite chaos", "suite", "passed", "3 passed"),
              Check("gate chaos-rto-p95-max-s", "gate", "missed", "1.4 s", 1.4, 1.0, "<="),
              Check("gate chaos-mttd-p95-max-s", "gate", "passed", "", 0.1, 0.5, "<="),
              Check("gate bench-bulk-min-ratio", "gate", "not applicable", "")]
    line = verdict_line("predeploy", _result(tmp_path, "failed", 1, checks), 1, None)
    assert "\n" not in line and LINE.match(line), line
    assert line.startswith("predeploy FAILED exit=1 gates=1/2 failed=chaos-rto-p95-max-s ")
    passed = [c for c in checks if c.status != "missed"]
    ok = verdict_line("predeploy", _result(tmp_path, "passed", 0, passed), 0, None)
    assert ok.startswith("predeploy PASSED exit=0 gates=1/1 report=")
    worse = verdict_line("predeploy", _result(tmp_path, "passed", 0, passed), 1, True)
    assert worse.startswith("predeploy REGRESSED exit=1 ") and "baseline=regressed" in worse


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_predeploy_against_an_external_dsn_skips_process_faults_and_ends_with_the_verdict(
        pg_server: PostgresServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "CI": "1"}
    env.pop("AUTHSTATE_DSN", None)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--profile", "predeploy", "--suite", "chaos",
         "--scenario", "pg-restart", "--scenario", "client-crash", "--dsn", pg_server.dsn,
         "--gate", "more-chaos-repetitions=0",  # predeploy's 3 repetitions, no more: bounded
         "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
        check=False)
    last = done.stdout.strip().splitlines()[-1]
    assert LINE.match(last), done.stdout[-3000:] + done.stderr[-3000:]
    assert int(LINE.match(last).group(2)) == done.returncode  # type: ignore[union-attr]
    assert done.returncode in (0, 1)
    page = (out / "report.html").read_text()
    assert "pg-restart" in page and "skipped" in page
    assert "this run&#x27;s server is external" in page or "not one the harness" in page
    assert not (out.parent / "index.html").exists()  # only the default reports/ keeps an index
