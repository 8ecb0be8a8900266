"""`run` edge cases without a child pytest: counting, scope, deselected suites, the run folder,
the DSN checked first, a database that went away."""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from harness.config import profile
from harness.errors import ConfigError
from harness.report.markdown import render
from harness.runner.job import MainJob, RunOptions, database_gone, prepare_out_dir
from harness.runner.outcomes import RunOutcomes
from harness.runner.suites import select_suites

PROPERTY_TEST = "scenarios/property/test_x.py::test_a"
BENCH_TEST = "scenarios/bench/test_y.py::test_b"


def _job(tmp_path: Path, suites: list[str], **options) -> MainJob:
    opts = RunOptions(profile=profile("quick"), suites=select_suites(suites),
                      out_dir=tmp_path / "run", live=False, argv=["authstate-harness", "run"],
                      **options)
    return MainJob(opts, Console(file=io.StringIO()))


def test_events_delivered_twice_count_each_test_once() -> None:
    outcomes = RunOutcomes(select_suites(["property", "bench"]))
    events = [{"event": "collected", "tests": [PROPERTY_TEST, BENCH_TEST]},
              {"event": "result", "nodeid": PROPERTY_TEST, "when": "call", "outcome": "passed"}]
    outcomes.feed(events)
    outcomes.feed(events)  # what re-reading the event file after Ctrl-C did
    property_suite = outcomes.suites["property"].summary()
    assert property_suite.tests == 1 and property_suite.counts["passed"] == 1
    assert outcomes.suites["bench"].summary().counts["pending"] == 1


def test_gates_of_a_suite_the_filter_emptied_are_not_applicable_with_a_hint(
        tmp_path: Path) -> None:
    job = _job(tmp_path, ["property", "bench"], pytest_args=["-k", "stateful"])
    job.outcomes.feed([{"event": "collected", "tests": [PROPERTY_TEST]},
                       {"event": "result", "nodeid": PROPERTY_TEST, "when": "call",
                        "outcome": "passed"}])
    job.pytest_exit = 0
    result = job._finish()
    checks = {c.name: c for c in result.checks}
    assert result.exit_code == 0 and result.status == "passed"
    assert checks["suite bench"].status == "not applicable"
    bench_gate = checks["gate bench-bulk-min-ratio"]
    assert bench_gate.status == "not applicable" and "--suite property" in bench_gate.detail
    assert "deselected by --pytest-args" in bench_gate.detail
    text = (job.out_dir / "report.md").read_text()
    assert "**Tested:** `reference` (property)." in text
    assert "suite bench: every test deselected by --pytest-args" in text


def test_the_verdict_states_target_and_what_was_not_run(tmp_path: Path) -> None:
    job = _job(tmp_path, ["property"])
    job.outcomes.feed([{"event": "collected", "tests": [PROPERTY_TEST]},
                       {"event": "result", "nodeid": PROPERTY_TEST, "when": "call",
                        "outcome": "passed"}])
    job.pytest_exit = 0
    report = job._finish().report
    assert set(report["config"]["scope"]["suites_not_run"]) == {"bench", "chaos", "load",
                                                                "signal"}
    text = render(report)
    verdict = text.split("## Checks")[0]
    assert "PASSED" in verdict and "`reference` (property)" in verdict
    assert "suite chaos not run (PostgreSQL severed" in verdict
    assert "suite load not run" in verdict


def test_a_bad_dsn_fails_before_the_run_folder_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port '99999'") as err:
        _job(tmp_path, ["property"], dsn="postgresql://u:hunter2@127.0.0.1:99999/db")
    assert "hunter2" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_run_folder_under_a_regular_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write the run folder"):
        prepare_out_dir(Path("/etc/passwd/run"), tmp_path, "x")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="ah-ro-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_existing_read_only_run_folder_is_refused_even_for_root(public_dir: Path) -> None:
    """chmod does not stop root, so the check runs in a child that drops to `nobody`."""
    folder = public_dir / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    tmp_path = public_dir
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        code = 3
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
            prepare_out_dir(folder, tmp_path, "x")
            code = 1
        except ConfigError as exc:
            code = 0 if "cannot write the run folder" in exc.message else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_database_gone_tells_refused_from_alive(pg_dsn: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert database_gone(f"postgresql://u@127.0.0.1:{port}/db") == "connection refused"
    assert database_gone(pg_dsn) is None
