"""`authstate-harness run` end to end, as a user runs it: a child process, real PostgreSQL.

Each case runs a small selection of the real suites (`--pytest-args -k ...`) so the whole
pipeline is exercised -- provisioning, child pytest, events, checks, report files, exit code --
without running the full suites twice.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.failure_injection import SECRET
from harness.dsn import host_port
from harness.infra.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 540
         ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CI": "1", **(env or {})}
    full_env.pop("AUTHSTATE_DSN", None)
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _report(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "report.json").read_text())


def _all_output(out: Path, done: subprocess.CompletedProcess[str]) -> str:
    files = "".join(p.read_text(errors="replace") for p in out.iterdir() if p.is_file())
    return files + done.stdout + done.stderr


def test_passing_run_writes_a_versioned_report_and_exits_zero(
        pg_server: PostgresServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run("--profile", "ci", "--suite", "property", "--dsn", pg_server.dsn,
                "--out", str(out), "--pytest-args", "-k test_company_ids")
    assert done.returncode == 0, done.stdout + done.stderr
    report = _report(out)
    assert report["schema_version"] == 2
    assert {"run", "environment", "versions", "config", "suites", "results", "figures"} <= set(
        report)
    assert report["run"]["status"] == "passed" and report["run"]["profile"] == "ci"
    assert report["config"]["profile"]["hypothesis_profile"] == "ci"
    (suite,) = report["suites"]
    assert suite["name"] == "property" and suite["counts"]["passed"] >= 1
    assert suite["counts"]["failed"] == 0
    assert report["environment"]["postgres"]["kind"] == "external"
    assert report["versions"]["asyncpg"]
    assert "PASSED" in (out / "report.md").read_text()
    assert {"pytest.log", "junit.xml", "events.jsonl"} <= {p.name for p in out.iterdir()}
    assert "PASSED" in done.stdout and "report.md" in done.stdout


def test_failing_test_exits_one_and_no_key_material_is_written(
        pg_server: PostgresServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run("--suite", "property", "--dsn", pg_server.dsn, "--out", str(out),
                "--pytest-args", "-k test_company_ids -p fixtures.failure_injection",
                env={"AUTHSTATE_INJECT_FAILURE": "test_company_ids"})
    assert done.returncode == 1, done.stdout + done.stderr
    report = _report(out)
    assert report["run"]["status"] == "failed"
    failures = report["suites"][0]["failures"]
    assert failures and all("test_company_ids" in f["test"] for f in failures)
    assert "stored private key" in failures[0]["message"]
    assert "FAILED" in done.stdout  # shown as it happens, not only at the end
    text = _all_output(out, done)
    for rendering in (base64.b64encode(SECRET).decode(), SECRET.hex(), repr(SECRET)[2:-1],
                      "hunter2"):
        assert rendering not in text


def test_a_missed_gate_exits_one_and_unmeasured_gates_are_named(
        pg_server: PostgresServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run("--suite", "bench", "--dsn", pg_server.dsn, "--out", str(out),
                "--gate", "bench-point-get-max-ratio=0.01",
                "--pytest-args", "-k 'test_point_get_vs_raw_fetch and pre-key'",
                env={"AUTHSTATE_BENCH_ROUNDS": "8", "AUTHSTATE_BENCH_POINT_CALLS": "300"})
    assert done.returncode == 1, done.stdout + done.stderr
    checks = {c["name"]: c for c in _report(out)["results"]["checks"]}
    assert checks["gate bench-point-get-max-ratio"]["status"] == "failed"
    assert checks["gate bench-point-get-max-ratio"]["threshold"] == 0.01
    assert checks["gate proxy-p50-max-ratio"]["status"] == "not measured"
    gates = {g["name"]: g for g in _report(out)["config"]["gates"]}
    assert gates["bench-point-get-max-ratio"]["source"] == "--gate"


def test_unreachable_database_is_a_harness_error_with_a_report(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "run"
    done = _run("--dsn", f"postgresql://app:hunter2@127.0.0.1:{port}/x", "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "hint:" in done.stderr
    report = _report(out)
    assert report["run"]["status"] == "error" and report["run"]["error"]
    assert "hunter2" not in _all_output(out, done)


def test_bad_configuration_fails_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run("--gate", "bench-bulk-min-ratoi=0.9", "--out", str(out))
    assert done.returncode == 2
    assert "unknown gate 'bench-bulk-min-ratoi'" in done.stderr and "known gates" in done.stderr
    assert not out.exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    done = _run("--out", str(busy))
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (busy / "notes.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1


def test_ctrl_c_writes_an_interrupted_report_and_stops_postgres(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "CI": "1"}
    env.pop("AUTHSTATE_DSN", None)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--suite", "property",
                             "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        events = out / "events.jsonl"
        while time.monotonic() < deadline:
            if events.exists() and '"result"' in events.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stdout + stderr
    report = _report(out)
    assert report["run"]["status"] == "interrupted"
    # every test counted once (the report used to say "22 of 206 never finished" for 103)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()
              if line.strip()]
    collected = {t for e in events if e["event"] == "collected" for t in e["tests"]}
    (suite,) = report["suites"]
    assert suite["tests"] == len(collected) == sum(suite["counts"].values())
    (check,) = [c for c in report["results"]["checks"] if c["name"] == "suite property"]
    assert f"of {len(collected)} tests" in check["detail"], check["detail"]
    host, port = host_port(report["environment"]["postgres"]["dsn"])
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=2):
        pass  # the embedded PostgreSQL the run started is gone


def test_postgres_stopped_mid_run_is_a_harness_error_naming_it(tmp_path: Path) -> None:
    """`run --dsn` against a server that is stopped while the suites run: exit 2, and the
    report says the database went away instead of counting the failures as findings."""
    from harness.infra.postgres.embedded import EmbeddedPostgres

    out = tmp_path / "run"
    with EmbeddedPostgres() as pg:
        env = {**os.environ, "CI": "1"}
        env.pop("AUTHSTATE_DSN", None)
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--suite", "property",
                                 "--dsn", pg.dsn, "--out", str(out)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            events = out / "events.jsonl"
            while time.monotonic() < deadline:
                if events.exists() and events.read_text().count('"result"') >= 3:
                    break
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
            pg.stop("immediate")  # the server goes away mid-run
            stdout, stderr = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, stdout + stderr
    report = _report(out)
    assert report["run"]["status"] == "error"
    assert "went away during the run (connection refused)" in report["run"]["error"]
    assert "went away" in stdout + stderr
