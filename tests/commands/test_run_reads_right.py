"""What `run` says when it could not do its job: an error report that states only what is true
(no "All 1 check passed" for a run that never reached PostgreSQL)."""

from __future__ import annotations

import html
import io
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.config import profile
from harness.errors import ProvisioningError
from harness.report.html import render_html
from harness.runner.job import MainJob, RunOptions
from harness.runner.suites import select_suites

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(tmp_path: Path, suites: list[str], **options: object) -> MainJob:
    opts = RunOptions(profile=profile("quick"), suites=select_suites(suites),
                      out_dir=tmp_path / "run", live=False, argv=["authstate-harness", "run"],
                      **options)  # type: ignore[arg-type]
    return MainJob(opts, Console(file=io.StringIO()))


def test_a_run_that_never_reached_postgres_claims_no_check_and_no_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHSTATE_DSN", raising=False)
    job = _job(tmp_path, ["property"], dsn=f"postgresql://app@127.0.0.1:{_closed_port()}/x")
    with pytest.raises(ProvisioningError):
        job.run()
    out = tmp_path / "run"
    md = (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    page = html.unescape(re.sub(r"<[^>]+>", " ", render_html(report).split("</style>")[1]))
    assert report["run"]["status"] == "error" and report["run"]["exit_code"] == 2
    assert report["results"]["checks"] == [] and report["suites"] == []
    for text in (md, page):
        assert "passed" not in text.split("Harness error")[0].lower(), text[:600]
        assert "suite property" not in text and "None (None)" not in text
        assert "not a verdict on the store" in text and "No suite ran." in text
        assert "not reached (the run stopped before PostgreSQL was ready)" in text


NO_ROLE = ("read-only acts on the target's own LOGIN role: cannot create a LOGIN role for the "
           "store under test (permission denied to create role) (faults on the target's own "
           "role need a server where the harness may CREATE ROLE: run without --dsn (embedded "
           "PostgreSQL) or give the DSN's user CREATEROLE)")


def test_every_scenario_skipped_for_a_privilege_is_exit_2_with_the_hint_not_a_verdict(
        tmp_path: Path) -> None:
    """`run --suite chaos --scenario read-only --dsn` as a user without CREATEROLE: nothing was
    measured, and that is about the server, not the store: exit 2 naming why, never exit 1
    ("gates not measured" read as the store failing) and never exit 0 (a pass that proved
    nothing)."""
    from fixtures.results import ResultsRecorder

    job = _job(tmp_path, ["chaos"], scenarios=["read-only", "connection-exhaustion"])
    tests = [f"scenarios/chaos/test_chaos.py::test_chaos_scenario[{n}]"
             for n in ("read-only", "connection-exhaustion")]
    job.outcomes.feed([{"event": "collected", "tests": tests}]
                      + [{"event": "result", "nodeid": t, "when": "call", "outcome": "skipped",
                          "message": NO_ROLE} for t in tests])
    recorder = ResultsRecorder(job.artifacts.results)
    for name in ("read-only", "connection-exhaustion"):
        recorder.section("chaos", {"name": name, "target": "resilient", "verdict": "skipped",
                                   "reason": NO_ROLE, "gated": True})
    job.pytest_exit = 0  # what pytest says when every test skipped
    result = job._finish()
    assert (result.status, result.exit_code) == ("error", 2)
    error = result.report["run"]["error"]
    assert "every chaos test was skipped" in error and "chaos-rto-p95-max-s" in error
    assert "give the DSN's user CREATEROLE" in error  # the hint travels with the reason
    md = (tmp_path / "run" / "report.md").read_text()
    assert "not a verdict on the store" in md and "## Harness error" in md


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_as_a_user_without_createrole_exits_2_with_the_hint(pg_server: Any,
                                                                tmp_path: Path) -> None:
    """The same, for real: a CREATEDB-only role on a real server, the read-only scenario (it
    acts on the target's own role), the CLI in a child process (a few seconds)."""
    import asyncio
    import os
    import secrets
    import subprocess
    import sys

    import asyncpg

    from harness.infra.postgres.roles import with_user

    name, password = f"nc_limited_{secrets.token_hex(4)}", secrets.token_urlsafe(12)

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(pg_server.dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' CREATEDB NOCREATEROLE"))
    try:
        env = {k: v for k, v in os.environ.items() if k != "AUTHSTATE_DSN"}
        done = subprocess.run(
            [sys.executable, "-m", "harness", "run", "--suite", "chaos", "--scenario",
             "read-only", "--dsn", with_user(pg_server.dsn, name, password), "--out",
             str(tmp_path / "run"), "--plain"], cwd=ROOT, env={**env, "CI": "1"},
            capture_output=True, text=True, timeout=240, check=False)
    finally:
        asyncio.run(sql(f"DROP OWNED BY {name}; DROP ROLE {name}"))
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "could not be measured on this server" in output
    assert "give the DSN's user CREATEROLE" in output and password not in output


def test_the_end_summary_names_the_fault_under_load_and_its_failed_calls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Predeploy's load suite injects `sever@15s+8s`: its failed calls are in the every-phase
    table, so the console names the fault and says where they fall, apart from the steady state
    the gates judge (they read as failures of "steady, 100 companies")."""
    import sys

    from harness.commands import run as run_command
    from harness.runner.job import RunResult

    sys.path.insert(0, str(ROOT / "tests" / "report_html"))
    from report_html_data import real_load_with_fault  # type: ignore[import-not-found]

    report = real_load_with_fault()
    report["config"]["scope"] = {}
    out = io.StringIO()
    monkeypatch.setattr(run_command, "console", Console(file=out, width=200))
    run_command.print_summary(RunResult(1, "passed", tmp_path, report, []))
    text = " ".join(out.getvalue().split())  # the table's title wraps to the table's width
    assert ("latency per store operation, ms, every phase (HDR; Locust's own right) -- traffic "
            "profile steady, 100 companies, fault sever@20s+10s under load") in text
    assert ("fault under load sever@20s+10s (window 20.002 - 30.01 s): 4459 of 4494 calls "
            "failed during it; 0 of 2229 calls failed in the recovery after it (not part of the "
            "steady state)") in text
    assert "steady state (what the gates judge; phases after, before): 18568 calls, 0 failed" \
        in text


def test_the_predeploy_verdict_line_stays_one_token_per_field_when_a_suite_fails(
        tmp_path: Path) -> None:
    """A deploy script splits the last line on spaces: a failed suite check ("suite chaos")
    broke the `failed=` field in two (seen when a chaos test failed on a busy machine)."""
    from harness.commands.run import verdict_line
    from harness.report.checks import Check
    from harness.runner.job import RunResult

    checks = [Check("suite chaos", "suite", "failed", "1 of 2 tests failed"),
              Check("gate chaos-rto-p95-max-s", "gate", "missed", "1.2 s", 1.2, 1.0, "<=")]
    line = verdict_line("predeploy", RunResult(1, "failed", tmp_path, {}, checks), 1, None)
    assert " failed=suite:chaos,chaos-rto-p95-max-s report=" in line
    assert re.fullmatch(r"predeploy FAILED exit=1 gates=0/1 failed=\S+ report=\S+", line)
